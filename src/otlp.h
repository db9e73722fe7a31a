/* SPDX-License-Identifier: MIT */
/*
 * otlp: spans -> OTLP ExportTraceServiceRequest, as protobuf (protobuf-c) or OTLP/JSON.
 * Pure: no I/O. The mapping follows the OpenTelemetry Collector's Zipkin v2 translator,
 * with CLN's exceptions (README, "Mapping"):
 *   - 16-hex traceIds: zeros in bytes 0-7, the value in bytes 8-15;
 *   - tag error="true" -> status ERROR, attribute removed; error="false" -> status UNSET,
 *     attribute kept (CLN plugins tag every RPC error:"false");
 *   - otel.status_code / otel.status_description tags -> status; span.kind tag -> kind;
 *   - suspend/resume -> span events "cln.suspend" / "cln.resume";
 *   - the span's kind from its name, CLN's tags under the semantic conventions' names
 *     (semconv.h; --raw-tags keeps CLN's names).
 * One ResourceSpans per (service.name, process); one ScopeSpans "cln-otlp" in each. Each
 * resource key appears once (otlp_resource_attrs says which value wins), and a process of
 * a known node (cln.node.id) gets a service.instance.id of its own, a UUIDv5.
 * The other way, it decodes what a collector answers: ExportTraceServiceResponse (partial
 * success), google.rpc.Status and the google.rpc.RetryInfo among its details. Only this
 * module includes protobuf-c.
 */
#ifndef CLN_OTLP_OTLP_H
#define CLN_OTLP_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "span.h"

#define OTLP_SCOPE_NAME "cln-otlp"

struct otlp_kv {
	const char *key;
	const char *value;
};

/* Process-wide resource settings, shared by every ResourceSpans. */
struct otlp_resource_cfg {
	const char *service_name;    /* OTEL_SERVICE_NAME; NULL: the span's serviceName */
	const char *host_name;	     /* host.name; NULL: omitted */
	const struct otlp_kv *attrs; /* OTEL_RESOURCE_ATTRIBUTES and node identity */
	size_t n_attrs;
	/*
	 * The attributes of the node process @pid belongs to (nodes.h), looked up as each
	 * request is encoded; a key already in @attrs is left out (configuration wins).
	 * NULL: none.
	 */
	size_t (*proc_attrs)(void *ctx, uint32_t pid, const struct otlp_kv **attrs);
	/*
	 * The wallet database of the node process @pid belongs to, "sqlite" or "postgresql"
	 * (db.system.name of its db_* spans), or NULL when not known. NULL: never known.
	 */
	const char *(*db_system)(void *ctx, uint32_t pid);
	void *proc_ctx; /* of both */
	bool raw_tags;	/* --raw-tags: CLN's tag names, nothing added (kinds still set) */
};

/* The most one encoded request may take (gRPC frames a message length in 32 bits). */
#define OTLP_BUF_MAX ((size_t)UINT32_MAX)

/* An encoded request, reused across batches (with the encoder's scratch). */
struct otlp_buf {
	struct buf bytes;
	struct otlp_pb_mem
		*pb_scratch; /* the protobuf encoder's structs, kept for the next batch */
};

#define OTLP_BUF_INIT                                               \
	{                                                           \
		.bytes = BUF_INIT(OTLP_BUF_MAX), .pb_scratch = NULL \
	}

void otlp_buf_init(struct otlp_buf *buf);
void otlp_buf_release(struct otlp_buf *buf);

/*
 * Encode @n spans as one ExportTraceServiceRequest into @out (replacing its contents).
 * Returns 0, or -ENOMEM. Spans are grouped by resource in order of first appearance.
 */
int otlp_encode_pb(const struct otlp_resource_cfg *cfg, struct span *const *spans, size_t n,
		   struct otlp_buf *out);
/* Same, as one line of OTLP/JSON (no newline). */
int otlp_encode_json(const struct otlp_resource_cfg *cfg, struct span *const *spans, size_t n,
		     struct otlp_buf *out);

enum otlp_status_code {
	OTLP_STATUS_UNSET = 0,
	OTLP_STATUS_OK = 1,
	OTLP_STATUS_ERROR = 2,
};

struct otlp_status {
	enum otlp_status_code code;
	const struct span_str *message; /* NULL: none (only an ERROR carries one) */
	uint32_t consumed;		/* bit i: tag i became the status, not an attribute */
};

/*
 * The status the mapping gives a span, the one rule every exporter shows: error="true" (or
 * any value but "false") is ERROR with that value as the message; error="false" stays an
 * attribute; otel.status_code (ERROR, OK, UNSET in any case) wins over the error tag;
 * otel.status_description is the message.
 */
void otlp_status_of(const struct span *s, struct otlp_status *st);

/*
 * Decode an ExportTraceServiceResponse (partial success). Returns 0 and the rejected count
 * and message (truncated to @msg_size), or -EBADMSG.
 */
int otlp_decode_response(const uint8_t *data, size_t len, int64_t *rejected, char *msg,
			 size_t msg_size);
/* Decode a google.rpc.Status body into its message (truncated). Returns 0 or -EBADMSG. */
int otlp_decode_rpc_status(const uint8_t *data, size_t len, char *msg, size_t msg_size);
/*
 * Find the first google.rpc.RetryInfo among the details (google.protobuf.Any) of a serialized
 * google.rpc.Status (gRPC's grpc-status-details-bin, base64-decoded). Returns 0 and its
 * retry_delay (zero when it has none), -ENOENT when no detail is a RetryInfo, or -EBADMSG;
 * the outputs are untouched unless it returns 0.
 */
int otlp_decode_retry_info(const uint8_t *data, size_t len, int64_t *seconds, int32_t *nanos);

#endif
