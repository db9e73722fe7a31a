// SPDX-License-Identifier: MIT
#include "stats.h"

#include <string.h>

struct stats stats;

static const char *const source_names[STATS_SRC__MAX] = {
	[STATS_SRC_USDT] = "usdt",
	[STATS_SRC_SOCKET] = "socket",
	[STATS_SRC_FILE] = "file",
};

static const char *const drop_names[STATS_DROP__MAX] = {
	[STATS_DROP_QUEUE_FULL] = "queue_full",
	[STATS_DROP_RETRY_EXPIRED] = "retry_expired",
	[STATS_DROP_NOT_RETRYABLE] = "not_retryable",
	[STATS_DROP_SHUTDOWN] = "shutdown",
	[STATS_DROP_ENCODE] = "encode",
	[STATS_DROP_ORPHAN] = "truncated_orphan",
	[STATS_DROP_OUTPUT] = "output",
};

const char *stats_source_str(enum stats_source src)
{
	return (unsigned)src < STATS_SRC__MAX ? source_names[src] : "?";
}

const char *stats_drop_str(enum stats_drop why)
{
	return (unsigned)why < STATS_DROP__MAX ? drop_names[why] : "?";
}

uint64_t stats_rejected_total(void)
{
	uint64_t n = 0;

	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		n += stats.rejected[i];
	return n;
}

uint64_t stats_dropped_total(void)
{
	uint64_t n = 0;

	for (int i = 0; i < STATS_DROP__MAX; i++)
		n += stats.dropped[i];
	return n;
}

uint64_t stats_received_total(void)
{
	uint64_t n = 0;

	for (int i = 0; i < STATS_SRC__MAX; i++)
		n += stats.received[i];
	return n;
}

/* Append " name=value"; stops quietly when @buf is full (the line is a summary). */
static size_t stats_put(char *buf, size_t size, size_t off, const char *prefix, const char *name,
			uint64_t v)
{
	int n;

	if (off >= size)
		return off;
	n = snprintf(buf + off, size - off, "%s%s%s=%llu", off ? " " : "", prefix, name,
		     (unsigned long long)v);
	return n < 0 ? off : off + (size_t)n;
}

/* Append " name=<us as milliseconds, 0.1 ms precision>". */
static size_t stats_put_ms(char *buf, size_t size, size_t off, const char *name, uint64_t us)
{
	int n;

	if (off >= size)
		return off;
	n = snprintf(buf + off, size - off, "%s%s=%llu.%llu", off ? " " : "", name,
		     (unsigned long long)(us / 1000), (unsigned long long)(us % 1000 / 100));
	return n < 0 ? off : off + (size_t)n;
}

void stats_format_line(char *buf, size_t size)
{
	size_t off = 0;

	if (!size)
		return;
	buf[0] = '\0';
	off = stats_put(buf, size, off, "", "received", stats_received_total());
	for (int i = 0; i < STATS_SRC__MAX; i++)
		if (stats.received[i])
			off = stats_put(buf, size, off, "", source_names[i], stats.received[i]);
	off = stats_put(buf, size, off, "", "rejected", stats_rejected_total());
	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		if (stats.rejected[i])
			off = stats_put(buf, size, off, "rej_",
					span_reject_str((enum span_reject)i), stats.rejected[i]);
	off = stats_put(buf, size, off, "", "recovered", stats.recovered);
	if (stats.truncated)
		off = stats_put(buf, size, off, "", "truncated", stats.truncated);
	if (stats.trace_id_derived)
		off = stats_put(buf, size, off, "", "trace_id_derived", stats.trace_id_derived);
	if (stats.tags_duplicate)
		off = stats_put(buf, size, off, "", "tags_duplicate", stats.tags_duplicate);
	if (stats.events_dropped)
		off = stats_put(buf, size, off, "", "events_dropped", stats.events_dropped);
	off = stats_put(buf, size, off, "", "ringbuf_lost", stats.ringbuf_lost);
	if (stats.events_evicted)
		off = stats_put(buf, size, off, "", "events_evicted", stats.events_evicted);
	if (stats.events_untimed)
		off = stats_put(buf, size, off, "", "events_untimed", stats.events_untimed);
	if (stats.exe_path_lost)
		off = stats_put(buf, size, off, "", "exe_path_lost", stats.exe_path_lost);
	if (stats.follow_truncated)
		off = stats_put(buf, size, off, "", "follow_truncated", stats.follow_truncated);
	if (stats.follow_lost_bytes)
		off = stats_put(buf, size, off, "", "follow_lost_bytes", stats.follow_lost_bytes);
	off = stats_put(buf, size, off, "", "queued", stats.queued);
	off = stats_put(buf, size, off, "", "exported", stats.exported);
	if (stats.partial_rejected)
		off = stats_put(buf, size, off, "", "partial_rejected", stats.partial_rejected);
	if (stats.partial_bad_count)
		off = stats_put(buf, size, off, "", "partial_bad_count", stats.partial_bad_count);
	if (stats.unconfirmed)
		off = stats_put(buf, size, off, "", "unconfirmed", stats.unconfirmed);
	off = stats_put(buf, size, off, "", "dropped", stats_dropped_total());
	for (int i = 0; i < STATS_DROP__MAX; i++)
		if (stats.dropped[i])
			off = stats_put(buf, size, off, "drop_", drop_names[i], stats.dropped[i]);
	off = stats_put(buf, size, off, "", "batches", stats.batches_sent);
	off = stats_put(buf, size, off, "", "retries", stats.retries);
	off = stats_put(buf, size, off, "", "failed_batches", stats.failed_batches);
	/* Mean and worst time to an answer, over the batches answered. */
	off = stats_put_ms(buf, size, off, "latency_avg_ms",
			   stats.batches_sent ? stats.export_latency_us_sum / stats.batches_sent
					      : 0);
	off = stats_put_ms(buf, size, off, "latency_max_ms", stats.export_latency_us_max);
	off = stats_put(buf, size, off, "", "in_queue", stats.queue_spans);
	if (stats.metrics_evicted)
		off = stats_put(buf, size, off, "", "metrics_evicted", stats.metrics_evicted);
	if (stats.metrics_timeouts)
		stats_put(buf, size, off, "", "metrics_timeouts", stats.metrics_timeouts);
}
