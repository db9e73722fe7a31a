// SPDX-License-Identifier: MIT
#include "pipeline.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "clock.h"
#include "exe_paths.h"
#include "log.h"
#include "orphans.h"
#include "spanmetrics.h"
#include "suspend.h"

struct pipeline {
	struct loop *loop;
	struct pipeline_cfg cfg;
	struct queue *queue;
	struct exporter *ex;
	struct suspend_table *suspend;
	struct orphans *orphans;
	struct span **expired; /* PIPELINE_ORPHANS_MAX: the held spans given up at once */
	struct loop_timer *batch_timer;
	struct loop_timer *expire_timer;
	struct volume *volume;		 /* NULL: no volume rule, spans go straight to the queue */
	struct loop_timer *volume_timer; /* the oldest held trace is due */
	bool flushing;
	bool aborting; /* no new batches while the exporter gives back the old ones */
	bool pumping;  /* pipeline_pump() is on the stack: a re-entry only asks for a rerun */
	bool repump;
	void (*idle_cb)(void *ctx);
	void *idle_ctx;
	struct pipeline_hooks hooks;
	struct log_ratelimit rl_full;
	struct log_ratelimit rl_reject;
	struct log_ratelimit rl_orphan;
};

/* Truncated spans waiting for their parent's traceId, at most. */
#define PIPELINE_ORPHANS_MAX 1024
/*
 * A backlog past this many spans, once drained, or this many bytes let go of (spans shed into
 * compact bodies) gives its memory back (pipeline_trim).
 */
#define PIPELINE_TRIM_SPANS 4096
#define PIPELINE_TRIM_BYTES (2u << 20)

static void pipeline_pump(struct pipeline *p);
static void pipeline_release(struct pipeline *p, struct span *span);
static void pipeline_queue(void *ctx, struct span *span);

static void pipeline_batch_timer(struct loop *loop, void *ctx)
{
	pipeline_pump(ctx);
}

/*
 * A cut span whose family did not tell its traceId (in time): it takes the traceId of a
 * parent given one just before (orphans_resolve), or one of its own (orphans_derive).
 */
static void pipeline_give_up(struct pipeline *p, struct span *span)
{
	if (!orphans_resolve(p->orphans, span))
		orphans_derive(span);
	pipeline_release(p, span);
}

/*
 * The cut spans held since before @now_ms - TTL (all of them with UINT64_MAX) stop waiting
 * for their parent. All at once, newest first: CLN emits children before their parent, so
 * a parent gets its traceId first and its children, given up with it, share it.
 */
static void pipeline_expire_orphans(struct pipeline *p, uint64_t now_ms)
{
	size_t n = orphans_expire(p->orphans, now_ms, p->expired, PIPELINE_ORPHANS_MAX);

	if (!n)
		return;
	log_limited(&p->rl_orphan, LOG_LVL_WARN,
		    "%zu spans cut by CLN at 2048 bytes never met their parent: exported under "
		    "a traceId of their own (cln.trace_id_derived)",
		    n);
	while (n--)
		pipeline_give_up(p, p->expired[n]);
}

static void pipeline_expire_timer(struct loop *loop, void *ctx)
{
	struct pipeline *p = ctx;

	suspend_table_expire(p->suspend, clock_mono_ms());
	pipeline_expire_orphans(p, clock_mono_ms());
	loop_timer_arm(p->expire_timer, p->cfg.suspend_ttl_ms / 4 + 1);
}

/* Arm the timer for the oldest trace the volume rules hold, if any and not yet armed. */
static void pipeline_volume_arm(struct pipeline *p)
{
	uint64_t due = volume_next_due_ms(p->volume), now = clock_mono_ms();

	if (due && !loop_timer_armed(p->volume_timer))
		loop_timer_arm(p->volume_timer, due > now ? due - now : 1);
}

static void pipeline_volume_timer(struct loop *loop, void *ctx)
{
	struct pipeline *p = ctx;

	volume_expire(p->volume, clock_mono_ms());
	pipeline_volume_arm(p);
}

/*
 * The queue let go of megabytes (a backlog drained, or spans held as structs while a node's
 * identity was asked were parked as compact bodies): glibc keeps the heap it grew for them,
 * the freed chunks pinned below newer ones, so the process would keep that memory for good.
 * Give the free pages back, once per such drop, never per batch: malloc_trim walks the
 * whole heap.
 */
static void pipeline_trim(struct pipeline *p)
{
	if (queue_trim_due(p->queue, PIPELINE_TRIM_SPANS, PIPELINE_TRIM_BYTES))
		malloc_trim(0);
}

static void pipeline_check_idle(struct pipeline *p)
{
	if (!p->flushing || !p->idle_cb || !pipeline_idle(p))
		return;
	/* Spans an exporter kept past done() are written, and counted, before the run ends. */
	if (p->ex->ops->finish)
		p->ex->ops->finish(p->ex);
	p->idle_cb(p->idle_ctx);
}

static void pipeline_done(void *ctx, struct queue_batch *batch, enum export_result res)
{
	struct pipeline *p = ctx;
	size_t n;

	if (!batch) { /* room freed up: the exporter's own request finished */
		pipeline_pump(p);
		pipeline_check_idle(p);
		return;
	}
	n = batch->n;
	switch (res) {
	case EXPORT_OK:
		stats.exported += n - (batch->rejected < n ? batch->rejected : n);
		break;
	case EXPORT_FAIL_REJECTED:
		stats.dropped[STATS_DROP_NOT_RETRYABLE] += n;
		break;
	case EXPORT_FAIL_EXPIRED:
		stats.dropped[STATS_DROP_RETRY_EXPIRED] += n;
		break;
	case EXPORT_FAIL_SHUTDOWN:
		stats.dropped[STATS_DROP_SHUTDOWN] += n;
		break;
	case EXPORT_FAIL_ENCODE:
		stats.dropped[STATS_DROP_ENCODE] += n;
		break;
	case EXPORT_FAIL_IO:
		stats.dropped[STATS_DROP_OUTPUT] += n;
		break;
	case EXPORT_HELD:
	case EXPORT_SPOOLED:
		break; /* the exporter counts them, once each, as it writes them */
	}
	queue_release_batch(p->queue, batch);
	free(batch);
	pipeline_trim(p);
	pipeline_pump(p);
	pipeline_check_idle(p);
}

struct pipeline *pipeline__new(struct loop *loop, const struct pipeline_cfg *cfg,
			       struct exporter *ex)
{
	struct pipeline *p = calloc(1, sizeof(*p));

	if (!p) {
		exporter__free(ex);
		return NULL;
	}
	p->loop = loop;
	p->cfg = *cfg;
	p->ex = ex;
	exporter_set_done(ex, pipeline_done, p);
	p->queue = queue__new(&cfg->queue);
	p->suspend = suspend_table__new(cfg->suspend_max ? cfg->suspend_max : SUSPEND_DEFAULT_MAX,
					cfg->suspend_ttl_ms);
	p->orphans = orphans__new(PIPELINE_ORPHANS_MAX, cfg->suspend_ttl_ms);
	p->expired = calloc(PIPELINE_ORPHANS_MAX, sizeof(*p->expired));
	p->batch_timer = loop_timer__new(loop, pipeline_batch_timer, p);
	p->expire_timer = loop_timer__new(loop, pipeline_expire_timer, p);
	if (volume_cfg_active(&cfg->volume)) {
		p->volume = volume__new(&cfg->volume, pipeline_queue, p);
		p->volume_timer = loop_timer__new(loop, pipeline_volume_timer, p);
	}
	if (!p->queue || !p->suspend || !p->orphans || !p->expired || !p->batch_timer ||
	    !p->expire_timer ||
	    (volume_cfg_active(&cfg->volume) && (!p->volume || !p->volume_timer))) {
		pipeline__free(p);
		return NULL;
	}
	loop_timer_arm(p->expire_timer, cfg->suspend_ttl_ms / 4 + 1);
	return p;
}

void pipeline__free(struct pipeline *p)
{
	if (!p)
		return;
	/* The exporter first: it may still hold batches whose spans the queue accounts. */
	p->aborting = true; /* nothing new handed out while it gives them back */
	if (p->ex && p->ex->ops->pending(p->ex))
		p->ex->ops->abort(p->ex);
	exporter__free(p->ex);
	loop_timer__free(p->expire_timer);
	loop_timer__free(p->batch_timer);
	loop_timer__free(p->volume_timer);
	volume__free(p->volume);
	suspend_table__free(p->suspend);
	orphans__free(p->orphans);
	free(p->expired);
	queue__free(p->queue);
	free(p);
}

/*
 * Every slot of the exporter is taken: full batches wait encoded and compressed in the
 * exporter (its park op), a few dozen bytes a span, rather than as spans, several hundred.
 * Not while the hold hook holds batches back (a node's identity is being asked).
 */
static void pipeline_park(struct pipeline *p, uint64_t now)
{
	struct queue_batch *batch;
	uint64_t until;

	if (!p->ex->ops->park || p->aborting)
		return;
	while (queue_waiting(p->queue) >= p->cfg.queue.batch_size && p->ex->ops->busy(p->ex)) {
		if (!p->flushing && p->hooks.hold && !pipeline_backlogged(p) &&
		    p->hooks.hold(p->hooks.ctx, now, &until))
			return;
		batch = calloc(1, sizeof(*batch));
		if (!batch || queue_take_batch(p->queue, batch) <= 0) {
			free(batch);
			return;
		}
		if (p->ex->ops->park(p->ex, batch) < 0) {
			/* out of memory (or shutting down): counted, never leaked */
			stats.dropped[STATS_DROP_ENCODE] += batch->n;
			queue_release_batch(p->queue, batch);
			free(batch);
			break;
		}
	}
	pipeline_trim(p);
}

/* Hand out batches while the exporter has room and a batch is due; park the rest. */
static void pipeline_pump_once(struct pipeline *p)
{
	uint64_t now = clock_mono_ms();

	while (queue_waiting(p->queue) && !p->ex->ops->busy(p->ex)) {
		uint64_t age = now - queue_oldest_ms(p->queue), until;
		struct queue_batch *batch;

		if (!p->flushing && p->hooks.hold && !pipeline_backlogged(p) &&
		    p->hooks.hold(p->hooks.ctx, now, &until)) {
			loop_timer_arm(p->batch_timer, until > now ? until - now : 1);
			return;
		}

		if (!p->flushing && queue_waiting(p->queue) < p->cfg.queue.batch_size &&
		    age < p->cfg.schedule_delay_ms) {
			loop_timer_arm(p->batch_timer, p->cfg.schedule_delay_ms - age);
			return;
		}
		batch = calloc(1, sizeof(*batch));
		if (!batch || queue_take_batch(p->queue, batch) <= 0) {
			free(batch);
			loop_timer_arm(p->batch_timer, 100); /* out of memory: try again soon */
			return;
		}
		if (p->ex->ops->submit(p->ex, batch) < 0) {
			/* busy() said there was room: cannot happen; still count, never leak. */
			stats.dropped[STATS_DROP_ENCODE] += batch->n;
			queue_release_batch(p->queue, batch);
			free(batch);
		}
	}
	pipeline_park(p, now);
}

/*
 * An exporter may finish a batch inside submit() (stdout does): its done() then calls
 * back here. Rather than recurse, the outer call runs again.
 */
static void pipeline_pump(struct pipeline *p)
{
	if (p->aborting)
		return;
	if (p->pumping) {
		p->repump = true;
		return;
	}
	p->pumping = true;
	do {
		p->repump = false;
		pipeline_pump_once(p);
	} while (p->repump);
	p->pumping = false;
}

/*
 * The exporter keeps batches for later (a spool): the oldest waiting spans go there as one
 * batch, rather than new ones being dropped. @why counts them when that fails too.
 */
static void pipeline_spill(struct pipeline *p, struct queue_batch *batch, enum stats_drop why)
{
	if (p->ex->ops->spill(p->ex, batch) < 0)
		stats.dropped[why] += batch->n;
	queue_release_batch(p->queue, batch);
}

/* Queue a span (volume_out_fn: the volume rules pass kept spans here). */
static void pipeline_queue(void *ctx, struct span *span)
{
	struct pipeline *p = ctx;
	struct queue_batch batch;

	queue_set_clock(p->queue, clock_mono_ms());
	/* Memory short: the oldest batch to disk, parked (older) before waiting spans. */
	if (p->ex->ops->spill && queue_nearly_full(p->queue) &&
	    (!p->ex->ops->unpark || p->ex->ops->unpark(p->ex) < 0) &&
	    queue_take_batch(p->queue, &batch) > 0)
		pipeline_spill(p, &batch, STATS_DROP_QUEUE_FULL);
	if (queue_push_take(p->queue, span) < 0) {
		log_limited(&p->rl_full, LOG_LVL_WARN,
			    "queue full (%zu spans held): dropping spans; raise --queue-size or "
			    "--queue-bytes, or check the collector",
			    (size_t)stats.queue_spans);
		return;
	}
	if (queue_waiting(p->queue) >= p->cfg.queue.batch_size || p->flushing)
		pipeline_pump(p);
	else if (!loop_timer_armed(p->batch_timer))
		loop_timer_arm(p->batch_timer, p->cfg.schedule_delay_ms);
}

/* A span that has its traceId: through the volume rules, if any, to the queue. */
static void pipeline_enqueue(struct pipeline *p, struct span *span)
{
	if (span->truncated)
		stats.truncated++;
	if (span->trace_id_derived)
		stats.trace_id_derived++;
	if (!p->volume) {
		pipeline_queue(p, span);
		return;
	}
	volume_add(p->volume, span, clock_mono_ms());
	pipeline_volume_arm(p);
}

/*
 * @span has its traceId: tell its family (its held children, all generations, adopted
 * now; a cut parent still to come), and queue them all.
 */
static void pipeline_release(struct pipeline *p, struct span *span)
{
	struct span *adopted[64];
	size_t n;

	orphans_learn(p->orphans, span);
	orphans_adopt(p->orphans, span);
	while ((n = orphans_take(p->orphans, adopted, 64))) {
		for (size_t i = 0; i < n; i++) {
			orphans_learn(p->orphans, adopted[i]);
			pipeline_enqueue(p, adopted[i]);
		}
	}
	pipeline_enqueue(p, span);
}

/*
 * A span CLN cut before its traceId: take the traceId its children told, or hold it for
 * its parent. Returns the span when it can go on, NULL when it was held.
 */
static struct span *pipeline_orphan(struct pipeline *p, struct span *span)
{
	struct span *evicted;

	if (orphans_resolve(p->orphans, span))
		return span;
	if (!span->has_parent) {
		/* A root whose children are unknown: no one will tell its traceId. */
		orphans_derive(span);
		return span;
	}
	if (orphans_hold(p->orphans, span, clock_mono_ms(), &evicted) < 0) {
		log_limited(&p->rl_orphan, LOG_LVL_WARN,
			    "%d spans cut by CLN wait for their parent: the oldest is exported "
			    "under a traceId of its own (cln.trace_id_derived)",
			    PIPELINE_ORPHANS_MAX);
		pipeline_give_up(p, evicted);
	}
	return NULL;
}

enum span_reject pipeline_ingest(struct pipeline *p, const struct pipeline_origin *origin,
				 const char *json, size_t len)
{
	enum span_reject why;
	struct span *span;

	stats.received[origin->source]++;
	if (span_parse(json, len, &span, &why) < 0) {
		stats.rejected[why]++;
		log_limited(&p->rl_reject, LOG_LVL_WARN, "rejected a span payload (%s, %zu bytes)",
			    span_reject_str(why), len);
		return why;
	}
	if (span->path == SPAN_PATH_RECOVERED)
		stats.recovered++;
	span->pid = origin->pid;
	if (origin->pid && p->hooks.saw_pid)
		p->hooks.saw_pid(p->hooks.ctx, origin->pid);
	span->exe_path = exe_path_ref(origin->exe_path);
	span->uid = origin->uid;
	span->has_uid = origin->has_uid;
	stats.tags_duplicate += span->dup_tags;
	suspend_table_take(p->suspend, span);
	stats.events += span->n_events;
	stats.events_dropped += span->dropped_events;
	spanmetrics_observe(&span_metrics, span); /* every span, before any is dropped */
	if (!span->has_trace_id && !(span = pipeline_orphan(p, span)))
		return SPAN_OK;
	pipeline_release(p, span);
	return SPAN_OK;
}

void pipeline_span_event(struct pipeline *p, uint32_t pid, uint64_t span_id,
			 enum span_event_kind kind, uint64_t time_unix_ns)
{
	int r = suspend_table_add(p->suspend, pid, span_id, kind, time_unix_ns, clock_mono_ms());

	if (r > 0)
		stats.events_evicted += (uint64_t)r;
	else if (r < 0)
		stats.events_evicted++; /* out of memory: this one is lost */
}

bool pipeline_backlogged(const struct pipeline *p)
{
	return queue_nearly_full(p->queue);
}

void pipeline_flush(struct pipeline *p)
{
	/* The sources are done: a parent not seen by now will not come. */
	pipeline_expire_orphans(p, UINT64_MAX);
	/* ... and a trace whose root has not come is decided on what did. */
	if (p->volume)
		volume_flush(p->volume);
	p->flushing = true;
	if (p->ex->ops->quiesce)
		p->ex->ops->quiesce(p->ex);
	pipeline_pump(p);
	pipeline_check_idle(p);
}

bool pipeline_idle(const struct pipeline *p)
{
	return !queue_waiting(p->queue) && !p->ex->ops->pending(p->ex) &&
	       !(p->volume && volume_held(p->volume));
}

void pipeline_abort(struct pipeline *p)
{
	struct queue_batch batch;

	p->idle_cb = NULL;
	p->aborting = true;
	p->ex->ops->abort(p->ex);
	if (p->volume)
		stats.dropped[STATS_DROP_SHUTDOWN] += volume_abort(p->volume);
	while (queue_take_batch(p->queue, &batch) > 0) {
		if (p->ex->ops->spill) {
			pipeline_spill(p, &batch, STATS_DROP_SHUTDOWN);
			continue;
		}
		stats.dropped[STATS_DROP_SHUTDOWN] += batch.n;
		queue_release_batch(p->queue, &batch);
	}
}

void pipeline_set_hooks(struct pipeline *p, const struct pipeline_hooks *hooks)
{
	p->hooks = *hooks;
}

void pipeline_on_idle(struct pipeline *p, void (*cb)(void *ctx), void *ctx)
{
	p->idle_cb = cb;
	p->idle_ctx = ctx;
}
