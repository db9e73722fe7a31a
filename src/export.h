/* SPDX-License-Identifier: MIT */
/*
 * export: the interface every exporter implements (stdout, console, OTLP over HTTP/gRPC).
 * The pipeline hands an exporter a batch; the exporter holds it until it calls done(),
 * exactly once per batch, with the final outcome (retries happen inside the exporter).
 * The batch (struct and spans) stays the pipeline's to free: the exporter never frees it
 * (once it has encoded it, it may shed its spans: queue_batch_shed), and must not touch it
 * after done(). done() may be called from inside submit().
 * done(ctx, NULL, EXPORT_OK) says only that room freed up (a request of the exporter's own,
 * a spool replay, finished): nothing to account.
 */
#ifndef CLN_OTLP_EXPORT_H
#define CLN_OTLP_EXPORT_H

#include <stdbool.h>

#include "queue.h"

enum export_result {
	EXPORT_OK = 0,	      /* delivered (a partial success counts here, rejects counted) */
	EXPORT_FAIL_REJECTED, /* not retryable: collector refused it */
	EXPORT_FAIL_EXPIRED,  /* retryable failures past the retry budget */
	EXPORT_FAIL_SHUTDOWN, /* still unfinished when shutdown ran out of time */
	EXPORT_FAIL_ENCODE,   /* could not be encoded (out of memory) */
	EXPORT_FAIL_IO,	      /* local output failed (stdout closed...) */
	EXPORT_HELD,	      /* copied and kept: the exporter counts each span once written */
	EXPORT_SPOOLED,	      /* undelivered, written to the spool (counted there) */
};

struct exporter;
struct config;

typedef void (*exporter_done_cb)(void *ctx, struct queue_batch *batch, enum export_result res);

struct exporter_ops {
	/* Take @batch. Returns 0, or -EBUSY when at capacity (the batch stays the caller's). */
	int (*submit)(struct exporter *ex, struct queue_batch *batch);
	/* True when submit() would return -EBUSY. */
	bool (*busy)(const struct exporter *ex);
	/* Batches taken and not yet done. */
	unsigned (*pending)(const struct exporter *ex);
	/* Give up everything unfinished now: done(EXPORT_FAIL_SHUTDOWN) for each. */
	void (*abort)(struct exporter *ex);
	void (*free)(struct exporter *ex);
	/* Optional: shutdown, nothing pending: write out (and count) what EXPORT_HELD kept. */
	void (*finish)(struct exporter *ex);
	/*
	 * Optional: take the request headers of @cfg (SIGHUP re-read --header-file) for the
	 * requests that start from now on; requests in flight finish with the old ones. Returns
	 * 0, or a negative errno with @err saying why (the headers in use stay).
	 */
	int (*reload)(struct exporter *ex, const struct config *cfg, char *err, size_t err_size);
	/*
	 * Optional: keep @batch, not sent, for later (the queue is full, or shutdown gave up on
	 * it): 0 when kept (counted by the exporter; done() is not called), or a negative errno
	 * (the batch stays the caller's, to drop and count as it would have).
	 */
	int (*spill)(struct exporter *ex, struct queue_batch *batch);
	/*
	 * Optional: every slot is taken and @batch (full) waits: take it as submit() does
	 * (done() comes later, pending() counts it), but keep it encoded and compressed in
	 * memory, its spans shed (queue_batch_shed), until a slot frees; parked batches go out
	 * before any batch submitted after them. While some are parked, busy() says true.
	 * Returns 0, or a negative errno (the batch stays the caller's, to drop and count).
	 */
	int (*park)(struct exporter *ex, struct queue_batch *batch);
	/*
	 * Optional: memory is short: move the oldest parked batch to disk (done() with
	 * EXPORT_SPOOLED for it). Returns 0, or -ENOENT when nothing could be moved.
	 */
	int (*unpark)(struct exporter *ex);
	/* Optional: shutdown began: start nothing more of the exporter's own (replays). */
	void (*quiesce)(struct exporter *ex);
};

/* Embedded as the first member of every exporter. */
struct exporter {
	const struct exporter_ops *ops;
	const char *name;
	exporter_done_cb done;
	void *done_ctx;
};

static inline void exporter_set_done(struct exporter *ex, exporter_done_cb cb, void *ctx)
{
	ex->done = cb;
	ex->done_ctx = ctx;
}

static inline void exporter__free(struct exporter *ex)
{
	if (ex)
		ex->ops->free(ex);
}

#endif
