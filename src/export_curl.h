/* SPDX-License-Identifier: MIT */
/*
 * export_curl: libcurl's multi socket API in the process's event loop (loop.h). curl says
 * which sockets to watch and when its timer is due; the loop tells curl when a socket is
 * ready or the timer fired; each finished transfer goes back to the owner. Nothing blocks,
 * no thread of ours. One multi handle keeps the connections: HTTP/1.1 keep-alive, or one
 * HTTP/2 connection multiplexing every request.
 */
#ifndef CLN_OTLP_EXPORT_CURL_H
#define CLN_OTLP_EXPORT_CURL_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "loop.h"

struct export_curl;

/*
 * At most @max_connections connections, kept for reuse; with @multiplex, requests share an
 * HTTP/2 connection. @done is called for each finished transfer with curl's result, the
 * handle already out of the multi handle (so @done may start it again). NULL when out of
 * memory or file descriptors.
 */
struct export_curl *export_curl__new(struct loop *loop, unsigned max_connections, bool multiplex,
				     void (*done)(void *ctx, CURL *easy, CURLcode result),
				     void *ctx);
/* Closes every connection. The easy handles stay their owner's to clean up. */
void export_curl__free(struct export_curl *c);

/* Start @easy. Returns 0, or -EIO with curl's reason in *why. */
int export_curl_add(struct export_curl *c, CURL *easy, const char **why);
/* Stop @easy without a done() call (nothing happens if it is not running). */
void export_curl_remove(struct export_curl *c, CURL *easy);

#endif
