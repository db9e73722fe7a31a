// SPDX-License-Identifier: MIT
/*
 * The span metrics table (src/spanmetrics.c) from spans parsed as the daemon parses them:
 * which rpc_method a span gets, the buckets at and around their bounds, the error rule,
 * the folding bounds (names, methods, series, value length), escaping, the text's
 * structure, its size at the bounds, and the cost per span (printed, not asserted).
 *
 *   test_spanmetrics [CAPTURE_FILE]   (the file: spans to time the table with)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../check.h"

#include "span.h"
#include "spanmetrics.h"
#include "../trace_lines.h"

#define TEXT_MAX (8u << 20)

static struct spanmetrics sm;
static char text[TEXT_MAX];

/* A span named @name lasting @dur_us, with up to 3 tags (a JSON object body, may be ""). */
static struct span *mk(const char *name, uint64_t dur_us, const char *tags)
{
	static unsigned seq;
	char json[4096];
	enum span_reject why;
	struct span *s = NULL;

	snprintf(json, sizeof(json),
		 "[{\"id\":\"%016x\",\"name\":\"%s\",\"timestamp\":1795660314655273,"
		 "\"duration\":%" PRIu64 ",\"localEndpoint\":{\"serviceName\":\"lightningd\"},"
		 "\"tags\":{%s},\"traceId\":\"074c67a29952a72ce3a9ce4137f3d273\"}]",
		 ++seq, name, dur_us, tags);
	if (span_parse(json, strlen(json), &s, &why) < 0) {
		CHECK_FAIL("span did not parse (%s): %s", span_reject_str(why), json);
		exit(1);
	}
	return s;
}

static void feed(const char *name, uint64_t dur_us, const char *tags)
{
	struct span *s = mk(name, dur_us, tags);

	spanmetrics_observe(&sm, s);
	span__free(s);
}

static void render(void)
{
	size_t len = spanmetrics_render(&sm, text, sizeof(text));

	CHECK_MSG(len < sizeof(text), "text of %zu bytes fits the test's buffer", len);
}

/* The value of the sample line starting with @series + " ", or -1 when absent. */
static long long value_of(const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; (p = strstr(p, series)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

static long long count_of(const char *name, const char *method)
{
	char series[512];

	snprintf(series, sizeof(series),
		 "cln_otlp_span_duration_seconds_count{span_name=\"%s\",rpc_method=\"%s\"}", name,
		 method);
	return value_of(series);
}

static long long bucket_of(const char *name, const char *method, const char *le)
{
	char series[512];

	snprintf(series, sizeof(series),
		 "cln_otlp_span_duration_seconds_bucket{span_name=\"%s\",rpc_method=\"%s\","
		 "le=\"%s\"}",
		 name, method, le);
	return value_of(series);
}

static long long errors_of(const char *name, const char *method)
{
	char series[512];

	snprintf(series, sizeof(series),
		 "cln_otlp_span_errors_total{span_name=\"%s\",rpc_method=\"%s\"}", name, method);
	return value_of(series);
}

static long long folded(const char *label)
{
	char series[128];

	snprintf(series, sizeof(series), "cln_otlp_span_metrics_folded_total{label=\"%s\"}", label);
	return value_of(series);
}

static size_t count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_methods(void)
{
	check_case("methods");
	spanmetrics_reset(&sm);
	feed("lightningd/jsonrpc", 10, "\"method\":\"getinfo\"");
	feed("lightningd/jsonrpc", 10, "\"method\":\"getinfo\"");
	feed("plugin/bitcoind", 10, "\"method\":\"getchaininfo\"");
	feed("jsonrpc", 10, "\"id\":\"cln:init#24/autoclean:listconfigs#9\", \"error\":\"false\"");
	feed("jsonrpc", 10, "\"id\":\"x:a#1\", \"method\":\"listpeers\"");
	feed("jsonrpc", 10, "\"id\":\"no method here\"");
	feed("db_exec_prepared", 10, "\"method\":\"not an rpc\", \"query\":\"SELECT 1\"");
	feed("plugins/init", 10, "\"method\":\"not a call\"");
	render();
	CHECK_EQ(count_of("lightningd/jsonrpc", "getinfo"), 2);
	CHECK_EQ(count_of("plugin/bitcoind", "getchaininfo"), 1);
	CHECK_EQ(count_of("jsonrpc", "listconfigs"), 1); /* from the request id */
	CHECK_EQ(count_of("jsonrpc", "listpeers"), 1);	 /* the method tag wins */
	CHECK_EQ(count_of("jsonrpc", ""), 1);		 /* an id naming no method */
	CHECK_EQ(count_of("db_exec_prepared", ""), 1);
	CHECK_EQ(count_of("plugins/init", ""), 1);
	CHECK_EQ(count_of("plugins/init", "not a call"), -1);
	CHECK_EQ(folded("span_name"), 0);
	CHECK_EQ(folded("rpc_method"), 0);
}

static void test_buckets(void)
{
	static const uint64_t durs[] = {0,    100,	101,	  250,	     999,
					1000, 10000000, 10000001, 3600000000};
	uint64_t sum = 0;
	long long prev = 0;
	char le[32];

	check_case("buckets");
	spanmetrics_reset(&sm);
	for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
		feed("extend_tip", durs[i], "");
		sum += durs[i];
	}
	render();
	/* le is "less or equal": a duration on a bound is in that bucket. */
	CHECK_EQ(bucket_of("extend_tip", "", "0.0001"), 2);
	CHECK_EQ(bucket_of("extend_tip", "", "0.00025"), 4);
	CHECK_EQ(bucket_of("extend_tip", "", "0.0005"), 4);
	CHECK_EQ(bucket_of("extend_tip", "", "0.001"), 6);
	CHECK_EQ(bucket_of("extend_tip", "", "10"), 7);
	CHECK_EQ(bucket_of("extend_tip", "", "+Inf"), 9);
	CHECK_EQ(count_of("extend_tip", ""), 9);
	for (size_t b = 0; b < SPANMETRICS_BUCKETS; b++) {
		long long v = bucket_of("extend_tip", "", spanmetrics_bounds_le[b]);

		CHECK_MSG(v >= prev, "cumulative at le=%s", spanmetrics_bounds_le[b]);
		/* the le label is the bound in seconds */
		CHECK_MSG(strtod(spanmetrics_bounds_le[b], NULL) * 1e6 ==
				  (double)spanmetrics_bounds_us[b],
			  "le %s is %" PRIu64 " us", spanmetrics_bounds_le[b],
			  spanmetrics_bounds_us[b]);
		prev = v;
	}
	snprintf(le, sizeof(le), "%" PRIu64 ".%06" PRIu64 "\n", sum / 1000000, sum % 1000000);
	CHECK_MSG(strstr(text, "cln_otlp_span_duration_seconds_sum{span_name=\"extend_tip\","
			       "rpc_method=\"\"} ") &&
			  strstr(strstr(text, "_sum{span_name=\"extend_tip\""), le),
		  "sum exact in seconds: %s", le);
	CHECK_EQ(count_substr(text, "_bucket{span_name=\"extend_tip\""), SPANMETRICS_BUCKETS + 1);
}

static void test_errors(void)
{
	check_case("errors");
	spanmetrics_reset(&sm);
	feed("jsonrpc", 10, "\"id\":\"a:b#1\", \"error\":\"true\"");
	feed("jsonrpc", 10, "\"id\":\"a:b#2\", \"error\":\"false\"");
	feed("jsonrpc", 10, "\"id\":\"a:b#3\", \"error\":\"boom\""); /* a message: ERROR */
	feed("jsonrpc", 10, "\"id\":\"a:b#4\", \"otel.status_code\":\"ERROR\"");
	feed("jsonrpc", 10, "\"id\":\"a:b#5\", \"error\":\"true\", \"otel.status_code\":\"OK\"");
	feed("wallet_new", 10, "");
	render();
	CHECK_EQ(count_of("jsonrpc", "b"), 5);
	CHECK_EQ(errors_of("jsonrpc", "b"), 3);
	CHECK_EQ(errors_of("wallet_new", ""), 0); /* a series without errors says 0 */
}

static void test_fold_methods(void)
{
	char tags[64], m[32];

	check_case("fold methods");
	spanmetrics_reset(&sm);
	for (int i = 0; i < 300; i++) {
		snprintf(tags, sizeof(tags), "\"method\":\"m%03d\"", i);
		feed("lightningd/jsonrpc", 10, tags);
	}
	feed("lightningd/jsonrpc", 10, "\"method\":\"m000\""); /* known: not folded */
	render();
	CHECK_EQ(count_of("lightningd/jsonrpc", "m000"), 2);
	CHECK_EQ(count_of("lightningd/jsonrpc", "m255"), 1);
	CHECK_EQ(count_of("lightningd/jsonrpc", "m256"), -1);
	CHECK_EQ(count_of("lightningd/jsonrpc", "other"), 44);
	CHECK_EQ(folded("rpc_method"), 44);
	CHECK_EQ(folded("span_name"), 0);
	for (int i = 0; i < 256; i++) {
		snprintf(m, sizeof(m), "m%03d", i);
		if (count_of("lightningd/jsonrpc", m) < 1)
			CHECK_FAIL("method %s has its series", m);
	}
	/* A method named "other" is that series, not one more with the same labels. */
	feed("lightningd/jsonrpc", 10, "\"method\":\"other\"");
	render();
	CHECK_EQ(count_of("lightningd/jsonrpc", "other"), 45);
	CHECK_EQ(folded("rpc_method"), 44);
	CHECK_EQ(
		count_substr(text, "_count{span_name=\"lightningd/jsonrpc\",rpc_method=\"other\"}"),
		1);
}

static void test_fold_names(void)
{
	char name[SPANMETRICS_VALUE_MAX + 16];

	check_case("fold names");
	spanmetrics_reset(&sm);
	for (int i = 0; i < 70; i++) {
		snprintf(name, sizeof(name), "name_%02d", i);
		feed(name, 10, "");
	}
	feed("plugin/late", 10, "\"method\":\"hook\""); /* a folded name keeps its method */
	memset(name, 'x', SPANMETRICS_VALUE_MAX + 1);
	name[SPANMETRICS_VALUE_MAX + 1] = '\0';
	feed(name, 10, "");
	render();
	CHECK_EQ(count_of("name_63", ""), 1);
	CHECK_EQ(count_of("name_64", ""), -1);
	CHECK_EQ(count_of("other", ""), 7);
	CHECK_EQ(count_of("other", "hook"), 1);
	CHECK_EQ(folded("span_name"), 8);
	/* Values of exactly the bound's length are kept (a fresh table: room for names). */
	spanmetrics_reset(&sm);
	name[SPANMETRICS_VALUE_MAX] = '\0';
	feed(name, 10, "");
	feed(name, 10, "");
	render();
	CHECK_EQ(count_of(name, ""), 2);
	CHECK_EQ(folded("span_name"), 0);
}

static void test_fold_series(void)
{
	char name[32], tags[64];
	long long own = 0;

	check_case("fold series");
	spanmetrics_reset(&sm);
	/* 5 names x 256 methods: 1280 pairs, 1024 of them get a series. */
	for (int n = 0; n < 5; n++)
		for (int i = 0; i < 256; i++) {
			snprintf(name, sizeof(name), "plugin/p%d", n);
			snprintf(tags, sizeof(tags), "\"method\":\"m%03d\"", i);
			feed(name, 10, tags);
		}
	feed("plugin/p4", 10, ""); /* the "" series of a name is always there */
	render();
	for (int n = 0; n < 5; n++) {
		snprintf(name, sizeof(name), "plugin/p%d", n);
		for (int i = 0; i < 256; i++) {
			char m[8];

			snprintf(m, sizeof(m), "m%03d", i);
			own += count_of(name, m) > 0;
		}
	}
	CHECK_EQ(own, SPANMETRICS_SERIES_MAX);
	CHECK_EQ(count_of("plugin/p4", "other"), 1280 - SPANMETRICS_SERIES_MAX);
	CHECK_EQ(count_of("plugin/p4", ""), 1);
	CHECK_EQ(folded("rpc_method"), 1280 - SPANMETRICS_SERIES_MAX);
}

static void test_escape(void)
{
	check_case("escape");
	spanmetrics_reset(&sm);
	/* JSON escapes: the method is  a"b\c<newline>d  */
	feed("lightningd/jsonrpc", 10, "\"method\":\"a\\\"b\\\\c\\nd\"");
	render();
	CHECK_EQ(count_of("lightningd/jsonrpc", "a\\\"b\\\\c\\nd"), 1);
	CHECK_MSG(!strstr(text, "c\nd"), "no raw newline in a label");
}

/* Every sample line belongs to a declared family; the three families once each. */
static void test_structure(void)
{
	size_t need;
	char small[48];

	check_case("structure");
	spanmetrics_reset(&sm);
	need = spanmetrics_render(&sm, text, sizeof(text));
	CHECK_EQ(count_substr(text, "# TYPE cln_otlp_span_duration_seconds histogram\n"), 1);
	CHECK_EQ(count_substr(text, "# TYPE cln_otlp_span_errors_total counter\n"), 1);
	CHECK_EQ(count_substr(text, "# TYPE cln_otlp_span_metrics_folded_total counter\n"), 1);
	CHECK_EQ(count_substr(text, "# HELP "), 3);
	CHECK_EQ(folded("span_name"), 0); /* present before the first span */
	memset(small, 'x', sizeof(small));
	CHECK_EQ(spanmetrics_render(&sm, small, 20), need);
	CHECK_MSG(strlen(small) == 19 && small[20] == 'x', "cut at the buffer, NUL inside");
	CHECK_EQ(spanmetrics_render(&sm, NULL, 0), need);
	feed("a", 1, "");
	render();
	for (const char *line = text; *line;) {
		const char *eol = strchr(line, '\n');

		CHECK_MSG(eol, "lines end with a newline");
		if (!eol)
			break;
		CHECK_MSG(line[0] == '#' || !strncmp(line, "cln_otlp_span_duration_seconds_", 31) ||
				  !strncmp(line, "cln_otlp_span_errors_total{", 27) ||
				  !strncmp(line, "cln_otlp_span_metrics_folded_total{", 35),
			  "a sample of the families: %.*s", (int)(eol - line), line);
		line = eol + 1;
	}
}

/* @raw as a JSON string's contents (quotes and backslashes escaped). */
static void json_escape(char *out, const char *raw)
{
	for (; *raw; raw++) {
		if (*raw == '"' || *raw == '\\')
			*out++ = '\\';
		*out++ = *raw;
	}
	*out = '\0';
}

/* The text at every bound, with the longest values, all escaped: under metrics.c's cap. */
static void test_worst_size(void)
{
	char raw[SPANMETRICS_VALUE_MAX + 1], name[2 * sizeof(raw)], method[2 * sizeof(raw)];
	char tags[2 * sizeof(raw) + 16];
	size_t len;

	check_case("worst size");
	spanmetrics_reset(&sm);
	for (int n = 0; n < SPANMETRICS_NAMES_MAX; n++)
		for (int i = 0; i < 20; i++) {
			memset(raw, '"', sizeof(raw) - 1);
			raw[sizeof(raw) - 1] = '\0';
			memcpy(raw, "plugin/", 7);
			raw[7] = (char)('A' + n / 26), raw[8] = (char)('a' + n % 26);
			json_escape(name, raw);
			/* 256 methods over 1280 pairs: every series bound is reached */
			memset(raw, '"', sizeof(raw) - 1);
			snprintf(raw, 4, "%03d", (n * 20 + i) % SPANMETRICS_METHODS_MAX);
			raw[3] = '"';
			json_escape(method, raw);
			snprintf(tags, sizeof(tags), "\"method\":\"%s\"", method);
			feed(name, 10, tags);
		}
	len = spanmetrics_render(&sm, NULL, 0);
	printf("span metrics: %u series, %zu bytes of text at the bounds; table %zu bytes\n",
	       sm.n_series, len, sizeof(struct spanmetrics));
	CHECK_EQ(sm.n_own, SPANMETRICS_SERIES_MAX);
	CHECK_EQ(sm.names.n, SPANMETRICS_NAMES_MAX);
	CHECK_EQ(sm.methods.n, SPANMETRICS_METHODS_MAX);
	CHECK_MSG(len < (32u << 20), "text %zu bytes under the 32 MiB cap of /metrics", len);
}

/* ns per span over the spans of a capture file, observed again and again. */
static void bench(const char *path)
{
	struct span *spans[1024];
	size_t n = 0;
	char line[SPAN_MAX_PAYLOAD];
	struct timespec a, b;
	FILE *f = fopen(path, "r");
	const int rounds = 2000;

	if (!f) {
		CHECK_FAIL("cannot open %s", path);
		return;
	}
	while (n < 1024 && fgets(line, sizeof(line), f)) {
		const char *json;
		size_t len;
		enum span_reject why;

		if (trace_line_span(line, strlen(line), &json, &len) &&
		    span_parse(json, len, &spans[n], &why) == 0)
			n++;
	}
	fclose(f);
	CHECK_MSG(n > 500, "the capture's spans parsed: %zu", n);
	spanmetrics_reset(&sm);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++)
			spanmetrics_observe(&sm, spans[i]);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("spanmetrics_observe: %.0f ns per span (%zu spans x %d)\n",
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / ((double)n * rounds), n,
	       rounds);
	CHECK_EQ(sm.series[0].count, (uint64_t)rounds); /* plugins/init: once a round */
	for (size_t i = 0; i < n; i++)
		span__free(spans[i]);
}

int main(int argc, char **argv)
{
	test_methods();
	test_buckets();
	test_errors();
	test_fold_methods();
	test_fold_names();
	test_fold_series();
	test_escape();
	test_structure();
	test_worst_size();
	if (argc > 1)
		bench(argv[1]);
	return check_summary();
}
