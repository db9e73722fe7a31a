/* SPDX-License-Identifier: MIT */
/*
 * node_info: ask lightningd who it is (JSON-RPC getinfo over its lightning-rpc unix socket)
 * and add the answer to the resource of every span:
 *   service.version      result.version  ("v24.11")
 *   service.instance.id  result.id       (the node id)
 *   cln.alias            result.alias
 *   cln.network          result.network
 * Asked once at start and again whenever lightningd restarts (its socket file gets a new
 * inode, or it closes our connection). Everything runs in the loop on a non-blocking socket;
 * the only wait is a short one at start-up, before any source is open (node_info__new).
 * Without a socket the spans simply go without these attributes.
 */
#ifndef CLN_OTLP_NODE_INFO_H
#define CLN_OTLP_NODE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "otlp.h"

#define NODE_INFO_MAX_ANSWER (1u << 20) /* bytes of getinfo answer read, at most */

struct node_info;

struct node_info_cfg {
	const char *rpc_file; /* --rpc-file: only this socket; NULL: look for it */
	bool find_lightningd; /* eBPF source: look in the home of the user running lightningd */
	const uint32_t *pids; /* --pid: processes (lightningd or its plugins) to look at first */
	size_t n_pids;
	const char *home;	  /* the invoking user's home; NULL: $HOME, else the password db */
	uint64_t startup_wait_ms; /* how long __new waits for the first answer (0: not at all) */
};

/*
 * Start watching for lightningd's socket and ask it. From now on @res->attrs and
 * @res->n_attrs point at an array this object owns: the attributes @res held on entry,
 * then the node's (an attribute already set on entry, e.g. by OTEL_RESOURCE_ATTRIBUTES,
 * wins). Waits at most cfg->startup_wait_ms for the first answer, so the first batch
 * carries the identity; a slower node is still heard later from the loop.
 * Returns NULL only when out of memory (or the loop cannot take a timer).
 */
struct node_info *node_info__new(struct loop *loop, const struct node_info_cfg *cfg,
				 struct otlp_resource_cfg *res);
/* Close the connection and give @res its original attributes back; NULL is fine. */
void node_info__free(struct node_info *ni);

/* The node's identity, as found in a getinfo answer (empty strings when absent). */
struct node_info_ident {
	char id[80];
	char alias[128];
	char network[32];
	char version[64];
};

/*
 * For --check: true when the node answered getinfo (its identity in @ident). @where gets the
 * socket asked ("" when none was found), @why what went wrong last (the places looked at when
 * no socket was found, a refused connection, no answer in time, a bad answer).
 */
bool node_info_answered(const struct node_info *ni, struct node_info_ident *ident, char *where,
			size_t where_size, char *why, size_t why_size);

/*
 * Where a JSON object ends in a stream that arrives in pieces: feed each new piece (the
 * whole buffer so far; the scanner remembers where it stopped). Exposed for tests.
 */
struct node_info_scan {
	size_t pos;	/* bytes already scanned */
	unsigned depth; /* nesting of {} and [] */
	bool started, in_string, escaped;
};
/* 1: an object ends at buf[s->pos - 1]; 0: need more; -EBADMSG: not a JSON object. */
int node_info_scan(struct node_info_scan *s, const char *buf, size_t len);

/*
 * Read a getinfo answer (one JSON object). Returns 0 with @out filled, -EPROTO when
 * lightningd answered with an error (its message in @err), -EBADMSG when the answer is not
 * a getinfo result (what is wrong in @err). Strings are cut to their field's size at a
 * UTF-8 boundary; invalid UTF-8 and control characters become '?'. @want_id: the request
 * id the answer must carry (NULL: any).
 */
int node_info_parse(const char *json, size_t len, const char *want_id, struct node_info_ident *out,
		    char *err, size_t err_size);

#endif
