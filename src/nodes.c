// SPDX-License-Identifier: MIT
#include "nodes.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "getinfo.h"
#include "log.h"
#include "stats.h"

#define NODES_TICK_MS	     1000 /* a busy finder helper is asked again this much later */
#define NODES_BACKOFF_MS     2000 /* first wait before asking a node again, doubled up to... */
#define NODES_BACKOFF_MAX_MS 60000
#define NODES_N_ATTRS	     5
#define NODES_YOUNG_MS	     30000 /* a node this young is asked again every... */
#define NODES_YOUNG_RETRY_MS 1000
#define NODES_RECHECK_MS     1000 /* an exited pid's spans: asked again at most this often */

enum nodes_proc_state {
	NP_FREE = 0,
	NP_QUEUED, /* to be asked who it is (the helper's socket was full) */
	NP_ASKING, /* asked, no answer yet */
	NP_KNOWN,  /* answered: node >= 0, or no node (untrusted, no lightningd) */
};

struct nodes_proc {
	struct nodes *owner;
	uint32_t pid;
	uint8_t state;	/* enum nodes_proc_state */
	bool exited;	/* its pidfd said so */
	bool recheck;	/* a span came after it exited: asked again (the pid may be reused) */
	int pidfd;	/* -1: none (exited, or no pidfd) */
	int node;	/* index into nodes[], -1: none */
	uint64_t start; /* its start time, as the finder saw it */
	uint64_t at_ms; /* when asked; when it exited */
};

struct nodes_node {
	struct nodes *owner;
	bool used;
	uint32_t pid; /* lightningd */
	uint64_t start;
	char container_id[FINDER_ID_SIZE];
	char wallet[FINDER_WALLET_SIZE]; /* "sqlite", "postgresql"; "" until CONNECT said */
	struct getinfo_ident ident;
	bool have_ident;
	struct otlp_kv attrs[NODES_N_ATTRS];
	size_t n_attrs;
	struct getinfo *conv;
	bool connecting; /* CONNECT asked of the finder, no answer yet */
	bool exited;
	bool told; /* the last failure was logged at info level */
	int pidfd;
	unsigned queries;
	uint64_t first_ms, exited_ms, retry_at_ms, backoff_ms;
	char shown[FINDER_SHOWN_SIZE];
	char why[FINDER_WHY_SIZE];
};

struct nodes {
	struct loop *loop;
	struct loop_timer *timer;
	struct otlp_resource_cfg *res;
	struct finder_helper *helper; /* NULL: in process (finder) */
	struct finder *finder;
	bool helper_gone;
	uint32_t seq;
	struct nodes_proc procs[NODES_MAX_PROCS];
	size_t n_procs;	 /* high-water mark of procs[] in use */
	size_t last_hit; /* procs[] index of the last lookup: spans come in runs */
	struct nodes_node nodes[NODES_MAX_NODES];
	size_t n_seen; /* lightningd processes seen (--check) */
	bool told_untrusted, told_full;
	uint64_t tick_at_ms; /* when the armed tick fires */
};

static void nodes_send(struct nodes *n, uint32_t op, uint32_t pid, uint64_t start);
static void nodes_schedule(struct nodes *n);

/* ---- pidfds ------------------------------------------------------------------------ */

/* A descriptor that becomes readable when @pid exits (Linux 5.3); -1 when there is none. */
static int nodes_pidfd(struct nodes *n, uint32_t pid, loop_fd_cb cb, void *ctx)
{
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);

	if (fd < 0)
		return -1;
	if (loop_add(n->loop, fd, EPOLLIN, cb, ctx) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void nodes_close_pidfd(struct nodes *n, int *fd)
{
	if (*fd < 0)
		return;
	loop_del(n->loop, *fd);
	close(*fd);
	*fd = -1;
}

/* ---- nodes ------------------------------------------------------------------------- */

static void nodes_rebuild(struct nodes_node *nd)
{
	const struct otlp_kv kv[NODES_N_ATTRS] = {
		{"service.version", nd->ident.version}, {"cln.node.id", nd->ident.id},
		{"cln.alias", nd->ident.alias},		{"cln.network", nd->ident.network},
		{"container.id", nd->container_id},
	};

	nd->n_attrs = 0;
	for (size_t i = 0; i < NODES_N_ATTRS; i++)
		if (kv[i].value[0] && (nd->have_ident || i == NODES_N_ATTRS - 1))
			nd->attrs[nd->n_attrs++] = kv[i];
}

static void nodes_close_conv(struct nodes_node *nd)
{
	getinfo__free(nd->conv);
	nd->conv = NULL;
}

/*
 * Ask again later: every second while a node is young and unanswered (lightningd opens its
 * socket a while after it starts, and its start-up spans wait for its identity), then
 * backing off.
 */
static uint64_t nodes_retry_later(struct nodes_node *nd)
{
	uint64_t now = clock_mono_ms(), wait = nd->backoff_ms;

	if (!nd->have_ident && now - nd->first_ms < NODES_YOUNG_MS) {
		wait = NODES_YOUNG_RETRY_MS;
	} else {
		nd->backoff_ms *= 2;
		if (nd->backoff_ms > NODES_BACKOFF_MAX_MS)
			nd->backoff_ms = NODES_BACKOFF_MAX_MS;
	}
	nd->retry_at_ms = now + wait;
	return wait;
}

/* A failure to reach the node: said once at info level (until it answers), then debug. */
static void nodes_node_failed(struct nodes_node *nd, const char *why)
{
	uint64_t wait;

	snprintf(nd->why, sizeof(nd->why), "%s", why);
	nodes_close_conv(nd);
	if (nd->exited)
		return;
	wait = nodes_retry_later(nd);
	log_msg(nd->told ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		"lightningd pid %u: no node identity yet (%s); asking again in %.1f s", nd->pid,
		why, (double)wait / 1000);
	nd->told = true;
	nodes_schedule(nd->owner);
}

static void nodes_on_answer(void *ctx, const struct getinfo_ident *ident)
{
	struct nodes_node *nd = ctx;

	nd->why[0] = '\0';
	nd->told = false;
	nd->backoff_ms = NODES_BACKOFF_MS;
	if (nd->have_ident && !memcmp(&nd->ident, ident, sizeof(*ident)))
		return;
	if (!nd->have_ident)
		stats.nodes_identified++;
	log_info("node %s (alias \"%s\", %s, %s) answered at %s%s%s: the spans of lightningd pid "
		 "%u and its processes carry it",
		 ident->id, ident->alias, ident->network[0] ? ident->network : "network unknown",
		 ident->version[0] ? ident->version : "version unknown", nd->shown,
		 nd->container_id[0] ? ", container " : "", nd->container_id, nd->pid);
	nd->ident = *ident;
	nd->have_ident = true;
	nodes_rebuild(nd);
}

static void nodes_on_failed(void *ctx, int err, const char *why)
{
	struct nodes_node *nd = ctx;
	char msg[FINDER_WHY_SIZE];

	(void)err;
	snprintf(msg, sizeof(msg), "%s: %s", nd->shown, why);
	nodes_node_failed(nd, msg);
}

/* lightningd closed our connection: it stops (its pidfd tells soon) or restarts its RPC. */
static void nodes_on_closed(void *ctx, int err)
{
	struct nodes_node *nd = ctx;

	log_debug("lightningd pid %u closed its JSON-RPC connection (%s)", nd->pid,
		  err ? strerror(err) : "stopping?");
	nodes_close_conv(nd);
	nd->backoff_ms = NODES_BACKOFF_MS;
	nodes_retry_later(nd);
	nodes_schedule(nd->owner);
}

static const struct getinfo_ops nodes_gi_ops = {
	.answered = nodes_on_answer,
	.failed = nodes_on_failed,
	.closed = nodes_on_closed,
};

static void nodes_node_exited(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct nodes_node *nd = ctx;

	(void)loop;
	(void)fd;
	(void)events;
	nodes_close_pidfd(nd->owner, &nd->pidfd);
	nodes_close_conv(nd);
	nd->exited = true;
	nd->exited_ms = clock_mono_ms();
	log_debug("lightningd pid %u exited", nd->pid);
	nodes_schedule(nd->owner);
}

static struct nodes_node *nodes_node_find(struct nodes *n, uint32_t pid, uint64_t start)
{
	for (size_t i = 0; i < NODES_MAX_NODES; i++)
		if (n->nodes[i].used && n->nodes[i].pid == pid && n->nodes[i].start == start)
			return &n->nodes[i];
	return NULL;
}

static void nodes_node_free(struct nodes *n, struct nodes_node *nd)
{
	nodes_close_pidfd(n, &nd->pidfd);
	nodes_close_conv(nd);
	memset(nd, 0, sizeof(*nd));
	nd->pidfd = -1;
}

/* A slot for a new node: a free one, else the one that exited longest ago. */
static struct nodes_node *nodes_node_slot(struct nodes *n)
{
	struct nodes_node *old = NULL;

	for (size_t i = 0; i < NODES_MAX_NODES; i++) {
		struct nodes_node *nd = &n->nodes[i];

		if (!nd->used)
			return nd;
		if (nd->exited && (!old || nd->exited_ms < old->exited_ms))
			old = nd;
	}
	if (!old)
		return NULL;
	for (size_t i = 0; i < n->n_procs; i++)
		if (n->procs[i].node == old - n->nodes)
			n->procs[i].node = -1;
	nodes_node_free(n, old);
	return old;
}

static struct nodes_node *nodes_node_new(struct nodes *n, const struct finder_reply *r)
{
	struct nodes_node *nd = nodes_node_slot(n);

	if (!nd) {
		stats.node_table_full++;
		if (!n->told_full)
			log_warn("more than %d lightningd processes run: the spans of lightningd "
				 "pid %u go without node identity",
				 NODES_MAX_NODES, r->node_pid);
		n->told_full = true;
		return NULL;
	}
	nd->owner = n;
	nd->used = true;
	nd->pid = r->node_pid;
	nd->start = r->node_start;
	snprintf(nd->container_id, sizeof(nd->container_id), "%s", r->container_id);
	nd->first_ms = clock_mono_ms();
	nd->backoff_ms = NODES_BACKOFF_MS;
	nd->pidfd = nodes_pidfd(n, nd->pid, nodes_node_exited, nd);
	if (nd->pidfd < 0 && kill((pid_t)nd->pid, 0) < 0 && errno == ESRCH) {
		nd->exited = true;
		nd->exited_ms = nd->first_ms;
	}
	nodes_rebuild(nd);
	n->n_seen++;
	log_debug("lightningd pid %u%s%s: a node; asking its lightning-rpc who it is", nd->pid,
		  nd->container_id[0] ? " in container " : "", nd->container_id);
	return nd;
}

static void nodes_connect(struct nodes *n, struct nodes_node *nd)
{
	nd->connecting = true;
	nodes_send(n, FINDER_CONNECT, nd->pid, nd->start);
}

static void nodes_on_connect(struct nodes *n, const struct finder_reply *r, int fd)
{
	struct nodes_node *nd = NULL;

	for (size_t i = 0; i < NODES_MAX_NODES && !nd; i++)
		if (n->nodes[i].used && n->nodes[i].connecting && n->nodes[i].pid == r->pid)
			nd = &n->nodes[i];
	if (!nd) {
		if (fd >= 0)
			close(fd);
		return;
	}
	nd->connecting = false;
	/* its command line was read even when its socket was not reached */
	if (r->wallet[0])
		snprintf(nd->wallet, sizeof(nd->wallet), "%s", r->wallet);
	if (r->err || fd < 0) {
		if (fd >= 0)
			close(fd);
		nodes_node_failed(nd, r->why[0] ? r->why : strerror(-r->err));
		return;
	}
	snprintf(nd->shown, sizeof(nd->shown), "%s", r->shown);
	if (nd->exited) {
		close(fd);
		return;
	}
	nd->conv = getinfo__new(n->loop, fd, r->connecting, ++nd->queries, &nodes_gi_ops, nd);
	if (!nd->conv)
		nodes_node_failed(nd, "cannot watch the connection: out of memory");
	nodes_schedule(n); /* its getinfo has a deadline */
}

/* ---- processes ----------------------------------------------------------------------- */

static void nodes_proc_exited(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct nodes_proc *pr = ctx;

	(void)loop;
	(void)fd;
	(void)events;
	nodes_close_pidfd(pr->owner, &pr->pidfd);
	pr->exited = true;
	pr->at_ms = clock_mono_ms();
	nodes_schedule(pr->owner);
}

static struct nodes_proc *nodes_proc_find(struct nodes *n, uint32_t pid)
{
	if (n->last_hit < n->n_procs && n->procs[n->last_hit].pid == pid &&
	    n->procs[n->last_hit].state != NP_FREE)
		return &n->procs[n->last_hit];
	for (size_t i = 0; i < n->n_procs; i++) {
		if (n->procs[i].state != NP_FREE && n->procs[i].pid == pid) {
			n->last_hit = i;
			return &n->procs[i];
		}
	}
	return NULL;
}

static void nodes_proc_free(struct nodes *n, struct nodes_proc *pr)
{
	nodes_close_pidfd(n, &pr->pidfd);
	memset(pr, 0, sizeof(*pr));
	pr->pidfd = -1;
	pr->node = -1;
}

/* A free entry: unused, else the process that exited longest ago. */
static struct nodes_proc *nodes_proc_slot(struct nodes *n)
{
	struct nodes_proc *old = NULL;

	for (size_t i = 0; i < n->n_procs; i++)
		if (n->procs[i].state == NP_FREE)
			return &n->procs[i];
	if (n->n_procs < NODES_MAX_PROCS)
		return &n->procs[n->n_procs++];
	for (size_t i = 0; i < n->n_procs; i++) {
		struct nodes_proc *pr = &n->procs[i];

		if (pr->exited && pr->state == NP_KNOWN && (!old || pr->at_ms < old->at_ms))
			old = pr;
	}
	if (old)
		nodes_proc_free(n, old);
	return old;
}

static void nodes_on_who(struct nodes *n, const struct finder_reply *r)
{
	struct nodes_proc *pr = nodes_proc_find(n, r->pid);
	struct nodes_node *nd;

	if (!pr || pr->state != NP_ASKING)
		return; /* forgotten meanwhile */
	pr->state = NP_KNOWN;
	if (pr->recheck) {
		pr->recheck = false;
		if (r->err == -ESRCH || (!r->err && r->start == pr->start))
			return; /* no other process has the pid: late spans of the one we knew */
		/* Another process has that pid now: start afresh. */
		nodes_close_pidfd(n, &pr->pidfd);
		pr->exited = false;
		pr->node = -1;
	}
	pr->start = r->start;
	if (r->err) {
		stats.node_untrusted++;
		log_msg(n->told_untrusted ? LOG_LVL_DEBUG : LOG_LVL_INFO, "node identity: %s",
			r->why);
		n->told_untrusted = true;
		return;
	}
	if (pr->pidfd < 0) {
		pr->pidfd = nodes_pidfd(n, pr->pid, nodes_proc_exited, pr);
		/* No pidfd for a live process (out of descriptors): kept, its exit unseen. */
		if (pr->pidfd < 0 && kill((pid_t)pr->pid, 0) < 0 && errno == ESRCH) {
			pr->exited = true;
			pr->at_ms = clock_mono_ms();
		}
	}
	nd = nodes_node_find(n, r->node_pid, r->node_start);
	if (!nd) {
		nd = nodes_node_new(n, r);
		if (!nd)
			return;
		pr->node = (int)(nd - n->nodes);
		if (!nd->exited)
			nodes_connect(n, nd);
		return;
	}
	pr->node = (int)(nd - n->nodes);
}

/* ---- the finder ------------------------------------------------------------------------ */

static void nodes_on_reply(struct nodes *n, const struct finder_reply *r, int fd)
{
	if (r->op == FINDER_WHO)
		nodes_on_who(n, r);
	else if (r->op == FINDER_CONNECT)
		nodes_on_connect(n, r, fd);
	else if (fd >= 0)
		close(fd);
	nodes_schedule(n); /* a process or node known now may need the tick */
}

static void nodes_send(struct nodes *n, uint32_t op, uint32_t pid, uint64_t start)
{
	struct finder_req req = {.op = op, .seq = ++n->seq, .pid = pid, .start = start};
	struct finder_reply r;
	int ret, fd = -1;

	if (!n->helper) {
		memset(&r, 0, sizeof(r));
		if (op == FINDER_WHO)
			finder_who(n->finder, &req, &r);
		else
			fd = finder_connect(n->finder, &req, &r);
		nodes_on_reply(n, &r, fd);
		return;
	}
	ret = n->helper_gone ? -EPIPE : finder_helper_send(n->helper, &req);
	if (!ret)
		return;
	/* Not sent: answer it ourselves, as a failure the tick retries (-EAGAIN) or not. */
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.seq = req.seq;
	r.pid = pid;
	r.err = ret;
	snprintf(r.why, sizeof(r.why), "%s",
		 ret == -EAGAIN ? "the finder helper is busy" : "the finder helper has exited");
	if (op == FINDER_WHO) {
		struct nodes_proc *pr = nodes_proc_find(n, pid);

		if (ret == -EAGAIN && pr) {
			pr->state = NP_QUEUED;
			nodes_schedule(n);
			return;
		}
	}
	nodes_on_reply(n, &r, -1);
}

static void nodes_on_helper(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct nodes *n = ctx;
	struct finder_reply r;
	int ret, rfd;

	(void)loop;
	(void)events;
	while ((ret = finder_helper_recv(n->helper, &r, &rfd)) != 0) {
		if (ret == -EBADMSG) {
			log_warn("the finder helper sent a malformed answer: ignored");
			continue;
		}
		if (ret < 0) {
			log_warn("the finder helper has exited: node identities are no longer "
				 "looked up (those found so far stay)");
			loop_del(n->loop, fd);
			n->helper_gone = true;
			return;
		}
		nodes_on_reply(n, &r, rfd);
	}
}

/* ---- the tick -------------------------------------------------------------------------- */

/* When @nd next needs the tick, in ms from @now; UINT64_MAX: never (it waits for an event). */
static uint64_t nodes_node_due(const struct nodes *n, const struct nodes_node *nd, uint64_t now)
{
	uint64_t deadline;

	if (nd->exited) /* freed NODES_KEEP_MS after; while a process still uses it, later */
		return now - nd->exited_ms < NODES_KEEP_MS ? nd->exited_ms + NODES_KEEP_MS - now
							   : NODES_KEEP_MS / 10;
	if (nd->conv)
		return getinfo_waiting(nd->conv, &deadline)
			       ? (deadline > now ? deadline - now : 0)
			       : UINT64_MAX; /* answered: its connection says when it closes */
	if (nd->connecting || n->helper_gone)
		return UINT64_MAX; /* the finder's answer comes on its socket */
	return nd->retry_at_ms > now ? nd->retry_at_ms - now : 0;
}

/*
 * Arm the tick for the earliest thing due (a retry, a getinfo deadline, an entry to
 * forget), or not at all: an idle daemon has no timer running.
 */
static void nodes_schedule(struct nodes *n)
{
	uint64_t now = clock_mono_ms(), due = UINT64_MAX;

	for (size_t i = 0; i < n->n_procs; i++) {
		const struct nodes_proc *pr = &n->procs[i];
		uint64_t d = UINT64_MAX;

		if (pr->state == NP_QUEUED)
			d = NODES_TICK_MS;
		else if (pr->state == NP_KNOWN && pr->exited)
			d = now - pr->at_ms < NODES_KEEP_MS ? pr->at_ms + NODES_KEEP_MS - now : 0;
		if (d < due)
			due = d;
	}
	for (size_t i = 0; i < NODES_MAX_NODES; i++) {
		uint64_t d = n->nodes[i].used ? nodes_node_due(n, &n->nodes[i], now) : UINT64_MAX;

		if (d < due)
			due = d;
	}
	if (due == UINT64_MAX) {
		loop_timer_disarm(n->timer);
		return;
	}
	if (!loop_timer_armed(n->timer) || now + due < n->tick_at_ms) {
		n->tick_at_ms = now + due;
		loop_timer_arm(n->timer, due);
	}
}

static void nodes_tick_node(struct nodes *n, struct nodes_node *nd, uint64_t now)
{
	uint64_t deadline;

	if (nd->exited) {
		bool used = false;

		if (now - nd->exited_ms < NODES_KEEP_MS)
			return;
		for (size_t i = 0; i < n->n_procs && !used; i++)
			used = n->procs[i].node == nd - n->nodes && !n->procs[i].exited;
		if (!used)
			nodes_node_free(n, nd);
		return;
	}
	if (nd->conv && getinfo_waiting(nd->conv, &deadline) && now >= deadline) {
		char why[FINDER_WHY_SIZE];

		snprintf(why, sizeof(why), "%s: no answer to getinfo within %d s", nd->shown,
			 GETINFO_TIMEOUT_MS / 1000);
		nodes_node_failed(nd, why);
	}
	if (!nd->conv && !nd->connecting && now >= nd->retry_at_ms && !n->helper_gone)
		nodes_connect(n, nd);
}

static void nodes_tick(struct loop *loop, void *ctx)
{
	struct nodes *n = ctx;
	uint64_t now = clock_mono_ms();

	(void)loop;
	for (size_t i = 0; i < n->n_procs; i++) {
		struct nodes_proc *pr = &n->procs[i];

		if (pr->state == NP_QUEUED) {
			pr->state = NP_ASKING;
			pr->at_ms = now;
			nodes_send(n, FINDER_WHO, pr->pid, 0);
		} else if (pr->state == NP_KNOWN && pr->exited &&
			   now - pr->at_ms >= NODES_KEEP_MS) {
			nodes_proc_free(n, pr);
		}
	}
	while (n->n_procs && n->procs[n->n_procs - 1].state == NP_FREE)
		n->n_procs--;
	for (size_t i = 0; i < NODES_MAX_NODES; i++)
		if (n->nodes[i].used)
			nodes_tick_node(n, &n->nodes[i], now);
	nodes_schedule(n);
}

/* ---- the interface --------------------------------------------------------------------- */

static size_t nodes_proc_attrs(void *ctx, uint32_t pid, const struct otlp_kv **attrs)
{
	struct nodes *n = ctx;
	struct nodes_proc *pr = nodes_proc_find(n, pid);

	if (!pr || pr->node < 0)
		return 0;
	*attrs = n->nodes[pr->node].attrs;
	return n->nodes[pr->node].n_attrs;
}

static const char *nodes_db_system(void *ctx, uint32_t pid)
{
	struct nodes *n = ctx;
	struct nodes_proc *pr = nodes_proc_find(n, pid);

	if (!pr || pr->node < 0 || !n->nodes[pr->node].wallet[0])
		return NULL;
	return n->nodes[pr->node].wallet;
}

void nodes_saw(struct nodes *n, uint32_t pid)
{
	struct nodes_proc *pr;

	if (!pid)
		return;
	pr = nodes_proc_find(n, pid);
	if (pr && (!pr->exited || pr->state != NP_KNOWN))
		return;
	if (pr) {
		/*
		 * A span after its exit: late (read after the exit was), or from another
		 * process with that pid now. Asked again, at most once a second.
		 */
		if (clock_mono_ms() - pr->at_ms < NODES_RECHECK_MS)
			return;
		pr->recheck = true;
	} else {
		pr = nodes_proc_slot(n);
		if (!pr) {
			stats.node_table_full++;
			if (!n->told_full)
				log_warn("more than %d processes send spans: the spans of process "
					 "%u go without node identity",
					 NODES_MAX_PROCS, pid);
			n->told_full = true;
			return;
		}
		pr->owner = n;
		pr->pid = pid;
		pr->pidfd = -1;
		pr->node = -1;
		n->last_hit = (size_t)(pr - n->procs);
	}
	pr->state = NP_ASKING;
	pr->at_ms = clock_mono_ms();
	nodes_send(n, FINDER_WHO, pid, 0);
}

bool nodes_hold(struct nodes *n, uint64_t now_ms, uint64_t *until_ms)
{
	uint64_t until = 0;

	for (size_t i = 0; i < n->n_procs; i++) {
		const struct nodes_proc *pr = &n->procs[i];

		if ((pr->state == NP_ASKING || pr->state == NP_QUEUED) && !n->helper_gone &&
		    now_ms < pr->at_ms + NODES_HOLD_MS && pr->at_ms + NODES_HOLD_MS > until)
			until = pr->at_ms + NODES_HOLD_MS;
	}
	for (size_t i = 0; i < NODES_MAX_NODES; i++) {
		const struct nodes_node *nd = &n->nodes[i];

		if (nd->used && !nd->have_ident && !nd->exited &&
		    now_ms < nd->first_ms + NODES_HOLD_MS && nd->first_ms + NODES_HOLD_MS > until)
			until = nd->first_ms + NODES_HOLD_MS;
	}
	*until_ms = until;
	return until != 0;
}

size_t nodes_seen(const struct nodes *n)
{
	return n->n_seen;
}

void nodes_for_each(const struct nodes *n, void (*cb)(void *ctx, const struct nodes_view *v),
		    void *ctx)
{
	for (size_t i = 0; i < NODES_MAX_NODES; i++) {
		const struct nodes_node *nd = &n->nodes[i];
		struct nodes_view v = {.pid = nd->pid,
				       .shown = nd->shown,
				       .why = nd->why,
				       .ident = nd->have_ident ? &nd->ident : NULL,
				       .container_id = nd->container_id};

		if (nd->used)
			cb(ctx, &v);
	}
}

bool nodes_settled(const struct nodes *n)
{
	for (size_t i = 0; i < n->n_procs; i++)
		if (n->procs[i].state == NP_ASKING || n->procs[i].state == NP_QUEUED)
			return false;
	for (size_t i = 0; i < NODES_MAX_NODES; i++) {
		const struct nodes_node *nd = &n->nodes[i];

		if (nd->used && !nd->exited &&
		    (nd->connecting || (nd->conv && getinfo_waiting(nd->conv, NULL))))
			return false;
	}
	return true;
}

struct nodes *nodes__new(struct loop *loop, struct finder_helper *helper,
			 struct otlp_resource_cfg *res)
{
	struct nodes *n = calloc(1, sizeof(*n));

	if (!n) {
		finder_helper__free(helper);
		return NULL;
	}
	n->loop = loop;
	n->res = res;
	n->helper = helper;
	for (size_t i = 0; i < NODES_MAX_NODES; i++)
		n->nodes[i].pidfd = -1;
	if (!helper)
		n->finder = finder__new();
	n->timer = loop_timer__new(loop, nodes_tick, n);
	if ((!helper && !n->finder) || !n->timer ||
	    (helper && loop_add(loop, finder_helper_fd(helper), EPOLLIN, nodes_on_helper, n) < 0)) {
		nodes__free(n);
		return NULL;
	}
	res->proc_attrs = nodes_proc_attrs;
	res->db_system = nodes_db_system;
	res->proc_ctx = n;
	return n;
}

void nodes__free(struct nodes *n)
{
	if (!n)
		return;
	if (n->res && n->res->proc_ctx == n) {
		n->res->proc_attrs = NULL;
		n->res->db_system = NULL;
		n->res->proc_ctx = NULL;
	}
	for (size_t i = 0; i < n->n_procs; i++)
		nodes_close_pidfd(n, &n->procs[i].pidfd);
	for (size_t i = 0; i < NODES_MAX_NODES; i++)
		if (n->nodes[i].used)
			nodes_node_free(n, &n->nodes[i]);
	if (n->helper) {
		if (!n->helper_gone)
			loop_del(n->loop, finder_helper_fd(n->helper));
		finder_helper__free(n->helper);
	}
	finder__free(n->finder);
	loop_timer__free(n->timer);
	free(n);
}
