/* SPDX-License-Identifier: MIT */
/*
 * endpoint: where OTLP requests go. The request URL is built from --endpoint (or
 * OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT) with libcurl's URL API, never by pasting strings: the
 * signal path goes into the path, a query string stays the query, gRPC's method replaces any
 * path. Also the form shown in messages (scheme://host:port: no credentials, path or query).
 * Pure: no I/O.
 */
#ifndef CLN_OTLP_ENDPOINT_H
#define CLN_OTLP_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

/* The OTLP/gRPC Export method's path, and the OTLP/HTTP signal path. */
#define ENDPOINT_GRPC_PATH   "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define ENDPOINT_TRACES_PATH "v1/traces"

/* Where requests go. */
struct endpoint_url {
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
 * string stays the query. Returns 0 (release @out with endpoint_url_release), or a
 * negative errno with a message in @err.
 */
int endpoint_url_parse(const char *endpoint, bool grpc, bool append, bool insecure,
		       struct endpoint_url *out, char *err, size_t err_size);
void endpoint_url_release(struct endpoint_url *url);

#endif
