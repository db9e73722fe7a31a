/* SPDX-License-Identifier: MIT */
/*
 * span: one CLN span, parsed from the JSON that lightningd hands to its `span_emit`
 * probe, trace socket or trace file.
 *
 * CLN writes that JSON with snprintf and escapes nothing, so a `"` or `\` in a tag value
 * (SQL text, RPC ids) makes it invalid. span_parse() tries, in order:
 *   1. a strict JSON parse of the shape CLN writes (fast path, no allocation but the span);
 *   2. a strict general JSON parse (cJSON): any key order, escapes, unknown fields;
 *   3. recovery: a structural parse anchored on CLN's fixed key order and on the
 *      `},"traceId":"<hex>"}]` tail, which gives every value back exactly as CLN had it.
 * Anything else is rejected with a reason, never silently.
 *
 * A span is one allocation: the struct followed by an arena holding its strings.
 */
#ifndef CLN_OTLP_SPAN_H
#define CLN_OTLP_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The largest payload accepted: a unix datagram's 64 KiB. Complete, valid JSON up to this
 * size is a span like any other, from a file or the socket.
 */
#define SPAN_MAX_PAYLOAD 65536
/*
 * CLN formats each span into a 2048-byte buffer (common/trace.c): a longer span is cut to
 * its first 2047 bytes (2048 with a NUL kept). Only a payload of that length that does not
 * parse is taken for a cut span.
 */
#define SPAN_CLN_BUF 2048
/* CLN emits at most 2 tags; other producers may send a few more. */
#define SPAN_MAX_TAGS 8
/*
 * Suspend/resume events kept per span (the SDKs' OTEL_SPAN_EVENT_COUNT_LIMIT default); more
 * are counted in dropped_events. Allocated as they come, not per span up front.
 */
#define SPAN_MAX_EVENTS 128

enum span_reject {
	SPAN_OK = 0,
	SPAN_REJECT_TOO_LONG,	   /* payload over SPAN_MAX_PAYLOAD bytes */
	SPAN_REJECT_EMPTY,	   /* nothing but whitespace, or `[]` */
	SPAN_REJECT_INVALID_JSON,  /* invalid JSON that recovery could not repair */
	SPAN_REJECT_MISSING_FIELD, /* id, name, timestamp, duration or traceId absent */
	SPAN_REJECT_BAD_ID,	   /* id not 16 hex digits, or all zero */
	SPAN_REJECT_BAD_PARENT_ID, /* parentId not 16 hex digits, or all zero */
	SPAN_REJECT_BAD_TRACE_ID,  /* traceId not 16 or 32 hex digits, or all zero */
	SPAN_REJECT_BAD_TIME,	   /* timestamp/duration not a non-negative integer, or overflows */
	SPAN_REJECT_BAD_FIELD,	   /* a known field of the wrong type (name not a string...) */
	SPAN_REJECT_TOO_MANY_TAGS, /* more than SPAN_MAX_TAGS tags */
	SPAN_REJECT_NOMEM,
	SPAN_REJECT__MAX,
};

/* Short, stable name of a reject reason (for counters and the summary). */
const char *span_reject_str(enum span_reject why);

/* How the payload was understood. */
enum span_parse_path {
	SPAN_PATH_FAST = 0, /* strict, CLN's own shape */
	SPAN_PATH_JSON,	    /* strict, general JSON */
	SPAN_PATH_RECOVERED /* invalid JSON (unescaped quote or backslash), recovered */
};

struct span_str {
	const char *ptr; /* NUL-terminated, in the span's arena */
	uint32_t len;
};

struct span_tag {
	struct span_str key;
	struct span_str value;
};

enum span_event_kind {
	SPAN_EVENT_SUSPEND = 0,
	SPAN_EVENT_RESUME,
};

struct span_event {
	uint64_t time_unix_ns;
	enum span_event_kind kind;
};

struct span {
	uint8_t trace_id[16]; /* 16-hex (old CLN) traceIds: zeros, then the value */
	uint8_t span_id[8];
	uint8_t parent_id[8];
	bool has_parent;       /* parentId present, valid and not equal to span_id */
	bool short_trace_id;   /* traceId was 16 hex digits */
	bool truncated;	       /* CLN cut the payload at 2048 bytes; what precedes the cut kept */
	bool has_trace_id;     /* false only for a truncated span (traceId lost in the cut) */
	bool trace_id_derived; /* a cut span no family told: traceId from its own ids */
	uint8_t path;	       /* enum span_parse_path */
	uint64_t timestamp_us;
	uint64_t duration_us;
	struct span_str name;
	struct span_str service; /* localEndpoint.serviceName; len 0 when absent */
	uint32_t n_tags;
	uint32_t dup_tags; /* tag keys seen again: the last value kept, in the first's place */
	struct span_tag tags[SPAN_MAX_TAGS];

	/* Where the span came from; filled in by its source, 0/NULL when unknown. */
	uint32_t pid;
	const char *exe_path; /* exe_paths.h: the span holds a reference (span__free) */
	uint32_t uid;	      /* process.user.id, if has_uid */
	bool has_uid;

	uint32_t n_events;
	uint32_t cap_events;
	uint32_t dropped_events;   /* past SPAN_MAX_EVENTS, or out of memory */
	struct span_event *events; /* malloc'ed, cap_events long; NULL without events */

	uint32_t payload_len; /* bytes of the JSON this span came from */
	uint32_t arena_len;   /* span_mem_size(): sizeof(struct span) + arena_len + events */
	char arena[];
};

/*
 * Parse one span_emit payload of @len bytes (need not be NUL-terminated). On success
 * returns 0 and sets *out to a new span (free with span__free). On failure returns a
 * negative errno (-EINVAL for bad input, -ENOMEM) and sets *why.
 * A payload CLN cut at its 2048-byte buffer (2047 or 2048 bytes long, and not valid as it
 * is) comes back as a span with truncated set and, when the cut took the traceId,
 * has_trace_id false: the caller decides (it may take the traceId from the span's parent,
 * emitted later by the same process).
 * Strings are UTF-8: invalid sequences and NULs (raw or `\u0000`) become U+FFFD. A tag key
 * given twice keeps its last value (as JSON parsers do), counted in dup_tags.
 */
int span_parse(const char *json, size_t len, struct span **out, enum span_reject *why);

void span__free(struct span *span);

/* Bytes this span holds in memory (queue accounting). */
static inline size_t span_mem_size(const struct span *span)
{
	return sizeof(*span) + span->arena_len + span->cap_events * sizeof(struct span_event);
}

/*
 * Append a suspend/resume event, growing the span's event array as needed; counts it as
 * dropped past SPAN_MAX_EVENTS or when out of memory. Before the span is queued only (its
 * size must not change while the queue accounts it).
 */
void span_add_event(struct span *span, enum span_event_kind kind, uint64_t time_unix_ns);

/* Parse 16 hex digits as a big-endian u64 (CLN span ids are u64s printed with %016lx). */
bool span_id_parse_u64(const char *hex, size_t n, uint64_t *out);

#endif
