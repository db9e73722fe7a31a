/* SPDX-License-Identifier: MIT */
/*
 * spanmetrics: a duration histogram and an error count per (span name, RPC method), from
 * every span that parses, before anything may drop or sample it: exact whatever reaches
 * the collector. Served at /metrics (metrics.c) as
 *
 *   cln_otlp_span_duration_seconds{span_name, rpc_method}   histogram (le in seconds)
 *   cln_otlp_span_errors_total{span_name, rpc_method}       counter (status ERROR)
 *   cln_otlp_span_metrics_folded_total{label}               counter (spans folded)
 *
 * rpc_method is the method an RPC or plugin span is about (rpc.method of the OTLP span:
 * the method tag of lightningd/jsonrpc, jsonrpc and plugin/<name> spans, or for a plugin's
 * jsonrpc span without one the method its request id names, semconv_method_from_id), and
 * "" for every other span: the label is always written, empty there.
 *
 * Bounded: SPANMETRICS_NAMES_MAX span names and SPANMETRICS_METHODS_MAX methods; a value
 * past its bound, or longer than SPANMETRICS_VALUE_MAX bytes, becomes "other" and the span
 * is counted in folded{label}. Series with a method of their own are at most
 * SPANMETRICS_SERIES_MAX (past it the method folds, counted as rpc_method); each name has
 * room for its "" and "other" series besides. Everything is in the struct (about 240 KB, no
 * allocation): sizeof(struct spanmetrics) says it exactly.
 *
 * Cost: a span whose series exists costs one hash of its name and method and one probe of
 * an open-addressing table; a new series, or a folded span, interns its values first.
 */
#ifndef CLN_OTLP_SPANMETRICS_H
#define CLN_OTLP_SPANMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "span.h"

#define SPANMETRICS_NAMES_MAX	64
#define SPANMETRICS_METHODS_MAX 256
#define SPANMETRICS_SERIES_MAX	1024 /* series with a method of their own */
#define SPANMETRICS_VALUE_MAX	128  /* bytes of a label value; longer folds to "other" */
#define SPANMETRICS_OTHER	"other"
#define SPANMETRICS_BUCKETS	16 /* finite upper bounds; +Inf is the count */

/* Every series there can be: own-method ones, and each name's "" and "other" ones. */
#define SPANMETRICS_SERIES_ALL (SPANMETRICS_SERIES_MAX + 2 * (SPANMETRICS_NAMES_MAX + 1))
#define SPANMETRICS_HASH_SLOTS 4096 /* power of 2, over twice SPANMETRICS_SERIES_ALL */

enum spanmetrics_label { SPANMETRICS_LABEL_NAME = 0, SPANMETRICS_LABEL_METHOD };

/* The bucket bounds, in microseconds (the spans' unit), and as the le labels say them. */
extern const uint64_t spanmetrics_bounds_us[SPANMETRICS_BUCKETS];
extern const char *const spanmetrics_bounds_le[SPANMETRICS_BUCKETS];

struct spanmetrics_value {
	uint8_t len;
	char s[SPANMETRICS_VALUE_MAX];
};

/* An interned value table: values[0..n) in order of arrival, found through slots. */
struct spanmetrics_values {
	uint16_t n;
	uint16_t slots[2 * SPANMETRICS_METHODS_MAX]; /* index + 1; 0: empty */
	struct spanmetrics_value values[SPANMETRICS_METHODS_MAX];
};

struct spanmetrics_series {
	uint32_t hash;
	uint16_t name;	 /* index in names; SPANMETRICS_NAMES_MAX: "other" */
	uint16_t method; /* 0: ""; 1 + index in methods; 1 + SPANMETRICS_METHODS_MAX: "other" */
	uint64_t buckets[SPANMETRICS_BUCKETS]; /* spans in (bound[i-1], bound[i]]: not cumulative */
	uint64_t count;
	uint64_t sum_us;
	uint64_t errors;
};

struct spanmetrics {
	struct spanmetrics_values names, methods;
	uint32_t n_series;
	uint32_t n_own; /* series with a method of their own (bounded by SPANMETRICS_SERIES_MAX) */
	uint16_t slots[SPANMETRICS_HASH_SLOTS]; /* series index + 1; 0: empty */
	struct spanmetrics_series series[SPANMETRICS_SERIES_ALL];
	uint64_t folded[2]; /* by enum spanmetrics_label */
};

/* The daemon's table, fed by the pipeline and read by /metrics. */
extern struct spanmetrics span_metrics;

/* Empty @sm (a zeroed struct is empty too). */
void spanmetrics_reset(struct spanmetrics *sm);

/* Count @s: its duration in its series' histogram, and an error if its status is ERROR. */
void spanmetrics_observe(struct spanmetrics *sm, const struct span *s);

/*
 * The three families (HELP, TYPE and samples) in the Prometheus text format into @buf
 * (NUL-terminated, cut at @size). Returns the length the whole text needs, without the NUL
 * (as snprintf does).
 */
size_t spanmetrics_render(const struct spanmetrics *sm, char *buf, size_t size);

#endif
