// SPDX-License-Identifier: MIT
#include "source_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "exe_paths.h"
#include "log.h"
#include "stats.h"

#define SOCKET_BATCH 32 /* datagrams per recvmmsg */
/* The largest span, and its NUL if sent: longer datagrams are cut, then rejected. */
#define SOCKET_DGRAM_MAX (SPAN_MAX_PAYLOAD + 1)
#define SOCKET_RCVBUF	 (8 * 1024 * 1024)
#define SOCKET_EXE_CACHE 64

struct socket_exe {
	uint32_t pid;	 /* 0: free */
	const char *exe; /* a reference (exe_paths.h), may be NULL */
};

struct source_socket {
	struct loop *loop;
	struct pipeline *p;
	char *path;
	int fd;
	bool bound; /* the socket file is ours to unlink */
	bool stopped;
	struct socket_exe exes[SOCKET_EXE_CACHE];
	size_t next_exe;
	char bufs[SOCKET_BATCH][SOCKET_DGRAM_MAX];
	char cmsg[SOCKET_BATCH][CMSG_SPACE(sizeof(struct ucred))];
	struct log_ratelimit rl;
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

static void source_socket_readable(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_socket *src = ctx;
	struct mmsghdr msgs[SOCKET_BATCH];
	struct iovec iov[SOCKET_BATCH];

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
		n = recvmmsg(fd, msgs, SOCKET_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_limited(&src->rl, LOG_LVL_WARN, "trace socket %s: %s",
					    src->path, strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct pipeline_origin origin = {.source = STATS_SRC_SOCKET};
			struct cmsghdr *c;
			size_t len = msgs[i].msg_len;

			for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
			     c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
				struct ucred cred;

				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
					continue;
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
				origin.pid = (uint32_t)cred.pid;
			}
			origin.exe_path = source_socket_exe(src, origin.pid);
			/* A datagram cut by our buffer is longer than any span: say so. */
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				len = SPAN_MAX_PAYLOAD + 1;
			/* CLN sends the string without its NUL; tolerate one. */
			while (len && len <= SOCKET_DGRAM_MAX && src->bufs[i][len - 1] == '\0')
				len--;
			pipeline_ingest(src->p, &origin, src->bufs[i], len);
		}
		if (n < SOCKET_BATCH)
			return;
	}
}

struct source_socket *source_socket__new(struct loop *loop, struct pipeline *p, const char *path,
					 char *err, size_t err_size)
{
	struct source_socket *src = calloc(1, sizeof(*src));
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int one = 1, rcvbuf = SOCKET_RCVBUF;
	struct stat st;
	int r;

	if (!src) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	src->fd = -1;
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
	/* A socket file left by an earlier run would make bind fail: replace it. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, err_size,
				 "--socket %s: exists and is not a socket; remove it or choose "
				 "another path",
				 path);
			goto fail;
		}
		unlink(path);
	}
	src->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (src->fd < 0 || bind(src->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(err, err_size, "--socket %s: cannot create the socket: %s%s", path,
			 strerror(errno),
			 errno == EACCES ? " (check the directory's permissions)" : "");
		goto fail;
	}
	src->bound = true;
	setsockopt(src->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	/* Room for a startup burst: CLN's sends are non-blocking and lost when we lag. */
	if (setsockopt(src->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(src->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	r = loop_add(loop, src->fd, EPOLLIN, source_socket_readable, src);
	if (r < 0) {
		snprintf(err, err_size, "--socket %s: %s", path, strerror(-r));
		goto fail;
	}
	log_info("listening on %s: start lightningd with CLN_TRACE_SOCKET=%s", path, path);
	return src;
fail:
	source_socket__free(src);
	return NULL;
}

void source_socket_stop(struct source_socket *src)
{
	if (!src || src->stopped)
		return;
	/* Take what is already queued on the socket, then stop listening. */
	source_socket_readable(src->loop, src->fd, EPOLLIN, src);
	src->stopped = true;
	loop_del(src->loop, src->fd);
}

void source_socket__free(struct source_socket *src)
{
	if (!src)
		return;
	for (size_t i = 0; i < SOCKET_EXE_CACHE; i++)
		exe_path_put(src->exes[i].exe);
	if (src->fd >= 0) {
		if (!src->stopped)
			loop_del(src->loop, src->fd);
		close(src->fd);
		if (src->bound)
			unlink(src->path);
	}
	free(src->path);
	free(src);
}
