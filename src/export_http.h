/* SPDX-License-Identifier: MIT */
/*
 * export_http: the OTLP exporter over HTTP (protobuf or JSON) and gRPC: request slots, the
 * retry policy driven per batch, transport failures and TLS hints, set-up. Its helpers:
 * export_curl (libcurl in the loop) and export_wire (request bodies, answers, verdicts).
 * Only the export_* modules include curl.
 */
#ifndef CLN_OTLP_EXPORT_HTTP_H
#define CLN_OTLP_EXPORT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "export.h"
#include "loop.h"
#include "otlp.h"

/*
 * @res must outlive the exporter. Returns NULL with a message in @err (bad endpoint,
 * unreadable certificate, curl without HTTP/2 for grpc...).
 */
struct exporter *export_http__new(struct loop *loop, const struct config *cfg,
				  const struct otlp_resource_cfg *res, char *err, size_t err_size);

/*
 * After the privilege drop: with --spool, can the process, as it now is, write the spool
 * directory (spool_check_access)? 0 when it can or there is no spool, else a negative
 * errno with a message in @err saying what to do. @ex must be an export_http__new() one.
 */
int export_http_spool_check(struct exporter *ex, char *err, size_t err_size);

/*
 * --check: send one empty ExportTraceServiceRequest to the collector as the exporter would
 * (URL, protocol, headers, TLS, timeout) and wait for the answer. Returns 0 when it was
 * accepted with a valid OTLP answer, else a negative errno; either way @msg says what
 * happened (the collector's scheme://host:port first; no credentials), and on failure,
 * after " — ", what to do. Blocks up to the request timeout.
 */
int export_http_check(const struct config *cfg, char *msg, size_t msg_size);

/* Where requests go. */
struct export_http_url {
	char *url;	     /* the request URL */
	char *display;	     /* scheme://host:port, for messages (no credentials, path or query) */
	bool tls;	     /* https */
	bool path_ignored;   /* gRPC: the endpoint had a path, replaced by the method's */
	bool signal_doubled; /* OTLP/HTTP: the path holds /v1/traces/v1/traces */
};

/*
 * Build the request URL from @endpoint (http:// or https://; for gRPC also host:port, TLS
 * unless @insecure). OTLP/gRPC (@grpc) sends to the Export method's path at the host and
 * port: any path of the endpoint is replaced (out->path_ignored says so). OTLP/HTTP appends
 * /v1/traces to the path when @append (OTEL_EXPORTER_OTLP_ENDPOINT: a path ending in '/'
 * keeps one) and takes the endpoint as it is otherwise (the _TRACES_ variant). A query
 * string stays the query. Returns 0 (release @out with export_http_url_release), or a
 * negative errno with a message in @err.
 */
int export_http_url(const char *endpoint, bool grpc, bool append, bool insecure,
		    struct export_http_url *out, char *err, size_t err_size);
void export_http_url_release(struct export_http_url *url);

#endif
