/* SPDX-License-Identifier: MIT */
/*
 * volume: which spans are worth exporting. Between the orphan logic and the queue: every
 * span that has its traceId passes here.
 *
 *   - Head sampling by trace (--sample, OTEL_TRACES_SAMPLER): the specification's
 *     TraceIdRatioBased, a function of the traceId alone, so every process and every bridge
 *     keeps the same traces whole (volume_ratio_threshold, volume_ratio_sampled).
 *   - Tail keeps (--keep-errors, --keep-slower-than): a trace the ratio did not pick is kept
 *     anyway when one of its spans has status ERROR or lasted at least the duration.
 *   - Drop rules (--drop-span GLOB or GLOB<DURATION): spans of kept traces whose name
 *     matches (and, with a duration, that are shorter) are dropped; a kept span whose parent
 *     was dropped takes its nearest kept ancestor as parent, so traces stay connected. A
 *     local root (no parentId) is never dropped: its trace would fall apart.
 *
 * CLN emits a span when it ends, so children come before their parent and a trace is
 * complete, as far as one process can tell, when its local root arrives. With a rule or a
 * keep, a trace's spans are held until then (and no longer than the hold time; when the
 * held spans or bytes reach their bound, the oldest trace is decided on what has arrived:
 * both counted in traces_cut_short). With the ratio alone nothing is held: each span is
 * decided as it comes, from its traceId. Spans of a trace already decided (late ones, or
 * those of other processes) follow the decision, remembered for the last VOLUME_DECIDED_MAX
 * traces, and the re-parenting of the spans dropped (VOLUME_REPARENT_MAX); past that they are
 * decided as a new trace. Pure: no I/O, the caller passes the clock; spans go on through a
 * callback; counters go to the global stats.
 */
#ifndef CLN_OTLP_VOLUME_H
#define CLN_OTLP_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "span.h"

#define VOLUME_MAX_RULES    32	  /* --drop-span rules (CONFIG_MAX_LIST) */
#define VOLUME_GLOB_MAX	    256	  /* bytes of a rule's pattern */
#define VOLUME_DECIDED_MAX  65536 /* traces whose decision is remembered (LRU) */
#define VOLUME_REPARENT_MAX 65536 /* dropped spans whose kept ancestor is remembered (LRU) */

/* 2^56: the TraceIdRatioBased randomness is the traceId's least significant 56 bits. */
#define VOLUME_RANDOM_RANGE (1ULL << 56)

struct volume_rule {
	char glob[VOLUME_GLOB_MAX]; /* fnmatch() pattern over the span name */
	bool has_bound;		    /* GLOB<DURATION: only spans shorter than the bound */
	uint64_t shorter_than_ns;
};

/*
 * "GLOB" or "GLOB<DURATION" (see volume_parse_duration). The pattern must not be empty; a
 * '<' always starts the duration (match a name holding '<' with '?'). 0 or -EINVAL.
 */
int volume_rule_parse(const char *text, struct volume_rule *rule);

/*
 * A duration: decimal digits and a unit, ns, us, µs, ms or s ("1ms", "250us"), into
 * nanoseconds. 0, -EINVAL (not that form) or -ERANGE (over 2^64 - 1 ns).
 */
int volume_parse_duration(const char *s, uint64_t *ns);

/*
 * The sampling ratio RATIO, a decimal number from 0 to 1 ("0.1", "1", ".25", "1e-3").
 * 0 or -EINVAL.
 */
int volume_parse_ratio(const char *s, double *ratio);

/*
 * TraceIdRatioBased (OpenTelemetry specification, trace/sdk.md "TraceIdRatioBased", with
 * trace/tracestate-probability-sampling.md): the rejection threshold T = 2^56 -
 * round(ratio * 2^56), and a trace is sampled when its randomness R, the least significant
 * 56 bits of the traceId, is >= T. Ratio 1 keeps every trace (T = 0), ratio 0 none
 * (T = 2^56). A 16-hex CLN traceId is zero-padded in its high bytes: its low 8 bytes are
 * random, R their low 56 bits.
 */
uint64_t volume_ratio_threshold(double ratio);
bool volume_ratio_sampled(const uint8_t trace_id[16], uint64_t threshold);

/* Why a kept trace was kept (the first that applies, in this order). */
enum volume_keep {
	VOLUME_KEEP_NONE = -1,
	VOLUME_KEEP_SAMPLED = 0, /* the ratio picked it */
	VOLUME_KEEP_ERROR,	 /* --keep-errors: a span with status ERROR */
	VOLUME_KEEP_SLOW,	 /* --keep-slower-than: a span at least that long */
	VOLUME_KEEP__MAX,
};

struct volume_cfg {
	bool sample;  /* the ratio applies (a zeroed cfg keeps every trace) */
	double ratio; /* of traces kept, 0 to 1 */
	bool keep_errors;
	bool keep_slow;
	uint64_t keep_slower_ns;
	const char *const *rules; /* --drop-span texts (label of their counter) */
	size_t n_rules;
	uint64_t hold_ms;  /* a held trace is decided this long after its first span */
	size_t hold_spans; /* spans held, at most */
	size_t hold_bytes; /* their memory (span_mem_size), at most */
};

/* Anything to do: a ratio below 1, a keep or a rule (otherwise no volume is made). */
bool volume_cfg_active(const struct volume_cfg *cfg);

/* Where kept spans go (the queue); it takes ownership of @span. */
typedef void (*volume_out_fn)(void *ctx, struct span *span);

struct volume;

/* NULL on a bad rule (checked by config before) or out of memory. */
struct volume *volume__new(const struct volume_cfg *cfg, volume_out_fn out, void *ctx);
/* Frees the spans still held, uncounted: volume_abort() first to count them. */
void volume__free(struct volume *v);

/* Take @span (it has a traceId): held, passed on through out(), or dropped and counted. */
void volume_add(struct volume *v, struct span *span, uint64_t now_ms);

/* Decide the traces held since @now_ms - hold time or earlier. Returns how many. */
size_t volume_expire(struct volume *v, uint64_t now_ms);
/* Decide every held trace now (the sources are done). Returns how many. */
size_t volume_flush(struct volume *v);
/* Give up the held spans (shutdown timeout): freed; returns how many, for the caller to count. */
size_t volume_abort(struct volume *v);

/* When the oldest held trace is due (CLOCK_MONOTONIC ms); 0 when none is held. */
uint64_t volume_next_due_ms(const struct volume *v);
size_t volume_held(const struct volume *v); /* spans */

#endif
