// SPDX-License-Identifier: MIT
/*
 * The console exporter driven directly: spans handed in batches, output read back from a
 * memory stream. What the real binary cannot show quickly: the buffer cap, the timeout
 * and the remote parents it teaches, deep trees, write errors, the helpers.
 *
 * usage: console_unit {cap|timeout|deep|width|ioerror|helpers|order|label}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

#include "exe_paths.h"
#include "export_console.h"
#include "loop.h"
#include "stats.h"

struct harness {
	struct loop *loop;
	struct exporter *ex;
	FILE *out;
	char *text;
	size_t len;
	unsigned done_calls;
	enum export_result last;
};

static void on_done(void *ctx, struct queue_batch *batch, enum export_result res)
{
	struct harness *h = ctx;

	h->done_calls++;
	h->last = res;
}

/* A console exporter (ASCII) printing into the harness's memory stream. */
static void harness_exporter(struct harness *h, const struct otlp_resource_cfg *res,
			     uint64_t timeout_ms)
{
	h->ex = h->loop && h->out ? export_console__new(h->loop, h->out, res, timeout_ms) : NULL;
	if (!h->ex) {
		fprintf(stderr, "cannot set up the harness\n");
		exit(2);
	}
	export_console_set_utf8(h->ex, false);
	exporter_set_done(h->ex, on_done, h);
}

static void harness_init(struct harness *h, uint64_t timeout_ms)
{
	static const struct otlp_resource_cfg res = {0};

	memset(h, 0, sizeof(*h));
	h->loop = loop__new();
	h->out = open_memstream(&h->text, &h->len);
	harness_exporter(h, &res, timeout_ms);
}

/* What was printed so far (NUL-terminated, owned by the harness). */
static const char *harness_text(struct harness *h)
{
	fflush(h->out);
	return h->text ? h->text : "";
}

/* A check on what the exporter printed: on failure, the text follows. */
#define CHECK_PRINTED(h, cond)                                    \
	do {                                                      \
		if (!CHECK(cond))                                 \
			fprintf(stderr, "%s\n", harness_text(h)); \
	} while (0)

static void harness_free(struct harness *h)
{
	exporter__free(h->ex);
	h->ex = NULL;
	fclose(h->out);
	free(h->text);
	loop__free(h->loop);
}

static struct span *mk(const char *id, const char *parent, const char *trace, const char *name,
		       uint64_t ts, uint64_t dur, uint32_t pid, const char *tags)
{
	char json[SPAN_MAX_PAYLOAD + 1024], par[64] = "";
	enum span_reject why;
	struct span *s;

	if (parent)
		snprintf(par, sizeof(par), "\"parentId\":\"%s\",", parent);
	snprintf(json, sizeof(json),
		 "[{\"id\":\"%s\",\"name\":\"%s\",\"timestamp\":%llu,\"duration\":%llu,"
		 "\"localEndpoint\":{\"serviceName\":\"lightningd\"},%s\"tags\":{%s},"
		 "\"traceId\":\"%s\"}]",
		 id, name, (unsigned long long)(1700000000000000ull + ts), (unsigned long long)dur,
		 par, tags ? tags : "", trace);
	if (span_parse(json, strlen(json), &s, &why) < 0) {
		fprintf(stderr, "bad test span %s: %s\n", json, span_reject_str(why));
		exit(2);
	}
	s->pid = pid;
	return s;
}

/* Hand @n spans to the exporter as one batch; they are freed after it is done. */
static void submit(struct harness *h, struct span **spans, size_t n)
{
	struct queue_batch batch = {.spans = spans, .n = n};
	unsigned before = h->done_calls;

	CHECK_MSG(h->ex->ops->submit(h->ex, &batch) == 0, "submit refused");
	CHECK_MSG(h->done_calls == before + 1, "done() called %u times", h->done_calls - before);
	CHECK_MSG(h->ex->ops->pending(h->ex) == 0 && !h->ex->ops->busy(h->ex), "holds batches");
	for (size_t i = 0; i < n; i++)
		span__free(spans[i]);
}

static void submit1(struct harness *h, struct span *s)
{
	submit(h, &s, 1);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static struct export_console_counts counts(struct harness *h)
{
	struct export_console_counts c;

	export_console_counts(h->ex, &c);
	return c;
}

#define T1 "11111111111111111111111111111111"
#define T2 "22222222222222222222222222222222"
#define T3 "33333333333333333333333333333333"

static void test_cap(void)
{
	struct harness h;
	struct span *s[2];

	harness_init(&h, 0);
	export_console_set_limits(h.ex, 5, 0);
	/* Three sets of two spans, each waiting for a parent that never comes. */
	s[0] = mk("00000000000000a1", "00000000000000a0", T1, "first-a", 0, 10, 1, NULL);
	s[1] = mk("00000000000000a2", "00000000000000a0", T1, "first-b", 5, 10, 1, NULL);
	submit(&h, s, 2);
	s[0] = mk("00000000000000b1", "00000000000000b0", T2, "second-a", 0, 10, 1, NULL);
	s[1] = mk("00000000000000b2", "00000000000000b0", T2, "second-b", 5, 10, 1, NULL);
	submit(&h, s, 2);
	CHECK_MSG(counts(&h).buffered == 4 && !counts(&h).traces, "buffered %zu",
		  counts(&h).buffered);
	CHECK_MSG(!*harness_text(&h), "printed before the cap: %s", harness_text(&h));
	s[0] = mk("00000000000000c1", "00000000000000c0", T3, "third-a", 0, 10, 1, NULL);
	s[1] = mk("00000000000000c2", "00000000000000c0", T3, "third-b", 5, 10, 1, NULL);
	submit(&h, s, 2);
	/* 6 > 5: the set that waited longest goes out early, whole. */
	CHECK_MSG(counts(&h).early == 1, "early %llu", (unsigned long long)counts(&h).early);
	CHECK_MSG(counts(&h).buffered == 4, "buffered %zu", counts(&h).buffered);
	CHECK_PRINTED(&h,
		      strstr(harness_text(&h), "first-a") && strstr(harness_text(&h), "first-b"));
	CHECK_PRINTED(&h, !strstr(harness_text(&h), "second-a"));
	CHECK_PRINTED(&h,
		      strstr(harness_text(&h), "INCOMPLETE: buffer full, parent 00000000000000a0"));
	CHECK_PRINTED(&h, strstr(harness_text(&h), "(2 spans)"));
	/* A new sibling of the second set makes it the newest: the third goes next. */
	submit1(&h, mk("00000000000000b3", "00000000000000b0", T2, "second-c", 7, 1, 1, NULL));
	CHECK_MSG(counts(&h).early == 1, "the cap is 5 and 5 are held");
	submit1(&h, mk("00000000000000d1", "00000000000000d0", T1, "fourth", 0, 1, 1, NULL));
	CHECK_PRINTED(&h, counts(&h).early == 2 && strstr(harness_text(&h), "third-a") &&
				  !strstr(harness_text(&h), "second-c"));
	/* Nothing is lost at the end: the rest is printed, marked. */
	exporter__free(h.ex);
	h.ex = NULL;
	CHECK_PRINTED(&h,
		      strstr(harness_text(&h), "second-c") && strstr(harness_text(&h), "fourth"));
	CHECK_PRINTED(&h, count_of(harness_text(&h), "not seen before exit") == 2);
	harness_free(&h);

	/* The byte cap works the same way. */
	harness_init(&h, 0);
	export_console_set_limits(h.ex, 0, 1);
	submit1(&h, mk("00000000000000a1", "00000000000000a0", T1, "over-bytes", 0, 10, 1, NULL));
	CHECK_MSG(counts(&h).early == 1 && counts(&h).buffered == 0, "early %llu",
		  (unsigned long long)counts(&h).early);
	harness_free(&h);
}

static void stop_loop(struct loop *loop, void *ctx)
{
	loop_stop(loop);
}

static void run_loop_for(struct harness *h, uint64_t ms)
{
	struct loop_timer *t = loop_timer__new(h->loop, stop_loop, NULL);

	loop_timer_arm(t, ms);
	loop_run(h->loop);
	loop_timer__free(t);
}

static void test_timeout(void)
{
	struct harness h;
	struct span *s[2];
	struct export_console_counts c;

	harness_init(&h, 400);
	/* As with CLN_TRACEPARENT: the roots' parent (…ee) is never emitted. */
	s[0] = mk("00000000000000a1", "00000000000000a2", T1, "child", 100, 10, 7, NULL);
	s[1] = mk("00000000000000a2", "00000000000000ee", T1, "first-root", 0, 500, 7, NULL);
	submit(&h, s, 2);
	CHECK_MSG(!*harness_text(&h), "printed before the timeout: %s", harness_text(&h));
	run_loop_for(&h, 1200);
	c = counts(&h);
	CHECK_MSG(c.timed_out == 1 && c.buffered == 0, "timed out %llu, buffered %zu",
		  (unsigned long long)c.timed_out, c.buffered);
	CHECK_PRINTED(&h,
		      strstr(harness_text(&h), "INCOMPLETE: parent 00000000000000ee never came"));
	CHECK_PRINTED(&h, strstr(harness_text(&h), "lightningd[7]") &&
				  strstr(harness_text(&h), "first-root") &&
				  strstr(harness_text(&h), "  child"));
	/* The parent is now known as remote: the next root with it is printed at once. */
	s[0] = mk("00000000000000b1", "00000000000000b2", T1, "child2", 100, 10, 7, NULL);
	s[1] = mk("00000000000000b2", "00000000000000ee", T1, "second-root", 0, 500, 7, NULL);
	submit(&h, s, 2);
	c = counts(&h);
	CHECK_MSG(c.traces == 2 && c.buffered == 0 && c.timed_out == 1, "traces %llu buffered %zu",
		  (unsigned long long)c.traces, c.buffered);
	CHECK_PRINTED(&h, strstr(harness_text(&h), "parent 00000000000000ee is remote"));
	/* Known for that process and trace only. */
	submit1(&h, mk("00000000000000c2", "00000000000000ee", T1, "other-pid", 0, 5, 8, NULL));
	submit1(&h, mk("00000000000000d2", "00000000000000ee", T2, "other-trace", 0, 5, 7, NULL));
	CHECK_MSG(counts(&h).buffered == 2, "buffered %zu", counts(&h).buffered);
	/* Each wait counts from the last span of its set (timeout 400 ms, margins 100 ms). */
	run_loop_for(&h, 200);
	submit1(&h, mk("00000000000000c3", "00000000000000ee", T1, "other-pid-2", 0, 5, 8, NULL));
	run_loop_for(&h, 300);
	c = counts(&h);
	CHECK_MSG(c.timed_out == 2 && c.buffered == 2, "timed out %llu buffered %zu",
		  (unsigned long long)c.timed_out, c.buffered);
	CHECK_PRINTED(&h, strstr(harness_text(&h), "other-trace") &&
				  !strstr(harness_text(&h), "other-pid"));
	run_loop_for(&h, 800);
	CHECK_PRINTED(&h, counts(&h).timed_out == 3 && strstr(harness_text(&h), "other-pid-2"));
	harness_free(&h);
}

/* A chain far deeper than any stack frame budget: printed and freed without recursion. */
static void test_deep(void)
{
	enum { DEPTH = 20000 };
	struct harness h;
	char id[17], parent[17];
	const char *text, *line;

	harness_init(&h, 0);
	for (unsigned i = DEPTH; i >= 1; i--) {
		snprintf(id, sizeof(id), "%016x", i);
		snprintf(parent, sizeof(parent), "%016x", i - 1);
		submit1(&h, mk(id, i > 1 ? parent : NULL, T1, "level", i, 2 * (DEPTH - i) + 1, 1,
			       NULL));
	}
	text = harness_text(&h);
	CHECK_MSG(counts(&h).traces == 1 && counts(&h).spans == DEPTH && counts(&h).buffered == 0,
		  "traces %llu spans %llu", (unsigned long long)counts(&h).traces,
		  (unsigned long long)counts(&h).spans);
	CHECK_MSG(count_of(text, "\n") == DEPTH + 2, "lines %zu", count_of(text, "\n"));
	/* Indentation stops growing at 16 levels. */
	line = strstr(text, "\n                                level");
	CHECK_MSG(line && !strstr(text, "\n                                  level"), "indent");
	harness_free(&h);
}

/* No line over the width, whatever the tags. */
static void test_width(void)
{
	struct harness h;
	char tags[1800], *p = tags;
	const char *text, *line;
	size_t longest = 0;

	for (int i = 0; i < SPAN_MAX_TAGS; i++)
		p += sprintf(p, "%s\"key%d_is_rather_long_indeed\":\"%0*d\"", i ? "," : "", i,
			     100 + 10 * i, i);
	harness_init(&h, 0);
	submit1(&h, mk("00000000000000a1", NULL, T1,
		       "a_name_so_long_that_it_cannot_fit_in_its_column_at_all_0123456789", 0, 10,
		       1, tags));
	submit1(&h, mk("00000000000000b1", NULL, T1, "short", 0, 10, 1,
		       "\"a\":\"1\",\"b\":\"2\",\"c\":\"3\""));
	text = harness_text(&h);
	for (line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (len > longest)
			longest = len;
		line += len + (nl ? 1 : 0);
	}
	CHECK_MSG(longest <= EXPORT_CONSOLE_LINE_COLS && longest >= EXPORT_CONSOLE_LINE_COLS - 2,
		  "longest line %zu", longest);
	CHECK_PRINTED(&h, strstr(text, "a_name_so_long_that_it_cannot_fit_in_its...  "));
	/* Keys are cut at 24 columns; tags without room for 12 columns of value are counted. */
	CHECK_PRINTED(&h, strstr(text, "]  key0_is_rather_long_i...=000000000"));
	CHECK_PRINTED(&h, strstr(text, "... +7\n") || strstr(text, "... +6\n"));
	CHECK_PRINTED(&h, strstr(text, "]  a=1 b=2 c=3\n"));
	harness_free(&h);
}

static void test_ioerror(void)
{
	static const struct otlp_resource_cfg res = {0};
	struct loop *loop = loop__new();
	FILE *full = fopen("/dev/full", "w");
	struct exporter *ex;
	struct harness h = {0};
	struct export_console_counts c;
	uint64_t dropped = stats.dropped[STATS_DROP_OUTPUT];
	struct span *s;
	struct queue_batch batch;

	if (!full) {
		CHECK_FAIL("cannot open /dev/full: %s", strerror(errno));
		return;
	}
	ex = export_console__new(loop, full, &res, 0);
	exporter_set_done(ex, on_done, &h);
	s = mk("00000000000000a1", NULL, T1, "lost", 0, 10, 1, NULL);
	batch = (struct queue_batch){.spans = &s, .n = 1};
	CHECK_MSG(ex->ops->submit(ex, &batch) == 0 && h.done_calls == 1, "submit");
	span__free(s);
	export_console_counts(ex, &c);
	CHECK_MSG(c.lost == 1 && c.traces == 0, "lost %llu", (unsigned long long)c.lost);
	CHECK_MSG(stats.dropped[STATS_DROP_OUTPUT] == dropped + 1, "counted as dropped (output)");
	exporter__free(ex);
	fclose(full);
	loop__free(loop);
}

static const char *env_lc_all, *env_lc_ctype, *env_lang;

static const char *fake_getenv(const char *name)
{
	if (!strcmp(name, "LC_ALL"))
		return env_lc_all;
	if (!strcmp(name, "LC_CTYPE"))
		return env_lc_ctype;
	if (!strcmp(name, "LANG"))
		return env_lang;
	return NULL;
}

static bool utf8_with(const char *all, const char *ctype, const char *lang)
{
	env_lc_all = all;
	env_lc_ctype = ctype;
	env_lang = lang;
	return export_console_locale_utf8(fake_getenv);
}

static void test_helpers(void)
{
	static const struct {
		const char *s;
		int ok;
		uint64_t ms;
	} ms_cases[] = {
		{"0", 1, 0},
		{"250", 1, 250},
		{"10000", 1, 10000},
		{"86400000", 1, 86400000},
		{"86400001", 0, 0},
		{"", 0, 0},
		{"-1", 0, 0},
		{"1e3", 0, 0},
		{"12ms", 0, 0},
		{" 5", 0, 0},
		{"99999999999999999999999", 0, 0},
	};

	CHECK_MSG(!utf8_with(NULL, NULL, NULL), "no locale: ASCII");
	CHECK_MSG(!utf8_with(NULL, NULL, "C"), "LANG=C: ASCII");
	CHECK_MSG(utf8_with(NULL, NULL, "en_US.UTF-8"), "LANG UTF-8");
	CHECK_MSG(utf8_with(NULL, NULL, "C.utf8"), "LANG utf8");
	CHECK_MSG(!utf8_with("C", NULL, "en_US.UTF-8"), "LC_ALL wins over LANG");
	CHECK_MSG(utf8_with("", "de_DE.UTF-8", "C"), "empty LC_ALL: LC_CTYPE");
	CHECK_MSG(!utf8_with("", "POSIX", "en_US.UTF-8"), "LC_CTYPE wins over LANG");
	for (size_t i = 0; i < sizeof(ms_cases) / sizeof(ms_cases[0]); i++) {
		uint64_t ms = 12345;
		int r = export_console_parse_ms(ms_cases[i].s, &ms);

		CHECK_MSG(ms_cases[i].ok ? r == 0 && ms == ms_cases[i].ms
					 : r == -EINVAL && ms == 12345,
			  "parse_ms(\"%s\") = %d, %llu", ms_cases[i].s, r, (unsigned long long)ms);
	}
}

/* The header names the process: executable (when known) and pid, then the service. */
static void test_label(void)
{
	static const struct otlp_resource_cfg named = {.service_name = "mynode"};
	struct harness h;
	struct span *s;

	harness_init(&h, 0);
	s = mk("00000000000000a1", NULL, T1, "a", 0, 1, 4321, NULL);
	s->exe_path = exe_path_get("/usr/libexec/c-lightning/plugins/cln-xpay");
	submit1(&h, s);
	s = mk("00000000000000a2", NULL, T1, "b", 0, 1, 0, NULL);
	s->exe_path = exe_path_get("/usr/bin/lightningd");
	submit1(&h, s);
	submit1(&h, mk("00000000000000a3", NULL, T1, "c", 0, 1, 0, NULL));
	CHECK_PRINTED(&h,
		      strstr(harness_text(&h), "...1111  cln-xpay[4321] (lightningd)  a  1 us"));
	CHECK_PRINTED(&h, strstr(harness_text(&h), "...1111  lightningd  b  1 us"));
	CHECK_PRINTED(&h, strstr(harness_text(&h), "...1111  lightningd  c  1 us"));
	exporter__free(h.ex);
	/* OTEL_SERVICE_NAME names the service instead of the span's serviceName. */
	harness_exporter(&h, &named, 0);
	submit1(&h, mk("00000000000000a4", NULL, T1, "d", 0, 1, 99, NULL));
	CHECK_PRINTED(&h, strstr(harness_text(&h), "...1111  mynode[99]  d  1 us"));
	harness_free(&h);
}

/* Spans not in CLN's order (a parent before its child) never break the view. */
static void test_order(void)
{
	struct harness h;

	harness_init(&h, 0);
	submit1(&h, mk("00000000000000a1", NULL, T1, "early-parent", 0, 10, 1, NULL));
	submit1(&h, mk("00000000000000a2", "00000000000000a1", T1, "late-child", 1, 2, 1, NULL));
	/* The same id twice, with a child waiting: the first copy adopts it. */
	submit1(&h, mk("00000000000000b2", "00000000000000b1", T1, "kid", 1, 2, 1, NULL));
	submit1(&h, mk("00000000000000b1", NULL, T1, "dup", 0, 10, 1, NULL));
	submit1(&h, mk("00000000000000b1", NULL, T1, "dup", 0, 10, 1, NULL));
	CHECK_MSG(counts(&h).traces == 3 && counts(&h).buffered == 1, "traces %llu buffered %zu",
		  (unsigned long long)counts(&h).traces, counts(&h).buffered);
	CHECK_PRINTED(&h, strstr(harness_text(&h), "dup  10 us  (2 spans)") &&
				  strstr(harness_text(&h), "dup  10 us  (1 span)"));
	exporter__free(h.ex);
	h.ex = NULL;
	CHECK_PRINTED(&h, strstr(harness_text(&h), "late-child") &&
				  strstr(harness_text(&h),
					 "parent 00000000000000a1 not seen before exit"));
	harness_free(&h);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{"cap", test_cap},     {"timeout", test_timeout}, {"deep", test_deep},
		{"width", test_width}, {"ioerror", test_ioerror}, {"helpers", test_helpers},
		{"order", test_order}, {"label", test_label},
	};
	bool ran = false;

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (argc > 1 && strcmp(argv[1], tests[i].name))
			continue;
		tests[i].fn();
		ran = true;
	}
	if (!ran) {
		fprintf(stderr,
			"usage: console_unit [cap|timeout|deep|width|ioerror|helpers|order|label]\n");
		return 2;
	}
	return check_summary();
}
