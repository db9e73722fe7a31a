/* SPDX-License-Identifier: MIT */
/*
 * source_socket: a unix datagram socket for CLN's CLN_TRACE_SOCKET (v26.06+): one JSON
 * array per datagram, sent non-blocking by lightningd and its plugins. The sender's pid
 * and uid come with each datagram (SO_PASSCRED), so spans are grouped per process as with
 * eBPF and carry process.user.id. No privileges needed (root may raise the namespace's
 * datagram queue length and give the file another group).
 */
#ifndef CLN_OTLP_SOURCE_SOCKET_H
#define CLN_OTLP_SOURCE_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "pipeline.h"

struct source_socket;

struct config;

/*
 * Bind cfg->socket_path with cfg->socket_mode and cfg->socket_group (a stale socket file left
 * by an earlier run is replaced; a socket another process receives on, or any other file,
 * is not), raising net.unix.max_dgram_qlen first if it is low and may be raised (else a
 * warning). Only cfg->socket_allow_uids' senders are taken, when given. Returns NULL with a
 * message in @err.
 */
struct source_socket *source_socket__new(struct loop *loop, const struct config *cfg,
					 struct pipeline *p, char *err, size_t err_size);
/*
 * net.unix.max_dgram_qlen: the datagrams a unix socket holds (10 in a new network namespace);
 * source_socket__new raises it to this when it can.
 */
#define SOURCE_SOCKET_QLEN_TARGET 512
/* The value in this network namespace into *@qlen: 0, or -1 when it cannot be read. */
int source_socket_qlen_read(long *qlen);
/* Whether this process may write it (root in the namespace's owning user namespace). */
bool source_socket_qlen_raisable(void);
/*
 * For --check, changing nothing: could source_socket__new bind @path? Its directory must
 * be writable and the path free (nothing there, or a socket nobody receives on any more).
 * Returns 0, or -1 with why and what to do in @err.
 */
int source_socket_check_path(const char *path, char *err, size_t err_size);

/* Stop receiving; NULL is fine. */
void source_socket_stop(struct source_socket *src);
/* Close, and unlink the socket file if the path still names it; NULL is fine. */
void source_socket__free(struct source_socket *src);

#endif
