/* SPDX-License-Identifier: MIT */
/*
 * source_socket: a unix datagram socket for CLN's CLN_TRACE_SOCKET (v26.06+): one JSON
 * array per datagram, sent non-blocking by lightningd and its plugins. The sender's pid
 * comes with each datagram (SO_PASSCRED), so spans are grouped per process as with eBPF.
 * No privileges needed.
 */
#ifndef CLN_OTLP_SOURCE_SOCKET_H
#define CLN_OTLP_SOURCE_SOCKET_H

#include <stddef.h>

#include "loop.h"
#include "pipeline.h"

struct source_socket;

/*
 * Bind @path (a stale socket file left by an earlier run is replaced; any other file is
 * not). Returns NULL with a message in @err.
 */
struct source_socket *source_socket__new(struct loop *loop, struct pipeline *p, const char *path,
					 char *err, size_t err_size);
/* Stop receiving; NULL is fine. */
void source_socket_stop(struct source_socket *src);
/* Close and unlink the socket; NULL is fine. */
void source_socket__free(struct source_socket *src);

#endif
