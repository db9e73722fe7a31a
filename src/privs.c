// SPDX-License-Identifier: MIT
/*
 * privs: what stays once start-up is over.
 *
 * Start-up needs much: loading BPF programs and maps (CAP_BPF, CAP_PERFMON, raising
 * RLIMIT_MEMLOCK: CAP_SYS_RESOURCE), creating uprobes, binding a low port for /metrics,
 * reading any file named on the command line. Once every source is set up the daemon reads
 * a ring buffer, sockets and files it already holds open, and talks to the collector: none
 * of that needs a capability. One thing does: the eBPF source attaches again when lightningd
 * or a plugin is upgraded (a new inode at the same path) and when a new plugin appears.
 * Attaching one USDT probe to an already loaded program (libbpf 1.1) means:
 *   - reading the binary's ELF notes, and stat()ing it and its directory to notice the
 *     upgrade: binaries of a CLN install often belong to the node's user without read bits
 *     for others, and an upgrade may change owner and mode: CAP_DAC_READ_SEARCH stays (read
 *     and search only, never write). Measured: as --user nobody with the binary in a 0700
 *     directory, the upgrade goes unnoticed without it;
 *   - perf_event_open() of a uprobe event for every process (pid -1). Kernels 5.8 to
 *     mid-2025 accept CAP_PERFMON; older ones, and every kernel since upstream's "perf:
 *     Revert to requiring CAP_SYS_ADMIN for uprobes" (backported to the stable series),
 *     want CAP_SYS_ADMIN. We ask the running kernel (privs_perfmon_uprobes): on 6.18 here,
 *     CAP_PERFMON alone gets EACCES and CAP_SYS_ADMIN is what stays;
 *   - BPF_LINK_CREATE of the loaded program on that event and updating libbpf's USDT spec
 *     maps: CAP_BPF (covered by CAP_SYS_ADMIN when that one stays). Kernels up to 6.4 check
 *     it for any bpf() call when kernel.unprivileged_bpf_disabled is set (Debian's default):
 *     the ring buffer's loss counters are read through bpf() too.
 * CAP_SYS_RESOURCE is not needed: attaching creates no map.
 * So with the eBPF source, either CAP_PERFMON + CAP_BPF + CAP_DAC_READ_SEARCH, or (current
 * kernels) CAP_SYS_ADMIN + CAP_DAC_READ_SEARCH. CAP_SYS_ADMIN is broad; it is the price of
 * following upgrades on these kernels. Without the eBPF source (file and socket only)
 * nothing stays.
 *
 * Everything else goes from the effective, permitted, inheritable and ambient sets, and from
 * the bounding set when we may change it (CAP_SETPCAP), so not even an exec could get it
 * back; no_new_privs is set too (no setuid or file-capability gains).
 *
 * The user: root without capabilities still owns /etc, /root and every root-owned file, so
 * started as root the daemon always switches user: --user NAME, by default the cln-otlp
 * system user if there is one, else nobody. --user root (any uid 0 user) stays root, with a
 * warning. Started as another user (systemd's DynamicUser, a setcap binary) it stays that
 * user unless --user says otherwise. The switch: setgroups (the user's groups), setresgid,
 * setresuid, keeping the permitted set across the change (PR_SET_KEEPCAPS), then the kept
 * capabilities are made effective again. Attaching again keeps working as that user: the
 * kernel checks capabilities, not the uid. main() has made the process non-dumpable from the
 * start (secrets), so that user's other processes cannot ptrace it nor read its memory.
 * Without capabilities beyond these, reconnecting to a lightning-rpc socket of another user
 * (node identity after lightningd restarts) needs --user to be the node's user, and files
 * opened later (--follow after a rotation, --ca-cert, --client-key, read by libcurl at each
 * connection) must be readable by the user.
 *
 * Discovery (the eBPF source with no source option: lightningd found as its processes
 * start): every new process's binary is opened as /proc/PID/exe, and a container's files
 * through /proc/PID/root. For a process of another user (the node's, root's), both need
 * ptrace read access (PTRACE_MODE_READ_FSCREDS), which a dropped user only has with
 * CAP_SYS_PTRACE: it stays in that mode only. It allows reading those processes' memory and
 * state through /proc, never changing them without ptrace attach, which no_new_privs and the
 * code's not calling ptrace() leave unused.
 *
 * The node finder (src/finder.h) runs in a helper process of its own, forked before the
 * daemon drops anything, as the same user: it tells which lightningd a process belongs to
 * and connects to that node's lightning-rpc, and hands the socket over. It keeps only:
 *   - CAP_SYS_PTRACE: /proc/PID/{exe,root,cwd,environ} of the node's processes (another
 *     user's: the node's, root's) need ptrace read access (PTRACE_MODE_READ_FSCREDS), as in
 *     discovery above; read only, never attached to;
 *   - CAP_DAC_OVERRIDE: lightning-rpc is a socket of mode 0600 (lightningd's default
 *     rpc-file-mode) in the node's directories, often 0700: connecting needs write access
 *     to it and search access on the way. It would also allow writing any file: the helper
 *     opens nothing for writing, parses nothing but /proc text of the processes asked about
 *     (never what a node or a collector sends), and the main process, which does, holds
 *     neither capability.
 * Started without them (not root), it keeps what it has: nodes of other users then get no
 * identity, which the finder's replies say.
 *
 * With --pid, once every one of those processes has exited nothing can be attached again
 * (source_usdt tells): privs_drop_all() then drops the capabilities kept for it, so that
 * what parses a collector's answers (libcurl, nghttp2, cJSON) runs with none.
 */
#include "privs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/perf_event.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"

#define PRIVS_MAX_GROUPS 256
#define PRIVS_PW_BUF	 16384
#define PRIVS_MAX_KEEP	 4

struct privs_keep {
	cap_value_t caps[PRIVS_MAX_KEEP];
	const char *why[PRIVS_MAX_KEEP];
	int n;
};

static int privs_fail(char *err, size_t err_size, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int privs_fail(char *err, size_t err_size, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return ret;
}

/* Threads of this process, from /proc/self/status; 0 when unknown. */
static long privs_threads(void)
{
	char line[256];
	long n = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static bool privs_has(cap_t caps, cap_value_t cap, cap_flag_t set)
{
	cap_flag_value_t v = CAP_CLEAR;

	if (!CAP_IS_SUPPORTED(cap))
		return false;
	return cap_get_flag(caps, cap, set, &v) == 0 && v == CAP_SET;
}

static void privs_keep_add(struct privs_keep *k, cap_t now, cap_value_t cap, const char *why)
{
	if (k->n < PRIVS_MAX_KEEP && privs_has(now, cap, CAP_PERMITTED)) {
		k->caps[k->n] = cap;
		k->why[k->n] = why;
		k->n++;
	}
}

static bool privs_keeps(const struct privs_keep *k, cap_value_t cap)
{
	for (int i = 0; i < k->n; i++)
		if (k->caps[i] == cap)
			return true;
	return false;
}

/* The uprobe PMU's perf event type, or -1 (no PMU: only the legacy tracefs interface). */
static int privs_uprobe_type(void)
{
	FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
	int type = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &type) != 1)
		type = -1;
	fclose(f);
	return type;
}

/*
 * Does CAP_PERFMON let this kernel create uprobes? Ask it: with CAP_PERFMON alone effective,
 * open a uprobe event on a path that cannot exist. The kernel checks the capability first,
 * so EACCES/EPERM means CAP_PERFMON is not enough, any other error (ENOENT) that it is.
 * Nothing is created either way. The effective set is restored from @now.
 */
static bool privs_perfmon_uprobes(cap_t now)
{
	static const char path[] = "/proc/self/cln-otlp-no-such-file";
	struct perf_event_attr attr = {.size = sizeof(attr)};
	cap_value_t perfmon = CAP_PERFMON;
	int type = privs_uprobe_type();
	bool ok = false;
	cap_t only;
	long fd;

	if (type < 0 || !CAP_IS_SUPPORTED(CAP_PERFMON) ||
	    !privs_has(now, CAP_PERFMON, CAP_PERMITTED))
		return false;
	only = cap_dup(now);
	if (!only)
		return false;
	if (cap_clear_flag(only, CAP_EFFECTIVE) < 0 ||
	    cap_set_flag(only, CAP_EFFECTIVE, 1, &perfmon, CAP_SET) < 0 || cap_set_proc(only) < 0)
		goto cleanup;
	attr.type = (uint32_t)type;
	attr.config1 = (uint64_t)(uintptr_t)path;
	fd = syscall(__NR_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd >= 0)
		close((int)fd);
	ok = fd >= 0 || (errno != EACCES && errno != EPERM);
	log_debug("capability check: a uprobe with CAP_PERFMON alone: %s",
		  fd >= 0 ? "allowed" : strerror(errno));
cleanup:
	cap_set_proc(now);
	cap_free(only);
	return ok;
}

/* What attaching again needs, among what we hold now. */
static void privs_choose(const struct privs_opts *o, cap_t now, struct privs_keep *k)
{
	k->n = 0;
	if (o->find_nodes) {
		privs_keep_add(k, now, CAP_SYS_PTRACE, "read /proc of the node's processes");
		privs_keep_add(k, now, CAP_DAC_OVERRIDE,
			       "connect to the node's lightning-rpc, mode 0600");
		return;
	}
	if (!o->attach)
		return;
	if (privs_has(now, CAP_BPF, CAP_PERMITTED) && privs_perfmon_uprobes(now)) {
		privs_keep_add(k, now, CAP_PERFMON, "create uprobes on upgraded binaries");
		privs_keep_add(k, now, CAP_BPF, "attach the loaded programs to them");
	} else {
		/*
		 * Kernels before 5.8, and since 2025 (upstream "perf: Revert to requiring
		 * CAP_SYS_ADMIN for uprobes", also in the stable series): uprobes need
		 * CAP_SYS_ADMIN, which also covers CAP_BPF and CAP_PERFMON.
		 */
		privs_keep_add(k, now, CAP_SYS_ADMIN,
			       "create uprobes on upgraded binaries: this kernel requires it");
	}
	privs_keep_add(k, now, CAP_DAC_READ_SEARCH,
		       "read upgraded binaries whatever their owner and mode");
	if (o->discover)
		privs_keep_add(
			k, now, CAP_SYS_PTRACE,
			"open /proc/PID/exe and /proc/PID/root of new processes (discovery)");
}

/* Drop every capability not kept from the bounding set; needs CAP_SETPCAP. */
static int privs_bound(const struct privs_keep *k, cap_t now, bool *done)
{
	int max = (int)cap_max_bits();

	*done = false;
	if (!privs_has(now, CAP_SETPCAP, CAP_EFFECTIVE))
		return 0;
	for (cap_value_t c = 0; c < max; c++) {
		if (privs_keeps(k, c) || cap_get_bound(c) <= 0)
			continue;
		if (cap_drop_bound(c) < 0)
			return -errno;
	}
	*done = true;
	return 0;
}

struct privs_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[PRIVS_MAX_GROUPS];
	int n_groups;
	char name[64];
	bool by_default; /* not named by --user */
};

static int privs_lookup(const char *name, struct privs_user *u, char *err, size_t err_size)
{
	struct passwd pw, *res = NULL;
	char *buf;
	int ret;

	buf = malloc(PRIVS_PW_BUF);
	if (!buf)
		return privs_fail(err, err_size, -ENOMEM, "--user: out of memory");
	ret = getpwnam_r(name, &pw, buf, PRIVS_PW_BUF, &res);
	if (ret || !res) {
		ret = privs_fail(err, err_size, -ENOENT,
				 "--user: no user named \"%.64s\"%s%s: give an existing user "
				 "(e.g. nobody, or one created for cln-otlp)",
				 name, ret ? ": " : "", ret ? strerror(ret) : "");
		goto cleanup;
	}
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	u->n_groups = PRIVS_MAX_GROUPS;
	if (getgrouplist(pw.pw_name, pw.pw_gid, u->groups, &u->n_groups) < 0) {
		ret = privs_fail(err, err_size, -E2BIG,
				 "--user %.64s: the user is in more than %d groups", name,
				 PRIVS_MAX_GROUPS);
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(buf);
	return ret;
}

/* Started as root without --user: PRIVS_DEFAULT_USER, else PRIVS_FALLBACK_USER. */
static int privs_default_user(struct privs_user *u, char *err, size_t err_size)
{
	struct passwd pw, *res = NULL;
	char buf[PRIVS_PW_BUF];
	const char *name = PRIVS_DEFAULT_USER;

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		name = PRIVS_FALLBACK_USER;
	if (privs_lookup(name, u, err, err_size))
		return privs_fail(err, err_size, -ENOENT,
				  "running as root, cln-otlp switches to an unprivileged user once "
				  "set up, but neither \"%s\" nor \"%s\" exists: create one "
				  "(useradd --system --no-create-home %s) or name one with --user",
				  PRIVS_DEFAULT_USER, PRIVS_FALLBACK_USER, PRIVS_DEFAULT_USER);
	u->by_default = true;
	return 0;
}

/* Become @u, keeping the permitted set (the effective set is emptied by the kernel). */
static int privs_switch(const struct privs_user *u, char *err, size_t err_size)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ret;

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return privs_fail(err, err_size, -errno, "--user: PR_SET_KEEPCAPS: %s",
				  strerror(errno));
	if (setgroups((size_t)u->n_groups, u->groups) < 0 ||
	    setresgid(u->gid, u->gid, u->gid) < 0 || setresuid(u->uid, u->uid, u->uid) < 0) {
		ret = -errno;
		return privs_fail(err, err_size, ret, "--user %s: cannot switch user: %s%s",
				  u->name, strerror(-ret),
				  ret == -EPERM ? " (run cln-otlp as root to use --user)" : "");
	}
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != u->uid ||
	    eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid || sg != u->gid)
		return privs_fail(err, err_size, -EPERM, "--user %s: the user did not change",
				  u->name);
	/* The way back must be closed. */
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return privs_fail(err, err_size, -EPERM,
				  "--user %s: could become root again after switching", u->name);
	return 0;
}

static void privs_log(const struct privs_opts *o, const struct privs_keep *k, bool bound,
		      const struct privs_user *u)
{
	/* The finder helper's lines say whose they are (tests and users wait for the main's). */
	const char *who = o->find_nodes ? "node finder" : "privileges";
	char kept[512] = "";
	size_t off = 0;

	for (int i = 0; i < k->n && off < sizeof(kept); i++) {
		char *name = cap_to_name(k->caps[i]);
		int n = snprintf(kept + off, sizeof(kept) - off, "%s%s (to %s)", i ? ", " : "",
				 name ? name : "?", k->why[i]);

		cap_free(name);
		if (n > 0)
			off += (size_t)n;
	}
	if (k->n)
		log_info("%s: kept %s; dropped every other capability%s; no_new_privs set", who,
			 kept, bound ? " (bounding set too)" : "");
	else if (o->find_nodes)
		log_warn("node finder: neither CAP_SYS_PTRACE nor CAP_DAC_OVERRIDE was "
			 "held: nodes run by other users get no identity (run as root)");
	else if (o->attach)
		log_warn("privileges: none of the capabilities attaching needs was held: upgraded "
			 "binaries and new plugins will not be traced (run as root)");
	else
		log_info("privileges: no capability kept (none is needed without the eBPF "
			 "source)%s; no_new_privs set",
			 bound ? "; bounding set emptied" : "");
	if (u && u->uid == 0)
		log_warn("%s: staying root (--user %s): without capabilities, root still "
			 "owns and may change every root-owned file; give an unprivileged --user",
			 who, u->name);
	else if (u)
		log_info("%s: running as %s (uid %u, gid %u, %d groups)%s", who, u->name,
			 (unsigned)u->uid, (unsigned)u->gid, u->n_groups,
			 u->by_default ? ", the default when started as root (--user to change)"
				       : "");
	if (!bound)
		log_debug("privileges: bounding set left as is (no CAP_SETPCAP)");
}

int privs_drop(const struct privs_opts *o, char *err, size_t err_size)
{
	struct privs_user *u = NULL;
	struct privs_keep k = {0};
	cap_t now = NULL, want = NULL;
	bool bound = false;
	long threads;
	int ret;

	threads = privs_threads();
	if (threads > 1) {
		ret = privs_fail(err, err_size, -EBUSY,
				 "internal error: privileges must be dropped before any thread "
				 "starts (%ld threads)",
				 threads);
		goto cleanup;
	}
	if (o->user || geteuid() == 0) {
		u = calloc(1, sizeof(*u));
		if (!u) {
			ret = privs_fail(err, err_size, -ENOMEM, "out of memory");
			goto cleanup;
		}
		ret = o->user ? privs_lookup(o->user, u, err, err_size)
			      : privs_default_user(u, err, err_size);
		if (ret)
			goto cleanup;
	}
	now = cap_get_proc();
	want = cap_init();
	if (!now || !want) {
		ret = privs_fail(err, err_size, -errno, "cannot read capabilities: %s",
				 strerror(errno));
		goto cleanup;
	}
	privs_choose(o, now, &k);

	ret = privs_bound(&k, now, &bound);
	if (ret) {
		privs_fail(err, err_size, ret, "cannot empty the capability bounding set: %s",
			   strerror(-ret));
		goto cleanup;
	}
	if (cap_reset_ambient() < 0 && errno != EINVAL) {
		ret = privs_fail(err, err_size, -errno, "cannot clear the ambient capabilities: %s",
				 strerror(errno));
		goto cleanup;
	}
	if (u && (u->uid != getuid() || u->gid != getgid() || u->uid != geteuid())) {
		ret = privs_switch(u, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (k.n && (cap_set_flag(want, CAP_EFFECTIVE, k.n, k.caps, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_PERMITTED, k.n, k.caps, CAP_SET) < 0)) {
		ret = privs_fail(err, err_size, -errno, "cannot build the capability set: %s",
				 strerror(errno));
		goto cleanup;
	}
	if (cap_set_proc(want) < 0) {
		ret = privs_fail(err, err_size, -errno, "cannot drop capabilities: %s",
				 strerror(errno));
		goto cleanup;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = privs_fail(err, err_size, -errno, "cannot set no_new_privs: %s",
				 strerror(errno));
		goto cleanup;
	}
	privs_log(o, &k, bound, u);
	ret = 0;
cleanup:
	cap_free(want);
	cap_free(now);
	free(u);
	return ret;
}

int privs_drop_all(char *err, size_t err_size)
{
	cap_t none = cap_init();
	long threads = privs_threads();
	int ret = 0;

	if (!none)
		return privs_fail(err, err_size, -errno, "cannot build the capability set: %s",
				  strerror(errno));
	if (cap_set_proc(none) < 0)
		ret = privs_fail(err, err_size, -errno, "cannot drop capabilities: %s",
				 strerror(errno));
	cap_free(none);
	if (ret)
		return ret;
	/* Capabilities are per thread: a helper thread (libcurl's resolver) ends on its own. */
	log_info("privileges: nothing will be attached again: dropped every capability%s",
		 threads > 1 ? " (of the main thread; helper threads end on their own)" : "");
	return 0;
}

int privs_check_readable(const char *who, const char *path, char *err, size_t err_size)
{
	struct passwd pw, *res = NULL;
	char buf[PRIVS_PW_BUF];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), ret;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	ret = -errno;
	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) || !res)
		res = NULL;
	return privs_fail(err, err_size, ret,
			  "%s %.200s: cannot be read as %s (uid %u), the user cln-otlp runs as "
			  "once set up, and it is read again at each connection: %s; make it "
			  "readable by that user (chown or chmod), or choose the user with --user",
			  who, path, res ? res->pw_name : "?", (unsigned)geteuid(), strerror(-ret));
}

bool privs_can_attach(char *what, size_t size)
{
	cap_t now = cap_get_proc();
	bool bpf, perfmon, admin, ok;

	if (!now) {
		snprintf(what, size, "cannot read this process's capabilities: %s",
			 strerror(errno));
		return false;
	}
	bpf = privs_has(now, CAP_BPF, CAP_PERMITTED);
	perfmon = privs_has(now, CAP_PERFMON, CAP_PERMITTED);
	admin = privs_has(now, CAP_SYS_ADMIN, CAP_PERMITTED);
	if (admin) {
		ok = true;
		snprintf(what, size, "%s holds CAP_SYS_ADMIN",
			 geteuid() == 0 ? "root" : "this user");
	} else if (bpf && perfmon && privs_perfmon_uprobes(now)) {
		ok = true;
		snprintf(what, size, "CAP_BPF and CAP_PERFMON held (enough for uprobes here)");
	} else {
		ok = false;
		snprintf(what, size,
			 "uid %u holds %s: loading BPF programs and creating uprobes needs root, "
			 "or CAP_BPF, CAP_PERFMON and (on this kernel%s) CAP_SYS_ADMIN",
			 (unsigned)geteuid(),
			 bpf && perfmon ? "CAP_BPF and CAP_PERFMON, not CAP_SYS_ADMIN"
			 : bpf		? "CAP_BPF only"
			 : perfmon	? "CAP_PERFMON only"
					: "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN",
			 bpf && perfmon ? ", CAP_PERFMON is not enough for uprobes" : " maybe");
	}
	cap_free(now);
	return ok;
}
