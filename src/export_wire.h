/* SPDX-License-Identifier: MIT */
/*
 * export_wire: what the OTLP exporter puts on the wire and what it makes of the answer.
 * Pure: no I/O and no clock (the caller passes the time), so every case is a unit test.
 *   - the request body: the encoded ExportTraceServiceRequest, gzip'd (level 1) and/or
 *     framed as one gRPC message (1-byte compressed flag, 4-byte big-endian length);
 *   - the answer, as the transfer delivers it: header lines (Retry-After, Content-Type,
 *     Location, grpc-status, grpc-message, grpc-encoding, grpc-status-details-bin) and the
 *     body, kept up to a cap;
 *   - the verdict on it, from the HTTP status and version and the batch's size: success
 *     (with a partial success's count, clamped to the batch, and message), unconfirmed (a
 *     success whose body is no ExportTraceServiceResponse), retry (with the server's hint, if
 *     any) or refused, each with the words the exporter logs;
 *   - URLs made fit to log: userinfo and query hidden (they may carry credentials).
 * Dates and percent-escapes are read by libcurl (curl_getdate, curl_easy_unescape), gzip by
 * zlib, protobuf by otlp.
 */
#ifndef CLN_OTLP_EXPORT_WIRE_H
#define CLN_OTLP_EXPORT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define EXPORT_WIRE_BODY_CAP	     (64 * 1024) /* answer bytes kept; the rest is dropped */
#define EXPORT_WIRE_GRPC_MESSAGE_CAP 512
#define EXPORT_WIRE_TEXT_CAP	     256 /* a message quoted from the collector */
#define EXPORT_WIRE_MSG_CAP	     (EXPORT_WIRE_TEXT_CAP + 64)
#define EXPORT_WIRE_CTYPE_CAP	     64 /* a Content-Type quoted in a message */

/* ---- the request --------------------------------------------------------------------- */

/* The framing of one exporter's requests (its gzip stream is kept from batch to batch). */
struct export_wire;

/* NULL when out of memory. */
struct export_wire *export_wire__new(bool grpc, bool gzip);
void export_wire__free(struct export_wire *w);

/*
 * The body to send for the encoded request @enc: @enc itself when neither gzip nor gRPC
 * applies, else built in @body. Sets *req and *req_len to it. Returns 0, -ENOMEM, -E2BIG
 * (past gRPC's 4 GiB frame) or -EIO (zlib failed).
 */
int export_wire_request(struct export_wire *w, const struct buf *enc, struct buf *body,
			const uint8_t **req, size_t *req_len);

/* ---- the answer ---------------------------------------------------------------------- */

/* What came back for one attempt. */
struct export_wire_answer {
	struct buf body;	/* at most EXPORT_WIRE_BODY_CAP bytes */
	bool json;		/* Content-Type: application/json */
	bool grpc_gzip;		/* grpc-encoding: gzip */
	int grpc_status;	/* -1: none seen */
	bool has_retry_after;	/* a Retry-After that reads as seconds or a date came */
	bool retry_after_date;	/* ...as a date: retry_after is seconds since the epoch */
	int64_t retry_after;	/* ...else as seconds, at most RETRY_HINT_MAX_S */
	bool has_retry_info;	/* grpc-status-details-bin held a google.rpc.RetryInfo */
	uint64_t retry_info_ms; /* its delay, at most RETRY_HINT_MAX_S seconds */
	char grpc_message[EXPORT_WIRE_GRPC_MESSAGE_CAP]; /* percent-decoded, printable */
	char content_type[EXPORT_WIRE_CTYPE_CAP];	 /* printable, may be cut */
	char location[EXPORT_WIRE_TEXT_CAP];		 /* redacted (export_wire_redact_url) */
};

void export_wire_answer_init(struct export_wire_answer *a);
/* Forget the previous answer (memory kept). */
void export_wire_answer_reset(struct export_wire_answer *a);
void export_wire_answer_release(struct export_wire_answer *a);

/*
 * One header line as libcurl hands it over ("Name: value\r\n", trailers included). A status
 * line ("HTTP/...") starts a new answer (after a 100 Continue, say): the previous one is
 * forgotten and true returned.
 */
bool export_wire_header(struct export_wire_answer *a, const char *line, size_t len);
/* Body bytes: kept up to the cap, the rest dropped. */
void export_wire_body(struct export_wire_answer *a, const void *data, size_t n);

/*
 * A Retry-After value: delay-seconds, or an HTTP date (IMF-fixdate, RFC 850, asctime, and
 * whatever else curl_getdate reads) compared with @now_s (wall clock, seconds). A date in
 * the past gives 0; anything longer than RETRY_HINT_MAX_S gives that. Surrounding blanks are
 * ignored. Returns 0 and the wait in *ms, or -EINVAL (no hint: never "retry at once").
 */
int export_wire_retry_after(const char *value, size_t len, int64_t now_s, uint64_t *ms);

enum export_wire_outcome {
	EXPORT_WIRE_SUCCESS = 0, /* delivered (maybe partly rejected) */
	EXPORT_WIRE_RETRY,	 /* worth another attempt */
	EXPORT_WIRE_REFUSED,	 /* not worth another attempt */
	/*
	 * A success (HTTP 2xx, gRPC OK) whose body is no ExportTraceServiceResponse (an HTML
	 * page from a proxy or a web server, a broken message): whether the spans reached a
	 * collector cannot be known. Not retried (that could deliver them twice), not counted
	 * as exported.
	 */
	EXPORT_WIRE_UNCONFIRMED,
};

struct export_wire_verdict {
	enum export_wire_outcome outcome;
	int64_t hint_ms; /* RETRY: the server's wait; -1: none (back off) */
	/* SUCCESS: spans the collector rejected (partial success), 0 to the batch's size */
	int64_t rejected;
	/* SUCCESS: the collector's count was impossible (negative, or past the batch): clamped */
	bool bad_count;
	int64_t claimed; /* ...the count it claimed */
	/*
	 * SUCCESS: the partial success's message (printable, may be empty); RETRY, REFUSED,
	 * UNCONFIRMED: what went wrong ("HTTP 503: ...", "gRPC status 3 INVALID_ARGUMENT: ...").
	 */
	char message[EXPORT_WIRE_MSG_CAP];
};

/*
 * The verdict on @a, answered with HTTP @status over HTTP/2 or not (@http2), for an OTLP/gRPC
 * request (@grpc) or an OTLP/HTTP one carrying @spans spans. @now_s (wall clock, seconds)
 * dates Retry-After.
 */
void export_wire_verdict(const struct export_wire_answer *a, bool grpc, long status, bool http2,
			 size_t spans, int64_t now_s, struct export_wire_verdict *v);

/*
 * @url (@len bytes, need not be NUL-terminated) as it may be logged, into @out: printable,
 * userinfo shown as "user:***@" (or "***@" when it has no password: a lone user may be a
 * token), a query as "?***", no fragment. Works on anything, a URL that does not parse or a
 * relative reference included.
 */
void export_wire_redact_url(const char *url, size_t len, char *out, size_t size);

#endif
