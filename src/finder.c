// SPDX-License-Identifier: MIT
/*
 * finder: the node of a process and its lightning-rpc, in-process (finder_who,
 * finder_connect) and from the helper process (finder_helper_*). finder.h says what and why.
 *
 * Everything read here comes from /proc of the process asked about, bounded in size: its
 * stat, status, cgroup, cmdline and environ (HOME only), and links exe, root and cwd.
 */
#include "finder.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "elf_notes.h"
#include "log.h"
#include "privs.h"

#define FINDER_CACHE_MAX   256	  /* binaries whose verdict is remembered */
#define FINDER_HOPS	   16	  /* parents walked up from a process */
#define FINDER_STAT_MAX	   4096	  /* /proc/PID/stat and status, read whole */
#define FINDER_CGROUP_MAX  16384  /* /proc/PID/cgroup */
#define FINDER_CMDLINE_MAX 32768  /* /proc/PID/cmdline */
#define FINDER_ENVIRON_MAX 131072 /* /proc/PID/environ */
#define FINDER_PATHS	   4	  /* candidates for the socket */
#define FINDER_HELPER_FD   3	  /* the helper's end of the socketpair */
#define FINDER_REAP_MS	   2000	  /* how long free waits for the helper to exit */
#define FINDER_OP_READY	   0	  /* the helper's first message: set up, or why not */

struct finder_bin {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	bool probed;
};

struct finder {
	struct finder_bin bins[FINDER_CACHE_MAX];
	size_t n, next; /* entries used; the oldest, replaced when full */
};

struct finder_helper {
	int fd;
	pid_t pid;
};

/* One process, as read from /proc/PID/stat. */
struct finder_proc {
	uint32_t pid, ppid;
	uint64_t start;
};

static void finder_why(struct finder_reply *out, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finder_why(struct finder_reply *out, int err, const char *fmt, ...)
{
	va_list ap;

	out->err = err;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

struct finder *finder__new(void)
{
	return calloc(1, sizeof(struct finder));
}

void finder__free(struct finder *f)
{
	free(f);
}

/* Read at most @max bytes of @path (NUL added after them: @buf holds max + 1). */
static ssize_t finder_read(const char *path, char *buf, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (got < max) {
		n = read(fd, buf + got, max - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* ppid (field 4) and start time (field 22) of @pid: after the last ')', comm may hold any. */
static int finder_stat(uint32_t pid, struct finder_proc *p)
{
	char path[64], buf[FINDER_STAT_MAX + 1], *s;
	unsigned long long v;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	n = finder_read(path, buf, FINDER_STAT_MAX);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	s = strrchr(buf, ')');
	if (!s)
		return -EBADMSG;
	s++;
	p->pid = pid;
	/* s is at field 3 (state); field k is the (k - 2)th token */
	for (int field = 3; field <= 22; field++) {
		char *end;

		while (*s == ' ')
			s++;
		if (!*s)
			return -EBADMSG;
		errno = 0;
		v = strtoull(s, &end, 10);
		if (field == 4)
			p->ppid = v > UINT32_MAX ? 0 : (uint32_t)v;
		if (field == 22) {
			if (errno || end == s)
				return -EBADMSG;
			p->start = v;
		}
		s += strcspn(s, " ");
	}
	return 0;
}

/* The effective uid: the second field of "Uid:" in /proc/PID/status. */
static int finder_euid(uint32_t pid, uint32_t *uid)
{
	char path[64], buf[FINDER_STAT_MAX + 1], *line;
	unsigned long real, eff;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/status", pid);
	n = finder_read(path, buf, FINDER_STAT_MAX);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (sscanf(line, "Uid: %lu %lu", &real, &eff) == 2 && eff <= UINT32_MAX) {
			*uid = (uint32_t)eff;
			return 0;
		}
	return -EBADMSG;
}

/* readlink /proc/PID/exe, " (deleted)" removed; "?" when unreadable. */
static void finder_exe_name(uint32_t pid, char *out, size_t size)
{
	static const char deleted[] = " (deleted)";
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, out, size - 1);
	if (n <= 0) {
		snprintf(out, size, "?");
		return;
	}
	out[n] = '\0';
	if ((size_t)n > sizeof(deleted) - 1 && !strcmp(out + n - (sizeof(deleted) - 1), deleted))
		out[n - (sizeof(deleted) - 1)] = '\0';
}

static bool finder_is_lightningd(const char *exe)
{
	const char *base = strrchr(exe, '/');

	return !strncmp(base ? base + 1 : exe, "lightningd", 10);
}

static struct finder_bin *finder_cached(struct finder *f, const struct stat *st)
{
	for (size_t i = 0; i < f->n; i++) {
		struct finder_bin *b = &f->bins[i];

		if (b->dev == st->st_dev && b->ino == st->st_ino && b->size == st->st_size &&
		    b->mtim.tv_sec == st->st_mtim.tv_sec && b->mtim.tv_nsec == st->st_mtim.tv_nsec)
			return b;
	}
	return NULL;
}

static void finder_remember(struct finder *f, const struct stat *st, bool probed)
{
	struct finder_bin *b;

	if (f->n < FINDER_CACHE_MAX) {
		b = &f->bins[f->n++];
	} else {
		b = &f->bins[f->next];
		f->next = (f->next + 1) % FINDER_CACHE_MAX;
	}
	*b = (struct finder_bin){.dev = st->st_dev,
				 .ino = st->st_ino,
				 .size = st->st_size,
				 .mtim = st->st_mtim,
				 .probed = probed};
}

/*
 * Does the binary @pid runs carry lightningd:span_emit? 1 yes, 0 no, or a negative errno
 * (-ESRCH: gone, -EACCES: not ours to read). Read through the opened fd: the file checked is
 * the one running, whatever its path now names.
 */
static int finder_trusted(struct finder *f, uint32_t pid)
{
	char path[64];
	struct finder_bin *b;
	struct stat st;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (fstat(fd, &st) < 0) {
		n = -errno;
		goto out;
	}
	b = finder_cached(f, &st);
	if (b) {
		n = b->probed;
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = elf_notes_count_probe(path, "lightningd", "span_emit");
	if (n >= 0 || n == -ENOEXEC || n == -EBADMSG) {
		n = n > 0;
		finder_remember(f, &st, n);
	}
out:
	close(fd);
	return n;
}

/* A reply to @req: its operation, sequence number and pid, nothing found yet. */
static void finder_reply_start(struct finder_reply *out, const struct finder_req *req)
{
	memset(out, 0, sizeof(*out));
	out->op = req->op;
	out->seq = req->seq;
	out->pid = req->pid;
}

static void finder_who_fail(struct finder_reply *out, int err, uint32_t pid, const char *what)
{
	if (err == -ESRCH)
		finder_why(out, err, "process %u has exited", pid);
	else
		finder_why(out, err, "process %u: cannot read %s: %s%s", pid, what, strerror(-err),
			   err == -EACCES || err == -EPERM
				   ? " (another user's process: run as root, or keep "
				     "CAP_SYS_PTRACE)"
				   : "");
}

/* Up from @p through trusted parents: the topmost lightningd, 0 when none. */
static uint32_t finder_climb(struct finder *f, struct finder_proc p, struct finder_proc *node)
{
	uint32_t found = 0;
	char exe[PATH_MAX];

	for (int hop = 0; hop <= FINDER_HOPS; hop++) {
		finder_exe_name(p.pid, exe, sizeof(exe));
		if (finder_is_lightningd(exe)) {
			found = p.pid;
			*node = p;
		}
		if (hop == FINDER_HOPS || p.ppid == 0 || finder_trusted(f, p.ppid) != 1 ||
		    finder_stat(p.ppid, &p))
			break;
	}
	return found;
}

void finder_who(struct finder *f, const struct finder_req *req, struct finder_reply *out)
{
	char path[64], exe[PATH_MAX], *buf;
	struct finder_proc p, node;
	ssize_t n;
	int ret;

	finder_reply_start(out, req);
	ret = finder_stat(req->pid, &p);
	if (ret)
		return finder_who_fail(out, ret, req->pid, "its stat");
	out->start = p.start;
	ret = finder_trusted(f, req->pid);
	if (ret < 0)
		return finder_who_fail(out, ret, req->pid, "its executable");
	/* the executable read is that of the process whose start time we give */
	if (finder_stat(req->pid, &node) || node.start != p.start)
		return finder_who_fail(out, -ESRCH, req->pid, "");
	finder_exe_name(req->pid, exe, sizeof(exe));
	if (!ret)
		return finder_why(out, -EPERM,
				  "process %u runs %.300s which carries no lightningd:span_emit "
				  "probe: its spans get no node identity",
				  req->pid, exe);
	if (!finder_climb(f, p, &node))
		return finder_why(out, -ENOENT,
				  "process %u (%.300s) and its ancestors run no lightningd",
				  req->pid, exe);
	out->node_pid = node.pid;
	out->node_start = node.start;
	ret = finder_euid(node.pid, &out->node_uid);
	if (ret)
		return finder_who_fail(out, ret, node.pid, "its status");
	snprintf(path, sizeof(path), "/proc/%u/cgroup", node.pid);
	buf = malloc(FINDER_CGROUP_MAX + 1);
	if (!buf)
		return finder_why(out, -ENOMEM, "out of memory");
	n = finder_read(path, buf, FINDER_CGROUP_MAX);
	if (n > 0)
		finder_container_id(buf, (size_t)n, out->container_id);
	free(buf);
}

/* ---- pure parts ------------------------------------------------------------------------- */

static bool finder_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool finder_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The last id in the path @p..@end; true when found. */
static bool finder_path_id(const char *p, const char *end, char out[FINDER_ID_SIZE])
{
	bool found = false;

	while (p < end) {
		const char *tok = p;
		bool hex = true;

		while (p < end && finder_alnum(*p)) {
			hex = hex && finder_hex(*p);
			p++;
		}
		if (hex && p - tok == FINDER_ID_SIZE - 1) {
			for (int i = 0; i < FINDER_ID_SIZE - 1; i++)
				out[i] = (char)tolower((unsigned char)tok[i]);
			out[FINDER_ID_SIZE - 1] = '\0';
			found = true;
		}
		if (p == tok)
			p++;
	}
	return found;
}

bool finder_container_id(const char *text, size_t len, char out[FINDER_ID_SIZE])
{
	const char *p = text, *end = text + len;

	out[0] = '\0';
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *c1, *c2;

		if (!eol)
			eol = end;
		/* hierarchy-ID:controllers:path; the path may hold ':' itself */
		c1 = memchr(p, ':', (size_t)(eol - p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
		if (c2 && finder_path_id(c2 + 1, eol, out))
			return true;
		p = eol + 1;
	}
	out[0] = '\0';
	return false;
}

/* "--name=value" or "--name" "value": the value, and how many arguments it took (0: not it). */
static int finder_opt(const char *arg, const char *next, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, n))
		return 0;
	if (arg[2 + n] == '=') {
		*val = arg + 3 + n;
		return 1;
	}
	if (arg[2 + n] || !next)
		return 0;
	*val = next;
	return 2;
}

struct finder_cmd {
	const char *dir, *network, *rpc, *wallet;
};

static void finder_parse_cmd(const char *cmdline, size_t len, struct finder_cmd *c)
{
	static const char *const flags[][2] = {{"--mainnet", "bitcoin"},
					       {"--testnet", "testnet"},
					       {"--testnet4", "testnet4"},
					       {"--signet", "signet"},
					       {"--regtest", "regtest"}};
	const char *end = cmdline + len, *a = cmdline;

	/* argv[0] is the program; the last argument may lack its NUL (cut short) */
	a = memchr(a, '\0', len);
	a = a ? a + 1 : end;
	while (a < end && memchr(a, '\0', (size_t)(end - a))) {
		const char *next = a + strlen(a) + 1, *val = NULL;
		int took;

		if (next >= end || !memchr(next, '\0', (size_t)(end - next)))
			next = NULL;
		if ((took = finder_opt(a, next, "lightning-dir", &val)))
			c->dir = *val ? val : c->dir;
		else if ((took = finder_opt(a, next, "network", &val)))
			c->network = *val ? val : c->network;
		else if ((took = finder_opt(a, next, "rpc-file", &val)))
			c->rpc = *val ? val : c->rpc;
		else if ((took = finder_opt(a, next, "wallet", &val)))
			c->wallet = val;
		for (size_t i = 0; !took && i < sizeof(flags) / sizeof(flags[0]); i++)
			if (!strcmp(a, flags[i][0]))
				c->network = flags[i][1];
		a += strlen(a) + 1;
		if (took == 2)
			a += strlen(a) + 1;
	}
}

static size_t finder_add_path(char (*out)[PATH_MAX], size_t n, size_t max, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t finder_add_path(char (*out)[PATH_MAX], size_t n, size_t max, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	int len;

	if (n >= max)
		return n;
	va_start(ap, fmt);
	len = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (len <= 0 || len >= PATH_MAX)
		return n;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(out[i], path))
			return n;
	memcpy(out[n], path, (size_t)len + 1);
	return n + 1;
}

size_t finder_rpc_paths(const char *cmdline, size_t len, const char *home, char (*out)[PATH_MAX],
			size_t max)
{
	struct finder_cmd c = {.network = "bitcoin", .rpc = "lightning-rpc"};
	char dir[PATH_MAX] = "";
	size_t n = 0;

	finder_parse_cmd(cmdline, len, &c);
	if (c.rpc[0] == '/')
		return finder_add_path(out, 0, max, "%s", c.rpc);
	if (c.dir && c.dir[0] == '/')
		snprintf(dir, sizeof(dir), "%s", c.dir);
	else if (!c.dir && home && home[0] == '/')
		snprintf(dir, sizeof(dir), "%s/.lightning", home);
	/* a network is one directory: nothing that climbs or descends */
	if (dir[0] && !strchr(c.network, '/') && strcmp(c.network, ".") && strcmp(c.network, ".."))
		n = finder_add_path(out, n, max, "%s/%s/%s", dir, c.network, c.rpc);
	return finder_add_path(out, n, max, "%s", c.rpc);
}

const char *finder_wallet(const char *cmdline, size_t len)
{
	struct finder_cmd c = {0};

	finder_parse_cmd(cmdline, len, &c);
	if (c.wallet &&
	    (!strncmp(c.wallet, "postgres://", 11) || !strncmp(c.wallet, "postgresql://", 13)))
		return "postgresql";
	return "sqlite";
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

/* HOME from an environ block, copied into @home ("" when absent). */
static void finder_home(const char *env, size_t len, char *home, size_t size)
{
	const char *p = env, *end = env + len;

	home[0] = '\0';
	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);

		if (n > 5 && !memcmp(p, "HOME=", 5) && n - 5 < size) {
			memcpy(home, p + 5, n - 5);
			home[n - 5] = '\0';
		}
		p += n + 1;
	}
}

/* The candidates of @pid into @paths; 0 or a negative errno with @out's why set. */
static int finder_candidates(uint32_t pid, char (*paths)[PATH_MAX], size_t *n,
			     struct finder_reply *out)
{
	char path[64], home[PATH_MAX], *buf = malloc(FINDER_ENVIRON_MAX + 1);
	ssize_t len;

	if (!buf) {
		finder_why(out, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "/proc/%u/environ", pid);
	len = finder_read(path, buf, FINDER_ENVIRON_MAX);
	finder_home(buf, len > 0 ? (size_t)len : 0, home, sizeof(home));
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	len = finder_read(path, buf, FINDER_CMDLINE_MAX);
	if (len < 0) {
		finder_who_fail(out, (int)len, pid, "its command line");
		free(buf);
		return (int)len;
	}
	*n = finder_rpc_paths(buf, (size_t)len, home, paths, FINDER_PATHS);
	snprintf(out->wallet, sizeof(out->wallet), "%s", finder_wallet(buf, (size_t)len));
	free(buf);
	return 0;
}

/* Connect to the socket behind @fd: 0 connected, 1 connecting, or a negative errno. */
static int finder_dial(int fd, int *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ret;

	if (s < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", fd);
	ret = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	if (ret == 0 || errno == EINPROGRESS || errno == EAGAIN) {
		*sock = s;
		return ret == 0 ? 0 : 1;
	}
	ret = -errno;
	close(s);
	return ret;
}

struct finder_try {
	char looked[FINDER_WHY_SIZE]; /* "a, b": places with nothing */
	int err;		      /* the first refusal (not -ENOENT), else 0 */
};

static void finder_looked(struct finder_try *t, const char *shown)
{
	size_t off = strlen(t->looked);

	snprintf(t->looked + off, sizeof(t->looked) - off, "%s%s", off ? ", " : "", shown);
}

/*
 * One candidate: open it as the node sees it, check it, connect. The socket fd, or -1 (why
 * in @out when refused, in @t->looked when absent).
 */
static int finder_try_one(const struct finder_req *req, uint32_t uid, const char *rpc,
			  const char *shown, struct finder_try *t, struct finder_reply *out)
{
	char path[PATH_MAX + 64];
	struct stat st;
	int fd, sock = -1, ret;

	if (rpc[0] == '/')
		ret = snprintf(path, sizeof(path), "/proc/%u/root%s", req->pid, rpc);
	else
		ret = snprintf(path, sizeof(path), "/proc/%u/cwd/%s", req->pid, rpc);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -1;
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		if (ret == -ENOENT || ret == -ENOTDIR) {
			finder_looked(t, shown);
		} else if (!t->err) {
			t->err = ret;
			finder_why(out, ret, "cannot open %s: %s%s", shown, strerror(-ret),
				   ret == -EACCES ? " (run as root, or keep CAP_SYS_PTRACE and "
						    "CAP_DAC_OVERRIDE)"
						  : "");
		}
		return -1;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != uid) {
		if (!t->err) {
			t->err = -EPERM;
			if (!S_ISSOCK(st.st_mode))
				finder_why(out, -EPERM, "%s is no socket: not trusted", shown);
			else
				finder_why(out, -EPERM,
					   "%s is owned by uid %u, not by the node's user %u: not "
					   "trusted",
					   shown, (unsigned)st.st_uid, (unsigned)uid);
		}
		close(fd);
		return -1;
	}
	ret = finder_dial(fd, &sock);
	close(fd);
	if (ret >= 0) {
		out->connecting = ret == 1;
		snprintf(out->shown, sizeof(out->shown), "%s", shown);
		return sock;
	}
	if (!t->err || t->err == -ECONNREFUSED) {
		t->err = ret;
		finder_why(out, ret, "cannot connect to %s: %s%s", shown, strerror(-ret),
			   ret == -ECONNREFUSED ? " (lightningd is not listening: starting, or "
						  "stopping)"
						: "");
	}
	return -1;
}

int finder_connect(struct finder *f, const struct finder_req *req, struct finder_reply *out)
{
	char(*paths)[PATH_MAX] = NULL, cwd[PATH_MAX], link[64], shown[FINDER_SHOWN_SIZE];
	struct finder_try *t = NULL;
	struct finder_proc p;
	size_t n = 0;
	uint32_t uid;
	int ret, sock = -1;
	ssize_t len;

	finder_reply_start(out, req);
	ret = finder_stat(req->pid, &p);
	if (!ret && p.start != req->start)
		ret = -ESRCH;
	if (!ret)
		ret = finder_euid(req->pid, &uid);
	if (ret) {
		finder_who_fail(out, ret, req->pid, "its status");
		return -1;
	}
	out->start = p.start;
	paths = malloc(FINDER_PATHS * sizeof(*paths));
	t = calloc(1, sizeof(*t));
	if (!paths || !t) {
		finder_why(out, -ENOMEM, "out of memory");
		goto out;
	}
	if (finder_candidates(req->pid, paths, &n, out))
		goto out;
	snprintf(link, sizeof(link), "/proc/%u/cwd", req->pid);
	len = readlink(link, cwd, sizeof(cwd) - 1);
	snprintf(cwd + (len > 0 ? len : 0), sizeof(cwd) - (size_t)(len > 0 ? len : 0), "%s",
		 len > 0 ? "" : "<its working directory>");
	for (size_t i = 0; i < n && sock < 0; i++) {
		if (paths[i][0] == '/')
			snprintf(shown, sizeof(shown), "%.200s (lightningd pid %u)", paths[i],
				 req->pid);
		else
			snprintf(shown, sizeof(shown), "%.100s/%.100s (lightningd pid %u)", cwd,
				 paths[i], req->pid);
		sock = finder_try_one(req, uid, paths[i], shown, t, out);
	}
	if (sock < 0 && !t->err)
		finder_why(out, -ENOENT, "no lightning-rpc at %s",
			   t->looked[0] ? t->looked : "any place its command line names");
out:
	if (sock < 0 && !out->err)
		out->err = -ENOMEM;
	if (sock >= 0) {
		out->err = 0;
		out->why[0] = '\0';
	}
	free(paths);
	free(t);
	(void)f;
	return sock;
}

/* ---- the helper --------------------------------------------------------------------------- */

/* Send @r, with @fd (when >= 0) as SCM_RIGHTS. 0 or a negative errno. */
static int finder_send_reply(int sock, const struct finder_reply *r, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)r, .iov_len = sizeof(*r)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Close every fd that came with @msg. */
static void finder_close_fds(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/* One request, answered. False when the helper should end (EOF, the socket broken). */
static bool finder_serve_one(struct finder *f, int sock)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct finder_req req[2]; /* room for one byte too many: a longer message is wrong */
	struct iovec iov = {.iov_base = req, .iov_len = sizeof(req)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct finder_reply *r = calloc(1, sizeof(*r));
	ssize_t n;
	int fd = -1;
	bool ok;

	if (!r)
		return false;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		free(r);
		return false;
	}
	finder_close_fds(&msg); /* none is expected */
	r->op = req[0].op;
	r->seq = req[0].seq;
	r->pid = req[0].pid;
	if ((size_t)n != sizeof(req[0]) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		finder_why(r, -EINVAL, "a request of %zd bytes, not %zu", n, sizeof(req[0]));
	else if (req[0].pad || !req[0].pid || req[0].pid > INT32_MAX)
		finder_why(r, -EINVAL, "a malformed request (pid %u)", req[0].pid);
	else if (req[0].op == FINDER_WHO)
		finder_who(f, &req[0], r);
	else if (req[0].op == FINDER_CONNECT)
		fd = finder_connect(f, &req[0], r);
	else
		finder_why(r, -EINVAL, "unknown request %u", req[0].op);
	ok = finder_send_reply(sock, r, fd) == 0;
	if (fd >= 0)
		close(fd);
	free(r);
	return ok;
}

/* Everything but 0-2 and @sock, which becomes FINDER_HELPER_FD. The socket, or -1. */
static int finder_close_others(int sock)
{
	if (sock != FINDER_HELPER_FD) {
		if (dup2(sock, FINDER_HELPER_FD) < 0)
			return -1;
		sock = FINDER_HELPER_FD;
	}
	if (close_range(FINDER_HELPER_FD + 1, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = FINDER_HELPER_FD + 1; fd < (max > 0 ? max : 65536); fd++)
			close((int)fd);
	}
	return sock;
}

/* The helper's set-up: 0 or a negative errno with a message in @why. */
static int finder_helper_setup(const char *user, pid_t parent, char *why, size_t size)
{
	struct privs_opts o = {.find_nodes = true, .user = user};
	sigset_t all;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) {
		snprintf(why, size, "node finder: its parent is gone");
		return -ESRCH;
	}
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* SIGKILL, SIGSTOP and the real-time ones libc keeps fail */
	return privs_drop(&o, why, size);
}

static __attribute__((noreturn)) void finder_helper_main(const int sv[2], const char *user,
							 pid_t parent)
{
	struct finder_reply *r = calloc(1, sizeof(*r));
	struct finder *f = finder__new();
	int sock;

	close(sv[0]); /* the parent's end: it may sit below FINDER_HELPER_FD */
	sock = finder_close_others(sv[1]);
	if (!r || !f || sock < 0)
		_exit(1);
	r->op = FINDER_OP_READY;
	r->err = finder_helper_setup(user, parent, r->why, sizeof(r->why));
	if (finder_send_reply(sock, r, -1) < 0 || r->err) {
		free(r);
		finder__free(f);
		_exit(1);
	}
	while (finder_serve_one(f, sock))
		;
	free(r);
	finder__free(f);
	_exit(0);
}

int finder_helper_fd(const struct finder_helper *h)
{
	return h->fd;
}

int finder_helper_pid(const struct finder_helper *h)
{
	return (int)h->pid;
}

/* Wait for the helper's first message: it is set up, or says why not. */
static int finder_helper_ready(struct finder_helper *h, char *err, size_t err_size)
{
	struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
	struct finder_reply *r = calloc(1, sizeof(*r));
	int ret, fd = -1;

	if (!r)
		return -ENOMEM;
	do
		ret = poll(&pfd, 1, FINDER_READY_MS);
	while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		ret = ret < 0 ? -errno : -ETIMEDOUT;
		snprintf(err, err_size, "node finder: no word from the helper process: %s",
			 strerror(-ret));
		goto out;
	}
	ret = finder_helper_recv(h, r, &fd);
	if (ret == 1 && r->op == FINDER_OP_READY && fd < 0 && r->err <= 0) {
		ret = r->err;
		if (ret)
			snprintf(err, err_size, "node finder: %s", r->why);
		goto out;
	}
	if (fd >= 0)
		close(fd);
	snprintf(err, err_size, "node finder: the helper process %s",
		 ret == 1 ? "said something unexpected" : "ended while setting up");
	ret = -EPROTO;
out:
	free(r);
	return ret;
}

int finder_helper__spawn(const char *user, void (*scrub)(void *ctx), void *ctx,
			 struct finder_helper **out, char *err, size_t err_size)
{
	struct finder_helper *h = calloc(1, sizeof(*h));
	pid_t parent = getpid();
	int sv[2], ret;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		snprintf(err, err_size, "node finder: socketpair: %s", strerror(errno));
		free(h);
		return ret;
	}
	fflush(NULL); /* nothing buffered is written twice */
	h->pid = fork();
	if (h->pid == 0) {
		free(h); /* the parent's: nothing here refers to it */
		if (scrub)
			scrub(ctx);
		finder_helper_main(sv, user, parent);
	}
	ret = -errno;
	close(sv[1]);
	h->fd = sv[0];
	if (h->pid < 0) {
		snprintf(err, err_size, "node finder: fork: %s", strerror(-ret));
		close(sv[0]);
		free(h);
		return ret;
	}
	if (fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK) < 0) {
		ret = -errno;
		snprintf(err, err_size, "node finder: fcntl: %s", strerror(errno));
	} else {
		ret = finder_helper_ready(h, err, err_size);
	}
	if (ret) {
		finder_helper__free(h);
		return ret;
	}
	*out = h;
	return 0;
}

int finder_helper_send(struct finder_helper *h, const struct finder_req *req)
{
	ssize_t n;

	do
		n = send(h->fd, req, sizeof(*req), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(*req))
		return 0;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
		return -EAGAIN;
	return -EPIPE;
}

static bool finder_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* The one fd of @msg into *fd; false when the control data is anything else (then closed). */
static bool finder_take_fd(struct msghdr *msg, int *fd)
{
	struct cmsghdr *c = CMSG_FIRSTHDR(msg);

	*fd = -1;
	if (!c)
		return true;
	if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)) && !CMSG_NXTHDR(msg, c)) {
		memcpy(fd, CMSG_DATA(c), sizeof(int));
		return true;
	}
	finder_close_fds(msg);
	return false;
}

int finder_helper_recv(struct finder_helper *h, struct finder_reply *reply, int *fd)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = reply, .iov_len = sizeof(*reply)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(h->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -EPIPE;
	if (n == 0)
		return -EPIPE;
	if (!finder_take_fd(&msg, fd))
		return -EBADMSG;
	if ((size_t)n != sizeof(*reply) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    !finder_terminated(reply->container_id, sizeof(reply->container_id)) ||
	    !finder_terminated(reply->shown, sizeof(reply->shown)) ||
	    !finder_terminated(reply->wallet, sizeof(reply->wallet)) ||
	    !finder_terminated(reply->why, sizeof(reply->why)) || reply->err > 0 ||
	    (*fd >= 0 && (reply->op != FINDER_CONNECT || reply->err))) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EBADMSG;
	}
	return 1;
}

void finder_helper__free(struct finder_helper *h)
{
	struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
	int status;

	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	/* It exits on EOF: give it a moment, then make sure. */
	for (int waited = 0; h->pid > 0; waited += 10) {
		pid_t r = waitpid(h->pid, &status, WNOHANG);

		if (r == h->pid || (r < 0 && errno != EINTR))
			break;
		if (waited >= FINDER_REAP_MS) {
			kill(h->pid, SIGKILL);
			while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		nanosleep(&tick, NULL);
	}
	free(h);
}
