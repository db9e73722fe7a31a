// SPDX-License-Identifier: MIT
/*
 * The Prometheus text (metrics_render) and the one-line summary (stats_format_line) from
 * known counters: exact values, and the structure Prometheus expects (every sample after
 * its family's HELP and TYPE, counters named *_total, a histogram's samples its _bucket,
 * _sum and _count, no series twice).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

#include "metrics.h"
#include "stats.h"

#define BODY_MAX  65536
#define MAX_LINES 512

/* How many whole lines of @text are @line. */
static int count_lines(const char *text, const char *line)
{
	size_t n = strlen(line);
	int count = 0;

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			count++;
	return count;
}

/* @tok is a whole space-separated token of @line. */
static bool has_token(const char *line, const char *tok)
{
	size_t n = strlen(tok);

	for (const char *p = line; (p = strstr(p, tok)); p++)
		if ((p == line || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static void fill_stats(void)
{
	memset(&stats, 0, sizeof(stats));
	stats.received[STATS_SRC_USDT] = 1;
	stats.received[STATS_SRC_SOCKET] = 2;
	stats.received[STATS_SRC_FILE] = 3;
	stats.rejected[SPAN_REJECT_BAD_ID] = 4;
	stats.recovered = 5;
	stats.truncated = 6;
	stats.ringbuf_lost = 7;
	stats.events = 8;
	stats.queued = 9;
	stats.dropped[STATS_DROP_QUEUE_FULL] = 10;
	stats.dropped[STATS_DROP_ORPHAN] = 11;
	stats.exported = 12;
	stats.partial_rejected = 13;
	stats.partial_bad_count = 29;
	stats.unconfirmed = 30;
	stats.batches_sent = 4;
	stats.retries = 15;
	stats.failed_batches = 16;
	stats.export_latency_us_sum = 1234567;
	stats.export_latency_us_max = 999999;
	stats.queue_spans = 17;
	stats.queue_bytes = 18;
	stats.events_evicted = 19;
	stats.events_untimed = 20;
	stats.metrics_evicted = 21;
	stats.metrics_timeouts = 22;
	stats.exe_path_lost = 23;
	stats.follow_truncated = 24;
	stats.follow_lost_bytes = 25;
	stats.trace_id_derived = 26;
	stats.tags_duplicate = 27;
	stats.events_dropped = 28;
	stats.socket_refused = 31;
	stats.files_refused = 32;
	stats.nodes_identified = 33;
	stats.node_untrusted = 34;
	stats.node_table_full = 35;
	stats.sampled_out = 36;
	stats.traces_cut_short = 37;
	stats.traces_kept[STATS_KEEP_SAMPLED] = 38;
	stats.traces_kept[STATS_KEEP_ERROR] = 39;
	stats.traces_kept[STATS_KEEP_SLOW] = 40;
	stats.rule_names[0] = "db_*<1ms";
	stats.rule_names[1] = "a\"b\\c";
	stats.rule_dropped[0] = 41;
	stats.rule_dropped[1] = 42;
	stats.n_rules = 2;
}

/*
 * Walk the text: comments are HELP then TYPE of a new family; samples belong to the last
 * TYPE'd family (a summary's _sum/_count included); returns the number of samples.
 */
static int check_structure(const char *text)
{
	char family[128] = "", type[16] = "";
	char *seen[MAX_LINES];
	int n_seen = 0, samples = 0;
	bool help_pending = false;
	char *copy = strdup(text);
	char *save = NULL;

	CHECK_MSG(text[0] && text[strlen(text) - 1] == '\n', "text ends with a newline");
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], rest[256];

		if (!strncmp(line, "# HELP ", 7)) {
			CHECK_MSG(sscanf(line + 7, "%127s %255[^\n]", name, rest) == 2,
				  "HELP has a text: %s", line);
			CHECK_MSG(!strncmp(name, "cln_otlp_", 9), "prefixed: %s", name);
			CHECK_MSG(!help_pending, "HELP followed by TYPE before %s", name);
			for (int i = 0; i < n_seen; i++)
				CHECK_MSG(strcmp(seen[i], name) != 0, "family %s declared twice",
					  name);
			if (n_seen < MAX_LINES)
				seen[n_seen++] = strdup(name);
			snprintf(family, sizeof(family), "%s", name);
			help_pending = true;
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			CHECK_MSG(sscanf(line + 7, "%127s %15s", name, type) == 2, "TYPE: %s",
				  line);
			CHECK_MSG(help_pending && !strcmp(name, family),
				  "TYPE %s right after its HELP", name);
			CHECK_MSG(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
					  !strcmp(type, "summary") || !strcmp(type, "histogram"),
				  "type %s", type);
			if (!strcmp(type, "counter")) {
				size_t l = strlen(name);

				CHECK_MSG(l > 6 && !strcmp(name + l - 6, "_total"),
					  "counter %s ends in _total", name);
			}
			help_pending = false;
			continue;
		}
		CHECK_MSG(line[0] != '#', "no other comment: %s", line);
		samples++;
		{
			size_t fl = strlen(family);
			const char *suffix = line + fl;
			char *sp = strrchr(line, ' ');
			char *end;

			CHECK_MSG(!help_pending && family[0], "sample after HELP and TYPE: %s",
				  line);
			CHECK_MSG(!strncmp(line, family, fl) &&
					  (*suffix == ' ' || *suffix == '{' ||
					   (!strcmp(type, "summary") &&
					    (!strncmp(suffix, "_sum ", 5) ||
					     !strncmp(suffix, "_count ", 7))) ||
					   (!strcmp(type, "histogram") &&
					    (!strncmp(suffix, "_bucket{", 8) ||
					     !strncmp(suffix, "_sum{", 5) ||
					     !strncmp(suffix, "_count{", 7)))),
				  "sample %s belongs to %s", line, family);
			CHECK_MSG(sp && (strtod(sp + 1, &end), *end == '\0' && end != sp + 1),
				  "numeric value: %s", line);
			/* The same series twice? (compare up to the value) */
			if (sp) {
				char series[256];
				int twice = 0;

				snprintf(series, sizeof(series), "\n%.*s ", (int)(sp - line), line);
				for (const char *p = text; (p = strstr(p, series)); p++)
					twice++;
				CHECK_MSG(twice <= 1, "series twice: %s", line);
			}
		}
	}
	for (int i = 0; i < n_seen; i++)
		free(seen[i]);
	free(copy);
	return samples;
}

static void test_render_values(void)
{
	static char buf[BODY_MAX];
	const uint64_t start = 1700000000123456789ull;
	size_t len;
	int samples;

	fill_stats();
	len = metrics_render(buf, sizeof(buf), start);
	CHECK_MSG(len == strlen(buf), "length %zu == strlen %zu", len, strlen(buf));
	CHECK_MSG(len < 16384, "text %zu bytes, well under the 32 KiB cap", len);
	samples = check_structure(buf);
	/*
	 * 3 sources + 11 reasons + drop reasons + 2 closes + 2 summary + 41 single samples +
	 * keep reasons + 2 rules + 2 span metrics folded (no span seen: no histogram or error
	 * series)
	 */
	CHECK_MSG(samples == 3 + (SPAN_REJECT__MAX - 1) + STATS_DROP__MAX + 2 + 2 + 41 +
				     STATS_KEEP__MAX + 2 + 2,
		  "samples: %d", samples);

	const char *want[] = {
		"cln_otlp_build_info{version=\"" CLN_OTLP_VERSION "\"} 1",
		"cln_otlp_start_time_seconds 1700000000.123456",
		"cln_otlp_spans_received_total{source=\"usdt\"} 1",
		"cln_otlp_spans_received_total{source=\"socket\"} 2",
		"cln_otlp_spans_received_total{source=\"file\"} 3",
		"cln_otlp_spans_rejected_total{reason=\"bad_id\"} 4",
		"cln_otlp_spans_rejected_total{reason=\"invalid_json\"} 0",
		"cln_otlp_spans_recovered_total 5",
		"cln_otlp_spans_truncated_total 6",
		"cln_otlp_ringbuf_lost_total 7",
		"cln_otlp_span_events_total 8",
		"cln_otlp_span_events_evicted_total 19",
		"cln_otlp_span_events_untimed_total 20",
		"cln_otlp_metrics_connections_closed_total{reason=\"evicted\"} 21",
		"cln_otlp_metrics_connections_closed_total{reason=\"timeout\"} 22",
		"cln_otlp_spans_trace_id_derived_total 26",
		"cln_otlp_span_tags_duplicate_total 27",
		"cln_otlp_span_events_dropped_total 28",
		"cln_otlp_spans_queued_total 9",
		"cln_otlp_spans_dropped_total{reason=\"queue_full\"} 10",
		"cln_otlp_spans_dropped_total{reason=\"truncated_orphan\"} 11",
		"cln_otlp_spans_dropped_total{reason=\"shutdown\"} 0",
		"cln_otlp_spans_exported_total 12",
		"cln_otlp_spans_partial_rejected_total 13",
		"cln_otlp_partial_bad_count_total 29",
		"cln_otlp_spans_unconfirmed_total 30",
		"cln_otlp_batches_sent_total 4",
		"cln_otlp_export_retries_total 15",
		"cln_otlp_batches_failed_total 16",
		"# TYPE cln_otlp_export_latency_seconds summary",
		"cln_otlp_export_latency_seconds_sum 1.234567",
		"cln_otlp_export_latency_seconds_count 4",
		"cln_otlp_export_latency_max_seconds 0.999999",
		"cln_otlp_queue_spans 17",
		"cln_otlp_queue_bytes 18",
		"cln_otlp_exe_path_lost_total 23",
		"cln_otlp_follow_truncated_total 24",
		"cln_otlp_follow_lost_bytes_total 25",
		"cln_otlp_socket_refused_total 31",
		"cln_otlp_files_refused_total 32",
		"cln_otlp_nodes_identified_total 33",
		"cln_otlp_node_untrusted_total 34",
		"cln_otlp_node_table_full_total 35",
		"cln_otlp_spans_sampled_out_total 36",
		"cln_otlp_traces_cut_short_total 37",
		"cln_otlp_traces_kept_total{reason=\"sampled\"} 38",
		"cln_otlp_traces_kept_total{reason=\"error\"} 39",
		"cln_otlp_traces_kept_total{reason=\"slow\"} 40",
		"cln_otlp_spans_dropped_by_rule_total{rule=\"db_*<1ms\"} 41",
		"cln_otlp_spans_dropped_by_rule_total{rule=\"a\\\"b\\\\c\"} 42",
		"# TYPE cln_otlp_queue_spans gauge",
		"# TYPE cln_otlp_spans_exported_total counter",
		"# TYPE cln_otlp_span_duration_seconds histogram",
		"# TYPE cln_otlp_span_errors_total counter",
		"cln_otlp_span_metrics_folded_total{label=\"span_name\"} 0",
		"cln_otlp_span_metrics_folded_total{label=\"rpc_method\"} 0",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_MSG(count_lines(buf, want[i]) == 1, "line \"%s\" once in:\n%s", want[i], buf);
	/* The nomem reason is there too; index 0 (SPAN_OK) is not a reject. */
	CHECK_MSG(!strstr(buf, "reason=\"ok\""), "no reject reason for accepted spans");
}

static void test_render_cut(void)
{
	static char full[BODY_MAX];
	char small[64];
	size_t need, got;

	memset(&stats, 0, sizeof(stats));
	need = metrics_render(full, sizeof(full), 0);
	memset(small, 'x', sizeof(small));
	got = metrics_render(small, 40, 0);
	CHECK_MSG(got == need, "cut render says the whole length (%zu vs %zu)", got, need);
	CHECK_MSG(strlen(small) == 39 && !strncmp(small, full, 39),
		  "cut at the buffer, NUL inside");
	CHECK_MSG(small[40] == 'x', "nothing written past the buffer");
	CHECK_MSG(metrics_render(NULL, 0, 0) == need, "size 0 only measures");
	CHECK_MSG(count_lines(full, "cln_otlp_export_latency_seconds_sum 0.000000") > 0,
		  "zero latency sum");
	CHECK_MSG(count_lines(full, "cln_otlp_spans_received_total{source=\"file\"} 0") > 0,
		  "zero series are present (Prometheus sees them before the first span)");
}

static void test_line(void)
{
	char line[1024], small[24];
	const char *want[] = {
		"received=6",
		"usdt=1",
		"socket=2",
		"file=3",
		"rejected=4",
		"rej_bad_id=4",
		"recovered=5",
		"truncated=6",
		"trace_id_derived=26",
		"tags_duplicate=27",
		"events_dropped=28",
		"ringbuf_lost=7",
		"queued=9",
		"exported=12",
		"partial_rejected=13",
		"partial_bad_count=29",
		"unconfirmed=30",
		"dropped=21",
		"drop_queue_full=10",
		"drop_truncated_orphan=11",
		"batches=4",
		"retries=15",
		"failed_batches=16",
		"latency_avg_ms=308.6",
		"latency_max_ms=999.9",
		"in_queue=17",
		"exe_path_lost=23",
		"follow_truncated=24",
		"follow_lost_bytes=25",
		"socket_refused=31",
		"files_refused=32",
		"sampled_out=36",
		"cut_short=37",
		"kept_sampled=38",
		"kept_error=39",
		"kept_slow=40",
		"rule_dropped=83",
	};

	fill_stats();
	stats_format_line(line, sizeof(line));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_MSG(has_token(line, want[i]), "token %s in: %s", want[i], line);

	memset(&stats, 0, sizeof(stats));
	stats_format_line(line, sizeof(line));
	CHECK_MSG(!strstr(line, "rej_") && !strstr(line, "drop_") && !strstr(line, "truncated") &&
			  !strstr(line, "exe_path_lost") && !strstr(line, "socket_refused") &&
			  !strstr(line, "files_refused") && !strstr(line, "usdt=") &&
			  !strstr(line, "kept_") && !strstr(line, "sampled_out") &&
			  !strstr(line, "cut_short") && !strstr(line, "rule_dropped"),
		  "zero details left out: %s", line);
	CHECK_MSG(has_token(line, "latency_avg_ms=0.0") && has_token(line, "batches=0") &&
			  has_token(line, "exported=0"),
		  "zero line: %s", line);

	fill_stats();
	memset(small, 'x', sizeof(small));
	stats_format_line(small, 20);
	CHECK_MSG(strlen(small) < 20 && small[20] == 'x', "cut line stays in its buffer: %s",
		  small);
}

/* Request heads the /metrics server parses: method, path, whether the connection stays. */
static void test_request(void)
{
	static const struct {
		const char *head;
		int ret;
		enum metrics_method method;
		bool metrics_path, keep_alive;
	} cases[] = {
		{"GET /metrics HTTP/1.1\r\n\r\n", 0, METRICS_GET, true, true},
		{"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", 0, METRICS_HEAD, true, false},
		{"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, METRICS_GET, true,
		 true},
		{"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", 0, METRICS_GET, true, false},
		{"POST /metrics HTTP/1.1\r\n\r\n", 0, METRICS_OTHER, true, true},
		{"GET / HTTP/1.1\r\n\r\n", 0, METRICS_GET, false, true},
		/* A body closes the connection, whatever comes after it... */
		{"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", 0,
		 METRICS_GET, true, false},
		/* ...and on a last line without its line end too (found by fuzzing). */
		{"(((GET /mcs HTTP/1.1\rOST /metrics HTTP/1.1\r\nContent-Length:\377o\377", 0,
		 METRICS_OTHER, false, false},
		{"GET /metrics\r\n\r\n", -EINVAL, METRICS_OTHER, false, false},
		{"GET /metrics HTTP/1.1", -EINVAL, METRICS_OTHER, false, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct metrics_request r;
		int ret = metrics_parse_request(cases[i].head, strlen(cases[i].head), &r);

		CHECK_MSG(ret == cases[i].ret, "case %zu: returned %d", i, ret);
		if (ret || cases[i].ret)
			continue;
		CHECK_MSG(r.method == cases[i].method, "case %zu: method %d", i, (int)r.method);
		CHECK_MSG(r.metrics_path == cases[i].metrics_path, "case %zu: path", i);
		CHECK_MSG(r.keep_alive == cases[i].keep_alive, "case %zu: keep-alive %d", i,
			  r.keep_alive);
	}
}

int main(void)
{
	test_render_values();
	test_render_cut();
	test_line();
	test_request();
	return check_summary();
}
