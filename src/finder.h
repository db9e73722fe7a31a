/* SPDX-License-Identifier: MIT */
/*
 * finder: which node a process belongs to, and a connection to that node's lightning-rpc.
 *
 * Spans arrive tagged with the host pid of the process that emitted them: lightningd, or one
 * of its subdaemons and C plugins (its children, which carry the same probe). WHO names the
 * lightningd a pid belongs to, with its effective uid and container; CONNECT opens its
 * lightning-rpc as the node itself sees it (through /proc/PID/root and /proc/PID/cwd).
 *
 * Once start-up is over cln-otlp runs as an unprivileged user that can read neither another
 * user's /proc/PID/{exe,root,cwd,environ} nor connect to a lightning-rpc of mode 0600. So
 * main forks, before any thread starts and before privs_drop, a small helper that keeps
 * CAP_SYS_PTRACE and CAP_DAC_OVERRIDE only (privs.c says why) and answers WHO and CONNECT
 * over a SOCK_SEQPACKET socketpair, one fixed-size message each way, strictly in order. It
 * reads only /proc of the processes it is asked about and never what a collector or a node
 * sends: the main process does the getinfo conversation on the fd the helper passes
 * (SCM_RIGHTS). --check uses the same calls in-process, with its start-up privileges.
 *
 * Trust: only a process whose binary carries the lightningd:span_emit probe is taken for
 * part of a node; the socket must be one, owned by the node's effective uid (a symlink to
 * someone else's socket is refused), and is connected through the very inode checked.
 */
#ifndef CLN_OTLP_FINDER_H
#define CLN_OTLP_FINDER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FINDER_ID_SIZE	   65 /* container.id: 64 hex digits + NUL */
#define FINDER_SHOWN_SIZE  256
#define FINDER_WHY_SIZE	   512
#define FINDER_WALLET_SIZE 16

enum finder_op { FINDER_WHO = 1, FINDER_CONNECT = 2 };

struct finder_req {
	uint32_t op;	/* enum finder_op */
	uint32_t seq;	/* echoed in the reply */
	uint32_t pid;	/* WHO: a process spans came from; CONNECT: a lightningd WHO named */
	uint32_t pad;	/* 0 */
	uint64_t start; /* CONNECT: that lightningd's start time as WHO gave it */
};

struct finder_reply {
	uint32_t op, seq, pid; /* as asked */
	int32_t err;	       /* 0 or a negative errno; why[] says what and what to do */
	/* WHO */
	uint64_t start;	     /* the asked process's own start time (clock ticks since boot,
				      /proc/PID/stat field 22): tells pid reuse */
	uint32_t node_pid;   /* the lightningd it belongs to (may be pid itself) */
	uint32_t node_uid;   /* that lightningd's effective uid */
	uint64_t node_start; /* its start time */
	char container_id[FINDER_ID_SIZE]; /* "" when it runs in no container we recognise */
	/* CONNECT */
	bool connecting; /* the passed socket's connect() is still in progress (EINPROGRESS):
			    wait for EPOLLOUT */
	char shown[FINDER_SHOWN_SIZE];	 /* the socket as the node sees it: "<path> (lightningd
					  pid N)" */
	char wallet[FINDER_WALLET_SIZE]; /* its wallet database, "sqlite" or "postgresql"
					    (finder_wallet), "" when not read */
	char why[FINDER_WHY_SIZE];	 /* NUL-terminated; "" when err is 0 */
};

/*
 * In-process, with the caller's privileges (the helper uses these; so does --check).
 * struct finder holds a bounded cache of the binaries known to carry the probe or not,
 * keyed by (device, inode, size, mtime) of the opened /proc/PID/exe.
 */
struct finder;
struct finder *finder__new(void); /* NULL when out of memory */
void finder__free(struct finder *f);
/* Fill @out (all of it: zeroed first) for req->pid. Never fails otherwise. */
void finder_who(struct finder *f, const struct finder_req *req, struct finder_reply *out);
/*
 * Returns a connected (or connecting, see reply->connecting) non-blocking SOCK_STREAM fd
 * (close-on-exec), or -1 with out->err/why set. @out is zeroed first.
 */
int finder_connect(struct finder *f, const struct finder_req *req, struct finder_reply *out);

/* Pure parts, exposed for tests and the fuzz target. */
/*
 * container.id from the text of /proc/PID/cgroup (v1 or v2 lines): the last path component
 * holding a 64-hex-digit id (docker "/docker/<id>", systemd "docker-<id>.scope", podman
 * "libpod-<id>.scope", containerd/k8s "cri-containerd-<id>.scope", "crio-<id>.scope", ...),
 * of the first line that has one. The id is a token of exactly 64 hex digits between
 * characters that are neither letters nor digits. Returns true and fills @out (lowercase
 * hex) or false (@out then "").
 */
bool finder_container_id(const char *text, size_t len, char out[FINDER_ID_SIZE]);
/*
 * Where lightningd puts its lightning-rpc, from its command line (NUL-separated, as
 * /proc/PID/cmdline, argv[0] first) and HOME (NULL or "": none): paths as the node sees
 * them, best first; a relative one (no leading '/') is relative to the node's working
 * directory. lightningd's options, the last one winning, "--opt=value" or "--opt value":
 * --lightning-dir (default $HOME/.lightning), --network (default bitcoin) and the flags
 * --mainnet --testnet --testnet4 --signet --regtest, --rpc-file (default lightning-rpc).
 * An absolute --rpc-file is the one candidate; else <lightning-dir>/<network>/<rpc-file>
 * when that directory is absolute, then <rpc-file> (lightningd binds it in its network
 * directory, where it runs). No duplicates, none empty or of PATH_MAX bytes or more.
 * Returns how many (<= @max).
 */
size_t finder_rpc_paths(const char *cmdline, size_t len, const char *home, char (*out)[PATH_MAX],
			size_t max);

/*
 * The database lightningd keeps its wallet in (db.system.name), from its command line as
 * above: a last --wallet=DSN (or --wallet DSN) starting with "postgres://" or
 * "postgresql://" is "postgresql"; any other, or none, is "sqlite" (lightningd's default,
 * sqlite3://). A --wallet set in lightningd's config file instead is not seen.
 */
const char *finder_wallet(const char *cmdline, size_t len);

/* The helper process. */
struct finder_helper;
/*
 * Fork the helper: it keeps CAP_SYS_PTRACE and CAP_DAC_OVERRIDE (when the process has them),
 * switches to @user as privs_drop does (NULL: privs_drop's default; pass main's --user),
 * sets no_new_privs, closes every fd but its end of the socketpair (and 0-2), dies with its
 * parent (PR_SET_PDEATHSIG), exits on EOF. Waits (at most FINDER_READY_MS) for the helper to
 * say it is set up. Returns 0 or a negative errno with a message in @err. Call before any
 * thread starts and before privs_drop. @scrub (NULL: none) runs first thing in the helper,
 * with @ctx: the helper is a copy of the caller, and should not keep the caller's secrets
 * (API keys in headers, a URL's password) in its memory.
 */
#define FINDER_READY_MS 10000
int finder_helper__spawn(const char *user, void (*scrub)(void *ctx), void *ctx,
			 struct finder_helper **out, char *err, size_t err_size);
int finder_helper_fd(const struct finder_helper *h); /* non-blocking; watch it for EPOLLIN */
int finder_helper_pid(const struct finder_helper *h);
/* 0, -EAGAIN (socket buffer full: try later), or -EPIPE (helper gone). */
int finder_helper_send(struct finder_helper *h, const struct finder_req *req);
/*
 * 1 with a reply (and *fd >= 0, close-on-exec, when a socket came with it, else -1), 0 when
 * none is waiting, -EPIPE when the helper is gone, -EBADMSG on a malformed message (its fds
 * closed). A reply's strings are NUL-terminated.
 */
int finder_helper_recv(struct finder_helper *h, struct finder_reply *reply, int *fd);
/* Close the socket, reap the child (bounded wait, then SIGKILL). NULL is fine. */
void finder_helper__free(struct finder_helper *h);

#endif
