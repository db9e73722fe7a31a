// SPDX-License-Identifier: MIT
#include "node_info.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "text.h"

#define NI_POLL_MS	  2000 /* how often the socket file is looked for while unconnected */
#define NI_BACKOFF_MS	  2000 /* first wait after a failure, doubled up to... */
#define NI_BACKOFF_MAX_MS 60000
#define NI_N_ATTRS	  4
#define NI_PATH_MAX	  PATH_MAX
#define NI_RPC_NAME	  "lightning-rpc"

/* The networks lightningd keeps a directory for, in the order they are looked at. */
static const char *const ni_networks[] = {"bitcoin", "testnet", "testnet4", "signet", "regtest"};

struct node_info {
	struct loop *loop;
	struct loop_timer *timer;
	struct otlp_resource_cfg *res;
	const struct otlp_kv *base; /* what res held on entry */
	size_t n_base;
	struct otlp_kv *attrs; /* base, then the node's */
	struct getinfo_ident ident;
	bool have_ident;

	/* where to look */
	char *rpc_file;
	char *home;

	/* the socket asked, or being asked */
	char path[NI_PATH_MAX];
	dev_t dev; /* its identity: a restarted lightningd binds a new file (maybe with */
	ino_t ino; /* the inode number just freed, but never the same change time) */
	struct timespec ctim;
	bool have_sock;
	struct getinfo *conv; /* NULL: not connected */
	unsigned queries;
	uint64_t retry_at_ms, backoff_ms;
	uint64_t answered_ms, close_backoff_ms; /* a peer that hangs up after answering */
	bool told_missing, told_refused;
	struct log_ratelimit rl;
	char last_error[512]; /* why the last attempt failed, or where no socket was found */
};

/* ---- the resource ------------------------------------------------------------------ */

static bool ni_base_has(const struct node_info *ni, const char *key)
{
	for (size_t i = 0; i < ni->n_base; i++)
		if (!strcmp(ni->base[i].key, key))
			return true;
	return false;
}

/* The configured attributes, then the node's (the configured ones win). */
static void ni_rebuild(struct node_info *ni)
{
	const struct otlp_kv node[NI_N_ATTRS] = {
		{"service.version", ni->ident.version},
		{"cln.node.id", ni->ident.id},
		{"cln.alias", ni->ident.alias},
		{"cln.network", ni->ident.network},
	};
	size_t n = ni->n_base;

	if (n)
		memcpy(ni->attrs, ni->base, n * sizeof(*ni->attrs));
	for (size_t i = 0; ni->have_ident && i < NI_N_ATTRS; i++)
		if (node[i].value[0] && !ni_base_has(ni, node[i].key))
			ni->attrs[n++] = node[i];
	ni->res->attrs = ni->attrs;
	ni->res->n_attrs = n;
}

/* ---- finding the socket ------------------------------------------------------------ */

static bool ni_try(char *out, struct stat *st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool ni_try(char *out, struct stat *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, NI_PATH_MAX, fmt, ap);
	va_end(ap);
	return n > 0 && n < NI_PATH_MAX && stat(out, st) == 0 && S_ISSOCK(st->st_mode);
}

/* <home>/.lightning/<network>/lightning-rpc, or <home>/.lightning/lightning-rpc (old). */
static bool ni_search_home(const char *home, char *out, struct stat *st)
{
	if (!home)
		return false;
	for (size_t i = 0; i < sizeof(ni_networks) / sizeof(ni_networks[0]); i++)
		if (ni_try(out, st, "%s/.lightning/%s/%s", home, ni_networks[i], NI_RPC_NAME))
			return true;
	return ni_try(out, st, "%s/.lightning/%s", home, NI_RPC_NAME);
}

/* Where lightningd's socket is now (@path), or where we looked (@where). */
static bool ni_locate(struct node_info *ni, char *path, struct stat *st, char *where,
		      size_t where_size)
{
	if (ni->rpc_file) {
		snprintf(where, where_size, "%s", ni->rpc_file);
		return ni_try(path, st, "%s", ni->rpc_file);
	}
	snprintf(where, where_size, "looked under %s/.lightning",
		 ni->home ? ni->home : "(no home)");
	return ni_search_home(ni->home, path, st);
}

/* ---- asking ------------------------------------------------------------------------ */

/*
 * Arm the tick only while it has something to do: a getinfo deadline, or (unconnected)
 * looking for the socket and retrying. Connected and answered, nothing polls: lightningd
 * closing the connection (it stops or restarts) is what tells us to look again.
 */
static void ni_schedule(struct node_info *ni)
{
	uint64_t now = clock_mono_ms(), deadline;

	if (!ni->conv)
		loop_timer_arm(ni->timer, NI_POLL_MS);
	else if (getinfo_waiting(ni->conv, &deadline))
		loop_timer_arm(ni->timer, deadline > now ? deadline - now : 0);
	else
		loop_timer_disarm(ni->timer);
}

static void ni_close(struct node_info *ni)
{
	getinfo__free(ni->conv);
	ni->conv = NULL;
}

static void ni_fail(struct node_info *ni, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Give up this attempt, say why (rate-limited), and try again later. */
static void ni_fail(struct node_info *ni, enum log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ni->last_error, sizeof(ni->last_error), "%s", msg);
	log_limited(&ni->rl, level, "lightningd's JSON-RPC %s: %s; asking again in %llu s",
		    ni->path, msg, (unsigned long long)(ni->backoff_ms / 1000));
	ni_close(ni);
	ni->retry_at_ms = clock_mono_ms() + ni->backoff_ms;
	ni->backoff_ms *= 2;
	if (ni->backoff_ms > NI_BACKOFF_MAX_MS)
		ni->backoff_ms = NI_BACKOFF_MAX_MS;
}

static void ni_fail_errno(struct node_info *ni, const char *what, int err)
{
	if (err == ECONNREFUSED || err == ENOENT) {
		/* A socket file left by a lightningd that stopped: usual, said once. */
		ni_fail(ni, ni->told_refused ? LOG_LVL_DEBUG : LOG_LVL_INFO,
			"nobody listens (lightningd stopped?)");
		ni->told_refused = true;
	} else if (err == EACCES || err == EPERM) {
		ni_fail(ni, LOG_LVL_WARN,
			"%s: %s (the socket is usually the node user's, mode 0600: run cln-otlp "
			"with --user set to the node's user, or give a group access with "
			"lightningd's rpc-file-mode and make --user a member)",
			what, strerror(err));
	} else {
		ni_fail(ni, LOG_LVL_WARN, "%s: %s", what, strerror(err));
	}
}

static void ni_on_answer(void *ctx, const struct getinfo_ident *ident)
{
	struct node_info *ni = ctx;

	ni->answered_ms = clock_mono_ms();
	ni->backoff_ms = NI_BACKOFF_MS;
	ni->told_refused = false;
	if (ni->have_ident && !memcmp(&ni->ident, ident, sizeof(*ident))) {
		log_debug("lightningd at %s answered getinfo: same node as before", ni->path);
		ni_schedule(ni);
		return;
	}
	log_info("node %s (alias \"%s\", %s, %s) from %s: spans carry it as cln.node.id, "
		 "cln.alias, cln.network and service.version",
		 ident->id, ident->alias, ident->network[0] ? ident->network : "network unknown",
		 ident->version[0] ? ident->version : "version unknown", ni->path);
	ni->ident = *ident;
	ni->have_ident = true;
	ni_rebuild(ni);
	ni_schedule(ni);
}

static void ni_on_failed(void *ctx, int err, const char *why)
{
	struct node_info *ni = ctx;

	if (err == ECONNREFUSED || err == ENOENT || err == EACCES || err == EPERM)
		ni_fail_errno(ni, "connect", err);
	else
		ni_fail(ni, LOG_LVL_WARN, "%s", why);
}

/*
 * lightningd closed the connection we keep after its answer: it stopped or restarts. Ask
 * again soon (the next tick finds a new socket at once); a peer that always hangs up right
 * after answering is asked less and less often.
 */
static void ni_on_closed(void *ctx, int err)
{
	struct node_info *ni = ctx;
	uint64_t now = clock_mono_ms();

	log_debug("lightningd closed its JSON-RPC connection (%s): asking again once it is back",
		  err ? strerror(err) : "stopped or restarting");
	ni_close(ni);
	if (now - ni->answered_ms > GETINFO_TIMEOUT_MS || !ni->close_backoff_ms)
		ni->close_backoff_ms = NI_BACKOFF_MS;
	else if (ni->close_backoff_ms < NI_BACKOFF_MAX_MS)
		ni->close_backoff_ms *= 2;
	ni->retry_at_ms = now + ni->close_backoff_ms;
	ni_schedule(ni);
}

static const struct getinfo_ops ni_ops = {
	.answered = ni_on_answer,
	.failed = ni_on_failed,
	.closed = ni_on_closed,
};

static void ni_start(struct node_info *ni)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, pathfd = -1, ret, err;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ni_fail_errno(ni, "socket", errno);
		return;
	}
	if (strlen(ni->path) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, ni->path, strlen(ni->path) + 1);
	} else {
		/* Longer than sun_path (lightningd binds a relative name): go through an fd. */
		pathfd = open(ni->path, O_PATH | O_CLOEXEC);
		if (pathfd < 0) {
			err = errno;
			close(fd);
			ni_fail_errno(ni, "open", err);
			return;
		}
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pathfd);
	}
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	err = errno;
	if (pathfd >= 0)
		close(pathfd);
	if (ret < 0 && err != EINPROGRESS) {
		close(fd);
		ni_fail_errno(ni, "connect", err);
		return;
	}
	ni->conv = getinfo__new(ni->loop, fd, ret < 0, ++ni->queries, &ni_ops, ni);
	if (!ni->conv)
		ni_fail(ni, LOG_LVL_WARN, "cannot watch the connection: out of memory");
}

static bool ni_same_sock(const struct node_info *ni, const struct stat *st)
{
	return ni->have_sock && st->st_dev == ni->dev && st->st_ino == ni->ino &&
	       st->st_ctim.tv_sec == ni->ctim.tv_sec && st->st_ctim.tv_nsec == ni->ctim.tv_nsec;
}

static void ni_tick(struct loop *loop, void *ctx)
{
	struct node_info *ni = ctx;
	char path[NI_PATH_MAX], where[NI_PATH_MAX + 128];
	uint64_t now = clock_mono_ms(), deadline;
	struct stat st;

	(void)loop;
	if (ni->conv && getinfo_waiting(ni->conv, &deadline)) {
		if (now >= deadline)
			ni_fail(ni, LOG_LVL_WARN, "no answer to getinfo within %d s",
				GETINFO_TIMEOUT_MS / 1000);
		goto rearm;
	}
	if (ni->conv) {
		/* Still the same socket? A restarted lightningd binds a new one. */
		if (stat(ni->path, &st) == 0 ? ni_same_sock(ni, &st)
					     : errno != ENOENT && errno != ENOTDIR)
			goto rearm; /* same socket, or cannot tell: the connection will */
		log_debug("%s was replaced: lightningd restarted; asking again", ni->path);
		ni_close(ni);
	}
	if (!ni_locate(ni, path, &st, where, sizeof(where))) {
		text_printf(ni->last_error, sizeof(ni->last_error),
			    "no lightningd JSON-RPC socket found (%s)", where);
		if (!ni->told_missing)
			log_info("no lightningd JSON-RPC socket found (%s): spans go without the "
				 "node's identity (cln.node.id, cln.alias) until one appears; "
				 "--rpc-file PATH names it (lightningd's lightning-rpc)",
				 where);
		ni->told_missing = true;
		goto rearm;
	}
	if (!ni_same_sock(ni, &st) || strcmp(path, ni->path)) {
		/* A new socket: a (re)started lightningd. Ask at once. */
		snprintf(ni->path, sizeof(ni->path), "%s", path);
		ni->dev = st.st_dev;
		ni->ino = st.st_ino;
		ni->ctim = st.st_ctim;
		ni->have_sock = true;
		ni->told_missing = true; /* the hint is for a socket never found */
		ni->told_refused = false;
		ni->backoff_ms = NI_BACKOFF_MS;
		ni->retry_at_ms = 0;
	}
	if (now >= ni->retry_at_ms)
		ni_start(ni);
rearm:
	ni_schedule(ni);
}

/* ---- life cycle -------------------------------------------------------------------- */

static char *ni_strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *ni_default_home(const char *home)
{
	if (!home || !home[0])
		home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : NULL;
	}
	return home;
}

struct node_info *node_info__new(struct loop *loop, const struct node_info_cfg *cfg,
				 struct otlp_resource_cfg *res)
{
	struct node_info *ni = calloc(1, sizeof(*ni));
	const char *home = ni_default_home(cfg->home);

	if (!ni)
		return NULL;
	ni->loop = loop;
	ni->res = res;
	ni->base = res->attrs;
	ni->n_base = res->n_attrs;
	ni->backoff_ms = NI_BACKOFF_MS;
	ni->attrs = calloc(ni->n_base + NI_N_ATTRS, sizeof(*ni->attrs));
	ni->rpc_file = ni_strdup_or_null(cfg->rpc_file);
	ni->home = ni_strdup_or_null(home);
	ni->timer = loop_timer__new(loop, ni_tick, ni);
	if (!ni->attrs || (cfg->rpc_file && !ni->rpc_file) || (home && !ni->home) || !ni->timer) {
		node_info__free(ni);
		return NULL;
	}
	ni_rebuild(ni);
	ni_tick(loop, ni);
	if (cfg->startup_wait_ms && ni->conv && !getinfo_wait(ni->conv, cfg->startup_wait_ms) &&
	    ni->conv) {
		snprintf(ni->last_error, sizeof(ni->last_error),
			 "no answer to getinfo within %llu ms",
			 (unsigned long long)cfg->startup_wait_ms);
		log_info("lightningd at %s has not answered getinfo within %llu ms: starting "
			 "without the node's identity; spans get it once it answers",
			 ni->path, (unsigned long long)cfg->startup_wait_ms);
	}
	return ni;
}

void node_info__free(struct node_info *ni)
{
	if (!ni)
		return;
	ni_close(ni);
	loop_timer__free(ni->timer);
	if (ni->res) {
		ni->res->attrs = ni->base;
		ni->res->n_attrs = ni->n_base;
	}
	free(ni->home);
	free(ni->rpc_file);
	free(ni->attrs);
	free(ni);
}

bool node_info_answered(const struct node_info *ni, struct getinfo_ident *ident, char *where,
			size_t where_size, char *why, size_t why_size)
{
	snprintf(where, where_size, "%s", ni->have_sock ? ni->path : "");
	snprintf(why, why_size, "%s", ni->last_error[0] ? ni->last_error : "not asked yet");
	if (ni->have_ident)
		*ident = ni->ident;
	return ni->have_ident;
}
