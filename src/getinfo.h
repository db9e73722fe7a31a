/* SPDX-License-Identifier: MIT */
/*
 * getinfo: one JSON-RPC getinfo conversation with lightningd over a unix stream socket that
 * is connected, or being connected: send the request, read the answer as it arrives in
 * pieces, parse it, then keep the connection open to hear lightningd go away (it closes
 * every connection when it stops). Non-blocking and driven by the loop; the owner finds
 * the socket (node_info: a path; nodes: a descriptor from the finder helper), checks the
 * deadline from its own timer, and decides when to ask again.
 */
#ifndef CLN_OTLP_GETINFO_H
#define CLN_OTLP_GETINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "loop.h"

#define GETINFO_MAX_ANSWER (1u << 20) /* bytes of answer read, at most */
#define GETINFO_TIMEOUT_MS 10000      /* connect, ask and hear the answer within this */

/* A node's identity, as found in a getinfo answer (empty strings when absent). */
struct getinfo_ident {
	char id[80];
	char alias[128];
	char network[32];
	char version[64];
};

/*
 * What the conversation tells its owner. Each call is the last thing the conversation does
 * in that turn of the loop, so the owner may free it from inside @failed and @closed.
 */
struct getinfo_ops {
	/* lightningd answered; the connection stays open. */
	void (*answered)(void *ctx, const struct getinfo_ident *ident);
	/*
	 * The attempt failed before an answer: @err is the errno (0 when the answer was bad),
	 * @why says what happened (no trailing period).
	 */
	void (*failed)(void *ctx, int err, const char *why);
	/* lightningd closed the connection after answering: it stopped or restarts. */
	void (*closed)(void *ctx, int err);
};

struct getinfo;

/*
 * Ask over @fd (a non-blocking AF_UNIX stream socket, owned from now on; @connecting when its
 * connect() is still in progress), with request id "cln-otlp:getinfo#@seq". Returns NULL
 * (and closes @fd) when out of memory or the loop cannot watch it.
 */
struct getinfo *getinfo__new(struct loop *loop, int fd, bool connecting, unsigned seq,
			     const struct getinfo_ops *ops, void *ctx);
/* Close the connection; NULL is fine. */
void getinfo__free(struct getinfo *g);

/* Still waiting for the answer (and when it is due, CLOCK_MONOTONIC ms). */
bool getinfo_waiting(const struct getinfo *g, uint64_t *deadline_ms);
/*
 * Start-up and --check only: drive the conversation with poll() until it is answered or
 * fails, at most @ms. Returns true once answered (the callbacks have run as usual).
 */
bool getinfo_wait(struct getinfo *g, uint64_t ms);

/*
 * Where a JSON object ends in a stream that arrives in pieces: feed each new piece (the
 * whole buffer so far; the scanner remembers where it stopped). Exposed for tests.
 */
struct getinfo_scan {
	size_t pos;	/* bytes already scanned */
	unsigned depth; /* nesting of {} and [] */
	bool started, in_string, escaped;
};
/* 1: an object ends at buf[s->pos - 1]; 0: need more; -EBADMSG: not a JSON object. */
int getinfo_scan(struct getinfo_scan *s, const char *buf, size_t len);

/*
 * Read a getinfo answer (one JSON object). Returns 0 with @out filled, -EPROTO when
 * lightningd answered with an error (its message in @err), -EBADMSG when the answer is not
 * a getinfo result (what is wrong in @err). Strings are cut to their field's size at a
 * UTF-8 boundary; invalid UTF-8 and control characters become '?'. @want_id: the request
 * id the answer must carry (NULL: any).
 */
int getinfo_parse(const char *json, size_t len, const char *want_id, struct getinfo_ident *out,
		  char *err, size_t err_size);

#endif
