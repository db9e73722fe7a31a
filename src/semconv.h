/* SPDX-License-Identifier: MIT */
/*
 * semconv: what a CLN span is, in OpenTelemetry's terms. Pure and table-driven (semconv.c
 * holds the tables and says why each rule is so). From a span's name it gives a class, and
 * from the class a span kind and the tag renames:
 *
 *   span name                 class          kind      tags                   added
 *   lightningd/jsonrpc        RPC_SERVER     SERVER    method -> rpc.method   rpc.system.name
 *   jsonrpc                   RPC_CLIENT     CLIENT    method -> rpc.method   rpc.system.name
 *                                                      id -> jsonrpc.request.id  rpc.method*
 *   plugin/<anything>         PLUGIN_CALL    CLIENT    method -> rpc.method   rpc.system.name
 *   db_<anything>             DB             CLIENT    query -> db.query.text db.system.name**
 *   anything else             OTHER          INTERNAL  unchanged
 *
 *   *  rpc.method derived from the request id when the span has no method tag and the id
 *      names exactly one method (semconv_method_from_id);
 *   ** only when the node's wallet is known (sqlite or postgresql).
 *
 * A span.kind tag still wins over the kind (otlp.c). Unknown tags keep their names;
 * --raw-tags keeps every name as CLN wrote it and adds nothing, but kinds are still set.
 */
#ifndef CLN_OTLP_SEMCONV_H
#define CLN_OTLP_SEMCONV_H

#include <stdbool.h>
#include <stddef.h>

/* OTLP's SpanKind values (opentelemetry/proto/trace/v1/trace.proto). */
enum semconv_kind {
	SEMCONV_KIND_INTERNAL = 1,
	SEMCONV_KIND_SERVER = 2,
	SEMCONV_KIND_CLIENT = 3,
};

enum semconv_class {
	SEMCONV_OTHER = 0,
	SEMCONV_RPC_SERVER,  /* lightningd serving a JSON-RPC command */
	SEMCONV_RPC_CLIENT,  /* a plugin's call to lightningd */
	SEMCONV_PLUGIN_CALL, /* lightningd calling into a plugin (hook, command, notification) */
	SEMCONV_DB,	     /* lightningd's wallet database */
};

#define SEMCONV_RPC_SYSTEM    "jsonrpc"
#define SEMCONV_ATTR_RPC_SYS  "rpc.system.name"
#define SEMCONV_ATTR_RPC_METH "rpc.method"
#define SEMCONV_ATTR_DB_SYS   "db.system.name"
#define SEMCONV_METHOD_MAX    128 /* a derived method this long or longer is not derived */

enum semconv_class semconv_class_of(const char *name, size_t len);
enum semconv_kind semconv_kind_of(enum semconv_class cls);
/* The spans that carry rpc.system.name = jsonrpc. */
bool semconv_is_rpc(enum semconv_class cls);
/* The attribute name of tag @key (@len bytes) on a span of @cls; NULL: unchanged. */
const char *semconv_rename(enum semconv_class cls, const char *key, size_t len);

/*
 * The method a plugin's request id names. CLN's ids are "<origin>/<plugin>:<method>#<n>"
 * chains, e.g. "cln:init#24/autoclean:listconfigs#9" (the last '/'-component is this call;
 * the ones before it, the calls that led to it). The method is taken only from a last
 * component of exactly the form <plugin>:<method>#<digits>, with one ':' and one '#', a
 * non-empty plugin and method free of '/', ':', '#' and whitespace, and shorter than
 * SEMCONV_METHOD_MAX; anything else is ambiguous and gives nothing (false).
 */
bool semconv_method_from_id(const char *id, size_t len, const char **method, size_t *mlen);

#endif
