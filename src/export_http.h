/* SPDX-License-Identifier: MIT */
/*
 * export_http: the OTLP exporter over HTTP (protobuf or JSON) and gRPC: request slots, the
 * retry policy driven per batch, transport failures and TLS hints, set-up. Its helpers:
 * export_curl (libcurl in the loop) and export_wire (request bodies, answers, verdicts).
 * Only the export_* modules include curl.
 */
#ifndef CLN_OTLP_EXPORT_HTTP_H
#define CLN_OTLP_EXPORT_HTTP_H

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

#endif
