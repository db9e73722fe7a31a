/* SPDX-License-Identifier: MIT */
/*
 * node_info: one node for every span. Ask the lightningd whose lightning-rpc is named by
 * --rpc-file, or found under the user's ~/.lightning (trace files: they name no live
 * process), with getinfo, and add the answer to the resource of every span:
 *   service.version      result.version  ("v24.11")
 *   cln.node.id          result.id       (the node id; the encoder derives each
 *                                         process's service.instance.id from it)
 *   cln.alias            result.alias
 *   cln.network          result.network
 * Live sources without --rpc-file give each node its own identity instead (nodes.h).
 * Asked once at start and again whenever lightningd restarts (its socket file gets a new
 * inode, or it closes our connection). Everything runs in the loop on a non-blocking socket
 * (getinfo.h); the only wait is a short one at start-up, before any source is open
 * (node_info__new). Without a socket the spans simply go without these attributes.
 */
#ifndef CLN_OTLP_NODE_INFO_H
#define CLN_OTLP_NODE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "getinfo.h"
#include "loop.h"
#include "otlp.h"

struct node_info;

struct node_info_cfg {
	const char *rpc_file;	  /* --rpc-file: only this socket; NULL: look under home */
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

/*
 * For --check: true when the node answered getinfo (its identity in @ident). @where gets the
 * socket asked ("" when none was found), @why what went wrong last (the places looked at when
 * no socket was found, a refused connection, no answer in time, a bad answer).
 */
bool node_info_answered(const struct node_info *ni, struct getinfo_ident *ident, char *where,
			size_t where_size, char *why, size_t why_size);

#endif
