/* SPDX-License-Identifier: MIT */
/*
 * nodes: one identity per node. Live sources (eBPF, the socket) tell which process each
 * span came from; this module finds which lightningd that process belongs to (itself, or
 * the lightningd that started it: subdaemons and C plugins are its children), asks that
 * lightningd's own lightning-rpc for getinfo, and gives the spans of all its processes
 * that node's resource attributes:
 *   service.version, cln.node.id (the node id), cln.alias, cln.network          (getinfo)
 *   container.id                                                (when it runs in one)
 * (the encoder derives each process's service.instance.id from cln.node.id, otlp.c), and
 * the db.system.name of its db_* spans: the wallet its command line names (finder_wallet),
 * through res->db_system. An attribute set by configuration (OTEL_RESOURCE_ATTRIBUTES) wins
 * over the node's.
 *
 * What needs privileges (reading another user's /proc/PID/{exe,root,cwd,environ},
 * connecting to a 0600 lightning-rpc) is done by the finder helper (finder.h), forked at
 * start-up with those two capabilities only; it hands over a connected socket and this
 * process, with none of them, has the getinfo conversation (getinfo.h). Only a process whose
 * binary carries the lightningd:span_emit probe is trusted as a node (a process merely
 * named lightningd is not), and only a socket owned by that node's user is asked.
 *
 * Processes are watched with a pidfd each: when one exits, its entry is kept for a while
 * (its last spans are still queued and are encoded with its identity), and a span from the
 * same pid afterwards is looked up again (the pid may be another process's now). A node is
 * asked again when it closes our connection while it still runs; once it exits, it is
 * never asked again, and a new lightningd on the same binary is a new node.
 *
 * Every table is bounded (NODES_MAX_PROCS processes, NODES_MAX_NODES nodes); what does not
 * fit goes without identity, counted.
 */
#ifndef CLN_OTLP_NODES_H
#define CLN_OTLP_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finder.h"
#include "loop.h"
#include "otlp.h"

#define NODES_MAX_PROCS 1024
#define NODES_MAX_NODES 64
#define NODES_KEEP_MS	(10 * 60 * 1000) /* an exited process's identity stays this long */
#define NODES_HOLD_MS	5000		 /* spans of a new node wait this long for its getinfo */

struct nodes;

/*
 * Takes @helper (NULL: the finder runs in this process, with its privileges: --check, or
 * a run that stays root). The attributes @res holds stay first and win; spans' node
 * attributes come through res->proc_attrs and res->db_system from now on (until
 * nodes__free).
 */
struct nodes *nodes__new(struct loop *loop, struct finder_helper *helper,
			 struct otlp_resource_cfg *res);
void nodes__free(struct nodes *n);

/* A span (or an exec) from process @pid: look it up if it is new. Cheap when known. */
void nodes_saw(struct nodes *n, uint32_t pid);
/*
 * The pipeline asks before it sends a batch: true while a node seen for the first time
 * less than NODES_HOLD_MS ago is still being asked (its start-up spans should carry its
 * identity); @until_ms says when to ask again.
 */
bool nodes_hold(struct nodes *n, uint64_t now_ms, uint64_t *until_ms);
/* Nothing is being asked (--check waits for this). */
bool nodes_settled(const struct nodes *n);
/* How many lightningd processes were seen (counters are in stats.h: nodes_identified...). */
size_t nodes_seen(const struct nodes *n);

/* For --check: call @cb for every node known, with its identity once answered. */
struct nodes_view {
	uint32_t pid;
	const char *shown;		   /* its socket, or "" */
	const char *why;		   /* what went wrong last, or "" */
	const struct getinfo_ident *ident; /* NULL: not answered */
	const char *container_id;	   /* "" when none */
};
void nodes_for_each(const struct nodes *n, void (*cb)(void *ctx, const struct nodes_view *v),
		    void *ctx);

#endif
