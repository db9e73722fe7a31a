// SPDX-License-Identifier: MIT
/*
 * export_console: see export_console.h for what is printed and when.
 *
 * Buffered spans are nodes; a node's children hang from it (child/sibling links). A node
 * whose parent has not arrived is a "top"; tops that wait for the same (pid, traceId,
 * parent) form a wait set, found through a hash table when that parent arrives, and kept in
 * a list ordered by the time its last top arrived (oldest first): the timer and the cap
 * both take from its head.
 */
#include "export_console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "exe_paths.h"
#include "log.h"
#include "stats.h"
#include "text.h"

#define CONSOLE_BUCKETS	     (1u << 15)
#define CONSOLE_REMOTE_MAX   64
#define CONSOLE_NAME_COLS    44 /* indentation and name */
#define CONSOLE_DUR_COLS     9
#define CONSOLE_MAX_INDENT   16 /* levels; deeper spans are drawn at this depth */
#define CONSOLE_ERRMSG_COLS  40
#define CONSOLE_LABEL_COLS   40
#define CONSOLE_TAG_MIN_COLS 12 /* a tag is shown only with this much of its value */
#define CONSOLE_LINE_BYTES   (EXPORT_CONSOLE_LINE_COLS * 4 + 64)

struct console_node {
	struct console_node *child;   /* first child */
	struct console_node *sibling; /* next child of the same parent, or next top of a set */
	uint8_t trace_id[16];
	uint64_t id;
	uint64_t parent;
	bool has_parent;
	bool error;
	bool truncated;
	uint8_t n_tags;
	uint32_t pid;
	uint32_t subtree;     /* spans in this subtree, itself included */
	uint32_t suspends;    /* suspend periods */
	const char *exe_path; /* exe_paths.h: the node holds a reference */
	uint64_t start_us;
	uint64_t dur_us;
	uint64_t suspended_us;
	size_t mem;
	const char *name;
	const char *service;
	const char *status_msg; /* NULL: none */
	const char *tags;	/* n_tags pairs of NUL-terminated key and value */
	char arena[];
};

/* Tops waiting for the same parent. */
struct console_wait {
	struct console_wait *hnext;
	struct console_wait *prev, *next; /* by last arrival, oldest first */
	uint32_t pid;
	uint8_t trace_id[16];
	uint64_t parent;
	uint64_t last_ms;
	struct console_node *tops;
	size_t spans; /* in the tops' subtrees */
};

/* A parent id that never came for its (pid, traceId): spans naming it are roots. */
struct console_remote {
	bool used;
	uint32_t pid;
	uint8_t trace_id[16];
	uint64_t parent;
};

enum console_reason {
	CONSOLE_ROOT = 0, /* a span without parent */
	CONSOLE_REMOTE,	  /* a span whose parent is a known remote one */
	CONSOLE_TIMEOUT,  /* the parent did not come in time */
	CONSOLE_EARLY,	  /* the buffer is full */
	CONSOLE_EXIT,	  /* abort() or free() */
};

struct console_item {
	struct console_node *node;
	unsigned depth;
};

struct export_console {
	struct exporter ex; /* first: the pipeline sees only this */
	struct loop *loop;
	struct loop_timer *timer;
	FILE *out;
	const struct otlp_resource_cfg *res;
	uint64_t timeout_ms;
	size_t max_spans;
	size_t max_bytes;
	bool utf8;
	struct console_wait **buckets;
	struct console_wait *head, *tail;
	size_t spans;
	size_t bytes;
	struct console_remote remote[CONSOLE_REMOTE_MAX];
	unsigned remote_next;
	struct export_console_counts counts;
	struct log_ratelimit rl;
	/* Printing scratch, kept between trees (bounded by the span cap). */
	struct console_item *items;
	struct console_item *stack;
	struct console_node **kids;
	size_t scratch_cap;
};

/* ---- copying a span ------------------------------------------------------------------- */

/* Time spent between suspend and resume events (a suspend never resumed: until the end). */
static void console_suspended(const struct span *s, uint64_t *total_us, uint32_t *count)
{
	struct span_event ev[SPAN_MAX_EVENTS];
	uint32_t n = s->n_events < SPAN_MAX_EVENTS ? s->n_events : SPAN_MAX_EVENTS;
	uint64_t end_ns = (s->timestamp_us + s->duration_us) * 1000, since = 0, total = 0;
	bool open = false;

	*count = 0;
	if (n) /* without events, s->events is NULL */
		memcpy(ev, s->events, n * sizeof(ev[0]));
	for (uint32_t i = 1; i < n; i++) {
		struct span_event e = ev[i];
		uint32_t j = i;

		for (; j > 0 && ev[j - 1].time_unix_ns > e.time_unix_ns; j--)
			ev[j] = ev[j - 1];
		ev[j] = e;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (ev[i].kind == SPAN_EVENT_SUSPEND && !open) {
			open = true;
			since = ev[i].time_unix_ns;
		} else if (ev[i].kind == SPAN_EVENT_RESUME && open) {
			open = false;
			total += ev[i].time_unix_ns - since;
			(*count)++;
		}
	}
	if (open) {
		total += end_ns > since ? end_ns - since : 0;
		(*count)++;
	}
	*total_us = (total + 500) / 1000;
}

static uint64_t console_u64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static char *console_put(char **p, const char *s, size_t len)
{
	char *start = *p;

	memcpy(start, s, len);
	start[len] = '\0';
	*p += len + 1;
	return start;
}

/* A copy of what the view needs from @s: one allocation. */
static struct console_node *console_node_new(const struct export_console *ec, const struct span *s)
{
	const char *svc = ec->res && ec->res->service_name && *ec->res->service_name
				  ? ec->res->service_name
				  : NULL;
	const struct span_str *msg;
	struct otlp_status st;
	struct console_node *n;
	size_t size = 0;
	uint32_t hide;
	bool error;
	char *p;

	otlp_status_of(s, &st);
	error = st.code == OTLP_STATUS_ERROR;
	msg = st.message;
	hide = st.consumed;
	size += s->name.len + 1;
	if (!svc && s->service.len)
		size += s->service.len + 1;
	if (msg)
		size += msg->len + 1;
	for (uint32_t i = 0; i < s->n_tags; i++)
		if (!(hide & (1u << i)))
			size += s->tags[i].key.len + s->tags[i].value.len + 2;
	n = calloc(1, sizeof(*n) + size);
	if (!n)
		return NULL;
	n->mem = sizeof(*n) + size;
	memcpy(n->trace_id, s->trace_id, sizeof(n->trace_id));
	n->id = console_u64(s->span_id);
	n->has_parent = s->has_parent;
	n->parent = s->has_parent ? console_u64(s->parent_id) : 0;
	n->error = error;
	n->truncated = s->truncated;
	n->pid = s->pid;
	n->exe_path = exe_path_ref(s->exe_path);
	n->start_us = s->timestamp_us;
	n->dur_us = s->duration_us;
	n->subtree = 1;
	console_suspended(s, &n->suspended_us, &n->suspends);
	p = n->arena;
	n->name = console_put(&p, s->name.ptr, s->name.len);
	if (svc)
		n->service = svc;
	else if (s->service.len)
		n->service = console_put(&p, s->service.ptr, s->service.len);
	else
		n->service = "unknown_service";
	n->status_msg = msg ? console_put(&p, msg->ptr, msg->len) : NULL;
	n->tags = p;
	for (uint32_t i = 0; i < s->n_tags; i++) {
		if (hide & (1u << i))
			continue;
		console_put(&p, s->tags[i].key.ptr, s->tags[i].key.len);
		console_put(&p, s->tags[i].value.ptr, s->tags[i].value.len);
		n->n_tags++;
	}
	return n;
}

/* Free a list of trees (linked by sibling) without recursion: children join the list. */
static void console_free_trees(struct export_console *ec, struct console_node *n)
{
	while (n) {
		struct console_node *next = n->sibling;

		if (n->child) {
			struct console_node *last = n->child;

			while (last->sibling)
				last = last->sibling;
			last->sibling = next;
			next = n->child;
		}
		ec->spans--;
		ec->bytes -= n->mem;
		exe_path_put(n->exe_path);
		free(n);
		n = next;
	}
}

/* ---- text ----------------------------------------------------------------------------- */

struct console_line {
	char buf[CONSOLE_LINE_BYTES];
	size_t len;
	unsigned cols;
	unsigned max_cols;
	bool utf8;
};

static void cl_init(struct console_line *l, bool utf8, unsigned max_cols)
{
	l->len = 0;
	l->cols = 0;
	l->max_cols = max_cols;
	l->utf8 = utf8;
}

/* Append @n bytes that take @cols columns, if they fit. */
static bool cl_raw(struct console_line *l, const char *s, size_t n, unsigned cols)
{
	if (l->cols + cols > l->max_cols || l->len + n >= sizeof(l->buf))
		return false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->cols += cols;
	return true;
}

static void cl_lit(struct console_line *l, const char *ascii)
{
	cl_raw(l, ascii, strlen(ascii), (unsigned)strlen(ascii));
}

static void cl_pad(struct console_line *l, unsigned to_col)
{
	while (l->cols < to_col && cl_raw(l, " ", 1, 1))
		;
}

/*
 * One displayed character of @s: its bytes, or a replacement ('?' for control characters
 * and, in ASCII, for anything not ASCII; ' ' for tabs and line breaks). Returns the bytes of
 * @s consumed (0 at the end).
 */
static size_t cl_unit(const char *s, bool utf8, const char **out, size_t *out_len)
{
	unsigned char c = (unsigned char)*s;
	size_t l = 1;

	if (!c)
		return 0;
	if (c < 0x80) {
		*out_len = 1;
		if (c == '\t' || c == '\n' || c == '\r')
			*out = " ";
		else if (c < 0x20 || c == 0x7f)
			*out = "?";
		else
			*out = s;
		return 1;
	}
	while (((unsigned char)s[l] & 0xc0) == 0x80)
		l++;
	if (utf8 && c >= 0xc2 && c <= 0xf4 && l <= 4) {
		*out = s;
		*out_len = l;
	} else {
		*out = "?";
		*out_len = 1;
	}
	return l;
}

static unsigned cl_cols(const char *s, bool utf8)
{
	const char *o;
	size_t ol, used;
	unsigned n = 0;

	while ((used = cl_unit(s, utf8, &o, &ol))) {
		s += used;
		n++;
	}
	return n;
}

static const char *cl_ellipsis(bool utf8, unsigned *cols)
{
	*cols = utf8 ? 1 : 3;
	return utf8 ? "\xe2\x80\xa6" : "...";
}

/* Append @s, at most @max columns of it: a longer text is cut and ends with an ellipsis. */
static void cl_text(struct console_line *l, const char *s, unsigned max)
{
	unsigned ell_cols, keep, total = cl_cols(s, l->utf8);
	const char *ell = cl_ellipsis(l->utf8, &ell_cols);
	const char *o;
	size_t ol, used;

	if (l->max_cols - l->cols < max)
		max = l->max_cols - l->cols;
	keep = total <= max ? total : max > ell_cols ? max - ell_cols : 0;
	for (unsigned i = 0; i < keep && (used = cl_unit(s, l->utf8, &o, &ol)); i++) {
		cl_raw(l, o, ol, 1);
		s += used;
	}
	if (keep < total)
		cl_raw(l, ell, strlen(ell), ell_cols < max ? ell_cols : max);
}

static void console_fmt_dur(uint64_t us, bool utf8, char *buf, size_t size)
{
	const char *unit = "ms";
	double v;

	if (us < 1000) {
		snprintf(buf, size, "%llu %s", (unsigned long long)us, utf8 ? "\xc2\xb5s" : "us");
		return;
	}
	v = (double)us / 1e3;
	if (us >= 999500) {
		v = (double)us / 1e6;
		unit = "s";
	}
	if (v < 9.995)
		snprintf(buf, size, "%.2f %s", v, unit);
	else if (v < 99.95)
		snprintf(buf, size, "%.1f %s", v, unit);
	else
		snprintf(buf, size, "%.0f %s", v, unit);
}

/* ---- printing ------------------------------------------------------------------------- */

static int console_cmp(const void *a, const void *b)
{
	const struct console_node *x = *(struct console_node *const *)a;
	const struct console_node *y = *(struct console_node *const *)b;

	if (x->start_us != y->start_us)
		return x->start_us < y->start_us ? -1 : 1;
	if (x->dur_us != y->dur_us)
		return x->dur_us > y->dur_us ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int console_scratch(struct export_console *ec, size_t n)
{
	struct console_item *items, *stack;
	struct console_node **kids;
	size_t cap = ec->scratch_cap ? ec->scratch_cap : 64;

	if (n <= ec->scratch_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	items = realloc(ec->items, cap * sizeof(*items));
	if (items)
		ec->items = items;
	stack = realloc(ec->stack, cap * sizeof(*stack));
	if (stack)
		ec->stack = stack;
	kids = realloc(ec->kids, cap * sizeof(*kids));
	if (kids)
		ec->kids = kids;
	if (!items || !stack || !kids)
		return -ENOMEM;
	ec->scratch_cap = cap;
	return 0;
}

/* The bar: where [start, end) falls in the window [w0, w1), on EXPORT_CONSOLE_BAR_COLS. */
static void console_bar(struct console_line *l, uint64_t start, uint64_t end, uint64_t w0,
			uint64_t w1)
{
	const double width = EXPORT_CONSOLE_BAR_COLS;
	double span = w1 > w0 ? (double)(w1 - w0) : 1.0;
	double from = (double)(start - w0) * width / span;
	double to = (double)(end - w0) * width / span;
	unsigned c0 = (unsigned)from, c1 = (unsigned)(to + 0.5);
	bool thin = to - from < 0.5;

	if (c0 >= EXPORT_CONSOLE_BAR_COLS)
		c0 = EXPORT_CONSOLE_BAR_COLS - 1;
	if (c1 > EXPORT_CONSOLE_BAR_COLS)
		c1 = EXPORT_CONSOLE_BAR_COLS;
	if (c1 <= c0 || thin)
		c1 = c0 + 1;
	cl_raw(l, l->utf8 ? "\xe2\x94\x82" : "[", l->utf8 ? 3 : 1, 1);
	for (unsigned c = 0; c < EXPORT_CONSOLE_BAR_COLS; c++) {
		if (c < c0 || c >= c1)
			cl_raw(l, " ", 1, 1);
		else if (thin)
			cl_raw(l, l->utf8 ? "\xe2\x96\x8f" : "|", l->utf8 ? 3 : 1, 1);
		else
			cl_raw(l, l->utf8 ? "\xe2\x96\x88" : "#", l->utf8 ? 3 : 1, 1);
	}
	cl_raw(l, l->utf8 ? "\xe2\x94\x82" : "]", l->utf8 ? 3 : 1, 1);
}

/*
 * Tags as "k=v k=v": when they do not fit, the longest values are cut first; tags that
 * would not keep CONSOLE_TAG_MIN_COLS of their value are left out, and counted ("+2").
 */
static void console_tags(struct console_line *l, const struct console_node *n)
{
	unsigned kc[SPAN_MAX_TAGS], vc[SPAN_MAX_TAGS], ell_cols, fixed = 0, values = 0, cap = 0;
	const char *key[SPAN_MAX_TAGS], *val[SPAN_MAX_TAGS], *p = n->tags;
	unsigned avail, shown = n->n_tags, more = 0;
	char extra[16] = "";

	if (!n->n_tags || l->cols + 2 >= l->max_cols)
		return;
	cl_ellipsis(l->utf8, &ell_cols);
	for (unsigned i = 0; i < n->n_tags; i++) {
		key[i] = p;
		p += strlen(p) + 1;
		val[i] = p;
		p += strlen(p) + 1;
		kc[i] = cl_cols(key[i], l->utf8);
		if (kc[i] > 24)
			kc[i] = 24;
		vc[i] = cl_cols(val[i], l->utf8);
	}
	/* Keys, '=', separators and the start of each value must fit. */
	for (;;) {
		unsigned least = 0;

		fixed = 0;
		if (shown < n->n_tags)
			more = (unsigned)snprintf(extra, sizeof(extra), " +%u", n->n_tags - shown);
		avail = l->max_cols - l->cols - 2 - more;
		for (unsigned i = 0; i < shown; i++) {
			fixed += kc[i] + 1 + (i ? 1 : 0);
			least += vc[i] < CONSOLE_TAG_MIN_COLS ? vc[i] : CONSOLE_TAG_MIN_COLS;
		}
		if (fixed + least <= avail || !shown)
			break;
		shown--;
	}
	if (!shown)
		return;
	for (unsigned i = 0; i < shown; i++)
		values += vc[i];
	if (values > avail - fixed) {
		/* The largest cap whose cut values fit. */
		for (cap = avail - fixed; cap > ell_cols; cap--) {
			unsigned sum = 0;

			for (unsigned i = 0; i < shown; i++)
				sum += vc[i] < cap ? vc[i] : cap;
			if (sum <= avail - fixed)
				break;
		}
	}
	for (unsigned i = 0; i < shown; i++) {
		cl_lit(l, i ? " " : "  ");
		cl_text(l, key[i], kc[i]);
		cl_lit(l, "=");
		cl_text(l, val[i], cap ? cap : vc[i]);
	}
	cl_lit(l, extra);
}

static bool console_line_out(struct export_console *ec, struct console_line *l)
{
	l->buf[l->len++] = '\n';
	return fwrite(l->buf, 1, l->len, ec->out) == l->len;
}

static bool console_span_line(struct export_console *ec, const struct console_node *n,
			      unsigned depth, uint64_t w0, uint64_t w1)
{
	struct console_line l;
	unsigned indent = (depth < CONSOLE_MAX_INDENT ? depth : CONSOLE_MAX_INDENT) * 2;
	char dur[32];

	cl_init(&l, ec->utf8, EXPORT_CONSOLE_LINE_COLS);
	cl_pad(&l, indent);
	cl_text(&l, n->name, CONSOLE_NAME_COLS - indent - 1);
	console_fmt_dur(n->dur_us, ec->utf8, dur, sizeof(dur));
	cl_pad(&l, CONSOLE_NAME_COLS + 1 + CONSOLE_DUR_COLS - cl_cols(dur, ec->utf8));
	cl_text(&l, dur, CONSOLE_DUR_COLS);
	cl_lit(&l, "  ");
	console_bar(&l, n->start_us, n->start_us + n->dur_us, w0, w1);
	if (n->error) {
		cl_lit(&l, "  ERROR");
		if (n->status_msg) {
			cl_lit(&l, ": ");
			cl_text(&l, n->status_msg, CONSOLE_ERRMSG_COLS);
		}
	}
	if (n->suspends) {
		char buf[64];

		console_fmt_dur(n->suspended_us, ec->utf8, dur, sizeof(dur));
		if (n->suspends > 1)
			snprintf(buf, sizeof(buf), "  suspended %s (%u times)", dur, n->suspends);
		else
			snprintf(buf, sizeof(buf), "  suspended %s", dur);
		cl_text(&l, buf, EXPORT_CONSOLE_LINE_COLS);
	}
	if (n->truncated)
		cl_lit(&l, "  truncated");
	console_tags(&l, n);
	return console_line_out(ec, &l);
}

static void console_label(const struct console_node *n, char *buf, size_t size)
{
	const char *exe = n->exe_path ? strrchr(n->exe_path, '/') : NULL;

	exe = exe ? exe + 1 : n->exe_path;
	if (exe && *exe && strcmp(exe, n->service)) {
		if (n->pid)
			snprintf(buf, size, "%s[%u] (%s)", exe, n->pid, n->service);
		else
			snprintf(buf, size, "%s (%s)", exe, n->service);
	} else if (n->pid) {
		snprintf(buf, size, "%s[%u]", n->service, n->pid);
	} else {
		snprintf(buf, size, "%s", n->service);
	}
}

static bool console_header(struct export_console *ec, const struct console_node *first,
			   size_t count, uint64_t w0, uint64_t w1, enum console_reason why,
			   uint64_t parent)
{
	struct console_line l, tail;
	const uint8_t *tid = first->trace_id;
	char hex[33], label[512], dur[32], buf[160];
	unsigned ell_cols, name_max;
	const char *ell = cl_ellipsis(ec->utf8, &ell_cols);

	/* 16-hex traceIds (old CLN) sit in the last 8 bytes. */
	if (!console_u64(tid))
		text_hex_encode(tid + 8, 8, hex);
	else
		text_hex_encode(tid, 16, hex);
	console_label(first, label, sizeof(label));
	console_fmt_dur(w1 - w0, ec->utf8, dur, sizeof(dur));

	cl_init(&tail, ec->utf8, EXPORT_CONSOLE_LINE_COLS);
	snprintf(buf, sizeof(buf), "  %s  (%zu span%s)", dur, count, count == 1 ? "" : "s");
	cl_text(&tail, buf, EXPORT_CONSOLE_LINE_COLS);
	switch (why) {
	case CONSOLE_ROOT:
		break;
	case CONSOLE_REMOTE:
		snprintf(buf, sizeof(buf), "  parent %016llx is remote",
			 (unsigned long long)parent);
		break;
	case CONSOLE_TIMEOUT:
		snprintf(buf, sizeof(buf), "  INCOMPLETE: parent %016llx never came",
			 (unsigned long long)parent);
		break;
	case CONSOLE_EARLY:
		snprintf(buf, sizeof(buf), "  INCOMPLETE: buffer full, parent %016llx not seen yet",
			 (unsigned long long)parent);
		break;
	case CONSOLE_EXIT:
		snprintf(buf, sizeof(buf), "  INCOMPLETE: parent %016llx not seen before exit",
			 (unsigned long long)parent);
		break;
	}
	if (why != CONSOLE_ROOT)
		cl_text(&tail, buf, EXPORT_CONSOLE_LINE_COLS);

	cl_init(&l, ec->utf8, EXPORT_CONSOLE_LINE_COLS * 2);
	cl_lit(&l, "trace ");
	cl_raw(&l, hex, 8, 8);
	cl_raw(&l, ell, strlen(ell), ell_cols);
	cl_raw(&l, hex + strlen(hex) - 4, 4, 4);
	cl_lit(&l, "  ");
	cl_text(&l, label, CONSOLE_LABEL_COLS);
	cl_lit(&l, "  ");
	name_max = l.cols + tail.cols < EXPORT_CONSOLE_LINE_COLS - 12
			   ? EXPORT_CONSOLE_LINE_COLS - l.cols - tail.cols
			   : 12;
	cl_text(&l, first->name, name_max);
	cl_raw(&l, tail.buf, tail.len, tail.cols);
	return console_line_out(ec, &l);
}

/*
 * Print the trees of the list @tops (linked by sibling) as one block, then free them.
 * @parent is the parent they waited for (unused for CONSOLE_ROOT).
 */
static void console_print(struct export_console *ec, struct console_node *tops,
			  enum console_reason why, uint64_t parent)
{
	size_t n = 0, k = 0, sp = 0, nt = 0;
	uint64_t w0 = UINT64_MAX, w1 = 0;
	bool ok = true;

	for (struct console_node *t = tops; t; t = t->sibling)
		n += t->subtree;
	if (console_scratch(ec, n) < 0) {
		log_limited(&ec->rl, LOG_LVL_ERROR, "console: out of memory: %zu spans not printed",
			    n);
		ec->counts.lost += n;
		stats.dropped[STATS_DROP_ENCODE] += n;
		console_free_trees(ec, tops);
		return;
	}
	/* Depth first, children by start time. */
	for (struct console_node *t = tops; t; t = t->sibling)
		ec->kids[nt++] = t;
	qsort(ec->kids, nt, sizeof(ec->kids[0]), console_cmp);
	while (nt)
		ec->stack[sp++] = (struct console_item){ec->kids[--nt], 0};
	while (sp) {
		struct console_item it = ec->stack[--sp];

		ec->items[k++] = it;
		for (struct console_node *c = it.node->child; c; c = c->sibling)
			ec->kids[nt++] = c;
		qsort(ec->kids, nt, sizeof(ec->kids[0]), console_cmp);
		while (nt)
			ec->stack[sp++] = (struct console_item){ec->kids[--nt], it.depth + 1};
	}
	for (size_t i = 0; i < k; i++) {
		const struct console_node *x = ec->items[i].node;

		if (x->start_us < w0)
			w0 = x->start_us;
		if (x->start_us + x->dur_us > w1)
			w1 = x->start_us + x->dur_us;
	}
	ok = console_header(ec, ec->items[0].node, k, w0, w1, why, parent);
	for (size_t i = 0; i < k && ok; i++)
		ok = console_span_line(ec, ec->items[i].node, ec->items[i].depth, w0, w1);
	if (ok)
		ok = fputc('\n', ec->out) != EOF && fflush(ec->out) != EOF;
	if (ok) {
		stats.exported += k;
		ec->counts.traces++;
		ec->counts.spans += k;
		ec->counts.timed_out += why == CONSOLE_TIMEOUT;
		ec->counts.early += why == CONSOLE_EARLY;
		ec->counts.at_exit += why == CONSOLE_EXIT;
	} else {
		log_limited(&ec->rl, LOG_LVL_ERROR, "console: cannot write traces: %m");
		ec->counts.lost += k;
		stats.dropped[STATS_DROP_OUTPUT] += k;
		clearerr(ec->out);
	}
	for (size_t i = 0; i < k; i++) {
		ec->items[i].node->child = NULL;
		ec->items[i].node->sibling = NULL;
		console_free_trees(ec, ec->items[i].node);
	}
}

/* ---- wait sets ------------------------------------------------------------------------ */

static uint32_t console_hash(uint32_t pid, const uint8_t *trace_id, uint64_t parent)
{
	uint64_t h = parent * 0x9e3779b97f4a7c15ull;

	h ^= (console_u64(trace_id + 8) + pid) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(h >> 40) & (CONSOLE_BUCKETS - 1);
}

static bool console_same(uint32_t pid, const uint8_t *trace_id, uint64_t parent, uint32_t pid2,
			 const uint8_t *trace_id2, uint64_t parent2)
{
	return parent == parent2 && pid == pid2 && !memcmp(trace_id, trace_id2, 16);
}

static struct console_wait **console_find(struct export_console *ec, uint32_t pid,
					  const uint8_t *trace_id, uint64_t parent)
{
	struct console_wait **pp = &ec->buckets[console_hash(pid, trace_id, parent)];

	for (; *pp; pp = &(*pp)->hnext)
		if (console_same(pid, trace_id, parent, (*pp)->pid, (*pp)->trace_id, (*pp)->parent))
			return pp;
	return pp;
}

static void console_list_del(struct export_console *ec, struct console_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		ec->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		ec->tail = w->prev;
	w->prev = w->next = NULL;
}

static void console_list_add(struct export_console *ec, struct console_wait *w)
{
	w->prev = ec->tail;
	w->next = NULL;
	if (ec->tail)
		ec->tail->next = w;
	else
		ec->head = w;
	ec->tail = w;
}

/* Take the set out of the table and list; returns its tops. */
static struct console_node *console_wait_take(struct export_console *ec, struct console_wait *w)
{
	struct console_wait **pp = console_find(ec, w->pid, w->trace_id, w->parent);
	struct console_node *tops = w->tops;

	*pp = w->hnext;
	console_list_del(ec, w);
	free(w);
	return tops;
}

static void console_print_wait(struct export_console *ec, struct console_wait *w,
			       enum console_reason why)
{
	uint64_t parent = w->parent;

	console_print(ec, console_wait_take(ec, w), why, parent);
}

static bool console_remote_known(const struct export_console *ec, const struct console_node *n)
{
	for (unsigned i = 0; i < CONSOLE_REMOTE_MAX; i++) {
		const struct console_remote *r = &ec->remote[i];

		if (r->used &&
		    console_same(n->pid, n->trace_id, n->parent, r->pid, r->trace_id, r->parent))
			return true;
	}
	return false;
}

static void console_remote_learn(struct export_console *ec, const struct console_wait *w)
{
	struct console_remote *r = &ec->remote[ec->remote_next++ % CONSOLE_REMOTE_MAX];

	r->used = true;
	r->pid = w->pid;
	memcpy(r->trace_id, w->trace_id, 16);
	r->parent = w->parent;
}

static void console_arm(struct export_console *ec)
{
	uint64_t now, due;

	if (!ec->timeout_ms || !ec->head) {
		loop_timer_disarm(ec->timer);
		return;
	}
	now = clock_mono_ms();
	due = ec->head->last_ms + ec->timeout_ms;
	loop_timer_arm(ec->timer, due > now ? due - now : 0);
}

static void console_timer(struct loop *loop, void *ctx)
{
	struct export_console *ec = ctx;
	uint64_t now = clock_mono_ms();

	(void)loop;
	while (ec->head && ec->head->last_ms + ec->timeout_ms <= now) {
		console_remote_learn(ec, ec->head);
		console_print_wait(ec, ec->head, CONSOLE_TIMEOUT);
	}
	console_arm(ec);
}

static void console_flush_all(struct export_console *ec)
{
	while (ec->head)
		console_print_wait(ec, ec->head, CONSOLE_EXIT);
}

/* One span: adopt the tops waiting for it, then print it or make it wait for its parent. */
static int console_ingest(struct export_console *ec, const struct span *s, uint64_t now)
{
	struct console_node *n = console_node_new(ec, s);
	struct console_wait **pp, *w;

	if (!n)
		return -ENOMEM;
	ec->spans++;
	ec->bytes += n->mem;
	pp = console_find(ec, n->pid, n->trace_id, n->id);
	if (*pp) {
		w = *pp;
		n->subtree += (uint32_t)w->spans;
		n->child = console_wait_take(ec, w);
	}
	if (!n->has_parent) {
		console_print(ec, n, CONSOLE_ROOT, 0);
		return 0;
	}
	if (console_remote_known(ec, n)) {
		console_print(ec, n, CONSOLE_REMOTE, n->parent);
		return 0;
	}
	pp = console_find(ec, n->pid, n->trace_id, n->parent);
	w = *pp;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			console_print(ec, n, CONSOLE_EARLY, n->parent);
			return 0;
		}
		w->pid = n->pid;
		memcpy(w->trace_id, n->trace_id, 16);
		w->parent = n->parent;
		*pp = w;
	} else {
		console_list_del(ec, w);
	}
	n->sibling = w->tops;
	w->tops = n;
	w->spans += n->subtree;
	w->last_ms = now;
	console_list_add(ec, w);
	while ((ec->spans > ec->max_spans || ec->bytes > ec->max_bytes) && ec->head)
		console_print_wait(ec, ec->head, CONSOLE_EARLY);
	return 0;
}

/* ---- the exporter --------------------------------------------------------------------- */

static int export_console_submit(struct exporter *ex, struct queue_batch *batch)
{
	struct export_console *ec = (struct export_console *)ex;
	uint64_t now = clock_mono_ms();
	size_t lost = 0;

	for (size_t i = 0; i < batch->n; i++)
		if (console_ingest(ec, batch->spans[i], now) < 0)
			lost++;
	if (lost) {
		log_limited(&ec->rl, LOG_LVL_ERROR, "console: out of memory: %zu spans lost", lost);
		ec->counts.lost += lost;
		stats.dropped[STATS_DROP_ENCODE] += lost;
	}
	console_arm(ec);
	stats.batches_sent++;
	/* Each span is counted once: exported when its tree is written, or dropped. */
	ex->done(ex->done_ctx, batch, EXPORT_HELD);
	return 0;
}

static bool export_console_busy(const struct exporter *ex)
{
	(void)ex;
	return false;
}

static unsigned export_console_pending(const struct exporter *ex)
{
	(void)ex;
	return 0; /* batches are finished inside submit(); spans held are copies */
}

static void export_console_abort(struct exporter *ex)
{
	struct export_console *ec = (struct export_console *)ex;

	console_flush_all(ec);
	console_arm(ec);
}

/* The run ends: print (and count) every tree still waiting, before the exit line. */
static void export_console_finish(struct exporter *ex)
{
	console_flush_all((struct export_console *)ex);
}

static void export_console_free(struct exporter *ex)
{
	struct export_console *ec = (struct export_console *)ex;
	const struct export_console_counts *c = &ec->counts;

	console_flush_all(ec);
	if (c->timed_out || c->early || c->at_exit)
		log_info("console: %llu traces printed, incomplete: %llu timed out, %llu early "
			 "(buffer full), %llu at exit",
			 (unsigned long long)c->traces, (unsigned long long)c->timed_out,
			 (unsigned long long)c->early, (unsigned long long)c->at_exit);
	loop_timer__free(ec->timer);
	free(ec->items);
	free(ec->stack);
	free(ec->kids);
	free(ec->buckets);
	free(ec);
}

static const struct exporter_ops export_console_ops = {
	.submit = export_console_submit,
	.busy = export_console_busy,
	.pending = export_console_pending,
	.abort = export_console_abort,
	.free = export_console_free,
	.finish = export_console_finish,
};

bool export_console_locale_utf8(const char *(*getenv_fn)(const char *name))
{
	static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv_fn ? getenv_fn(vars[i]) : NULL;

		if (v && *v)
			return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
	}
	return false;
}

struct exporter *export_console__new(struct loop *loop, FILE *out,
				     const struct otlp_resource_cfg *res,
				     uint64_t orphan_timeout_ms)
{
	struct export_console *ec = calloc(1, sizeof(*ec));

	if (!ec)
		return NULL;
	ec->ex.ops = &export_console_ops;
	ec->ex.name = "console";
	ec->loop = loop;
	ec->out = out;
	ec->res = res;
	ec->timeout_ms = orphan_timeout_ms;
	ec->max_spans = EXPORT_CONSOLE_DEFAULT_MAX_SPANS;
	ec->max_bytes = EXPORT_CONSOLE_DEFAULT_MAX_BYTES;
	ec->utf8 = export_console_locale_utf8((const char *(*)(const char *))getenv);
	ec->buckets = calloc(CONSOLE_BUCKETS, sizeof(*ec->buckets));
	ec->timer = loop_timer__new(loop, console_timer, ec);
	if (!ec->buckets || !ec->timer) {
		loop_timer__free(ec->timer);
		free(ec->buckets);
		free(ec);
		return NULL;
	}
	return &ec->ex;
}

void export_console_set_limits(struct exporter *ex, size_t max_spans, size_t max_bytes)
{
	struct export_console *ec = (struct export_console *)ex;

	if (max_spans)
		ec->max_spans = max_spans;
	if (max_bytes)
		ec->max_bytes = max_bytes;
}

void export_console_set_utf8(struct exporter *ex, bool utf8)
{
	((struct export_console *)ex)->utf8 = utf8;
}

void export_console_counts(const struct exporter *ex, struct export_console_counts *out)
{
	const struct export_console *ec = (const struct export_console *)ex;

	*out = ec->counts;
	out->buffered = ec->spans;
}

int export_console_parse_ms(const char *s, uint64_t *ms)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > 86400000ull)
		return -EINVAL;
	*ms = v;
	return 0;
}
