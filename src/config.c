// SPDX-License-Identifier: MIT
/*
 * config: what cln-otlp's options are, and the rules between them.
 *
 * config_options[] is the one place an option is written: names, variables, type, bounds,
 * unit, default, field and help; src/opts.c makes getopt_long's tables, the parsing with its
 * messages, the defaults and --help from it. config_load() reads options three times so that
 * a flag always wins and a flag can fix a bad variable: (1) the flags, remembering which
 * settings they fixed; (2) each variable (its TRACES_ form first) for the settings no flag
 * fixed; (3) the lists merged (flag headers and resource attributes over the environment's),
 * the endpoint settled, rules between options checked. Every string in struct config is a
 * copy owned by it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opts.h"
#include "text.h"
#include "volume.h"

#define CONFIG_PROG "cln-otlp"

#define CONFIG_KIB 1024ULL
#define CONFIG_GIB (1024ULL * 1024 * 1024)

#define CONFIG_DEF_ENDPOINT_HTTP "http://localhost:4318"
#define CONFIG_DEF_ENDPOINT_GRPC "http://localhost:4317"
#define CONFIG_DEF_SOCKET_MODE	 0660 /* the option's .def, as a number */

/* Bounds. Milliseconds fit an int: poll/epoll and timerfd callers take them as int. */
#define CONFIG_MS_MAX	       ((uint64_t)INT_MAX)
#define CONFIG_S_MAX	       ((uint64_t)INT_MAX / 1000)
#define CONFIG_QUEUE_SPANS_MAX (16ULL * 1024 * 1024)
#define CONFIG_PID_MAX	       4194304ULL /* PID_MAX_LIMIT on 64-bit Linux */
#define CONFIG_SUN_PATH_MAX    107	  /* sizeof(sockaddr_un.sun_path) - 1 */

_Static_assert(CONFIG_MAX_LIST == OPTS_MAX_LIST, "a list holds what opts lets through");
_Static_assert(CONFIG_MAX_WARNINGS == OPTS_MAX_WARN && CONFIG_WARNING_LEN == OPTS_WARN_LEN,
	       "the warnings are copied whole");

/* The two lists of NAME=VALUE, each given by flags and by a variable, merged at the end. */
enum config_kv_list { CONFIG_KV_HEADERS, CONFIG_KV_ATTRS, CONFIG_KV__MAX };

struct config_kvs {
	struct config_kv item[CONFIG_MAX_LIST];
	size_t n;
};

/* What config_load() collects beyond the struct itself; freed before it returns. */
struct config_pending {
	struct opts_state st;
	struct config_kvs kv_flag[CONFIG_KV__MAX];
	struct config_kvs kv_env[CONFIG_KV__MAX];
};

/* ---- rules of single options ----------------------------------------------------------- */

static int config_check_socket(const char *who, const char *arg, uint64_t v, char *err,
			       size_t err_size)
{
	if (strlen(arg) > CONFIG_SUN_PATH_MAX)
		return opts_fail(err, err_size,
				 "%s: the path is %zu bytes long, unix sockets allow at most %d",
				 who, strlen(arg), CONFIG_SUN_PATH_MAX);
	return 0;
}

/* Octal permission bits, 0 to 0777 (no setuid, setgid or sticky bit: a socket has no use). */
static int config_check_mode(const char *who, const char *arg, uint64_t v, char *err,
			     size_t err_size)
{
	size_t len = strspn(arg, "01234567");

	if (!len || arg[len] || strtoul(arg, NULL, 8) > 0777)
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is not an octal mode from 0 to 0777 (e.g. 0660)",
				 who, OPTS_SHOWN_MAX, arg);
	return 0;
}

static int config_check_pow2(const char *who, const char *arg, uint64_t v, char *err,
			     size_t err_size)
{
	if (v & (v - 1))
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is not a power of two (e.g. 4M, 16M, 64M)", who,
				 OPTS_SHOWN_MAX, arg);
	return 0;
}

static int config_check_utf8(const char *who, const char *arg, uint64_t v, char *err,
			     size_t err_size)
{
	if (!text_utf8_valid(arg))
		return opts_fail(err, err_size, "%s: the name is not valid UTF-8", who);
	return 0;
}

/* --sample: a ratio from 0 to 1. */
static int config_check_ratio(const char *who, const char *arg, uint64_t v, char *err,
			      size_t err_size)
{
	double r;

	if (volume_parse_ratio(arg, &r) < 0)
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is not a ratio from 0 to 1 (e.g. 0.1 keeps one "
				 "trace in ten)",
				 who, OPTS_SHOWN_MAX, arg);
	return 0;
}

static int config_check_duration(const char *who, const char *arg, uint64_t v, char *err,
				 size_t err_size)
{
	uint64_t ns;

	if (volume_parse_duration(arg, &ns) < 0)
		return opts_fail(err, err_size,
				 "%s: \"%.*s\" is not a duration: digits and a unit, ns, us, ms or "
				 "s (e.g. 100ms)",
				 who, OPTS_SHOWN_MAX, arg);
	return 0;
}

/* "ADDR:PORT" with a non-empty ADDR (IPv6 in brackets) and a port 1..65535. */
static int config_check_listen(const char *who, const char *s, uint64_t v, char *err,
			       size_t err_size)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	size_t addr_len;

	if (!colon)
		goto bad;
	addr_len = (size_t)(colon - s);
	if (!addr_len)
		goto bad;
	if (s[0] == '[' ? (addr_len < 3 || colon[-1] != ']') : memchr(s, ':', addr_len) != NULL)
		goto bad;
	if (opts_parse_u64(colon + 1, &port) || port < 1 || port > 65535)
		goto bad;
	return 0;
bad:
	return opts_fail(err, err_size,
			 "%s: \"%.*s\" is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464, "
			 "port 1-65535)",
			 who, OPTS_SHOWN_MAX, s);
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static bool config_is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Header names must be tokens; values must not hold control characters (CR and LF would
 * split the request). The value is a secret: messages name the header, never the value,
 * and name an invalid name by its position only (it may be a mistyped value).
 */
static int config_check_header(const char *who, size_t entry, const struct config_kv *h, bool env,
			       char *err, size_t err_size)
{
	const unsigned char *c;

	for (c = (const unsigned char *)h->key; *c; c++) {
		if (!config_is_tchar(*c))
			return opts_fail(err, err_size,
					 "%s: header %zu has a name with a character (0x%02x) "
					 "not allowed in HTTP header names (letters, digits and "
					 "!#$%%&'*+-.^_`|~)",
					 who, entry, *c);
	}
	for (c = (const unsigned char *)h->value; *c; c++) {
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return opts_fail(err, err_size,
					 "%s: the value of header \"%s\" contains a control "
					 "character (CR, LF...), which HTTP does not allow",
					 who, h->key);
	}
	return 0;
}

/* OTLP strings must be UTF-8, or the whole request is rejected. */
static int config_check_attr(const char *who, size_t entry, const struct config_kv *kv, bool env,
			     char *err, size_t err_size)
{
	if (text_utf8_valid(kv->key) && text_utf8_valid(kv->value))
		return 0;
	if (env)
		return opts_fail(err, err_size, "%s: entry %zu does not decode to valid UTF-8", who,
				 entry);
	return opts_fail(err, err_size, "%s: the key or value is not valid UTF-8", who);
}

/* ---- lists of NAME=VALUE --------------------------------------------------------------- */

static void config_kv_free(struct config_kv *kv, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		text_free_wiped(kv[i].key);
		text_free_wiped(kv[i].value);
		kv[i].key = kv[i].value = NULL;
	}
	*n = 0;
}

/*
 * "%XX" decodes to byte XX; a '%' not followed by two hex digits is malformed, and so is
 * "%00" (the result is a C string). Everything else is copied as is ('+' stays '+': this
 * is the W3C Baggage encoding OTEL uses, not form encoding).
 */
char *config_percent_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;
	int hi, lo;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			goto malformed;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (len - i < 3)
			goto malformed;
		hi = text_hex_digit(s[i + 1]);
		lo = text_hex_digit(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			goto malformed;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
malformed:
	out[o] = '\0';
	text_free_wiped(out);
	return NULL;
}

/* Trim spaces and tabs around [*b, *e). */
static void config_trim(const char **b, const char **e)
{
	while (*b < *e && (**b == ' ' || **b == '\t'))
		(*b)++;
	while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/*
 * The work of config_parse_kv_list(), telling which entry (1-based) failed in @bad_entry.
 * Entries that are empty or only whitespace are skipped (a trailing comma is fine).
 */
static int config_kv_parse(const char *s, struct config_kv *out, size_t max, size_t *n,
			   size_t *bad_entry)
{
	const char *p = s, *end, *eq, *kb, *ke, *vb, *ve;
	size_t entry = 0;
	int err = 0;

	*n = 0;
	*bad_entry = 0;
	for (; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ',');
		entry++;
		kb = p;
		ve = end;
		config_trim(&kb, &ve);
		if (kb == ve)
			continue;
		eq = memchr(kb, '=', (size_t)(ve - kb));
		err = eq ? 0 : -EINVAL;
		if (err)
			break;
		ke = eq;
		vb = eq + 1;
		config_trim(&kb, &ke);
		config_trim(&vb, &ve);
		err = kb == ke ? -EINVAL : *n == max ? -E2BIG : 0;
		if (err)
			break;
		out[*n].key = config_percent_decode(kb, (size_t)(ke - kb));
		out[*n].value = config_percent_decode(vb, (size_t)(ve - vb));
		/* Counted even if half-decoded, so that it is freed. */
		(*n)++;
		/* A malformed escape (or ENOMEM, which this interface cannot tell apart). */
		err = !out[*n - 1].key || !out[*n - 1].value ? -EINVAL : 0;
		if (err)
			break;
	}
	if (err) {
		*bad_entry = entry;
		config_kv_free(out, n);
	}
	return err;
}

int config_parse_kv_list(const char *s, struct config_kv *out, size_t max, size_t *n)
{
	size_t bad;

	return config_kv_parse(s, out, max, n, &bad);
}

/* Split a "K=V" flag value (taken literally, no percent-decoding), trimming both sides. */
static int config_split_kv_flag(const char *who, const char *arg, const char *what,
				struct config_kv *out, char *err, size_t err_size)
{
	const char *eq = strchr(arg, '='), *kb = arg, *ke, *vb, *ve;

	/* Never quote @arg back: for --header it holds a secret. */
	if (!eq)
		return opts_fail(err, err_size, "%s: expects %s=VALUE (no '=' found)", who, what);
	ke = eq;
	vb = eq + 1;
	ve = arg + strlen(arg);
	config_trim(&kb, &ke);
	config_trim(&vb, &ve);
	if (kb == ke)
		return opts_fail(err, err_size, "%s: expects %s=VALUE (the %s is empty)", who, what,
				 what);
	out->key = strndup(kb, (size_t)(ke - kb));
	out->value = strndup(vb, (size_t)(ve - vb));
	if (!out->key || !out->value) {
		text_free_wiped(out->key);
		text_free_wiped(out->value);
		out->key = out->value = NULL;
		return opts_oom(err, err_size);
	}
	return 0;
}

/* Move @kv into @list, replacing an entry of the same key (of any case with @icase). */
static int config_kv_put_take(struct config_kv *list, size_t *n, struct config_kv *kv, bool icase,
			      const char *who, const char *what, char *err, size_t err_size)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (icase ? !strcasecmp(list[i].key, kv->key) : !strcmp(list[i].key, kv->key))
			break;
	if (i == *n && *n == CONFIG_MAX_LIST)
		return opts_fail(err, err_size, "%s: too many %s (at most %d)", who, what,
				 CONFIG_MAX_LIST);
	if (i < *n) {
		text_free_wiped(list[i].key);
		text_free_wiped(list[i].value);
	} else {
		(*n)++;
	}
	list[i] = *kv;
	kv->key = kv->value = NULL;
	return 0;
}

/* A NAME=VALUE flag, or a variable's k=v,k2=v2 list, into the pending lists. */
static int config_set_kv(void *ctx, const struct opts_option *o, const char *who, const char *v,
			 bool env, char *err, size_t err_size)
{
	struct config_pending *p = ctx;
	struct config_kvs *dst = env ? &p->kv_env[o->tag] : &p->kv_flag[o->tag];
	bool headers = o->tag == CONFIG_KV_HEADERS;
	struct config_kvs got = {.n = 0};
	size_t bad = 0;
	int ret = 0;

	if (!env) {
		ret = config_split_kv_flag(who, v, headers ? "NAME" : "KEY", &got.item[0], err,
					   err_size);
		got.n = ret ? 0 : 1;
	} else {
		ret = config_kv_parse(v, got.item, CONFIG_MAX_LIST, &got.n, &bad);
		if (ret == -E2BIG)
			ret = opts_fail(err, err_size, "%s: too many %s (at most %d)", who, o->unit,
					CONFIG_MAX_LIST);
		else if (ret)
			ret = opts_fail(err, err_size,
					"%s: entry %zu is not key=value (comma-separated, with "
					"'%%' followed by two hex digits for a percent-encoded "
					"byte)",
					who, bad);
	}
	for (size_t i = 0; !ret && i < got.n; i++)
		ret = (headers ? config_check_header : config_check_attr)(
			who, env ? i + 1 : dst->n + 1, &got.item[i], env, err, err_size);
	for (size_t i = 0; !ret && i < got.n; i++)
		ret = config_kv_put_take(dst->item, &dst->n, &got.item[i], o->icase, who, o->unit,
					 err, err_size);
	config_kv_free(got.item, &got.n);
	return ret;
}

/* ---- --header-file --------------------------------------------------------------------- */

/* One line [b, e) of a header file into @out (0), skipped (1), or -EINVAL. */
static int config_header_line(const char *b, const char *e, struct config_kv *out)
{
	const char *colon, *ke, *vb;

	if (e > b && e[-1] == '\r')
		e--;
	config_trim(&b, &e);
	if (b == e || *b == '#')
		return 1;
	if (memchr(b, '\0', (size_t)(e - b)))
		return -EINVAL;
	colon = memchr(b, ':', (size_t)(e - b));
	if (!colon)
		return -EINVAL;
	ke = colon;
	vb = colon + 1;
	config_trim(&b, &ke);
	config_trim(&vb, &e);
	if (b == ke)
		return -EINVAL;
	out->key = strndup(b, (size_t)(ke - b));
	out->value = strndup(vb, (size_t)(e - vb));
	return 0;
}

int config_parse_header_lines(const char *text, size_t len, struct config_kv *out, size_t max,
			      size_t *n, size_t *bad_line)
{
	const char *p = text, *end = text + len, *nl;
	size_t line = 0;
	int ret = 0;

	*n = 0;
	*bad_line = 0;
	for (; p < end && !ret; p = nl + 1) {
		struct config_kv kv = {NULL, NULL};

		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl : end;
		line++;
		ret = config_header_line(p, nl, &kv);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (!ret && *n == max)
			ret = -E2BIG;
		if (!ret) {
			out[(*n)++] = kv; /* counted even if half-copied, so that it is freed */
			ret = !kv.key || !kv.value ? -ENOMEM : 0;
		} else {
			text_free_wiped(kv.key);
			text_free_wiped(kv.value);
		}
	}
	if (ret) {
		*bad_line = line;
		config_kv_free(out, n);
	}
	return ret;
}

/* The file's owner and mode: it holds secrets, so only its owner (or root) may see it. */
static int config_header_file_stat(const char *path, int fd, char *err, size_t err_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return opts_fail(err, err_size, "--header-file %.200s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return opts_fail(err, err_size, "--header-file %.200s: not a regular file", path);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return opts_fail(err, err_size,
				 "--header-file %.200s: the file belongs to uid %u, not to the "
				 "user running cln-otlp (uid %u) or root: it holds secrets, so "
				 "chown it to that user (or root) and chmod 600 it",
				 path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
		return opts_fail(err, err_size,
				 "--header-file %.200s: the file is readable or writable by group "
				 "or others (mode %04o) but holds secrets: run chmod 600 %.200s",
				 path, (unsigned)(st.st_mode & 07777), path);
	if (st.st_size > (off_t)CONFIG_HEADER_FILE_MAX)
		return opts_fail(err, err_size,
				 "--header-file %.200s: larger than %u bytes: give one NAME: VALUE "
				 "a line",
				 path, CONFIG_HEADER_FILE_MAX);
	return 0;
}

/* The whole file (at most CONFIG_HEADER_FILE_MAX bytes) into @buf; its length or -errno. */
static ssize_t config_read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t r;

	while (got < size) {
		r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int config_read_header_file(const char *path, struct config_kv *out, size_t max, size_t *n,
			    char *err, size_t err_size)
{
	char *buf = NULL;
	size_t bad = 0;
	ssize_t len = 0;
	int fd, ret;

	*n = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return opts_fail(err, err_size, "--header-file %.200s: cannot open it: %s", path,
				 strerror(errno));
	ret = config_header_file_stat(path, fd, err, err_size);
	if (!ret) {
		buf = malloc(CONFIG_HEADER_FILE_MAX + 1);
		ret = buf ? 0 : opts_oom(err, err_size);
	}
	if (!ret) {
		len = config_read_all(fd, buf, CONFIG_HEADER_FILE_MAX + 1);
		if (len < 0)
			ret = opts_fail(err, err_size, "--header-file %.200s: cannot read it: %s",
					path, strerror((int)-len));
		else if (len > (ssize_t)CONFIG_HEADER_FILE_MAX)
			ret = opts_fail(err, err_size, "--header-file %.200s: larger than %u bytes",
					path, CONFIG_HEADER_FILE_MAX);
	}
	if (!ret) {
		ret = config_parse_header_lines(buf, (size_t)len, out, max, n, &bad);
		if (ret == -E2BIG)
			ret = opts_fail(err, err_size,
					"--header-file %.200s: more than %zu headers", path, max);
		else if (ret == -EINVAL)
			ret = opts_fail(err, err_size,
					"--header-file %.200s: line %zu is not NAME: VALUE", path,
					bad);
		else if (ret)
			ret = opts_oom(err, err_size);
	}
	if (buf)
		explicit_bzero(buf, CONFIG_HEADER_FILE_MAX + 1);
	free(buf);
	close(fd);
	return ret;
}

/* The file's headers over the variable's (they are already in kv_env), checked. */
static int config_merge_header_file(struct config *cfg, struct config_pending *p, char *err,
				    size_t err_size)
{
	struct config_kvs *env = &p->kv_env[CONFIG_KV_HEADERS];
	struct config_kvs got = {.n = 0};
	char who[256];
	int ret;

	if (!cfg->header_file)
		return 0;
	ret = config_read_header_file(cfg->header_file, got.item, CONFIG_MAX_LIST, &got.n, err,
				      err_size);
	snprintf(who, sizeof(who), "--header-file %.200s", cfg->header_file);
	for (size_t i = 0; !ret && i < got.n; i++)
		ret = config_check_header(who, i + 1, &got.item[i], false, err, err_size);
	for (size_t i = 0; !ret && i < got.n; i++)
		ret = config_kv_put_take(env->item, &env->n, &got.item[i], true, who,
					 "headers (environment and file together)", err, err_size);
	config_kv_free(got.item, &got.n);
	return ret;
}

/* ---- the table ------------------------------------------------------------------------- */

#define FIELD(f)   .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define LIST(f, n) FIELD(f), .count_off = offsetof(struct config, n)
#define MS(lo) \
	.kind = OPTS_UINT, .arg = "MS", .min = (lo), .max = CONFIG_MS_MAX, .unit = "milliseconds"
#define SECTION(t)                                \
	{                                         \
		.kind = OPTS_SECTION, .help = (t) \
	}

static const struct opts_choice config_exporters[] = {
	{"otlp", CONFIG_EXPORTER_OTLP},
	{"stdout", CONFIG_EXPORTER_STDOUT},
	{"console", CONFIG_EXPORTER_CONSOLE},
	{"none", CONFIG_EXPORTER_NONE},
	{NULL, 0},
};

static const struct opts_choice config_protocols[] = {
	{"http/protobuf", CONFIG_PROTO_HTTP_PROTOBUF},
	{"http/json", CONFIG_PROTO_HTTP_JSON},
	{"grpc", CONFIG_PROTO_GRPC},
	{NULL, 0},
};

static const struct opts_choice config_compressions[] = {
	{"gzip", true},
	{"none", false},
	{NULL, 0},
};

/*
 * Every option, in the order --help lists them. Rows are kept one a few lines, as a table
 * (clang-format would give every member a line of its own).
 */
// clang-format off
static const struct opts_option config_options[] = {
	SECTION("Sources"),
	{.name = "file", .kind = OPTS_STRS, .arg = "PATH", LIST(files, n_files),
	 .unit = "a file path, pattern or directory (or - for stdin)",
	 .help = "replay a CLN trace file (- for stdin), the files matching a pattern in the "
		 "last path component (quoted: '<path>.*'), or every file of a directory; "
		 "repeatable"},
	{.name = "follow", .kind = OPTS_FLAG, FIELD(follow),
	 .help = "keep reading the files as they grow, like tail -F; with a pattern or a "
		 "directory, also the files that appear later (a restarted process's)"},
	{.name = "socket", .kind = OPTS_STR, .arg = "PATH", FIELD(socket_path),
	 .unit = "a socket path", .check = config_check_socket,
	 .help = "receive spans on a unix datagram socket"},
	{.name = "socket-mode", .kind = OPTS_STR, .arg = "MODE", FIELD(socket_mode_arg),
	 .unit = "an octal mode", .check = config_check_mode, .def = "0660",
	 .help = "the socket file's permissions, octal: who may send spans (with "
		 "--socket-group, the node's group)"},
	{.name = "socket-group", .kind = OPTS_STR, .arg = "GROUP", FIELD(socket_group),
	 .unit = "a group name or gid",
	 .help = "the socket file's group (default: that of the user starting cln-otlp)"},
	{.name = "socket-allow-uid", .kind = OPTS_STRS, .arg = "UID",
	 LIST(socket_allow_uids, n_socket_allow_uids), .unit = "a user name or uid",
	 .help = "take datagrams only from this user (name or uid); repeatable (default: "
		 "anyone the socket's mode lets send); others are dropped and counted"},
	{.name = "lightningd", .kind = OPTS_STRS, .arg = "PATH", LIST(lightningd, n_lightningd),
	 .unit = "the path of a lightningd binary",
	 .help = "capture this lightningd binary with eBPF; repeatable; /proc/PID/root/PATH "
		 "names it as process PID (a container's) sees it (default, when no other source "
		 "is given: lightningd on PATH if any, and every binary with the probe as its "
		 "processes start)"},
	{.name = "no-plugins", .kind = OPTS_FLAG, FIELD(no_plugins),
	 .help = "do not attach to lightningd's C plugins"},
	{.name = "all-probes", .kind = OPTS_FLAG, FIELD(all_probes),
	 .help = "also attach span_start/span_end (two more probe hits per span; only "
		 "span_emit is needed)"},
	{.name = "pid", .kind = OPTS_UINTS, .arg = "PID", LIST(pids, n_pids),
	 .min = 1, .max = CONFIG_PID_MAX, .unit = "a process id",
	 .help = "capture only process PID; repeatable; alone, its binary and plugins are "
		 "found in the process's own root: a node in a container needs nothing else "
		 "(default: every process running the binaries)"},
	{.name = "ringbuf-size", .kind = OPTS_SIZE, .arg = "BYTES", FIELD(ringbuf_size),
	 .min = 4 * CONFIG_KIB, .max = CONFIG_GIB, .unit = "bytes", .check = config_check_pow2,
	 .def = "2M", .help = "eBPF ring buffer, a power of two from 4K to 1G"},

	SECTION("Export"),
	{.name = "exporter", .kind = OPTS_ENUM, .arg = "NAME", FIELD(exporter),
	 .env = "OTEL_TRACES_EXPORTER", .env_lenient = true, .env_list = true, .icase = true,
	 .choices = config_exporters, .unit = "an exporter", .def = "otlp",
	 .help = "otlp; stdout: OTLP/JSON lines; console: traces as indented trees, for a "
		 "terminal; none: capture and count, send nothing. The variable may hold a "
		 "list: the first known name is used"},
	{.name = "endpoint", .kind = OPTS_STR, .arg = "URL", FIELD(endpoint), .unit = "a URL",
	 .secret = OPTS_SECRET_USERINFO, .env = "OTEL_EXPORTER_OTLP_ENDPOINT",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	 .help = "collector base URL: /v1/traces is appended for http/*; grpc takes "
		 "scheme://host:port or host:port (TLS unless --insecure), any path ignored; "
		 "default http://localhost:4318, or http://localhost:4317 for grpc. The full "
		 "URL can instead be given in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	{.name = "protocol", .kind = OPTS_ENUM, .arg = "PROTO", FIELD(protocol),
	 .env = "OTEL_EXPORTER_OTLP_PROTOCOL",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	 .choices = config_protocols, .icase = true, .env_lenient = true, .unit = "a protocol",
	 .def = "http/protobuf", .help = "http/protobuf, http/json or grpc"},
	{.name = "header", .kind = OPTS_CUSTOM, .arg = "NAME=VALUE", .set = config_set_kv,
	 .env = "OTEL_EXPORTER_OTLP_HEADERS",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	 .tag = CONFIG_KV_HEADERS, .icase = true, .unit = "headers",
	 .secret = OPTS_SECRET_AFTER_EQ,
	 .help = "add a request header; repeatable, replaces a same-named one from the file "
		 "or the variable, which holds k=v,k2=v2 percent-encoded. Values are never "
		 "logged, and are wiped from the command line once read, but other users may "
		 "see them until then: put API keys in --header-file or the variable"},
	{.name = "header-file", .kind = OPTS_STR, .arg = "FILE", FIELD(header_file),
	 .unit = "a file path",
	 .help = "request headers, one NAME: VALUE a line (# comments), e.g. an API key; "
		 "replaces same-named ones from the variable. The file must be owned by the "
		 "user running cln-otlp (or root) and not readable by others (chmod 600)"},
	{.name = "compression", .kind = OPTS_ENUM, .arg = "ALG", FIELD(gzip),
	 .env = "OTEL_EXPORTER_OTLP_COMPRESSION",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	 .choices = config_compressions, .icase = true, .env_lenient = true,
	 .unit = "a compression",
	 .def = "none", .help = "gzip or none"},
	{.name = "timeout", MS(0), FIELD(timeout_ms),
	 .env = "OTEL_EXPORTER_OTLP_TIMEOUT",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	 .def = "10000", .help = "per request, 0 = no limit (--export-timeout still bounds it)"},
	{.name = "ca-cert", .kind = OPTS_STR, .arg = "FILE", FIELD(ca_cert), .unit = "a file path",
	 .env = "OTEL_EXPORTER_OTLP_CERTIFICATE",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
	 .help = "CA bundle to verify the collector"},
	{.name = "client-cert", .kind = OPTS_STR, .arg = "FILE", FIELD(client_cert),
	 .unit = "a file path",
	 .env = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
	 .help = "TLS client certificate"},
	{.name = "client-key", .kind = OPTS_STR, .arg = "FILE", FIELD(client_key),
	 .unit = "a file path",
	 .env = "OTEL_EXPORTER_OTLP_CLIENT_KEY",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
	 .help = "TLS client key"},
	{.name = "insecure", .kind = OPTS_FLAG, FIELD(insecure),
	 .env = "OTEL_EXPORTER_OTLP_INSECURE",
	 .traces_env = "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	 .def = "false",
	 .help = "plaintext (h2c) for a grpc endpoint given as host:port, without a scheme; "
		 "https:// always verifies, http:// is always plaintext. The variable says "
		 "true or false (1/0, yes/no)"},
	{.name = "tls-skip-verify", .kind = OPTS_FLAG, FIELD(tls_skip_verify),
	 .help = "do NOT verify the collector's TLS certificate (anyone on the path can read "
		 "and alter the spans; a warning says so at start); for tests only"},
	{.name = "max-inflight", .kind = OPTS_UINT, .arg = "N", FIELD(max_inflight),
	 .min = 1, .max = 64, .unit = "concurrent requests", .def = "4",
	 .help = "concurrent export requests, 1 to 64"},
	{.name = "retry-max-elapsed", MS(0), FIELD(retry_max_elapsed_ms), .def = "300000",
	 .help = "give a batch up after retrying it this long"},
	{.name = "spool", .kind = OPTS_STR, .arg = "DIR", FIELD(spool_dir),
	 .unit = "a directory",
	 .help = "keep what cannot be delivered (retries spent, shutdown timeout, queue full) "
		 "in DIR, and send it, oldest first, once the collector answers, also after a "
		 "restart; each batch is fsynced before it counts as kept. DIR is created 0700 "
		 "and must belong to the user cln-otlp runs as (otlp exporter only)"},
	{.name = "spool-size", .kind = OPTS_SIZE, .arg = "BYTES", FIELD(spool_bytes),
	 .min = 64 * CONFIG_KIB, .max = 1024 * CONFIG_GIB, .unit = "bytes", .def = "256M",
	 .help = "most bytes --spool holds, from 64K to 1T; when full, the oldest batches go "
		 "first (counted as spool_evicted)"},

	SECTION("Batching"),
	{.name = "queue-size", .env = "OTEL_BSP_MAX_QUEUE_SIZE", .kind = OPTS_UINT,
	 .arg = "SPANS", FIELD(max_queue_spans), .min = 1, .max = CONFIG_QUEUE_SPANS_MAX,
	 .unit = "spans", .def = "65536",
	 .help = "spans held, waiting or in flight; the spec's 2048 cannot hold the several "
		 "thousand spans CLN emits in its first seconds"},
	{.name = "queue-bytes", .kind = OPTS_SIZE, .arg = "BYTES", FIELD(max_queue_bytes),
	 .min = 64 * CONFIG_KIB, .max = 16 * CONFIG_GIB, .unit = "bytes", .def = "64M",
	 .help = "payload bytes held, waiting or in flight, from 64K to 16G"},
	{.name = "batch-size", .env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", .kind = OPTS_UINT,
	 .arg = "N", FIELD(batch_size), .min = 1, .max = CONFIG_QUEUE_SPANS_MAX,
	 .unit = "spans", .def = "512", .help = "spans per export request, at most the queue size"},
	{.name = "batch-delay", .env = "OTEL_BSP_SCHEDULE_DELAY", MS(0), FIELD(schedule_delay_ms),
	 .def = "5000", .help = "longest a span waits for its batch to fill"},
	{.name = "export-timeout", .env = "OTEL_BSP_EXPORT_TIMEOUT", MS(1),
	 FIELD(export_timeout_ms), .def = "300000",
	 .help = "longest one export may take, retries included (the SDKs' 30000 would drop a "
		 "batch after a 30 s outage)"},
	{.name = "shutdown-timeout", MS(0), FIELD(shutdown_timeout_ms), .def = "5000",
	 .help = "on exit, time to flush what is queued"},

	SECTION("Volume"),
	{.name = "drop-span", .kind = OPTS_STRS, .arg = "GLOB[<DUR]", LIST(drop_spans, n_drop_spans),
	 .unit = "a span name pattern, with an optional <DURATION",
	 .help = "drop the spans whose name matches the shell pattern GLOB (e.g. 'db_*'); with "
		 "<DURATION (e.g. 'db_*<1ms'), only those shorter than that (units ns, us, ms, s); "
		 "a kept span whose parent was dropped takes its nearest kept ancestor as parent; "
		 "a trace's root is never dropped; repeatable"},
	{.name = "sample", .kind = OPTS_STR, .arg = "RATIO", FIELD(sample_arg),
	 .unit = "a ratio from 0 to 1", .check = config_check_ratio,
	 .help = "keep this ratio of traces, whole, chosen by traceId as OpenTelemetry's "
		 "TraceIdRatioBased sampler does (the same traces in every process); without it, "
		 "OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default: every trace)"},
	{.name = "keep-errors", .kind = OPTS_FLAG, FIELD(keep_errors),
	 .help = "also keep every trace with a span whose status is ERROR, whatever the ratio"},
	{.name = "keep-slower-than", .kind = OPTS_STR, .arg = "DURATION", FIELD(keep_slower_arg),
	 .unit = "a duration", .check = config_check_duration,
	 .help = "also keep every trace with a span that lasted at least DURATION (e.g. 100ms), "
		 "whatever the ratio"},
	{.name = "hold-time", MS(1), FIELD(hold_ms), .def = "30000",
	 .help = "with --drop-span or a keep, a trace is held until its root span arrives, and "
		 "decided on what arrived after this long"},
	{.name = "hold-size", .kind = OPTS_UINT, .arg = "N", FIELD(hold_spans), .min = 1,
	 .max = CONFIG_QUEUE_SPANS_MAX, .unit = "spans", .def = "16384",
	 .help = "spans held waiting for their trace's decision; when full, the oldest trace "
		 "is decided on what arrived"},
	{.name = "hold-bytes", .kind = OPTS_SIZE, .arg = "BYTES", FIELD(hold_bytes),
	 .min = 64 * CONFIG_KIB, .max = 16 * CONFIG_GIB, .unit = "bytes", .def = "16M",
	 .help = "memory of the spans held, from 64K to 16G; when reached, as --hold-size"},

	SECTION("Resource"),
	{.name = "service-name", .env = "OTEL_SERVICE_NAME", .kind = OPTS_STR, .arg = "NAME",
	 FIELD(service_name), .unit = "a service name", .check = config_check_utf8,
	 .help = "service.name of every span; without it, a service.name in the resource "
		 "attributes, else the span's own, e.g. lightningd"},
	{.name = "resource-attr", .env = "OTEL_RESOURCE_ATTRIBUTES", .kind = OPTS_CUSTOM,
	 .set = config_set_kv, .arg = "K=V", .tag = CONFIG_KV_ATTRS, .unit = "resource attributes",
	 .help = "add a resource attribute; repeatable, replaces a same-named one from the "
		 "variable, which holds k=v,k2=v2 percent-encoded"},
	{.name = "raw-tags", .kind = OPTS_FLAG, FIELD(raw_tags),
	 .help = "keep CLN's tag names (method, id, query: Zipkin-compatible) instead of the "
		 "semantic conventions' (rpc.method, jsonrpc.request.id, db.query.text); span "
		 "kinds are set either way"},

	SECTION("Operation"),
	{.name = "verbose", .short_name = 'v', .kind = OPTS_COUNT, FIELD(verbosity), .step = 1,
	 .help = "more messages; repeatable"},
	{.name = "quiet", .short_name = 'q', .kind = OPTS_COUNT, FIELD(verbosity), .step = -1,
	 .help = "warnings and errors only"},
	{.name = "stats-interval", .kind = OPTS_UINT, .arg = "SECS", FIELD(stats_interval_s),
	 .max = CONFIG_S_MAX, .unit = "seconds, 0 = off", .def = "60",
	 .help = "log counters this often, 0 = off"},
	{.name = "metrics-listen", .kind = OPTS_STR, .arg = "ADDR:PORT", FIELD(metrics_listen),
	 .unit = "ADDR:PORT", .check = config_check_listen,
	 .help = "serve counters for Prometheus, e.g. 127.0.0.1:9464 (default off)"},
	{.name = "user", .kind = OPTS_STR, .arg = "NAME", FIELD(user), .unit = "a user name",
	 .help = "run as this user once capture is set up (default, when started as root: "
		 "cln-otlp if that user exists, else nobody; --user root stays root, with a "
		 "warning)"},
	{.name = "rpc-file", .kind = OPTS_STR, .arg = "PATH", FIELD(rpc_file),
	 .unit = "a file path",
	 .help = "lightningd's JSON-RPC socket (lightning-rpc): this one node's version, id, "
		 "alias and network on every span (default: with eBPF or --socket, each span "
		 "gets the node its process belongs to, asked through that node's own socket; "
		 "with --follow, the socket in ~/.lightning/<network>/)"},
	{.name = "suspend-ttl", MS(0), FIELD(suspend_ttl_ms), .def = "600000",
	 .help = "how long suspend/resume times are kept for spans not yet emitted"},
	{.name = "check", .kind = OPTS_FLAG, FIELD(check),
	 .help = "check the setup (probes, privileges, node RPC, collector, socket) and exit: 0 "
		 "when all needed works"},
	{.name = "help", .short_name = 'h', .kind = OPTS_HELP, .help = "show this help and exit"},
	{.name = "version", .short_name = 'V', .kind = OPTS_VERSION,
	 .help = "show the version and exit"},
};
// clang-format on

static const struct opts_table config_table = {
	.rows = config_options,
	.n = sizeof(config_options) / sizeof(config_options[0]),
	.prog = CONFIG_PROG,
};

/* ---- final rules ----------------------------------------------------------------------- */

/*
 * "http://" or "https://" (any case), something after it, no spaces or control bytes. gRPC
 * also takes host:port without a scheme (the protocol/exporter.md spec: "SHOULD accept any
 * form allowed by the underlying gRPC client", which is host:port).
 */
static bool config_url_ok(const char *url, bool grpc)
{
	size_t skip = !strncasecmp(url, "http://", 7)	 ? 7
		      : !strncasecmp(url, "https://", 8) ? 8
							 : 0;

	if (!skip && (!grpc || strstr(url, "://") || !strchr(url, ':')))
		return false;
	if (!url[skip] || url[skip] == '/')
		return false;
	for (const unsigned char *c = (const unsigned char *)url; *c; c++)
		if (*c <= 0x20 || *c == 0x7f)
			return false;
	return true;
}

/* The path of @url ("scheme://authority/path?query") ends in /v1/traces (or /v1/traces/). */
static bool config_path_has_signal(const char *url)
{
	const char *auth = strstr(url, "://"), *path;
	size_t n;

	if (!auth)
		return false;
	path = auth + 3 + strcspn(auth + 3, "/?#");
	n = strcspn(path, "?#");
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n >= 10 && !strncmp(path + n - 10, "/v1/traces", 10);
}

static void config_warn(struct config_pending *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void config_warn(struct config_pending *p, const char *fmt, ...)
{
	char line[CONFIG_WARNING_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	opts_warn(&p->st, "%s", line);
}

/* The endpoint: a flag (a base URL), else the TRACES variable (as is), else the base one. */
static int config_finish_endpoint(struct config *cfg, struct config_pending *p, char *err,
				  size_t err_size)
{
	const struct opts_option *o = opts_find(&config_table, "endpoint");
	size_t i = opts_index(&config_table, o);
	bool grpc = cfg->protocol == CONFIG_PROTO_GRPC, append = true;
	const char *who = NULL;

	if (p->st.seen[i])
		who = "--endpoint";
	else if (cfg->endpoint && p->st.traces[i])
		who = o->traces_env, append = false;
	else if (cfg->endpoint)
		who = o->env;
	cfg->endpoint_append = append && !grpc;
	if (!who) {
		cfg->endpoint = strdup(grpc ? CONFIG_DEF_ENDPOINT_GRPC : CONFIG_DEF_ENDPOINT_HTTP);
		return cfg->endpoint ? 0 : opts_oom(err, err_size);
	}
	/* The URL may carry credentials (user:password@): never quote it back. */
	if (!config_url_ok(cfg->endpoint, grpc))
		return opts_fail(err, err_size,
				 "%s: expects a URL starting with http:// or https:// followed "
				 "by a host, without spaces (e.g. %s%s)",
				 who, grpc ? CONFIG_DEF_ENDPOINT_GRPC : CONFIG_DEF_ENDPOINT_HTTP,
				 grpc ? ", or host:port" : "");
	/* protocol/exporter.md: the signal path is appended to a base URL's, whatever it is. */
	if (cfg->endpoint_append && config_path_has_signal(cfg->endpoint))
		config_warn(p,
			    "%s: its path already ends in /v1/traces, and the signal path is "
			    "appended to a base URL (giving .../v1/traces/v1/traces): drop the "
			    "suffix, or give the full URL in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
			    who);
	return 0;
}

/*
 * The variables that are no option of their own (sdk-environment-variables.md, "General
 * SDK Configuration"): OTEL_SDK_DISABLED and OTEL_LOG_LEVEL. Bad values are warned about and
 * ignored, as for every variable.
 */
static void config_env_general(struct config *cfg, struct config_pending *p,
			       config_getenv_fn getenv_fn)
{
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	const char *v = getenv_fn ? getenv_fn("OTEL_SDK_DISABLED") : NULL;

	if (v && *v && opts_parse_bool(v, &cfg->sdk_disabled) < 0)
		config_warn(
			p,
			"OTEL_SDK_DISABLED: \"%.*s\" is neither true nor false (the only values "
			"the OpenTelemetry specification allows): ignored, cln-otlp runs",
			OPTS_SHOWN_MAX, v);
	v = getenv_fn ? getenv_fn("OTEL_LOG_LEVEL") : NULL;
	if (!v || !*v)
		return;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (!strcasecmp(v, levels[i])) {
			cfg->log_level =
				(int)i; /* enum log_level's order: error, warn, info, debug */
			return;
		}
	}
	config_warn(p,
		    "OTEL_LOG_LEVEL: \"%.*s\" is not error, warn, info or debug: ignored; "
		    "using info",
		    OPTS_SHOWN_MAX, v);
}

/*
 * The sampler (sdk-environment-variables.md, "General SDK Configuration"), unless --sample
 * said: OTEL_TRACES_SAMPLER always_on, always_off, traceidratio and their parentbased_
 * forms, which are the same here (a span's parent decision is its trace's, and a trace is
 * decided once); OTEL_TRACES_SAMPLER_ARG the ratio of traceidratio (default 1). Unknown or
 * unsupported samplers and bad ratios are warned about and ignored, as the specification
 * says: every trace is kept.
 */
static void config_env_sampler(struct config *cfg, struct config_pending *p,
			       config_getenv_fn getenv_fn)
{
	const char *v = getenv_fn ? getenv_fn("OTEL_TRACES_SAMPLER") : NULL;
	const char *arg = getenv_fn ? getenv_fn("OTEL_TRACES_SAMPLER_ARG") : NULL;
	const char *name;

	if (cfg->sample_arg) {
		volume_parse_ratio(cfg->sample_arg, &cfg->sample_ratio);
		return;
	}
	if (!v || !*v)
		return;
	name = strncasecmp(v, "parentbased_", 12) ? v : v + 12;
	if (!strcasecmp(name, "always_on"))
		return;
	if (!strcasecmp(name, "always_off")) {
		cfg->sample_ratio = 0;
		return;
	}
	if (strcasecmp(name, "traceidratio")) {
		config_warn(p,
			    "OTEL_TRACES_SAMPLER: \"%.*s\" is not a sampler cln-otlp has "
			    "(always_on, always_off, traceidratio, parentbased_*): ignored; every "
			    "trace is kept",
			    OPTS_SHOWN_MAX, v);
		return;
	}
	if (arg && *arg && volume_parse_ratio(arg, &cfg->sample_ratio) < 0)
		config_warn(p,
			    "OTEL_TRACES_SAMPLER_ARG: \"%.*s\" is not a ratio from 0 to 1: "
			    "ignored; using 1 (every trace)",
			    OPTS_SHOWN_MAX, arg);
}

/* The --drop-span rules and --keep-slower-than, parsed (opts checks no list entry). */
static int config_finish_volume(struct config *cfg, char *err, size_t err_size)
{
	struct volume_rule rule;

	for (size_t i = 0; i < cfg->n_drop_spans; i++)
		if (volume_rule_parse(cfg->drop_spans[i], &rule) < 0)
			return opts_fail(
				err, err_size,
				"--drop-span: \"%.*s\" is not GLOB or GLOB<DURATION (a "
				"non-empty pattern of at most %d bytes; a duration is digits "
				"and a unit, ns, us, ms or s: e.g. 'db_*<1ms')",
				OPTS_SHOWN_MAX, cfg->drop_spans[i], VOLUME_GLOB_MAX - 1);
	cfg->keep_slow = cfg->keep_slower_arg != NULL;
	if (cfg->keep_slow)
		volume_parse_duration(cfg->keep_slower_arg, &cfg->keep_slower_ns);
	return 0;
}

/* Flag entries over the variable's (same key replaced), into @out. */
static int config_kv_merge(struct config_pending *p, enum config_kv_list slot, const char *who,
			   const char *what, bool icase, struct config_kv *out, size_t *n,
			   char *err, size_t err_size)
{
	struct config_kvs *env = &p->kv_env[slot], *flags = &p->kv_flag[slot];
	int ret;

	for (size_t i = 0; i < flags->n; i++) {
		ret = config_kv_put_take(env->item, &env->n, &flags->item[i], icase, who, what, err,
					 err_size);
		if (ret)
			return ret;
	}
	memcpy(out, env->item, env->n * sizeof(*out));
	*n = env->n;
	env->n = 0;
	return 0;
}

static int config_finish(struct config *cfg, struct config_pending *p, char *err, size_t err_size)
{
	size_t n = 0;
	int ret;

	ret = config_finish_endpoint(cfg, p, err, err_size);
	if (!ret)
		ret = config_merge_header_file(cfg, p, err, err_size);
	if (!ret)
		ret = config_kv_merge(p, CONFIG_KV_HEADERS, "--header",
				      "headers (environment and flags together)", true,
				      cfg->headers, &cfg->n_headers, err, err_size);
	if (!ret)
		ret = config_kv_merge(p, CONFIG_KV_ATTRS, "--resource-attr",
				      "resource attributes (environment and flags together)", false,
				      cfg->resource_attrs, &n, err, err_size);
	/* service.name is lifted out unless a flag or OTEL_SERVICE_NAME already set it. */
	for (size_t i = 0; i < n; i++) {
		struct config_kv kv = cfg->resource_attrs[i];

		if (strcmp(kv.key, "service.name")) {
			cfg->resource_attrs[cfg->n_resource_attrs++] = kv;
			continue;
		}
		if (!cfg->service_name && kv.value[0]) {
			cfg->service_name = kv.value;
			kv.value = NULL;
		}
		text_free_wiped(kv.key);
		text_free_wiped(kv.value);
	}
	if (!ret)
		ret = config_finish_volume(cfg, err, err_size);
	if (ret)
		return ret;
	if (cfg->spool_dir && cfg->exporter != CONFIG_EXPORTER_OTLP)
		return opts_fail(err, err_size,
				 "--spool keeps what an OTLP collector did not take: it needs "
				 "--exporter otlp");
	if (cfg->batch_size > cfg->max_queue_spans)
		return opts_fail(
			err, err_size,
			"the batch size (%zu spans; --batch-size or "
			"OTEL_BSP_MAX_EXPORT_BATCH_SIZE) must not exceed the queue size (%zu "
			"spans; --queue-size or OTEL_BSP_MAX_QUEUE_SIZE)",
			cfg->batch_size, cfg->max_queue_spans);
	if (cfg->follow && !cfg->n_files)
		return opts_fail(err, err_size, "--follow needs a --file to follow");
	if (!cfg->socket_path &&
	    (cfg->socket_mode_arg || cfg->socket_group || cfg->n_socket_allow_uids))
		return opts_fail(err, err_size,
				 "--socket-mode, --socket-group and --socket-allow-uid need a "
				 "--socket");
	cfg->socket_mode = cfg->socket_mode_arg ? (uint32_t)strtoul(cfg->socket_mode_arg, NULL, 8)
						: CONFIG_DEF_SOCKET_MODE;
	cfg->usdt = cfg->n_lightningd || cfg->n_pids || (!cfg->n_files && !cfg->socket_path);
	return 0;
}

/* ---- the whole ------------------------------------------------------------------------- */

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	opts_defaults(&config_table, cfg);
	cfg->socket_mode = CONFIG_DEF_SOCKET_MODE;
	cfg->log_level = CONFIG_LOG_UNSET;
	cfg->sample_ratio = 1.0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	opts_free(&config_table, cfg);
	config_kv_free(cfg->headers, &cfg->n_headers);
	config_kv_free(cfg->resource_attrs, &cfg->n_resource_attrs);
	/* Back to a state that config_free() and config_load() accept again. */
	config_init(cfg);
}

int config_load(struct config *cfg, int argc, char **argv, config_getenv_fn getenv_fn, char *err,
		size_t err_size)
{
	struct config_pending *p;
	int ret;

	config_init(cfg);
	if (err && err_size)
		err[0] = '\0';
	p = calloc(1, sizeof(*p));
	if (!p)
		return opts_oom(err, err_size);
	ret = opts_parse_argv(&config_table, cfg, p, argc, argv, &p->st, err, err_size);
	cfg->help = p->st.help;
	cfg->version = p->st.version;
	if (ret || cfg->help || cfg->version)
		goto cleanup;
	ret = opts_load_env(&config_table, cfg, p, getenv_fn, &p->st, err, err_size);
	if (!ret)
		config_env_general(cfg, p, getenv_fn);
	if (!ret)
		config_env_sampler(cfg, p, getenv_fn);
	if (!ret)
		ret = config_finish(cfg, p, err, err_size);
	memcpy(cfg->warnings, p->st.warn, sizeof(cfg->warnings));
	cfg->n_warnings = p->st.n_warn;
	cfg->warnings_lost = p->st.warn_lost;
cleanup:
	for (int s = 0; s < CONFIG_KV__MAX; s++) {
		config_kv_free(p->kv_flag[s].item, &p->kv_flag[s].n);
		config_kv_free(p->kv_env[s].item, &p->kv_env[s].n);
	}
	free(p);
	return ret;
}

size_t config_wipe_argv(int argc, char **argv)
{
	return opts_wipe_argv(&config_table, argc, argv);
}

/* ---- usage ----------------------------------------------------------------------------- */

static const char config_usage_head[] =
	"Usage: " CONFIG_PROG " [OPTIONS]\n"
	"\n"
	"Capture Core Lightning's tracing spans and export them as OpenTelemetry\n"
	"traces (OTLP). With no source option, attach with eBPF to the lightningd\n"
	"found on PATH, if any, and to every binary with the lightningd:span_emit\n"
	"probe as soon as a process of it starts, in containers too (needs root, or\n"
	"CAP_BPF, CAP_PERFMON and, for uprobes on current kernels, CAP_SYS_ADMIN).\n"
	"\n"
	"Precedence: defaults < OTEL_EXPORTER_OTLP_X < OTEL_EXPORTER_OTLP_TRACES_X\n"
	"< options. Empty variables count as unset; a variable's unknown value is\n"
	"warned about and ignored. BYTES accept a K, M or G suffix (powers of 1024).\n"
	"MS are milliseconds. Also read: OTEL_SDK_DISABLED=true (exit at once, doing\n"
	"nothing) and OTEL_LOG_LEVEL (error, warn, info or debug; -v and -q win).\n";

static const char config_usage_examples[] =
	"\n"
	"Examples:\n"
	"  Replay a trace file to stdout as OTLP/JSON:\n"
	"    " CONFIG_PROG " --file trace.log --exporter stdout\n"
	"  Bridge the local node to a collector on this machine:\n"
	"    sudo " CONFIG_PROG " --lightningd /usr/local/bin/lightningd \\\n"
	"      --endpoint http://localhost:4318\n"
	"  Send to Honeycomb, with the API key in a file only root can read\n"
	"  (/etc/cln-otlp/headers, mode 0600, holding x-honeycomb-team: YOUR_API_KEY):\n"
	"    sudo " CONFIG_PROG " --endpoint https://api.honeycomb.io \\\n"
	"      --header-file /etc/cln-otlp/headers --service-name my-node\n"
	"  The same over gRPC, configured in the environment file of the service\n"
	"  (mode 0600), never on the command line, where other users see it:\n"
	"    OTEL_EXPORTER_OTLP_PROTOCOL=grpc\n"
	"    OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io:443\n"
	"    OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=YOUR_API_KEY\n"
	"    OTEL_SERVICE_NAME=my-node\n"
	"    OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=mainnet\n";

void config_usage(FILE *out)
{
	opts_usage(&config_table, config_usage_head, config_usage_examples, out);
}
