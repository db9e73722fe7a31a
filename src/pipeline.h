/* SPDX-License-Identifier: MIT */
/*
 * pipeline: what every source feeds. Parses a payload (span), attaches the suspend/resume
 * events seen for it, gives cut spans their traceId (orphans), passes spans through the
 * volume rules (volume: sampling, keeps, drop rules; only when configured), counts, queues
 * (queue) and hands batches to the exporter when a batch is full or its oldest span is
 * older than the schedule delay.
 */
#ifndef CLN_OTLP_PIPELINE_H
#define CLN_OTLP_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "loop.h"
#include "queue.h"
#include "span.h"
#include "stats.h"
#include "volume.h"

struct pipeline;
struct suspend_table;

struct pipeline_cfg {
	struct queue_cfg queue;
	uint64_t schedule_delay_ms; /* OTEL_BSP_SCHEDULE_DELAY */
	uint64_t suspend_ttl_ms;    /* how long suspend/resume times wait for their span */
	size_t suspend_max;	    /* spans with pending suspend/resume times, at most */
	struct volume_cfg volume;   /* nothing active (volume_cfg_active): spans go straight on */
};

/* Takes ownership of @ex. */
struct pipeline *pipeline__new(struct loop *loop, const struct pipeline_cfg *cfg,
			       struct exporter *ex);
void pipeline__free(struct pipeline *p);

/* Where a payload came from. */
struct pipeline_origin {
	enum stats_source source;
	uint32_t pid;	      /* 0 when unknown */
	const char *exe_path; /* exe_path_get(), or NULL: each span takes a reference */
	uint32_t uid;	      /* the sender's user, if has_uid (the socket's credentials) */
	bool has_uid;
};

/*
 * Parse one span_emit payload and queue it. Returns SPAN_OK or the reject reason (already
 * counted); a span that parses but finds the queue full is counted as dropped, not
 * rejected, and SPAN_OK is returned.
 */
enum span_reject pipeline_ingest(struct pipeline *p, const struct pipeline_origin *origin,
				 const char *json, size_t len);

/* A suspend/resume seen for span @span_id of process @pid (0: unknown) at @time_unix_ns. */
void pipeline_span_event(struct pipeline *p, uint32_t pid, uint64_t span_id,
			 enum span_event_kind kind, uint64_t time_unix_ns);

/*
 * The queue is nearly full: a source that can wait (a file) should stop reading until it
 * drains, rather than have spans dropped. Sources that cannot wait (the kernel's ring
 * buffer, a datagram socket) keep pushing and drops are counted.
 */
bool pipeline_backlogged(const struct pipeline *p);

/* Send everything waiting now, regardless of batch size and age. */
void pipeline_flush(struct pipeline *p);
/* Nothing waiting and nothing in flight. */
bool pipeline_idle(const struct pipeline *p);
/* Give up whatever is unfinished (shutdown timeout): counted as dropped. */
void pipeline_abort(struct pipeline *p);

/* What the pipeline asks of whoever knows the processes spans come from (nodes.h). */
struct pipeline_hooks {
	/* A span from process @pid was accepted (called for every span: keep it cheap). */
	void (*saw_pid)(void *ctx, uint32_t pid);
	/*
	 * Before a batch goes out: true to hold it until @until_ms (CLOCK_MONOTONIC), e.g.
	 * while a new node's identity is being asked. Never asked when flushing or when the
	 * queue is backlogged.
	 */
	bool (*hold)(void *ctx, uint64_t now_ms, uint64_t *until_ms);
	void *ctx;
};
void pipeline_set_hooks(struct pipeline *p, const struct pipeline_hooks *hooks);

/* Called when pipeline_idle() becomes true after pipeline_flush(). */
void pipeline_on_idle(struct pipeline *p, void (*cb)(void *ctx), void *ctx);

#endif
