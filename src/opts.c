// SPDX-License-Identifier: MIT
/*
 * opts: one table of options -> the command line, the environment, defaults and --help.
 * A value is applied by its row's kind (opts_set) whether it came from a flag or a variable,
 * so both take the same checks and give the same messages, naming where it came from.
 */
#include "opts.h"

#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OPTS_KIB     1024ULL
#define OPTS_IGNORED 1 /* opts_set: a variable's bad value, warned about and ignored */

void opts_warn(struct opts_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->n_warn == OPTS_MAX_WARN) {
		st->warn_lost++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(st->warn[st->n_warn++], OPTS_WARN_LEN, fmt, ap);
	va_end(ap);
}

int opts_fail(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int opts_oom(char *err, size_t err_size)
{
	if (err && err_size)
		snprintf(err, err_size, "out of memory while reading the configuration");
	return -ENOMEM;
}

const struct opts_option *opts_find(const struct opts_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->rows[i].name && !strcmp(t->rows[i].name, name))
			return &t->rows[i];
	return NULL;
}

static bool opts_takes_value(const struct opts_option *o)
{
	return o->kind != OPTS_FLAG && o->kind != OPTS_COUNT && o->kind != OPTS_HELP &&
	       o->kind != OPTS_VERSION;
}

/* ---- values ---------------------------------------------------------------------------- */

int opts_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL; /* junk is reported as such even in a number that overflows */
	for (; *s; s++) {
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A byte count: decimal, optionally followed by K, M or G (powers of 1024), then B/iB. */
static int opts_parse_size(const char *s, uint64_t *out)
{
	const char *p = s + strspn(s, "0123456789"), *units = "kmg", *u;
	uint64_t v = 0, mult = 1;
	bool overflow = false;

	if (p == s)
		return -EINVAL;
	for (const char *d = s; d < p; d++) {
		if (v > (UINT64_MAX - (unsigned)(*d - '0')) / 10)
			overflow = true;
		else
			v = v * 10 + (unsigned)(*d - '0');
	}
	if (*p) {
		u = strchr(units, tolower((unsigned char)*p));
		if (!u)
			return -EINVAL;
		for (const char *k = units; k <= u; k++)
			mult *= OPTS_KIB;
		p++;
		if (*p && strcasecmp(p, "ib") && strcasecmp(p, "b"))
			return -EINVAL;
	}
	if (overflow || v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

/* @s (from @who: a flag or a variable) as @o's number, within its bounds. */
static int opts_get_u64(const struct opts_option *o, const char *who, const char *s, uint64_t *out,
			char *err, size_t err_size)
{
	bool size = o->kind == OPTS_SIZE;
	uint64_t v;
	int ret;

	ret = size ? opts_parse_size(s, &v) : opts_parse_u64(s, &v);
	if (ret == -EINVAL && size)
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is not a size (%s: a non-negative integer, "
				 "optionally followed by K, M or G)",
				 who, OPTS_SHOWN_MAX, s, o->unit);
	if (ret == -EINVAL)
		return opts_fail(err, err_size, "%s: \"%.*s\" is not a non-negative integer (%s)",
				 who, OPTS_SHOWN_MAX, s, o->unit);
	if (ret == -ERANGE || v < o->min || v > o->max)
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is out of range: must be between %llu and %llu (%s)",
				 who, OPTS_SHOWN_MAX, s, (unsigned long long)o->min,
				 (unsigned long long)o->max, o->unit);
	*out = v;
	return 0;
}

/* "a, b or c": the names of @o's choices. */
static void opts_choice_list(const struct opts_option *o, char *list, size_t size)
{
	const struct opts_choice *c;
	size_t at = 0;

	list[0] = '\0';
	for (c = o->choices; c->name && at < size; c++)
		at += (size_t)snprintf(list + at, size - at, "%s%s",
				       c == o->choices ? ""
				       : c[1].name     ? ", "
						       : " or ",
				       c->name);
}

static bool opts_find_choice(const struct opts_option *o, const char *s, size_t len, int *out)
{
	for (const struct opts_choice *c = o->choices; c->name; c++) {
		if (strlen(c->name) == len &&
		    (o->icase ? !strncasecmp(s, c->name, len) : !strncmp(s, c->name, len))) {
			*out = c->value;
			return true;
		}
	}
	return false;
}

static int opts_get_choice(const struct opts_option *o, const char *who, const char *s, int *out,
			   char *err, size_t err_size)
{
	char list[128];

	if (opts_find_choice(o, s, strlen(s), out))
		return 0;
	opts_choice_list(o, list, sizeof(list));
	return opts_fail(err, err_size, "%s: \"%.*s\" is not %s (%s)", who, OPTS_SHOWN_MAX, s,
			 o->unit, list);
}

static void *opts_field(void *dst, const struct opts_option *o)
{
	return (char *)dst + o->off;
}

static size_t *opts_count(void *dst, const struct opts_option *o)
{
	return (size_t *)((char *)dst + o->count_off);
}

/* Store @v in a numeric field of the row's size (bool, 32 or 64 bits). */
static void opts_store(void *dst, const struct opts_option *o, uint64_t v)
{
	void *f = opts_field(dst, o);

	if (o->size == sizeof(bool))
		*(bool *)f = v != 0;
	else if (o->size == sizeof(uint32_t))
		*(uint32_t *)f = (uint32_t)v;
	else
		*(uint64_t *)f = v;
}

static int opts_set_str(char **field, const char *v, char *err, size_t err_size)
{
	char *copy = strdup(v);

	if (!copy)
		return opts_oom(err, err_size);
	text_free_wiped(*field); /* a value given twice may be a secret (--endpoint's password) */
	*field = copy;
	return 0;
}

/* One more entry of a repeatable string or number. */
static int opts_add(void *dst, const struct opts_option *o, const char *who, const char *v,
		    char *err, size_t err_size)
{
	size_t *n = opts_count(dst, o);
	uint64_t num = 0;
	int ret;

	if (o->kind == OPTS_STRS && !*v)
		return opts_fail(err, err_size, "%s: expects %s, not an empty string", who,
				 o->unit);
	if (*n == OPTS_MAX_LIST)
		return opts_fail(err, err_size, "%s: given too many times (at most %d)", who,
				 OPTS_MAX_LIST);
	if (o->kind == OPTS_UINTS) {
		ret = opts_get_u64(o, who, v, &num, err, err_size);
		if (!ret)
			((uint32_t *)opts_field(dst, o))[(*n)++] = (uint32_t)num;
		return ret;
	}
	((char **)opts_field(dst, o))[*n] = strdup(v);
	if (!((char **)opts_field(dst, o))[*n])
		return opts_oom(err, err_size);
	(*n)++;
	return 0;
}

int opts_parse_bool(const char *v, bool *out)
{
	/*
	 * The specification's Boolean: true only for "true" in any case, and an SDK "MUST NOT
	 * extend this definition" (1 and yes are not true); "false" is false. Anything else is
	 * refused here: the caller warns, and the value does not count (false by default).
	 */
	if (!strcasecmp(v, "true") || !strcasecmp(v, "false")) {
		*out = !strcasecmp(v, "true");
		return 0;
	}
	return -EINVAL;
}

/* A flag sets true; its variable says true or false (OPTS_IGNORED: neither, warned). */
static int opts_set_bool(void *dst, const struct opts_option *o, const char *who, const char *v,
			 bool env, struct opts_state *st)
{
	bool b = true;

	if (env && opts_parse_bool(v, &b) < 0) {
		opts_warn(st,
			  "%s: \"%.*s\" is neither true nor false (the only values the "
			  "OpenTelemetry specification allows): ignored",
			  who, OPTS_SHOWN_MAX, v);
		return OPTS_IGNORED;
	}
	opts_store(dst, o, b);
	return 0;
}

/*
 * An enum's variable, leniently: unknown names are warned about and ignored (OPTS_IGNORED);
 * with .env_list, the first known name of a comma list is taken and the others warned about.
 */
static int opts_set_enum_env(void *dst, const struct opts_option *o, const char *who, const char *v,
			     struct opts_state *st)
{
	char list[128];
	const char *p = v, *end;
	bool found = false;
	int choice = 0;

	opts_choice_list(o, list, sizeof(list));
	for (; *p; p = *end ? end + 1 : end) {
		const char *b = p, *e;

		end = o->env_list ? strchrnul(p, ',') : p + strlen(p);
		e = end;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (b == e)
			continue;
		if (!found && opts_find_choice(o, b, (size_t)(e - b), &choice)) {
			found = true;
			opts_store(dst, o, (uint64_t)choice);
			continue;
		}
		opts_warn(
			st, "%s: \"%.*s\" %s (%s): ignored", who,
			(int)((size_t)(e - b) > OPTS_SHOWN_MAX ? OPTS_SHOWN_MAX : (size_t)(e - b)),
			b,
			found ? "comes after the one used: only one is supported" : "is not known",
			list);
	}
	return found ? 0 : OPTS_IGNORED;
}

static void opts_count_step(void *dst, const struct opts_option *o)
{
	int *f = opts_field(dst, o);

	if ((o->step > 0 && *f < 16) || (o->step < 0 && *f > -16))
		*f += o->step;
}

/* Apply @v to row @o: from the command line (@v NULL for rows without a value) or from the
 * variable @who (@env). Empty variables never get here. */
static int opts_set(void *dst, void *ctx, const struct opts_option *o, const char *who,
		    const char *v, bool env, struct opts_state *st, char *err, size_t err_size)
{
	uint64_t num = 0;
	int ret = 0, choice = 0;

	switch (o->kind) {
	case OPTS_FLAG:
		return opts_set_bool(dst, o, who, v, env, st);
	case OPTS_COUNT:
		opts_count_step(dst, o);
		return 0;
	case OPTS_STR:
		ret = o->check ? o->check(who, v, 0, err, err_size) : 0;
		if (!ret && !*v)
			ret = opts_fail(err, err_size, "%s: expects %s, not an empty string", who,
					o->unit);
		return ret ? ret : opts_set_str(opts_field(dst, o), v, err, err_size);
	case OPTS_STRS:
	case OPTS_UINTS:
		return opts_add(dst, o, who, v, err, err_size);
	case OPTS_UINT:
	case OPTS_SIZE:
		ret = opts_get_u64(o, who, v, &num, err, err_size);
		if (!ret && o->check)
			ret = o->check(who, v, num, err, err_size);
		if (!ret)
			opts_store(dst, o, num);
		return ret;
	case OPTS_ENUM:
		if (env && o->env_lenient)
			return opts_set_enum_env(dst, o, who, v, st);
		ret = opts_get_choice(o, who, v, &choice, err, err_size);
		if (!ret)
			opts_store(dst, o, (uint64_t)choice);
		return ret;
	case OPTS_CUSTOM:
		return o->set(ctx, o, who, v, env, err, err_size);
	case OPTS_HELP:
		st->help = true;
		return 0;
	case OPTS_VERSION:
		st->version = true;
		return 0;
	case OPTS_SECTION:
		break;
	}
	return opts_fail(err, err_size, "internal error: option %s not handled", who);
}

/* ---- defaults -------------------------------------------------------------------------- */

void opts_defaults(const struct opts_table *t, void *dst)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct opts_option *o = &t->rows[i];
		uint64_t v = 0;
		int choice = 0;

		if (!o->def)
			continue;
		if (o->kind == OPTS_ENUM && !opts_get_choice(o, o->name, o->def, &choice, NULL, 0))
			opts_store(dst, o, (uint64_t)choice);
		else if ((o->kind == OPTS_UINT || o->kind == OPTS_SIZE) &&
			 !opts_get_u64(o, o->name, o->def, &v, NULL, 0))
			opts_store(dst, o, v);
	}
}

void opts_free(const struct opts_table *t, void *dst)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct opts_option *o = &t->rows[i];
		char **f = opts_field(dst, o);

		if (o->kind == OPTS_STR) {
			text_free_wiped(*f);
			*f = NULL;
		}
		if (o->kind != OPTS_STRS)
			continue;
		for (size_t k = 0; k < *opts_count(dst, o); k++) {
			text_free_wiped(f[k]);
			f[k] = NULL;
		}
		*opts_count(dst, o) = 0;
	}
}

/* ---- command line ---------------------------------------------------------------------- */

/* getopt_long's view of the table: the long option of row i returns 256 + i. */
static void opts_getopt_table(const struct opts_table *t, struct option *longopts, char *shortopts)
{
	size_t n = 0, s = 0;

	shortopts[s++] = '+'; /* stop at the first non-option: the caller's argv is not permuted */
	shortopts[s++] = ':'; /* a missing value is ':', not '?' */
	for (size_t i = 0; i < t->n; i++) {
		const struct opts_option *o = &t->rows[i];
		int has_arg = opts_takes_value(o) ? required_argument : no_argument;

		if (o->kind == OPTS_SECTION)
			continue;
		longopts[n++] = (struct option){o->name, has_arg, NULL, 256 + (int)i};
		if (o->short_name) {
			shortopts[s++] = o->short_name;
			if (has_arg == required_argument)
				shortopts[s++] = ':';
		}
	}
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	shortopts[s] = '\0';
}

static const struct opts_option *opts_of(const struct opts_table *t, int opt)
{
	if (opt >= 256 && (size_t)(opt - 256) < t->n)
		return &t->rows[opt - 256];
	for (size_t i = 0; i < t->n; i++)
		if (t->rows[i].short_name && t->rows[i].short_name == opt)
			return &t->rows[i];
	return NULL;
}

/* The command-line element being parsed, for messages: "--name" without any "=value". */
static void opts_elem_name(const char *elem, int optopt_c, char *buf, size_t size)
{
	size_t len;

	if (elem && elem[0] == '-' && elem[1] == '-') {
		len = strcspn(elem, "=");
		snprintf(buf, size, "%.*s", (int)(len > OPTS_SHOWN_MAX ? OPTS_SHOWN_MAX : len),
			 elem);
	} else if (optopt_c > 0 && optopt_c < 256 && isprint(optopt_c)) {
		snprintf(buf, size, "-%c", optopt_c);
	} else {
		snprintf(buf, size, "%.*s", OPTS_SHOWN_MAX, elem ? elem : "?");
	}
}

/* Edit distance (insertions, deletions, substitutions) of two short names, capped at 9. */
static size_t opts_distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b), row[OPTS_SHOWN_MAX + 1], diag, up;

	if (la > OPTS_SHOWN_MAX || lb > OPTS_SHOWN_MAX)
		return 9;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb] > 9 ? 9 : row[lb];
}

/*
 * The option a mistyped long name @name (@len bytes, without "--") most likely meant: the
 * only one it is a prefix of, else the only nearest within an edit distance of 2. NULL: none
 * is close enough (or two are equally close).
 */
static const struct opts_option *opts_suggest(const struct opts_table *t, const char *name,
					      size_t len)
{
	const struct opts_option *best = NULL, *prefix = NULL;
	size_t best_d = 3, n_prefix = 0, d;
	bool tie = false;

	for (size_t i = 0; i < t->n; i++) {
		const struct opts_option *o = &t->rows[i];

		if (o->kind == OPTS_SECTION)
			continue;
		if (len && !strncmp(o->name, name, len) && ++n_prefix)
			prefix = o;
		d = opts_distance(name, len, o->name);
		if (d < best_d) {
			best = o, best_d = d, tie = false;
		} else if (d == best_d && best) {
			tie = true;
		}
	}
	if (n_prefix == 1)
		return prefix;
	return tie ? NULL : best;
}

/* getopt's complaint about @elem, as a message that says what to do. */
static int opts_argv_error(const struct opts_table *t, int opt, const char *elem, char *err,
			   size_t err_size)
{
	const struct opts_option *o = NULL, *near = NULL;
	char name[OPTS_SHOWN_MAX + 8], want[OPTS_SHOWN_MAX + 8];
	bool is_long = elem && !strncmp(elem, "--", 2);

	opts_elem_name(elem, optopt, name, sizeof(name));
	if (is_long) {
		snprintf(want, sizeof(want), "%.*s", (int)strcspn(elem + 2, "="), elem + 2);
		if (strchr(elem, '='))
			o = opts_find(t, want);
	}
	if (opt == ':')
		return opts_fail(err, err_size,
				 "option %s needs a value (run %s --help for the options)", name,
				 t->prog);
	if (o && !opts_takes_value(o))
		return opts_fail(err, err_size,
				 "option %s takes no value (run %s --help for the options)", name,
				 t->prog);
	if (is_long && !o)
		near = opts_suggest(t, want, strlen(want));
	if (near)
		return opts_fail(err, err_size,
				 "unknown option %s; did you mean --%s? (run %s --help for the "
				 "options)",
				 name, near->name, t->prog);
	return opts_fail(err, err_size,
			 "unknown or ambiguous option %s (run %s --help for the options)", name,
			 t->prog);
}

int opts_parse_argv(const struct opts_table *t, void *dst, void *ctx, int argc, char **argv,
		    struct opts_state *st, char *err, size_t err_size)
{
	struct option longopts[OPTS_MAX + 1];
	char shortopts[2 * OPTS_MAX + 3], who[OPTS_SHOWN_MAX + 8];
	const struct opts_option *o;
	int opt, at, ret;

	if (argc <= 1 || !argv)
		return 0;
	opts_getopt_table(t, longopts, shortopts);
	/* optind = 0 fully re-initialises GNU getopt: a process can load again. */
	opterr = 0;
	optind = 0;
	for (;;) {
		at = optind > 0 ? optind : 1;
		opt = getopt_long(argc, argv, shortopts, longopts, NULL);
		if (opt == -1)
			break;
		o = opts_of(t, opt);
		if (!o)
			return opts_argv_error(t, opt, at < argc ? argv[at] : NULL, err, err_size);
		st->seen[opts_index(t, o)] = true;
		snprintf(who, sizeof(who), "--%s", o->name);
		ret = opts_set(dst, ctx, o, who, optarg, false, st, err, err_size);
		if (ret || st->help || st->version)
			return ret;
	}
	if (optind < argc)
		return opts_fail(err, err_size,
				 "unexpected argument \"%.*s\": options take the form --name VALUE "
				 "(run %s --help for the options)",
				 OPTS_SHOWN_MAX, argv[optind], t->prog);
	return 0;
}

/* ---- secrets on the command line ------------------------------------------------------ */

#define OPTS_WIPE_CHAR '*'

static size_t opts_wipe_range(char *b, char *e)
{
	size_t n = (size_t)(e - b);

	memset(b, OPTS_WIPE_CHAR, n);
	return n;
}

/* "scheme://user:password@host...": the password, up to the '@' ending the userinfo. */
static size_t opts_wipe_userinfo(char *v)
{
	char *auth = strstr(v, "://"), *end, *at = NULL, *colon;

	if (!auth)
		return 0;
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (char *c = auth; c < end; c++)
		if (*c == '@')
			at = c; /* the last one: a password may hold a raw '@' */
	if (!at)
		return 0;
	colon = memchr(auth, ':', (size_t)(at - auth));
	return colon ? opts_wipe_range(colon + 1, at) : 0;
}

size_t opts_wipe_value(enum opts_secret s, char *v)
{
	char *eq;

	if (!v)
		return 0;
	switch (s) {
	case OPTS_SECRET_AFTER_EQ:
		eq = strchr(v, '=');
		return eq ? opts_wipe_range(eq + 1, eq + 1 + strlen(eq + 1)) : 0;
	case OPTS_SECRET_USERINFO:
		return opts_wipe_userinfo(v);
	case OPTS_PUBLIC:
		break;
	}
	return 0;
}

size_t opts_wipe_argv(const struct opts_table *t, int argc, char **argv)
{
	struct option longopts[OPTS_MAX + 1];
	char shortopts[2 * OPTS_MAX + 3];
	const struct opts_option *o;
	size_t wiped = 0;
	int opt;

	if (argc <= 1 || !argv)
		return 0;
	opts_getopt_table(t, longopts, shortopts);
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		o = opts_of(t, opt);
		if (o && o->secret && optarg && opts_wipe_value(o->secret, optarg))
			wiped++;
	}
	optind = 0;
	return wiped;
}

/* ---- environment ----------------------------------------------------------------------- */

static const char *opts_env_get(opts_getenv_fn fn, const char *name)
{
	const char *v = fn && name ? fn(name) : NULL;

	return v && *v ? v : NULL;
}

/* What a variable's ignored value leaves in place, for its warning. */
static void opts_env_fallback(const struct opts_option *o, const char *base_v,
			      struct opts_state *st)
{
	size_t n = st->n_warn;
	char *w = n ? st->warn[n - 1] : NULL;

	if (!w || st->warn_lost)
		return;
	if (base_v)
		snprintf(w + strlen(w), OPTS_WARN_LEN - strlen(w), "; %s applies", o->env);
	else
		snprintf(w + strlen(w), OPTS_WARN_LEN - strlen(w), "; using %s",
			 o->def ? o->def : "the default");
}

int opts_load_env(const struct opts_table *t, void *dst, void *ctx, opts_getenv_fn getenv_fn,
		  struct opts_state *st, char *err, size_t err_size)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct opts_option *o = &t->rows[i];
		const char *who = o->traces_env, *v, *base;
		int ret;

		if (!o->env || (st->seen[i] && o->kind != OPTS_CUSTOM))
			continue;
		v = opts_env_get(getenv_fn, who);
		base = opts_env_get(getenv_fn, o->env);
		st->traces[i] = v != NULL;
		if (v) {
			/* A TRACES_ value ignored as unknown leaves the base variable's. */
			ret = opts_set(dst, ctx, o, who, v, true, st, err, err_size);
			if (ret < 0)
				return ret;
			if (ret != OPTS_IGNORED)
				continue;
			opts_env_fallback(o, base, st);
			st->traces[i] = false;
		}
		if (!base)
			continue;
		ret = opts_set(dst, ctx, o, o->env, base, true, st, err, err_size);
		if (ret == OPTS_IGNORED)
			opts_env_fallback(o, NULL, st);
		else if (ret)
			return ret;
	}
	return 0;
}

/* ---- usage ----------------------------------------------------------------------------- */

#define OPTS_HELP_COL	26     /* where descriptions start */
#define OPTS_HELP_WIDTH 80     /* lines stay shorter than this */
#define OPTS_NBSP	'\x1f' /* a space the help text is never wrapped at */

/* Print @text from column OPTS_HELP_COL, where the cursor is, wrapped at spaces. */
static void opts_wrap(FILE *out, const char *text)
{
	size_t col = OPTS_HELP_COL;

	while (*text) {
		size_t word = strcspn(text, " ");

		if (col > OPTS_HELP_COL && col + 1 + word >= OPTS_HELP_WIDTH) {
			fprintf(out, "\n%*s", OPTS_HELP_COL, "");
			col = OPTS_HELP_COL;
		} else if (col > OPTS_HELP_COL) {
			fputc(' ', out);
			col++;
		}
		for (size_t i = 0; i < word; i++)
			fputc(text[i] == OPTS_NBSP ? ' ' : text[i], out);
		col += word;
		text += word + strspn(text + word, " ");
	}
	fputc('\n', out);
}

static void opts_usage_row(FILE *out, const struct opts_option *o)
{
	char left[64], text[640];
	int n;

	if (o->short_name)
		n = snprintf(left, sizeof(left), "  -%c, --%s", o->short_name, o->name);
	else
		n = snprintf(left, sizeof(left), "  --%s%s%s", o->name, o->arg ? " " : "",
			     o->arg ? o->arg : "");
	fputs(left, out);
	if (n >= OPTS_HELP_COL - 1)
		fprintf(out, "\n%*s", OPTS_HELP_COL, "");
	else
		fprintf(out, "%*s", OPTS_HELP_COL - n, "");
	/* The help, then "(VARIABLE; default X)", "(VARIABLE)" or "(default X)". */
	n = snprintf(text, sizeof(text), "%s", o->help);
	if (o->env && o->def)
		snprintf(text + n, sizeof(text) - (size_t)n, " (%s; default%c%s)", o->env,
			 OPTS_NBSP, o->def);
	else if (o->env)
		snprintf(text + n, sizeof(text) - (size_t)n, " (%s)", o->env);
	else if (o->def)
		snprintf(text + n, sizeof(text) - (size_t)n, " (default%c%s)", OPTS_NBSP, o->def);
	opts_wrap(out, text);
}

void opts_usage(const struct opts_table *t, const char *head, const char *tail, FILE *out)
{
	fputs(head, out);
	for (size_t i = 0; i < t->n; i++) {
		if (t->rows[i].kind == OPTS_SECTION)
			fprintf(out, "\n%s:\n", t->rows[i].help);
		else
			opts_usage_row(out, &t->rows[i]);
	}
	fputs(tail, out);
}
