/* SPDX-License-Identifier: MIT */
/*
 * stats: one counter for every stage of the pipeline. Single-threaded, so plain integers;
 * every module bumps its own counters through the global `stats`.
 */
#ifndef CLN_OTLP_STATS_H
#define CLN_OTLP_STATS_H

#include <stddef.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "span.h"

enum stats_source {
	STATS_SRC_USDT = 0,
	STATS_SRC_SOCKET,
	STATS_SRC_FILE,
	STATS_SRC__MAX,
};

enum stats_drop {
	STATS_DROP_QUEUE_FULL = 0, /* queue at its span or byte cap */
	STATS_DROP_RETRY_EXPIRED,  /* a batch kept failing past the retry budget */
	STATS_DROP_NOT_RETRYABLE,  /* collector refused the batch (4xx, gRPC non-retryable) */
	STATS_DROP_SHUTDOWN,	   /* still queued when the shutdown timeout ran out */
	STATS_DROP_ENCODE,	   /* could not encode (out of memory) */
	STATS_DROP_ORPHAN,	   /* cut by CLN, traceId lost, and no parent or child told it */
	STATS_DROP_OUTPUT,	   /* local output failed (stdout closed, broken pipe, disk full) */
	STATS_DROP__MAX,
};

/* Why a trace was kept by the volume rules (volume.h's enum volume_keep, in its order). */
enum stats_keep {
	STATS_KEEP_SAMPLED = 0, /* the ratio sampler picked it */
	STATS_KEEP_ERROR,	/* --keep-errors: one of its spans has status ERROR */
	STATS_KEEP_SLOW,	/* --keep-slower-than: one of its spans lasted at least that */
	STATS_KEEP__MAX,
};

#define STATS_MAX_RULES 32 /* --drop-span rules counted (CONFIG_MAX_LIST) */

struct stats {
	uint64_t received[STATS_SRC__MAX];   /* payloads seen, accepted or not */
	uint64_t rejected[SPAN_REJECT__MAX]; /* by reason */
	uint64_t recovered;		     /* invalid JSON repaired */
	uint64_t truncated;		     /* spans cut by CLN, kept */
	uint64_t trace_id_derived;	     /* cut spans no family told: own-id traceId */
	uint64_t tags_duplicate;	     /* tag keys given twice: last value kept */
	uint64_t ringbuf_lost;		     /* records the kernel could not reserve */
	uint64_t events;		     /* suspend/resume events attached */
	uint64_t events_evicted;	     /* events discarded: their table was full */
	uint64_t events_untimed;	     /* trace-file events without a time, not attached */
	uint64_t events_dropped;	     /* events past SPAN_MAX_EVENTS a span */
	uint64_t queued;		     /* spans accepted into the queue */
	uint64_t dropped[STATS_DROP__MAX];   /* spans, by reason */
	uint64_t exported;		     /* spans the collector accepted */
	uint64_t partial_rejected;	     /* spans refused in a partial success */
	uint64_t partial_bad_count; /* partial successes claiming an impossible count (clamped) */
	uint64_t unconfirmed;	    /* spans answered by a success that is no OTLP answer */
	uint64_t batches_sent;	    /* requests that got an answer */
	uint64_t retries;	    /* requests retried */
	uint64_t failed_batches;    /* batches given up */
	uint64_t export_latency_us_sum; /* request latency, for the mean */
	uint64_t export_latency_us_max;
	uint64_t metrics_evicted;  /* /metrics connections closed for a newer one */
	uint64_t metrics_timeouts; /* /metrics connections closed at their deadline */
	uint64_t queue_spans;	   /* gauge: spans queued or in flight */
	uint64_t queue_bytes;	   /* gauge: their bytes (spans, or encoded bodies) */

	/* The spool (spool.h). */
	uint64_t spooled_spans;	   /* spans written to the spool */
	uint64_t spooled_batches;  /* files written */
	uint64_t spooled_bytes;	   /* their bytes, headers included */
	uint64_t replayed_spans;   /* spooled spans the collector accepted */
	uint64_t replayed_batches; /* spooled batches delivered */
	uint64_t spool_corrupt;	   /* files skipped and removed: torn, corrupt, unusable */
	uint64_t spool_evicted;	   /* spans of the oldest files removed when the spool was full */
	uint64_t spool_duplicates; /* spans sent again that were in flight when a run ended */
	uint64_t spool_failed;	   /* spans that could not be written (counted dropped too) */

	/* Sources. */
	uint64_t exe_path_lost;	    /* new processes whose executable path found no room */
	uint64_t socket_refused;    /* datagrams from a sender not in --socket-allow-uid */
	uint64_t follow_truncated;  /* followed files truncated (and rewritten) under us */
	uint64_t follow_lost_bytes; /* bytes of those that could not be read */
	uint64_t node_untrusted;    /* processes whose spans get no node identity: not a node's */
	uint64_t node_table_full;   /* processes or nodes past the node tables' bounds */
	uint64_t nodes_identified;  /* lightningd processes that answered getinfo */
	uint64_t files_refused;	    /* files of a --file pattern or directory not read: limit */

	/* Volume control (volume.h). */
	uint64_t sampled_out;			 /* spans of traces not kept (sampler and keeps) */
	uint64_t traces_kept[STATS_KEEP__MAX];	 /* traces kept, by reason */
	uint64_t traces_cut_short;		 /* decided before their local root arrived */
	uint64_t rule_dropped[STATS_MAX_RULES];	 /* spans dropped by each --drop-span rule */
	const char *rule_names[STATS_MAX_RULES]; /* the rules' text (owned by the volume) */
	size_t n_rules;
};

extern struct stats stats;

/*
 * The plain counters, one row each: their name on the stats line and at /metrics, and what
 * they count. Both outputs walk this table (labelled families, latency and gauges are
 * written by hand around it): a new counter is one row here. STATS_PART_INTAKE rows come
 * before the dropped family, STATS_PART_EXPORT rows after it.
 */
enum stats_part { STATS_PART_INTAKE, STATS_PART_EXPORT };

struct stats_counter {
	enum stats_part part;
	const char *line;   /* name on the stats line; NULL: /metrics only */
	bool line_nonzero;  /* on the stats line only when not 0 (rare events) */
	const char *metric; /* name at /metrics, after "cln_otlp_" */
	const char *help;   /* the metric's HELP text */
	size_t off;	    /* offsetof(struct stats, the counter) */
};

extern const struct stats_counter stats_counters[];
extern const size_t stats_n_counters;

static inline uint64_t stats_counter_value(const struct stats_counter *c)
{
	return *(const uint64_t *)((const char *)&stats + c->off);
}

const char *stats_source_str(enum stats_source src);
const char *stats_drop_str(enum stats_drop why);
const char *stats_keep_str(enum stats_keep why);

uint64_t stats_rejected_total(void);
uint64_t stats_dropped_total(void);
uint64_t stats_received_total(void);
uint64_t stats_rule_dropped_total(void);

/* One line: "received=… rejected=… … queued=… dropped=… exported=… …". */
void stats_format_line(char *buf, size_t size);

#endif
