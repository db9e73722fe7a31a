// SPDX-License-Identifier: MIT
/*
 * bench-encode FILE...: parse + map + encode throughput on real CLN payloads, one core.
 * Repeats the whole capture until each round has at least --spans spans, runs --rounds
 * rounds, and prints the median (and min/max) for: parse only, protobuf encode only,
 * parse + protobuf encode (the pipeline's work per span), and parse + OTLP/JSON.
 * Figures, not pass/fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "otlp.h"
#include "span.h"

#define BATCH 512

struct payload {
	char *json;
	size_t len;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static size_t load(int argc, char **argv, struct payload **out)
{
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;

	for (int i = 0; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		ssize_t len;

		if (!f) {
			perror(argv[i]);
			exit(2);
		}
		while ((len = getline(&line, &lcap, f)) > 0) {
			char *json;

			if (strncmp(line, "span_emit ", 10) || !(json = strchr(line + 10, ' ')))
				continue;
			json++;
			len -= json - line;
			while (len && json[len - 1] == '\n')
				len--;
			if (n == cap) {
				cap = cap ? 2 * cap : 1024;
				*out = realloc(*out, cap * sizeof(**out));
			}
			(*out)[n].json = strndup(json, (size_t)len);
			(*out)[n].len = (size_t)len;
			n++;
		}
		fclose(f);
	}
	free(line);
	return n;
}

enum mode { CJSON_ONLY, PARSE, ENCODE_PB, PARSE_PB, PARSE_JSON, MODES };
static const char *mode_names[MODES] = {"cJSON_Parse alone (no span built)", "parse (JSON -> span)",
					"encode protobuf (batch 512)", "parse + protobuf",
					"parse + OTLP/JSON"};

static double round_once(enum mode m, const struct payload *p, size_t np, size_t total,
			 struct span **spans)
{
	static struct otlp_buf buf = OTLP_BUF_INIT;
	struct otlp_resource_cfg res = {.host_name = "bench"};
	size_t done = 0;
	double t0;

	/* Encode-only needs spans parsed beforehand. */
	if (m == ENCODE_PB)
		for (size_t i = 0; i < BATCH; i++) {
			enum span_reject why;

			span_parse(p[i % np].json, p[i % np].len, &spans[i], &why);
		}
	t0 = now_s();
	while (done < total) {
		size_t n = total - done < BATCH ? total - done : BATCH;

		if (m == CJSON_ONLY) {
			for (size_t i = 0; i < n; i++) {
				const struct payload *q = &p[(done + i) % np];

				cJSON_Delete(cJSON_ParseWithLength(q->json, q->len));
			}
			done += n;
			continue;
		}
		if (m != ENCODE_PB)
			for (size_t i = 0; i < n; i++) {
				enum span_reject why;
				const struct payload *q = &p[(done + i) % np];

				if (span_parse(q->json, q->len, &spans[i], &why) < 0)
					abort();
			}
		if (m == ENCODE_PB || m == PARSE_PB)
			otlp_encode_pb(&res, spans, n, &buf);
		else if (m == PARSE_JSON)
			otlp_encode_json(&res, spans, n, &buf);
		if (m != ENCODE_PB)
			for (size_t i = 0; i < n; i++)
				span__free(spans[i]);
		done += n;
	}
	t0 = now_s() - t0;
	if (m == ENCODE_PB)
		for (size_t i = 0; i < BATCH; i++)
			span__free(spans[i]);
	return t0;
}

int main(int argc, char **argv)
{
	struct payload *p = NULL;
	size_t min_spans = 500000, np, total;
	int rounds = 7, first = 1;
	static struct span *spans[BATCH];
	size_t bytes = 0;

	while (first < argc && argv[first][0] == '-') {
		if (!strcmp(argv[first], "--rounds") && first + 1 < argc)
			rounds = atoi(argv[first + 1]);
		else if (!strcmp(argv[first], "--spans") && first + 1 < argc)
			min_spans = strtoul(argv[first + 1], NULL, 10);
		else {
			fprintf(stderr,
				"usage: bench-encode [--rounds N] [--spans N] TRACEFILE...\n");
			return 2;
		}
		first += 2;
	}
	np = load(argc - first, argv + first, &p);
	if (!np || rounds < 1) {
		fprintf(stderr, "no span_emit lines in the given files\n");
		return 2;
	}
	for (size_t i = 0; i < np; i++)
		bytes += p[i].len;
	total = (min_spans + np - 1) / np * np;
	printf("%zu real payloads (mean %zu bytes), %zu spans per round, median of %d rounds\n\n",
	       np, bytes / np, total, rounds);
	printf("| stage | spans/s (median) | ns/span (median) | ns/span (min-max) |\n");
	printf("|---|---:|---:|---:|\n");
	for (int m = 0; m < MODES; m++) {
		double *t = calloc((size_t)rounds, sizeof(*t));

		round_once(m, p, np, total / 10, spans); /* warm up */
		for (int r = 0; r < rounds; r++)
			t[r] = round_once(m, p, np, total, spans);
		qsort(t, (size_t)rounds, sizeof(*t), cmp_double);
		printf("| %s | %.0f | %.0f | %.0f-%.0f |\n", mode_names[m],
		       (double)total / t[rounds / 2], t[rounds / 2] * 1e9 / (double)total,
		       t[0] * 1e9 / (double)total, t[rounds - 1] * 1e9 / (double)total);
		free(t);
	}
	for (size_t i = 0; i < np; i++)
		free(p[i].json);
	free(p);
	return 0;
}
