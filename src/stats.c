// SPDX-License-Identifier: MIT
#include "stats.h"

#include <stddef.h>
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

static const char *const keep_names[STATS_KEEP__MAX] = {
	[STATS_KEEP_SAMPLED] = "sampled",
	[STATS_KEEP_ERROR] = "error",
	[STATS_KEEP_SLOW] = "slow",
};

#define S(f) offsetof(struct stats, f)
#define I    STATS_PART_INTAKE
#define E    STATS_PART_EXPORT

/* clang-format off */
const struct stats_counter stats_counters[] = {
	{I, "recovered", false, "spans_recovered_total",
	 "Span payloads with invalid JSON (unescaped tag values) repaired and kept.",
	 S(recovered)},
	{I, "truncated", true, "spans_truncated_total",
	 "Spans cut by CLN at 2048 bytes and kept.", S(truncated)},
	{I, "trace_id_derived", true, "spans_trace_id_derived_total",
	 "Cut spans no parent or child told the traceId of, exported under a traceId derived "
	 "from their own ids (cln.trace_id_derived).", S(trace_id_derived)},
	{I, "tags_duplicate", true, "span_tags_duplicate_total",
	 "Tag keys given twice in a span: the last value kept.", S(tags_duplicate)},
	{I, "ringbuf_lost", false, "ringbuf_lost_total",
	 "Span records the kernel could not put in the eBPF ring buffer (it was full).",
	 S(ringbuf_lost)},
	{I, "exe_path_lost", true, "exe_path_lost_total",
	 "New processes whose executable path could not be kept (the table of paths was full): "
	 "their spans lack process.executable.path.", S(exe_path_lost)},
	{I, "socket_refused", true, "socket_refused_total",
	 "Datagrams dropped unread on the trace socket: their sender's uid is not a "
	 "--socket-allow-uid.", S(socket_refused)},
	{I, "follow_truncated", true, "follow_truncated_total",
	 "Times a followed file was truncated (or truncated and rewritten): read again from its "
	 "start.", S(follow_truncated)},
	{I, "follow_lost_bytes", true, "follow_lost_bytes_total",
	 "Bytes of a followed file lost to a truncation: written but not read before it.",
	 S(follow_lost_bytes)},
	{I, "files_refused", true, "files_refused_total",
	 "Files of a --file pattern or directory not read: as many were read at once as are "
	 "allowed (read later if they change while there is room).", S(files_refused)},
	{I, "nodes_identified", true, "nodes_identified_total",
	 "lightningd processes whose lightning-rpc answered getinfo: their identity is on the "
	 "spans of their processes.", S(nodes_identified)},
	{I, "node_untrusted", true, "node_untrusted_total",
	 "Processes whose spans go without a node identity: their binary carries no "
	 "lightningd:span_emit probe, or no lightningd is among them and their parents.",
	 S(node_untrusted)},
	{I, "node_table_full", true, "node_table_full_total",
	 "Processes or lightningd processes past the node tables' bounds: their spans go "
	 "without a node identity.", S(node_table_full)},
	{I, NULL, false, "span_events_total",
	 "Suspend/resume span events attached to spans.", S(events)},
	{I, "events_evicted", true, "span_events_evicted_total",
	 "Suspend/resume events discarded unattached: the table of spans waiting to be emitted "
	 "was full.", S(events_evicted)},
	{I, "events_untimed", true, "span_events_untimed_total",
	 "Suspend/resume lines of trace files, which carry no time: not attached.",
	 S(events_untimed)},
	{I, "events_dropped", true, "span_events_dropped_total",
	 "Suspend/resume span events past the 128 a span keeps (droppedEventsCount).",
	 S(events_dropped)},
	{I, "sampled_out", true, "spans_sampled_out_total",
	 "Spans of traces not kept: neither picked by the ratio sampler (--sample, "
	 "OTEL_TRACES_SAMPLER) nor kept by --keep-errors or --keep-slower-than.",
	 S(sampled_out)},
	{I, "cut_short", true, "traces_cut_short_total",
	 "Traces decided before their local root arrived: held past --hold-time, the oldest "
	 "when --hold-size or --hold-bytes was reached, or still held when the run ended.",
	 S(traces_cut_short)},
	{I, "queued", false, "spans_queued_total",
	 "Spans accepted into the export queue.", S(queued)},
	{E, "exported", false, "spans_exported_total",
	 "Spans the collector accepted.", S(exported)},
	{E, "partial_rejected", true, "spans_partial_rejected_total",
	 "Spans the collector refused in a partial success answer.", S(partial_rejected)},
	{E, "partial_bad_count", true, "partial_bad_count_total",
	 "Partial success answers whose rejected count was impossible (negative, or more than "
	 "the batch held); counted as the batch's size, or 0.", S(partial_bad_count)},
	{E, "unconfirmed", true, "spans_unconfirmed_total",
	 "Spans answered with a success whose body is no OTLP answer (an HTML page, a broken "
	 "message): maybe delivered, not counted as exported.", S(unconfirmed)},
	{E, "batches", false, "batches_sent_total",
	 "Export requests that got an answer.", S(batches_sent)},
	{E, "retries", false, "export_retries_total",
	 "Export requests retried.", S(retries)},
	{E, "failed_batches", false, "batches_failed_total",
	 "Batches given up (not retryable, or out of retries).", S(failed_batches)},
	{E, "spooled", true, "spans_spooled_total",
	 "Spans written to the --spool directory: not delivered in time (retry budget, "
	 "shutdown timeout, queue full), sent again once the collector answers.",
	 S(spooled_spans)},
	{E, "spooled_batches", true, "spool_batches_written_total",
	 "Batches (files) written to the spool.", S(spooled_batches)},
	{E, "spooled_bytes", true, "spool_bytes_written_total",
	 "Bytes written to the spool, file headers included.", S(spooled_bytes)},
	{E, "replayed", true, "spans_replayed_total",
	 "Spooled spans the collector accepted (in this run or after a restart).",
	 S(replayed_spans)},
	{E, "replayed_batches", true, "spool_batches_replayed_total",
	 "Spooled batches delivered.", S(replayed_batches)},
	{E, "spool_corrupt", true, "spool_corrupt_total",
	 "Spool files skipped and removed: torn, corrupt (checksum), of another version, or "
	 "written for another protocol or compression.", S(spool_corrupt)},
	{E, "spool_evicted", true, "spool_evicted_total",
	 "Spans of the oldest spool files removed to make room (--spool-size reached).",
	 S(spool_evicted)},
	{E, "spool_duplicates", true, "spool_duplicates_total",
	 "Spooled spans sent again that were in flight when a run gave them up: the collector "
	 "may have them twice.", S(spool_duplicates)},
	{E, "spool_failed", true, "spool_failed_total",
	 "Spans that could not be written to the spool (disk full, I/O error): dropped.",
	 S(spool_failed)},
};
/* clang-format on */
const size_t stats_n_counters = sizeof(stats_counters) / sizeof(stats_counters[0]);

#undef S
#undef I
#undef E

const char *stats_source_str(enum stats_source src)
{
	return (unsigned)src < STATS_SRC__MAX ? source_names[src] : "?";
}

const char *stats_drop_str(enum stats_drop why)
{
	return (unsigned)why < STATS_DROP__MAX ? drop_names[why] : "?";
}

const char *stats_keep_str(enum stats_keep why)
{
	return (unsigned)why < STATS_KEEP__MAX ? keep_names[why] : "?";
}

uint64_t stats_rule_dropped_total(void)
{
	uint64_t n = 0;

	for (size_t i = 0; i < stats.n_rules && i < STATS_MAX_RULES; i++)
		n += stats.rule_dropped[i];
	return n;
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

/* The table's counters of @part that belong on the line. */
static size_t stats_put_part(char *buf, size_t size, size_t off, enum stats_part part)
{
	for (size_t i = 0; i < stats_n_counters; i++) {
		const struct stats_counter *c = &stats_counters[i];
		uint64_t v = stats_counter_value(c);

		if (c->part == part && c->line && (v || !c->line_nonzero))
			off = stats_put(buf, size, off, "", c->line, v);
	}
	return off;
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
	off = stats_put_part(buf, size, off, STATS_PART_INTAKE);
	for (int i = 0; i < STATS_KEEP__MAX; i++)
		if (stats.traces_kept[i])
			off = stats_put(buf, size, off, "kept_", keep_names[i],
					stats.traces_kept[i]);
	if (stats.n_rules)
		off = stats_put(buf, size, off, "", "rule_dropped", stats_rule_dropped_total());
	off = stats_put(buf, size, off, "", "dropped", stats_dropped_total());
	for (int i = 0; i < STATS_DROP__MAX; i++)
		if (stats.dropped[i])
			off = stats_put(buf, size, off, "drop_", drop_names[i], stats.dropped[i]);
	off = stats_put_part(buf, size, off, STATS_PART_EXPORT);
	/* Mean and worst time to an answer, over the batches answered. */
	off = stats_put_ms(buf, size, off, "latency_avg_ms",
			   stats.batches_sent ? stats.export_latency_us_sum / stats.batches_sent
					      : 0);
	off = stats_put_ms(buf, size, off, "latency_max_ms", stats.export_latency_us_max);
	off = stats_put(buf, size, off, "", "in_queue", stats.queue_spans);
	/* What they cost: waiting spans, and the bodies of batches encoded while they wait. */
	off = stats_put(buf, size, off, "", "queue_bytes", stats.queue_bytes);
	if (stats.metrics_evicted)
		off = stats_put(buf, size, off, "", "metrics_evicted", stats.metrics_evicted);
	if (stats.metrics_timeouts)
		stats_put(buf, size, off, "", "metrics_timeouts", stats.metrics_timeouts);
}
