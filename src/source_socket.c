// SPDX-License-Identifier: MIT
#include "source_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "exe_paths.h"
#include "log.h"
#include "stats.h"

#define SOCKET_BATCH 32 /* datagrams per recvmmsg */
/* The largest span, and its NUL if sent: longer datagrams are cut, then rejected. */
#define SOCKET_DGRAM_MAX (SPAN_MAX_PAYLOAD + 1)
#define SOCKET_EXE_CACHE 64
/*
 * net.unix.max_dgram_qlen, the datagrams a unix socket holds before a non-blocking sender
 * (CLN) gets EAGAIN and loses the span, whatever the receive buffer: 10 in every new
 * network namespace (every container). What arrives while cln-otlp is not scheduled must
 * fit: CLN emits 1,000-2,000 spans/s at startup and a loaded host can leave a reader off
 * its core for tens of milliseconds, so 512 datagrams (a quarter of a second of the
 * fastest startup). The receive buffer bounds nothing here: unix datagrams are charged to
 * each sender's send buffer (see SOCKET_DEFER_MAX_US), never to the receiver's.
 */
#define SOCKET_QLEN_TARGET SOURCE_SOCKET_QLEN_TARGET
#define SOCKET_QLEN_PATH   "/proc/sys/net/unix/max_dgram_qlen"
/*
 * Deferred draining. A reader asleep on the socket is woken by every datagram, and the sender
 * pays for that wake-up (a cross-CPU wake cost a node ~17 us per span, five times the sendto).
 * So once a wake-up has drained the socket, cln-otlp takes it out of its epoll set
 * (source_socket_defer) and drains again on a timer; it watches again once drains have found
 * it empty for SOCKET_IDLE_US. While it does not watch, datagrams wait, so each sleep is
 * bounded for them to fit. The tighter bound is the sender's own: a datagram counts against
 * its send buffer until read, and the default one (212,992 bytes) holds 167 of CLN's spans up
 * to ~700 bytes (49 of 2 KB), fewer than the 512 the queue takes. A node sending nothing but
 * spans does one sendto per 3.4 us, but a node's fastest measured stream (getinfo calls in a
 * loop: 3 spans per 101 us of work) is ~30,000 spans/s: SOCKET_DEFER_MAX_US (1 ms) brings ~30,
 * even when the rate jumps from nothing to that during one sleep. The first sleep after a
 * wake-up is SOCKET_DEFER_MIN_US; each next one doubles, but never lasts longer than
 * SOCKET_DEFER_FILL datagrams took to come at the rate the last drain saw.
 */
#define SOCKET_DEFER_MAX_US 1000
#define SOCKET_DEFER_MIN_US 50
#define SOCKET_DEFER_FILL   48
#define SOCKET_IDLE_US	    4000

struct socket_exe {
	uint32_t pid;	 /* 0: free */
	const char *exe; /* a reference (exe_paths.h), may be NULL */
};

struct source_socket {
	struct loop *loop;
	struct pipeline *p;
	char *path;
	int fd;
	bool bound; /* the socket file is ours to unlink, if the path still names it: */
	dev_t dev;  /* its identity, taken after bind */
	ino_t ino;
	bool stopped;
	int timer_fd;		      /* the deferred drain (timerfd, microseconds) */
	bool deferred;		      /* not in the epoll set: the timer drains it */
	uint64_t idle_us;	      /* time the drains in a row found nothing in */
	uint64_t delay_us;	      /* the last sleep */
	uint64_t last_drain;	      /* CLOCK_MONOTONIC ns of the last drain */
	uid_t allow[CONFIG_MAX_LIST]; /* --socket-allow-uid; none: every sender */
	size_t n_allow;
	struct socket_exe exes[SOCKET_EXE_CACHE];
	size_t next_exe;
	char bufs[SOCKET_BATCH][SOCKET_DGRAM_MAX];
	char cmsg[SOCKET_BATCH][CMSG_SPACE(sizeof(struct ucred))];
	struct log_ratelimit rl;
	struct log_ratelimit rl_refused;
};

/* Forget cached pids whose process exited: their paths may go once their spans are out. */
static void source_socket_sweep(struct source_socket *src)
{
	for (size_t i = 0; i < SOCKET_EXE_CACHE; i++) {
		struct socket_exe *slot = &src->exes[i];

		if (!slot->pid || kill((pid_t)slot->pid, 0) == 0 || errno != ESRCH)
			continue;
		exe_path_put(slot->exe);
		slot->exe = NULL;
		slot->pid = 0;
	}
}

/*
 * The executable of @pid, read once per pid (a small round-robin cache; each entry holds a
 * reference to its path). /proc/<pid>/exe needs ptrace-read access, which a process that
 * dropped its capabilities lacks for a node running as another user; argv[0]
 * (world-readable) stands in when it is absolute, as it is for the plugins lightningd
 * starts.
 */
static const char *source_socket_exe(struct source_socket *src, uint32_t pid)
{
	char path[64], target[PATH_MAX];
	struct socket_exe *slot;
	ssize_t n;

	if (!pid)
		return NULL;
	for (size_t i = 0; i < SOCKET_EXE_CACHE; i++)
		if (src->exes[i].pid == pid)
			return src->exes[i].exe;
	slot = &src->exes[src->next_exe++ % SOCKET_EXE_CACHE];
	exe_path_put(slot->exe);
	slot->pid = pid;
	slot->exe = NULL;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		int fd;

		snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, target, sizeof(target) - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0 || target[0] != '/')
			return NULL;
	}
	target[n] = '\0'; /* cmdline: argv[0] ends at its own NUL */
	if (exe_paths_full())
		source_socket_sweep(src);
	slot->exe = exe_path_get(target);
	if (!slot->exe)
		stats.exe_path_lost++; /* exe_path_get said why */
	return slot->exe;
}

static bool source_socket_allowed(const struct source_socket *src, const struct pipeline_origin *o)
{
	if (!src->n_allow)
		return true;
	for (size_t i = 0; o->has_uid && i < src->n_allow; i++)
		if (src->allow[i] == o->uid)
			return true;
	return false;
}

/*
 * One datagram, with the sender's credentials (the kernel's: a sender cannot forge them; its
 * real uid unless a privileged sender passes another).
 */
static void source_socket_datagram(struct source_socket *src, struct mmsghdr *m, char *buf)
{
	struct pipeline_origin origin = {.source = STATS_SRC_SOCKET};
	struct cmsghdr *c;
	size_t len = m->msg_len;

	for (c = CMSG_FIRSTHDR(&m->msg_hdr); c; c = CMSG_NXTHDR(&m->msg_hdr, c)) {
		struct ucred cred;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
			continue;
		memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		origin.pid = (uint32_t)cred.pid;
		origin.uid = (uint32_t)cred.uid;
		origin.has_uid = true;
	}
	if (!source_socket_allowed(src, &origin)) {
		stats.socket_refused++;
		if (origin.has_uid)
			log_limited(&src->rl_refused, LOG_LVL_WARN,
				    "trace socket %s: dropped a datagram from uid %u (pid %u), not "
				    "a --socket-allow-uid",
				    src->path, origin.uid, origin.pid);
		else
			log_limited(&src->rl_refused, LOG_LVL_WARN,
				    "trace socket %s: dropped a datagram without credentials",
				    src->path);
		return;
	}
	origin.exe_path = source_socket_exe(src, origin.pid);
	/* A datagram cut by our buffer is longer than any span: say so. */
	if (m->msg_hdr.msg_flags & MSG_TRUNC)
		len = SPAN_MAX_PAYLOAD + 1;
	/* CLN sends the string without its NUL; tolerate one. */
	while (len && len <= SOCKET_DGRAM_MAX && buf[len - 1] == '\0')
		len--;
	pipeline_ingest(src->p, &origin, buf, len);
}

/* Everything queued on the socket (up to 64 batches): the datagrams taken. */
static size_t source_socket_drain(struct source_socket *src)
{
	struct mmsghdr msgs[SOCKET_BATCH];
	struct iovec iov[SOCKET_BATCH];
	size_t got = 0;

	for (int round = 0; round < 64 && !src->stopped; round++) {
		int n;

		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < SOCKET_BATCH; i++) {
			iov[i].iov_base = src->bufs[i];
			iov[i].iov_len = sizeof(src->bufs[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = src->cmsg[i];
			msgs[i].msg_hdr.msg_controllen = sizeof(src->cmsg[i]);
		}
		n = recvmmsg(src->fd, msgs, SOCKET_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: %s",
					    src->path, strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			source_socket_datagram(src, &msgs[i], src->bufs[i]);
		got += (size_t)n;
		if (n < SOCKET_BATCH)
			break;
	}
	return got;
}

static void source_socket_readable(struct loop *loop, int fd, uint32_t events, void *ctx);

static uint64_t source_socket_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Watch the socket again (@watch), or drain it in @us microseconds instead. Not watching
 * means not registered at all (EPOLL_CTL_DEL): an epoll entry left on the socket's wait
 * queue, even one asking for no event, has every sendto lock that queue and run epoll's
 * callback (~0.1 us of the sender's CPU per datagram); without one the sender's wake-up
 * check finds nobody waiting and returns.
 */
static void source_socket_defer(struct source_socket *src, bool watch, uint64_t us)
{
	struct itimerspec its = {.it_value = {.tv_sec = (time_t)(us / 1000000),
					      .tv_nsec = (long)(us % 1000000) * 1000}};
	int r;

	if (!watch && timerfd_settime(src->timer_fd, 0, &its, NULL) < 0) {
		log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: timer: %s", src->path,
			    strerror(errno));
		watch = true; /* level-triggered: the next datagram wakes us as before */
	}
	if (watch == !src->deferred)
		return;
	if (watch)
		r = loop_add(src->loop, src->fd, EPOLLIN, source_socket_readable, src);
	else
		r = loop_del(src->loop, src->fd);
	if (r < 0) {
		log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: epoll: %s", src->path,
			    strerror(-r));
		if (!watch)
			return; /* still watched: a wake-up per datagram, nothing lost */
		/* Not watched: keep draining on the timer, at the longest sleep. */
		its.it_value.tv_nsec = SOCKET_DEFER_MAX_US * 1000;
		src->delay_us = SOCKET_DEFER_MAX_US;
		if (timerfd_settime(src->timer_fd, 0, &its, NULL) < 0)
			log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: timer: %s", src->path,
				    strerror(errno));
		return;
	}
	src->deferred = !watch;
}

/* After a drain that took @got datagrams: the next sleep (see SOCKET_DEFER_MAX_US), or watch. */
static void source_socket_next(struct source_socket *src, size_t got)
{
	uint64_t now = source_socket_now();
	uint64_t since = (now - src->last_drain) / 1000;
	uint64_t us = src->delay_us * 2;

	src->last_drain = now;
	if (src->stopped)
		return;
	if (got) {
		src->idle_us = 0;
		if (since * SOCKET_DEFER_FILL / got < us)
			us = since * SOCKET_DEFER_FILL / got;
	} else if ((src->idle_us += since) >= SOCKET_IDLE_US) {
		src->idle_us = 0;
		source_socket_defer(src, true, 0);
		return;
	}
	if (us > SOCKET_DEFER_MAX_US)
		us = SOCKET_DEFER_MAX_US;
	if (us < SOCKET_DEFER_MIN_US)
		us = SOCKET_DEFER_MIN_US;
	src->delay_us = us;
	source_socket_defer(src, false, us);
}

static void source_socket_readable(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_socket *src = ctx;

	(void)loop;
	(void)fd;
	(void)events;
	if (src->deferred)
		return; /* EPOLLERR/EPOLLHUP while not watched: the timer drains */
	/* Woken from idle: the rate to come is unknown; the shortest sleep first. */
	source_socket_drain(src);
	src->last_drain = source_socket_now();
	src->idle_us = 0;
	src->delay_us = SOCKET_DEFER_MIN_US;
	source_socket_defer(src, false, SOCKET_DEFER_MIN_US);
}

static void source_socket_timer(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_socket *src = ctx;
	uint64_t expirations;

	(void)loop;
	(void)events;
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: timer: %s", src->path,
			    strerror(errno));
	if (!src->deferred || src->stopped)
		return;
	source_socket_next(src, source_socket_drain(src));
}

int source_socket_qlen_read(long *qlen)
{
	char buf[32];
	ssize_t n;
	int fd = open(SOCKET_QLEN_PATH, O_RDONLY | O_CLOEXEC);

	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	*qlen = strtol(buf, NULL, 10);
	return 0;
}

bool source_socket_qlen_raisable(void)
{
	int fd = open(SOCKET_QLEN_PATH, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Raise the namespace's net.unix.max_dgram_qlen (read at socket creation) if it is low. */
static void source_socket_qlen(void)
{
	char buf[32];
	long qlen;
	ssize_t n;
	int fd;

	if (source_socket_qlen_read(&qlen) < 0) {
		log_debug("cannot read %s: datagram queue length unknown", SOCKET_QLEN_PATH);
		return;
	}
	if (qlen >= SOCKET_QLEN_TARGET)
		return;
	fd = open(SOCKET_QLEN_PATH, O_WRONLY | O_CLOEXEC);
	n = snprintf(buf, sizeof(buf), "%d\n", SOCKET_QLEN_TARGET);
	if (fd >= 0 && write(fd, buf, (size_t)n) == n) {
		close(fd);
		log_info("net.unix.max_dgram_qlen was %ld in this network namespace: raised to %d, "
			 "so that spans sent while cln-otlp waits for the CPU are queued, not lost",
			 qlen, SOCKET_QLEN_TARGET);
		return;
	}
	n = errno;
	if (fd >= 0)
		close(fd);
	log_warn(
		"net.unix.max_dgram_qlen is %ld in this network namespace and cln-otlp cannot "
		"raise it (%s): lightningd loses the spans it sends while %ld wait on the socket. "
		"Fix: sysctl -w net.unix.max_dgram_qlen=%d as root in the node's network namespace "
		"(in a compose file: sysctls: net.unix.max_dgram_qlen: %d)",
		qlen, strerror((int)n), qlen, SOCKET_QLEN_TARGET, SOCKET_QLEN_TARGET);
}

/* A user or group given by name or number; 0, or -1 when there is no such one. */
static int source_socket_id(const char *s, bool group, uint32_t *out)
{
	struct passwd *pw;
	struct group *g;
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s >= '0' && *s <= '9' && !*end && !errno && v < UINT32_MAX) {
		*out = (uint32_t)v;
		return 0;
	}
	if (group) {
		g = getgrnam(s);
		*out = g ? (uint32_t)g->gr_gid : 0;
		return g ? 0 : -1;
	}
	pw = getpwnam(s);
	*out = pw ? (uint32_t)pw->pw_uid : 0;
	return pw ? 0 : -1;
}

/*
 * What is at @path already: nothing, or a socket nobody receives on (left by an earlier
 * run: removed). A live socket (another cln-otlp) or any other file is refused.
 */
static int source_socket_clear(const struct sockaddr_un *addr, bool dry, char *err, size_t err_size)
{
	const char *path = addr->sun_path;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(
			err, err_size,
			"--socket %s: exists and is not a socket; remove it or choose another path",
			path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_size, "--socket %s: %s", path, strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ? errno : 0;
	close(fd);
	if (r == ECONNREFUSED || r == ENOENT) {
		if (!dry && unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, err_size, "--socket %s: cannot remove the old socket: %s",
				 path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!r)
		snprintf(err, err_size,
			 "--socket %s: another process receives on this socket (another "
			 "cln-otlp?): stop it, or give this one another --socket path",
			 path);
	else
		snprintf(
			err, err_size,
			"--socket %s: a socket is there and cln-otlp cannot tell whether a process "
			"receives on it (%s): remove it if none does, or choose another path",
			path, strerror(r));
	return -1;
}

/*
 * Bind under a umask that leaves the new file no permission at all, then give it its group
 * and mode: no moment when more may send than @mode says. Remembers the file's identity.
 */
static int source_socket_bind(struct source_socket *src, const struct sockaddr_un *addr,
			      mode_t mode, const char *group, char *err, size_t err_size)
{
	const char *path = addr->sun_path;
	uint32_t gid = 0;
	struct stat st;
	mode_t old;
	int r;

	if (group && source_socket_id(group, true, &gid) < 0) {
		snprintf(err, err_size, "--socket-group %s: no such group", group);
		return -1;
	}
	old = umask(0777);
	r = bind(src->fd, (const struct sockaddr *)addr, sizeof(*addr));
	umask(old);
	if (r < 0) {
		snprintf(err, err_size, "--socket %s: cannot create the socket: %s%s", path,
			 strerror(errno),
			 errno == EACCES ? " (check the directory's permissions)" : "");
		return -1;
	}
	if (lstat(path, &st) < 0) {
		snprintf(err, err_size, "--socket %s: %s", path, strerror(errno));
		return -1;
	}
	src->bound = true;
	src->dev = st.st_dev;
	src->ino = st.st_ino;
	if (group && fchownat(AT_FDCWD, path, (uid_t)-1, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(err, err_size, "--socket-group %s: cannot give the socket to gid %u: %s%s",
			 group, gid, strerror(errno),
			 errno == EPERM ? " (started as another user than root, cln-otlp can only "
					  "give it one of its own groups)"
					: "");
		return -1;
	}
	if (fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW) < 0 || lstat(path, &st) < 0) {
		snprintf(err, err_size, "--socket %s: cannot set its mode %04o: %s", path,
			 (unsigned)mode, strerror(errno));
		return -1;
	}
	if (st.st_dev != src->dev || st.st_ino != src->ino) {
		src->bound = false; /* not ours any more */
		snprintf(err, err_size, "--socket %s: replaced by another file while being set up",
			 path);
		return -1;
	}
	return 0;
}

/* --socket-allow-uid, names or uids, into src->allow. */
static int source_socket_allow(struct source_socket *src, const struct config *cfg, char *err,
			       size_t err_size)
{
	for (size_t i = 0; i < cfg->n_socket_allow_uids && i < CONFIG_MAX_LIST; i++) {
		uint32_t uid;

		if (source_socket_id(cfg->socket_allow_uids[i], false, &uid) < 0) {
			snprintf(err, err_size, "--socket-allow-uid %s: no such user",
				 cfg->socket_allow_uids[i]);
			return -1;
		}
		src->allow[src->n_allow++] = (uid_t)uid;
	}
	return 0;
}

struct source_socket *source_socket__new(struct loop *loop, const struct config *cfg,
					 struct pipeline *p, char *err, size_t err_size)
{
	struct source_socket *src = calloc(1, sizeof(*src));
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	const char *path = cfg->socket_path;
	int one = 1;
	int r;

	if (!src) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	src->fd = -1;
	src->timer_fd = -1;
	src->loop = loop;
	src->p = p;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, err_size,
			 "--socket %s: path too long for a unix socket (%zu bytes max)", path,
			 sizeof(addr.sun_path) - 1);
		goto fail;
	}
	src->path = strdup(path);
	if (!src->path) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	strcpy(addr.sun_path, path);
	if (source_socket_allow(src, cfg, err, err_size) < 0 ||
	    source_socket_clear(&addr, false, err, err_size) < 0)
		goto fail;
	source_socket_qlen(); /* before socket(): the socket takes the value it finds */
	src->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (src->fd < 0) {
		snprintf(err, err_size, "--socket %s: cannot create the socket: %s", path,
			 strerror(errno));
		goto fail;
	}
	if (source_socket_bind(src, &addr, (mode_t)cfg->socket_mode, cfg->socket_group, err,
			       err_size) < 0)
		goto fail;
	/* The sender's pid and uid with every datagram. */
	if (setsockopt(src->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		snprintf(err, err_size, "--socket %s: SO_PASSCRED: %s", path, strerror(errno));
		goto fail;
	}
	src->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (src->timer_fd < 0) {
		snprintf(err, err_size, "--socket %s: timerfd: %s", path, strerror(errno));
		goto fail;
	}
	r = loop_add(loop, src->timer_fd, EPOLLIN, source_socket_timer, src);
	if (r < 0) {
		close(src->timer_fd);
		src->timer_fd = -1;
		snprintf(err, err_size, "--socket %s: %s", path, strerror(-r));
		goto fail;
	}
	r = loop_add(loop, src->fd, EPOLLIN, source_socket_readable, src);
	if (r < 0) {
		snprintf(err, err_size, "--socket %s: %s", path, strerror(-r));
		goto fail;
	}
	log_info("listening on %s (mode %04o): start lightningd with CLN_TRACE_SOCKET=%s", path,
		 (unsigned)cfg->socket_mode, path);
	return src;
fail:
	source_socket__free(src);
	return NULL;
}

int source_socket_check_path(const char *path, char *err, size_t err_size)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char dir[sizeof(addr.sun_path)];
	char *slash;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, err_size,
			 "--socket %s: path too long for a unix socket (%zu bytes max) — choose a "
			 "shorter path",
			 path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	strcpy(addr.sun_path, path);
	if (source_socket_clear(&addr, true, err, err_size) < 0)
		return -1;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (access(dir, W_OK | X_OK) < 0) {
		snprintf(err, err_size,
			 "--socket %s: cannot create a file in %s (%s) — create the directory, or "
			 "make it writable by the user cln-otlp starts as",
			 path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

void source_socket_stop(struct source_socket *src)
{
	if (!src || src->stopped)
		return;
	/* Take what is already queued on the socket, then stop listening. */
	source_socket_drain(src);
	src->stopped = true;
	loop_del(src->loop, src->fd);
	loop_del(src->loop, src->timer_fd);
}

void source_socket__free(struct source_socket *src)
{
	struct stat st;

	if (!src)
		return;
	for (size_t i = 0; i < SOCKET_EXE_CACHE; i++)
		exe_path_put(src->exes[i].exe);
	if (src->timer_fd >= 0) {
		if (!src->stopped)
			loop_del(src->loop, src->timer_fd);
		close(src->timer_fd);
	}
	if (src->fd >= 0) {
		if (!src->stopped)
			loop_del(src->loop, src->fd);
		close(src->fd);
	}
	/* Only our own file: another instance may have put its socket at the path since. */
	if (src->bound && lstat(src->path, &st) == 0 && st.st_dev == src->dev &&
	    st.st_ino == src->ino)
		unlink(src->path);
	free(src->path);
	free(src);
}
