// SPDX-License-Identifier: MIT
/*
 * spanmetrics: the table behind the span histograms. Series are found by a hash of the
 * span's own name and method bytes, compared against the values they were interned as, so
 * a span of a known series costs one probe. A miss interns the name and the method (each
 * in its own small hash table, folding to "other" past its bound), then finds or adds the
 * series of the interned pair. Folded spans take that slower path each time: they are the
 * exception the bounds exist for.
 *
 * Buckets follow the usual latency buckets of Prometheus clients (0.1 ms to 10 s, with 1,
 * 2.5 and 5 steps): CLN's database statements take tens of microseconds to milliseconds,
 * its RPCs milliseconds to seconds.
 */
#include "spanmetrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "otlp.h"
#include "semconv.h"
#include "text.h"

struct spanmetrics span_metrics;

const uint64_t spanmetrics_bounds_us[SPANMETRICS_BUCKETS] = {
	100,   250,    500,    1000,   2500,	5000,	 10000,	  25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *const spanmetrics_bounds_le[SPANMETRICS_BUCKETS] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05",	  "0.1",     "0.25",   "0.5",	"1",	  "2.5",   "5",	   "10",
};

#define NAME_OTHER   SPANMETRICS_NAMES_MAX
#define METHOD_NONE  0
#define METHOD_OTHER (1 + SPANMETRICS_METHODS_MAX)
#define VALUE_SLOTS  (2 * SPANMETRICS_METHODS_MAX)

_Static_assert(SPANMETRICS_HASH_SLOTS >= 2 * SPANMETRICS_SERIES_ALL &&
		       !(SPANMETRICS_HASH_SLOTS & (SPANMETRICS_HASH_SLOTS - 1)),
	       "series slots: a power of 2, at most half full");
_Static_assert(SPANMETRICS_SERIES_ALL < UINT16_MAX, "series index fits the slots");
_Static_assert(SPANMETRICS_VALUE_MAX <= UINT8_MAX, "value length fits its byte");
_Static_assert(SPANMETRICS_NAMES_MAX <= SPANMETRICS_METHODS_MAX, "names fit a value table");

struct sm_str {
	const char *p;
	size_t len;
};

/* FNV-1a, continued from @h. */
static uint32_t sm_hash(uint32_t h, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)p[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t sm_pair_hash(struct sm_str name, struct sm_str method)
{
	uint32_t h = sm_hash(2166136261u, name.p, name.len);

	h ^= 0x100; /* a separator no byte is: "ab"+"c" is not "a"+"bc" */
	h *= 16777619u;
	return sm_hash(h, method.p, method.len);
}

static bool sm_is(struct sm_str a, const char *p, size_t len)
{
	return a.len == len && !memcmp(a.p, p, len);
}

static bool sm_is_other(struct sm_str v)
{
	return sm_is(v, SPANMETRICS_OTHER, sizeof(SPANMETRICS_OTHER) - 1);
}

static struct sm_str sm_name_of(const struct spanmetrics *sm, uint16_t i)
{
	if (i == NAME_OTHER)
		return (struct sm_str){SPANMETRICS_OTHER, sizeof(SPANMETRICS_OTHER) - 1};
	return (struct sm_str){sm->names.values[i].s, sm->names.values[i].len};
}

static struct sm_str sm_method_of(const struct spanmetrics *sm, uint16_t i)
{
	if (i == METHOD_NONE)
		return (struct sm_str){"", 0};
	if (i == METHOD_OTHER)
		return (struct sm_str){SPANMETRICS_OTHER, sizeof(SPANMETRICS_OTHER) - 1};
	return (struct sm_str){sm->methods.values[i - 1].s, sm->methods.values[i - 1].len};
}

/* The series slot of (@name, @method): holding it, or the empty one where it would go. */
static uint16_t *sm_find(struct spanmetrics *sm, uint32_t h, struct sm_str name,
			 struct sm_str method)
{
	for (uint32_t i = h;; i++) {
		uint16_t *slot = &sm->slots[i & (SPANMETRICS_HASH_SLOTS - 1)];
		const struct spanmetrics_series *se;
		struct sm_str n, m;

		if (!*slot)
			return slot;
		se = &sm->series[*slot - 1];
		if (se->hash != h)
			continue;
		n = sm_name_of(sm, se->name);
		m = sm_method_of(sm, se->method);
		if (sm_is(name, n.p, n.len) && sm_is(method, m.p, m.len))
			return slot;
	}
}

/* The index of @v in @t, added if there are fewer than @max; -1: past it, or too long. */
static int sm_intern(struct spanmetrics_values *t, struct sm_str v, uint16_t max)
{
	uint32_t h = sm_hash(2166136261u, v.p, v.len);

	if (v.len > SPANMETRICS_VALUE_MAX)
		return -1;
	for (uint32_t i = h;; i++) {
		uint16_t *slot = &t->slots[i & (VALUE_SLOTS - 1)];
		struct spanmetrics_value *val;

		if (*slot) {
			val = &t->values[*slot - 1];
			if (sm_is(v, val->s, val->len))
				return *slot - 1;
			continue;
		}
		if (t->n >= max)
			return -1;
		val = &t->values[t->n];
		memcpy(val->s, v.p, v.len);
		val->len = (uint8_t)v.len;
		*slot = ++t->n;
		return t->n - 1;
	}
}

/* The span's rpc_method: as the OTLP span's rpc.method (otlp.c, semconv.h). */
static struct sm_str sm_method(const struct span *s)
{
	enum semconv_class cls = semconv_class_of(s->name.ptr, s->name.len);
	const struct span_tag *id = NULL;
	struct sm_str m = {"", 0};

	if (!semconv_is_rpc(cls))
		return m;
	for (uint32_t i = 0; i < s->n_tags; i++) {
		const struct span_tag *t = &s->tags[i];

		if (t->key.len == 6 && !memcmp(t->key.ptr, "method", 6))
			return (struct sm_str){t->value.ptr, t->value.len};
		if (cls == SEMCONV_RPC_CLIENT && t->key.len == 2 && !memcmp(t->key.ptr, "id", 2))
			id = t;
	}
	if (id && semconv_method_from_id(id->value.ptr, id->value.len, &m.p, &m.len))
		return m;
	return (struct sm_str){"", 0};
}

/* The series of a span whose own pair has none: interned, folded as the bounds say. */
static struct spanmetrics_series *sm_add(struct spanmetrics *sm, struct sm_str name,
					 struct sm_str method)
{
	struct spanmetrics_series *se;
	uint16_t ni, mi = METHOD_NONE, *slot;
	uint32_t h;
	int r;

	/* A value that is "other" already is that series, not folded: no label twice. */
	r = sm_is_other(name) ? -2 : sm_intern(&sm->names, name, SPANMETRICS_NAMES_MAX);
	if (r == -1)
		sm->folded[SPANMETRICS_LABEL_NAME]++;
	ni = r < 0 ? NAME_OTHER : (uint16_t)r;
	if (method.len) {
		r = sm_is_other(method) ? -2
					: sm_intern(&sm->methods, method, SPANMETRICS_METHODS_MAX);
		if (r == -1)
			sm->folded[SPANMETRICS_LABEL_METHOD]++;
		mi = r < 0 ? METHOD_OTHER : (uint16_t)(1 + r);
	}
	for (;;) {
		name = sm_name_of(sm, ni);
		method = sm_method_of(sm, mi);
		h = sm_pair_hash(name, method);
		slot = sm_find(sm, h, name, method);
		if (*slot)
			return &sm->series[*slot - 1];
		if (mi == METHOD_NONE || mi == METHOD_OTHER)
			break; /* always room: 2 per name, reserved */
		if (sm->n_own < SPANMETRICS_SERIES_MAX) {
			sm->n_own++;
			break;
		}
		sm->folded[SPANMETRICS_LABEL_METHOD]++;
		mi = METHOD_OTHER;
	}
	se = &sm->series[sm->n_series];
	memset(se, 0, sizeof(*se));
	se->hash = h;
	se->name = ni;
	se->method = mi;
	*slot = (uint16_t)++sm->n_series;
	return se;
}

void spanmetrics_reset(struct spanmetrics *sm)
{
	memset(sm, 0, sizeof(*sm));
}

void spanmetrics_observe(struct spanmetrics *sm, const struct span *s)
{
	struct sm_str name = {s->name.ptr, s->name.len}, method = sm_method(s);
	uint16_t *slot = sm_find(sm, sm_pair_hash(name, method), name, method);
	struct spanmetrics_series *se;
	struct otlp_status st;
	size_t b = 0;

	se = *slot ? &sm->series[*slot - 1] : sm_add(sm, name, method);
	while (b < SPANMETRICS_BUCKETS && s->duration_us > spanmetrics_bounds_us[b])
		b++;
	if (b < SPANMETRICS_BUCKETS)
		se->buckets[b]++;
	se->count++;
	se->sum_us += s->duration_us;
	otlp_status_of(s, &st);
	if (st.code == OTLP_STATUS_ERROR)
		se->errors++;
}

/* ---- the exposition text ---- */

static void sm_put_series(struct text_out *o, const struct spanmetrics *sm,
			  const struct spanmetrics_series *se, const char *family, const char *le)
{
	struct sm_str name = sm_name_of(sm, se->name), method = sm_method_of(sm, se->method);

	text_out_printf(o, "cln_otlp_%s{span_name=\"", family);
	text_out_label(o, name.p, name.len);
	text_out_printf(o, "\",rpc_method=\"");
	text_out_label(o, method.p, method.len);
	if (le)
		text_out_printf(o, "\",le=\"%s\"} ", le);
	else
		text_out_printf(o, "\"} ");
}

static void sm_put_histogram(struct text_out *o, const struct spanmetrics *sm,
			     const struct spanmetrics_series *se)
{
	uint64_t cum = 0;

	for (size_t b = 0; b < SPANMETRICS_BUCKETS; b++) {
		cum += se->buckets[b];
		sm_put_series(o, sm, se, "span_duration_seconds_bucket", spanmetrics_bounds_le[b]);
		text_out_printf(o, "%llu\n", (unsigned long long)cum);
	}
	sm_put_series(o, sm, se, "span_duration_seconds_bucket", "+Inf");
	text_out_printf(o, "%llu\n", (unsigned long long)se->count);
	sm_put_series(o, sm, se, "span_duration_seconds_sum", NULL);
	text_out_printf(o, "%llu.%06llu\n", (unsigned long long)(se->sum_us / 1000000),
			(unsigned long long)(se->sum_us % 1000000));
	sm_put_series(o, sm, se, "span_duration_seconds_count", NULL);
	text_out_printf(o, "%llu\n", (unsigned long long)se->count);
}

size_t spanmetrics_render(const struct spanmetrics *sm, char *buf, size_t size)
{
	struct text_out o = {.buf = buf, .size = size};

	if (size)
		buf[0] = '\0';
	text_out_printf(
		&o, "# HELP cln_otlp_span_duration_seconds Duration of the spans received, every "
		    "one before any drop or sampling, by span name and RPC method (\"\": not an "
		    "RPC or plugin call), in seconds.\n"
		    "# TYPE cln_otlp_span_duration_seconds histogram\n");
	for (uint32_t i = 0; i < sm->n_series; i++)
		sm_put_histogram(&o, sm, &sm->series[i]);
	text_out_printf(&o,
			"# HELP cln_otlp_span_errors_total Spans received with status ERROR, every "
			"one before any drop or sampling, by span name and RPC method.\n"
			"# TYPE cln_otlp_span_errors_total counter\n");
	for (uint32_t i = 0; i < sm->n_series; i++) {
		sm_put_series(&o, sm, &sm->series[i], "span_errors_total", NULL);
		text_out_printf(&o, "%llu\n", (unsigned long long)sm->series[i].errors);
	}
	text_out_printf(
		&o,
		"# HELP cln_otlp_span_metrics_folded_total Spans whose span_name or rpc_method "
		"label became \"other\": the label's distinct values were at their bound (%d "
		"names, %d methods, %d series with a method) or the value over %d bytes.\n"
		"# TYPE cln_otlp_span_metrics_folded_total counter\n",
		SPANMETRICS_NAMES_MAX, SPANMETRICS_METHODS_MAX, SPANMETRICS_SERIES_MAX,
		SPANMETRICS_VALUE_MAX);
	text_out_printf(&o, "cln_otlp_span_metrics_folded_total{label=\"span_name\"} %llu\n",
			(unsigned long long)sm->folded[SPANMETRICS_LABEL_NAME]);
	text_out_printf(&o, "cln_otlp_span_metrics_folded_total{label=\"rpc_method\"} %llu\n",
			(unsigned long long)sm->folded[SPANMETRICS_LABEL_METHOD]);
	return o.len;
}
