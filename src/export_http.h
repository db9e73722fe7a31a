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

#endif
