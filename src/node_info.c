// SPDX-License-Identifier: MIT
#include "node_info.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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

#define NI_POLL_MS	  2000	/* how often the socket file is checked */
#define NI_TIMEOUT_MS	  10000 /* connect, ask and hear the answer within this */
#define NI_BACKOFF_MS	  2000	/* first wait after a failure, doubled up to... */
#define NI_BACKOFF_MAX_MS 60000
#define NI_N_ATTRS	  4
#define NI_PATH_MAX	  PATH_MAX
#define NI_CMDLINE_MAX	  32768
#define NI_PARENT_HOPS	  8  /* from a --pid plugin up to its lightningd */
#define NI_MAX_PROCS	  16 /* lightningd processes looked at */
#define NI_RPC_NAME	  "lightning-rpc"
#define NI_REQUEST_ID_FMT "cln-otlp:getinfo#%u"

/* The networks lightningd keeps a directory for, in the order they are looked at. */
static const char *const ni_networks[] = {"bitcoin", "testnet", "testnet4", "signet", "regtest"};

enum ni_state {
	NI_IDLE,       /* no connection */
	NI_CONNECTING, /* connect() in progress */
	NI_SENDING,    /* writing the request */
	NI_READING,    /* waiting for the answer */
	NI_ANSWERED,   /* answered; the connection stays open to hear lightningd go away */
};

struct node_info {
	struct loop *loop;
	struct loop_timer *timer;
	struct otlp_resource_cfg *res;
	const struct otlp_kv *base; /* what res held on entry */
	size_t n_base;
	struct otlp_kv *attrs; /* base, then the node's */
	struct node_info_ident ident;
	bool have_ident;

	/* where to look */
	char *rpc_file;
	bool find_lightningd;
	uint32_t *pids;
	size_t n_pids;
	char *home;
	uid_t home_uid; /* cache of the last lightningd owner's home */
	char *owner_home;
	uint32_t lightningd_pid; /* the one asked, to tell when it changes */

	/* the socket asked, or being asked */
	char path[NI_PATH_MAX];	 /* as opened */
	char shown[NI_PATH_MAX]; /* as logged */
	dev_t dev; /* its identity: a restarted lightningd binds a new file (maybe with */
	ino_t ino; /* the inode number just freed, but never the same change time) */
	struct timespec ctim;
	bool have_sock;
	enum ni_state state;
	int fd;
	char req[96];
	size_t req_len, req_off;
	char want_id[32];
	char *buf;
	size_t len, cap;
	struct node_info_scan scan;
	unsigned queries;
	uint64_t deadline_ms, retry_at_ms, backoff_ms;
	uint64_t answered_ms, close_backoff_ms; /* a peer that hangs up after answering */
	bool told_missing, told_refused;
	struct log_ratelimit rl;
	char last_error[512]; /* why the last attempt failed, or where no socket was found */
};

/* ---- pure parts: where a JSON object ends, what a getinfo answer says --------------- */

int node_info_scan(struct node_info_scan *s, const char *buf, size_t len)
{
	for (; s->pos < len; s->pos++) {
		char c = buf[s->pos];

		if (!s->started) {
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
				continue;
			if (c != '{')
				return -EBADMSG;
			s->started = true;
			s->depth = 1;
			continue;
		}
		if (s->in_string) {
			if (s->escaped)
				s->escaped = false;
			else if (c == '\\')
				s->escaped = true;
			else if (c == '"')
				s->in_string = false;
			continue;
		}
		if (c == '"') {
			s->in_string = true;
		} else if (c == '{' || c == '[') {
			s->depth++;
		} else if (c == '}' || c == ']') {
			if (--s->depth == 0) {
				s->pos++;
				return 1;
			}
		}
	}
	return 0;
}

/* Copy @src into @dst, cut at a character boundary; bad bytes and controls become '?'. */
static void ni_copy_clean(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t avail = strlen(src), o = 0;

	while (avail) {
		size_t n = text_utf8_len(s, avail);
		bool bad = !n || s[0] < 0x20 || s[0] == 0x7f;

		if (bad)
			n = 1;
		if (o + (bad ? 1 : n) >= size)
			break;
		if (bad) {
			dst[o++] = '?';
		} else {
			memcpy(dst + o, s, n);
			o += n;
		}
		s += n;
		avail -= n;
	}
	dst[o] = '\0';
}

static void ni_copy_field(char *dst, size_t size, const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	dst[0] = '\0';
	if (cJSON_IsString(v) && v->valuestring)
		ni_copy_clean(dst, size, v->valuestring);
}

int node_info_parse(const char *json, size_t len, const char *want_id, struct node_info_ident *out,
		    char *err, size_t err_size)
{
	const cJSON *id, *error, *result;
	cJSON *root;
	int ret = -EBADMSG;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	root = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(root)) {
		snprintf(err, err_size, "not a JSON object");
		goto cleanup;
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (want_id && (!cJSON_IsString(id) || strcmp(id->valuestring, want_id))) {
		snprintf(err, err_size, "not the answer to our request (id is not \"%s\")",
			 want_id);
		goto cleanup;
	}
	error = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (error && !cJSON_IsNull(error)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
		char msg[256] = "";

		ni_copy_field(msg, sizeof(msg), error, "message");
		if (cJSON_IsNumber(code))
			snprintf(err, err_size, "error %d: %s", (int)code->valuedouble,
				 msg[0] ? msg : "(no message)");
		else
			snprintf(err, err_size, "error: %s", msg[0] ? msg : "(no message)");
		ret = -EPROTO;
		goto cleanup;
	}
	result = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!cJSON_IsObject(result)) {
		snprintf(err, err_size, "no \"result\" object");
		goto cleanup;
	}
	ni_copy_field(out->id, sizeof(out->id), result, "id");
	if (!out->id[0]) {
		snprintf(err, err_size, "the result has no node \"id\"");
		goto cleanup;
	}
	ni_copy_field(out->alias, sizeof(out->alias), result, "alias");
	ni_copy_field(out->network, sizeof(out->network), result, "network");
	ni_copy_field(out->version, sizeof(out->version), result, "version");
	ret = 0;
cleanup:
	cJSON_Delete(root);
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

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
		{"service.instance.id", ni->ident.id},
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

static void ni_apply(struct node_info *ni, const struct node_info_ident *ident)
{
	if (ni->have_ident && !memcmp(&ni->ident, ident, sizeof(*ident))) {
		log_debug("lightningd at %s answered getinfo: same node as before", ni->shown);
		return;
	}
	log_info("node %s (alias \"%s\", %s, %s) from %s: spans carry it as service.instance.id, "
		 "cln.alias, cln.network and service.version",
		 ident->id, ident->alias, ident->network[0] ? ident->network : "network unknown",
		 ident->version[0] ? ident->version : "version unknown", ni->shown);
	ni->ident = *ident;
	ni->have_ident = true;
	ni_rebuild(ni);
}

/* ---- finding the socket ------------------------------------------------------------ */

static void ni_setf(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* snprintf for paths and messages that may be cut (a cut one is only shown, never opened). */
static void ni_setf(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

static bool ni_is_socket(const char *path, struct stat *st)
{
	return stat(path, st) == 0 && S_ISSOCK(st->st_mode);
}

/* Read a small /proc file into @buf (NUL-terminated). Returns its length or -1. */
static ssize_t ni_read_small(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

static bool ni_is_lightningd(uint32_t pid)
{
	char path[64], comm[32];

	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	if (ni_read_small(path, comm, sizeof(comm)) < 0)
		return false;
	return !strncmp(comm, "lightningd", strlen("lightningd"));
}

static uint32_t ni_parent(uint32_t pid)
{
	char path[64], stat_line[512];
	unsigned ppid = 0;
	char *close_paren;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	if (ni_read_small(path, stat_line, sizeof(stat_line)) < 0)
		return 0;
	close_paren = strrchr(stat_line, ')');
	if (!close_paren || sscanf(close_paren + 1, " %*c %u", &ppid) != 1)
		return 0;
	return ppid;
}

/* Keep @pid in @pids (ascending, at most @max). */
static void ni_add_pid(uint32_t *pids, size_t *n, size_t max, uint32_t pid)
{
	size_t i = *n;

	for (size_t j = 0; j < *n; j++)
		if (pids[j] == pid)
			return;
	if (*n < max)
		(*n)++;
	else if (pid > pids[max - 1])
		return;
	else
		i = max - 1;
	while (i > 0 && pids[i - 1] > pid) {
		pids[i] = pids[i - 1];
		i--;
	}
	pids[i] = pid;
}

/*
 * The lightningd processes to look at: those above the --pid processes when there are
 * some, else every one running, lowest pid first. Returns how many (at most @max).
 */
static size_t ni_find_lightningd(const struct node_info *ni, uint32_t *pids, size_t max)
{
	struct dirent *de;
	size_t n = 0;
	DIR *dir;

	for (size_t i = 0; i < ni->n_pids; i++) {
		uint32_t pid = ni->pids[i];

		for (int hop = 0; pid > 1 && hop < NI_PARENT_HOPS; hop++, pid = ni_parent(pid)) {
			if (ni_is_lightningd(pid)) {
				ni_add_pid(pids, &n, max, pid);
				break;
			}
		}
	}
	if (n)
		return n;
	dir = opendir("/proc");
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		char *end;
		unsigned long pid = strtoul(de->d_name, &end, 10);

		if (!*end && pid && pid <= UINT32_MAX && ni_is_lightningd((uint32_t)pid))
			ni_add_pid(pids, &n, max, (uint32_t)pid);
	}
	closedir(dir);
	return n;
}

/* lightningd's --rpc-file, if its command line sets one (else "lightning-rpc"). */
static void ni_cmdline_rpc_file(uint32_t pid, char *out, size_t size)
{
	static const char opt[] = "--rpc-file";
	char path[64], *cmd = malloc(NI_CMDLINE_MAX);
	ssize_t len;

	ni_setf(out, size, "%s", NI_RPC_NAME);
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	if (!cmd || (len = ni_read_small(path, cmd, NI_CMDLINE_MAX)) <= 0)
		goto cleanup;
	for (char *a = cmd; a < cmd + len; a += strlen(a) + 1) {
		char *next = a + strlen(a) + 1;

		if (!strncmp(a, opt, sizeof(opt) - 1) && a[sizeof(opt) - 1] == '=')
			ni_setf(out, size, "%s", a + sizeof(opt));
		else if (!strcmp(a, opt) && next < cmd + len)
			ni_setf(out, size, "%s", next);
	}
cleanup:
	free(cmd);
}

/* The home of user @uid (cached: the password database may be slow). */
static const char *ni_home_of(struct node_info *ni, uid_t uid)
{
	struct passwd *pw;

	if (ni->owner_home && ni->home_uid == uid)
		return ni->owner_home;
	pw = getpwuid(uid);
	if (!pw || !pw->pw_dir || !pw->pw_dir[0])
		return NULL;
	free(ni->owner_home);
	ni->owner_home = strdup(pw->pw_dir);
	ni->home_uid = uid;
	return ni->owner_home;
}

static bool ni_try(char *out, struct stat *st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool ni_try(char *out, struct stat *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, NI_PATH_MAX, fmt, ap);
	va_end(ap);
	return n > 0 && n < NI_PATH_MAX && ni_is_socket(out, st);
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

/*
 * /proc/<pid>/cwd is only reachable with ptrace rights, which a run that dropped its
 * privileges lacks: keep the plain path when it leads to the same socket (it does unless
 * lightningd runs in another mount namespace).
 */
static void ni_prefer_real_path(char *path, const struct stat *st, const char *cwd, const char *rpc)
{
	char real[NI_PATH_MAX];
	struct stat rst;
	int n = snprintf(real, sizeof(real), "%s/%s", cwd, rpc);

	if (cwd[0] == '/' && n > 0 && n < (int)sizeof(real) && stat(real, &rst) == 0 &&
	    rst.st_dev == st->st_dev && rst.st_ino == st->st_ino)
		memcpy(path, real, (size_t)n + 1);
}

/* The socket in the directory lightningd @pid runs in ("?" in @cwd when unreadable). */
static bool ni_locate_in_process(uint32_t pid, char *path, char *shown, struct stat *st, char *cwd)
{
	char rpc[NI_PATH_MAX], link[64];
	ssize_t n;

	ni_cmdline_rpc_file(pid, rpc, sizeof(rpc));
	snprintf(link, sizeof(link), "/proc/%u/cwd", pid);
	n = readlink(link, cwd, NI_PATH_MAX - 1);
	cwd[n > 0 ? n : 0] = '\0';
	if (n <= 0)
		strcpy(cwd, "?");
	if (rpc[0] == '/') {
		ni_setf(shown, NI_PATH_MAX, "%s", rpc);
		return ni_try(path, st, "%s", rpc);
	}
	ni_setf(shown, NI_PATH_MAX, "%s/%s (lightningd pid %u)", cwd, rpc, pid);
	if (!ni_try(path, st, "/proc/%u/cwd/%s", pid, rpc))
		return false;
	ni_prefer_real_path(path, st, cwd, rpc);
	return true;
}

/*
 * Where lightningd's socket is now: @path to open, @shown to log. lightningd runs in its
 * network directory and binds its socket there (a relative --rpc-file too), so
 * /proc/<pid>/cwd finds it wherever --lightning-dir, --network or a config file put it,
 * even inside a container; the owner's ~/.lightning is the fallback.
 */
static bool ni_locate(struct node_info *ni, char *path, char *shown, struct stat *st, char *where,
		      size_t where_size)
{
	const char *home = ni->home;

	if (ni->rpc_file) {
		ni_setf(where, where_size, "%s", ni->rpc_file);
		ni_setf(shown, NI_PATH_MAX, "%s", ni->rpc_file);
		return ni_try(path, st, "%s", ni->rpc_file);
	}
	if (ni->find_lightningd) {
		uint32_t pids[NI_MAX_PROCS];
		size_t n = ni_find_lightningd(ni, pids, NI_MAX_PROCS);
		char cwd[NI_PATH_MAX] = "?";

		if (!n) {
			ni_setf(where, where_size, "no lightningd process runs; looked under %s",
				home ? home : "(no home)");
			goto invoking_user;
		}
		/* The first lightningd whose directory holds its socket, then their homes. */
		for (size_t i = 0; i < n; i++) {
			if (!ni_locate_in_process(pids[i], path, shown, st, cwd))
				continue;
			if (n > 1 && pids[i] != ni->lightningd_pid)
				log_info("%zu lightningd processes run: asking the one with pid %u "
					 "for the node's identity (--pid or --rpc-file chooses "
					 "another)",
					 n, pids[i]);
			ni->lightningd_pid = pids[i];
			return true;
		}
		for (size_t i = 0; i < n; i++) {
			char link[64];
			struct stat pst;

			snprintf(link, sizeof(link), "/proc/%u", pids[i]);
			home = stat(link, &pst) == 0 ? ni_home_of(ni, pst.st_uid) : NULL;
			if (ni_search_home(home, path, st)) {
				ni_setf(shown, NI_PATH_MAX, "%s", path);
				ni->lightningd_pid = pids[i];
				return true;
			}
		}
		ni_locate_in_process(pids[0], path, shown, st, cwd);
		ni_setf(where, where_size,
			"lightningd (pid %u) runs in %s; looked there and under "
			"its user's ~/.lightning",
			pids[0], cwd);
		return false;
	}
	ni_setf(where, where_size, "looked under %s", home ? home : "(no home)");
invoking_user:
	if (ni_search_home(ni->home, path, st)) {
		ni_setf(shown, NI_PATH_MAX, "%s", path);
		return true;
	}
	return false;
}

/* ---- asking ------------------------------------------------------------------------ */

static bool ni_querying(const struct node_info *ni)
{
	return ni->state == NI_CONNECTING || ni->state == NI_SENDING || ni->state == NI_READING;
}

static void ni_close(struct node_info *ni)
{
	if (ni->fd >= 0) {
		loop_del(ni->loop, ni->fd);
		close(ni->fd);
		ni->fd = -1;
	}
	ni->state = NI_IDLE;
	ni->len = 0;
	if (ni->cap > 65536) {
		/* Only a bad answer grows it this far: do not keep a MiB for the next one. */
		free(ni->buf);
		ni->buf = NULL;
		ni->cap = 0;
	}
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
		    ni->shown, msg, (unsigned long long)(ni->backoff_ms / 1000));
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
			"%s: %s (the socket is usually the node user's, mode 0600, and cln-otlp "
			"keeps no file capability once started: run it with --user set to the "
			"node's user, or give a group access with lightningd's rpc-file-mode and "
			"make --user a member)",
			what, strerror(err));
	} else {
		ni_fail(ni, LOG_LVL_WARN, "%s: %s", what, strerror(err));
	}
}

/* The answer is complete in buf[0, scan.pos). */
static void ni_answer(struct node_info *ni)
{
	struct node_info_ident ident;
	char err[384];
	int ret;

	ret = node_info_parse(ni->buf, ni->scan.pos, ni->want_id, &ident, err, sizeof(err));
	if (ret == -EPROTO) {
		ni_fail(ni, LOG_LVL_WARN, "getinfo failed (%s)", err);
		return;
	}
	if (ret < 0) {
		ni_fail(ni, LOG_LVL_WARN, "unexpected answer to getinfo (%s)", err);
		return;
	}
	ni->state = NI_ANSWERED;
	ni->answered_ms = clock_mono_ms();
	ni->backoff_ms = NI_BACKOFF_MS;
	ni->told_refused = false;
	ni->len = 0;
	ni_apply(ni, &ident);
}

/*
 * lightningd closed the connection we keep after its answer: it stopped or restarts. Ask
 * again soon (the next tick finds a new socket at once); a peer that always hangs up right
 * after answering is asked less and less often.
 */
static void ni_hangup(struct node_info *ni, int err)
{
	uint64_t now = clock_mono_ms();

	log_debug("lightningd closed its JSON-RPC connection (%s): asking again once it is back",
		  err ? strerror(err) : "stopped or restarting");
	ni_close(ni);
	if (now - ni->answered_ms > NI_TIMEOUT_MS || !ni->close_backoff_ms)
		ni->close_backoff_ms = NI_BACKOFF_MS;
	else if (ni->close_backoff_ms < NI_BACKOFF_MAX_MS)
		ni->close_backoff_ms *= 2;
	ni->retry_at_ms = now + ni->close_backoff_ms;
}

/* Read what is there: the answer while READING, anything later is drained and ignored. */
static void ni_read(struct node_info *ni)
{
	char sink[4096];

	while (ni->fd >= 0) {
		bool answered = ni->state == NI_ANSWERED;
		ssize_t n;
		int ret;

		if (!answered && ni->len == ni->cap) {
			size_t cap = ni->cap ? ni->cap * 2 : 4096;
			char *buf;

			if (ni->cap >= NODE_INFO_MAX_ANSWER) {
				ni_fail(ni, LOG_LVL_WARN, "answer larger than %u bytes",
					NODE_INFO_MAX_ANSWER);
				return;
			}
			if (cap > NODE_INFO_MAX_ANSWER)
				cap = NODE_INFO_MAX_ANSWER;
			buf = realloc(ni->buf, cap);
			if (!buf) {
				ni_fail(ni, LOG_LVL_WARN, "out of memory");
				return;
			}
			ni->buf = buf;
			ni->cap = cap;
		}
		if (answered)
			n = read(ni->fd, sink, sizeof(sink));
		else
			n = read(ni->fd, ni->buf + ni->len, ni->cap - ni->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 && answered) {
			ni_hangup(ni, n ? errno : 0);
			return;
		}
		if (n < 0 && errno != ECONNRESET) {
			ni_fail_errno(ni, "reading the answer", errno);
			return;
		}
		if (n <= 0) {
			ni_fail(ni, LOG_LVL_WARN, "closed the connection before answering getinfo");
			return;
		}
		if (answered)
			continue;
		ni->len += (size_t)n;
		ret = node_info_scan(&ni->scan, ni->buf, ni->len);
		if (ret < 0) {
			ni_fail(ni, LOG_LVL_WARN,
				"unexpected answer to getinfo (not a JSON object)");
			return;
		}
		if (ret > 0)
			ni_answer(ni);
	}
}

static void ni_on_fd(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct node_info *ni = ctx;

	if (ni->state == NI_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			ni_fail_errno(ni, "connect", err);
			return;
		}
		ni->state = NI_SENDING;
	}
	if (ni->state == NI_SENDING) {
		while (ni->req_off < ni->req_len) {
			ssize_t n = send(fd, ni->req + ni->req_off, ni->req_len - ni->req_off,
					 MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
				ni_fail(ni, LOG_LVL_WARN,
					"closed the connection before answering getinfo");
				return;
			}
			if (n < 0) {
				ni_fail_errno(ni, "sending getinfo", errno);
				return;
			}
			ni->req_off += (size_t)n;
		}
		ni->state = NI_READING;
		if (loop_mod(ni->loop, fd, EPOLLIN) < 0) {
			ni_fail(ni, LOG_LVL_WARN, "cannot watch the connection");
			return;
		}
	}
	if (ni->state == NI_READING || ni->state == NI_ANSWERED)
		ni_read(ni);
}

static void ni_start(struct node_info *ni)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int pathfd = -1, ret, err;

	ni->queries++;
	snprintf(ni->want_id, sizeof(ni->want_id), NI_REQUEST_ID_FMT, ni->queries);
	ni->req_len = (size_t)snprintf(ni->req, sizeof(ni->req),
				       "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"getinfo\","
				       "\"params\":{}}",
				       ni->want_id);
	ni->req_off = 0;
	ni->len = 0;
	memset(&ni->scan, 0, sizeof(ni->scan));
	ni->deadline_ms = clock_mono_ms() + NI_TIMEOUT_MS;

	ni->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ni->fd < 0) {
		ni_fail_errno(ni, "socket", errno);
		return;
	}
	if (strlen(ni->path) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, ni->path, strlen(ni->path) + 1);
	} else {
		/* Longer than sun_path (lightningd binds a relative name): go through an fd. */
		pathfd = open(ni->path, O_PATH | O_CLOEXEC);
		if (pathfd < 0) {
			ni_fail_errno(ni, "open", errno);
			return;
		}
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pathfd);
	}
	ret = connect(ni->fd, (struct sockaddr *)&sa, sizeof(sa));
	err = errno;
	if (pathfd >= 0)
		close(pathfd);
	if (ret < 0 && err != EINPROGRESS) {
		ni_fail_errno(ni, "connect", err);
		return;
	}
	ni->state = ret < 0 ? NI_CONNECTING : NI_SENDING;
	ret = loop_add(ni->loop, ni->fd, EPOLLOUT, ni_on_fd, ni);
	if (ret < 0) {
		close(ni->fd);
		ni->fd = -1;
		ni_fail_errno(ni, "watching the connection", -ret);
	}
}

static bool ni_same_sock(const struct node_info *ni, const struct stat *st)
{
	return ni->have_sock && st->st_dev == ni->dev && st->st_ino == ni->ino &&
	       st->st_ctim.tv_sec == ni->ctim.tv_sec && st->st_ctim.tv_nsec == ni->ctim.tv_nsec;
}

static void ni_tick(struct loop *loop, void *ctx)
{
	struct node_info *ni = ctx;
	char path[NI_PATH_MAX], shown[NI_PATH_MAX], where[NI_PATH_MAX + 128];
	uint64_t now = clock_mono_ms();
	struct stat st;

	if (ni_querying(ni) && now >= ni->deadline_ms)
		ni_fail(ni, LOG_LVL_WARN, "no answer to getinfo within %d s", NI_TIMEOUT_MS / 1000);
	if (ni->state == NI_ANSWERED) {
		/* Still the same socket? A restarted lightningd binds a new one. */
		if (stat(ni->path, &st) == 0 ? ni_same_sock(ni, &st)
					     : errno != ENOENT && errno != ENOTDIR)
			goto rearm; /* same socket, or cannot tell: the connection will */
		log_debug("%s was replaced: lightningd restarted; asking again", ni->shown);
		ni_close(ni);
	}
	if (ni_querying(ni))
		goto rearm;
	if (!ni_locate(ni, path, shown, &st, where, sizeof(where))) {
		text_printf(ni->last_error, sizeof(ni->last_error),
			    "no lightningd JSON-RPC socket found (%s)", where);
		if (!ni->told_missing)
			log_info(
				"no lightningd JSON-RPC socket found (%s): spans go without the "
				"node's identity (service.instance.id, cln.alias) until one appears; "
				"--rpc-file PATH names it (lightningd's lightning-rpc)",
				where);
		ni->told_missing = true;
		goto rearm;
	}
	if (!ni->have_sock || !ni_same_sock(ni, &st) || strcmp(path, ni->path)) {
		/* A new socket: a (re)started lightningd. Ask at once. */
		snprintf(ni->path, sizeof(ni->path), "%s", path);
		snprintf(ni->shown, sizeof(ni->shown), "%s", shown);
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
	loop_timer_arm(ni->timer, NI_POLL_MS);
}

/* Start-up only, before any source is open: wait for the first answer, bounded. */
static void ni_wait(struct node_info *ni, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;

	while (ni_querying(ni)) {
		uint64_t now = clock_mono_ms();
		struct pollfd pfd = {.fd = ni->fd,
				     .events = ni->state == NI_READING ? POLLIN : POLLOUT};
		int n;

		if (now >= end)
			break;
		n = poll(&pfd, 1, (int)(end - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ni_on_fd(ni->loop, ni->fd, (uint32_t)pfd.revents, ni);
	}
	if (ni_querying(ni))
		snprintf(ni->last_error, sizeof(ni->last_error),
			 "no answer to getinfo within %llu ms", (unsigned long long)ms);
	if (ni_querying(ni))
		log_info("lightningd at %s has not answered getinfo within %llu ms: starting "
			 "without the node's identity; spans get it once it answers",
			 ni->shown, (unsigned long long)ms);
}

/* ---- life cycle -------------------------------------------------------------------- */

static char *ni_strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct node_info *node_info__new(struct loop *loop, const struct node_info_cfg *cfg,
				 struct otlp_resource_cfg *res)
{
	struct node_info *ni = calloc(1, sizeof(*ni));
	const char *home = cfg->home;

	if (!ni)
		return NULL;
	ni->loop = loop;
	ni->res = res;
	ni->fd = -1;
	ni->base = res->attrs;
	ni->n_base = res->n_attrs;
	ni->backoff_ms = NI_BACKOFF_MS;
	ni->find_lightningd = cfg->find_lightningd;
	if (!home || !home[0])
		home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : NULL;
	}
	ni->attrs = calloc(ni->n_base + NI_N_ATTRS, sizeof(*ni->attrs));
	ni->rpc_file = ni_strdup_or_null(cfg->rpc_file);
	ni->home = ni_strdup_or_null(home);
	if (cfg->n_pids) {
		ni->pids = calloc(cfg->n_pids, sizeof(*ni->pids));
		if (ni->pids) {
			memcpy(ni->pids, cfg->pids, cfg->n_pids * sizeof(*ni->pids));
			ni->n_pids = cfg->n_pids;
		}
	}
	ni->timer = loop_timer__new(loop, ni_tick, ni);
	if (!ni->attrs || (cfg->rpc_file && !ni->rpc_file) || (home && !ni->home) ||
	    (cfg->n_pids && !ni->pids) || !ni->timer) {
		node_info__free(ni);
		return NULL;
	}
	ni_rebuild(ni);
	ni_tick(loop, ni);
	if (cfg->startup_wait_ms)
		ni_wait(ni, cfg->startup_wait_ms);
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
	free(ni->buf);
	free(ni->owner_home);
	free(ni->home);
	free(ni->pids);
	free(ni->rpc_file);
	free(ni->attrs);
	free(ni);
}

bool node_info_answered(const struct node_info *ni, struct node_info_ident *ident, char *where,
			size_t where_size, char *why, size_t why_size)
{
	snprintf(where, where_size, "%s", ni->have_sock ? ni->shown : "");
	snprintf(why, why_size, "%s", ni->last_error[0] ? ni->last_error : "not asked yet");
	if (ni->have_ident)
		*ident = ni->ident;
	return ni->have_ident;
}
