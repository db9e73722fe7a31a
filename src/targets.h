/* SPDX-License-Identifier: MIT */
/*
 * targets: the binaries the eBPF source traces, and what becomes of them on disk. Finds
 * lightningd (--lightningd, else the --pid processes' /proc/PID/exe, else lightningd on PATH)
 * and the C plugins next to it, keeps each file's identity (device, inode, size, mtime) and,
 * at every look, acts on what changed: a binary replaced or rewritten in place, a plugin
 * installed under a temporary name and renamed into place, a file gone or back, a new plugin.
 *
 * It attaches nothing itself: its owner's callbacks attach to a file and detach again, and
 * the handles they return are only kept and handed back, so this module needs no libbpf.
 * A target keeps its index for life: the index is the USDT cookie of its records.
 *
 * A target's path is the file we open, stat and attach to; its exe_path is the name its
 * records are given (process.executable.path). Both are the same path, except for a file
 * installed under a temporary name and renamed over a target: its probes, still attached
 * under the temporary entry, send records named after the path it was renamed to.
 *
 * Containers: a --pid process in another mount namespace (or chroot) has its files looked
 * up in its own root: its binary is its /proc/PID/exe as it sees it, opened through
 * /proc/PID/root (never resolved with realpath(), which would turn it back into a path of
 * ours), and so are the plugins next to it. Such a target's path is the path inside that
 * root (what the process sees, and what its records are named); --lightningd
 * /proc/PID/root/<path> means the same. A process that shares our mount namespace and root
 * is looked up in ours, as when its binary is given with --lightningd. Upgrades and new
 * plugins are watched inside such a root as well, through a descriptor opened at start
 * (following /proc/PID/root needs ptrace access to PID, which a dropped user lacks), until
 * targets_release_roots.
 *
 * Discovery (no source option): targets_discover is given the pid of each process that
 * starts (and of each one running at start) and adds the binaries among theirs that carry
 * the probe, with their plugins, as if named by --lightningd. A discovered binary stays
 * attached for as long as we run (like a --lightningd binary): attachments are per binary,
 * for every process, so each later process of it is traced from its first instruction, and
 * nothing is kept per process.
 */
#ifndef CLN_OTLP_TARGETS_H
#define CLN_OTLP_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TARGETS_PROVIDER	"lightningd" /* the USDT provider of CLN's probes */
#define TARGETS_MAX		256 /* lightningd(s), plugins, and files seen without probes */
#define TARGETS_MAX_PLUGIN_DIRS (3 * CONFIG_MAX_LIST)

struct targets;

/* What the owner does with a file: attach its probes, detach them. */
struct targets_ops {
	/*
	 * Attach the probes of the file at @path for target @idx. Returns how many probes were
	 * attached (at least one) and sets *@att; -ENOMSG when the file has no
	 * lightningd:span_emit probe, -ENOEXEC when it is not ELF, or another negative errno
	 * (nothing stays attached then).
	 */
	int (*attach)(void *ctx, size_t idx, const char *path, void **att);
	/* Detach what attach gave. NULL is fine. */
	void (*detach)(void *ctx, void *att);
	/* What to add to a message about attach error @err: a hint at what to do, or "". */
	const char *(*err_hint)(void *ctx, int err);
};

/* What targets_attach attached. */
struct targets_tally {
	unsigned probes;  /* in all */
	size_t mains;	  /* binaries given by targets_add_main */
	unsigned plugins; /* plugins with probes attached */
};

/* @ops and @ctx outlive the object. Without @plugins, only the main binaries are traced. */
struct targets *targets__new(const struct targets_ops *ops, void *ctx, bool plugins);
/* Detach everything and free; NULL is fine. */
void targets__free(struct targets *t);

/*
 * Add the binaries asked for: cfg->lightningd, else the binaries of the cfg->pids processes
 * (in their roots), else lightningd on PATH. Each must be an ELF file with a
 * lightningd:span_emit probe. Attaches nothing; needs no privileges beyond looking into the
 * --pid processes' /proc entries. Returns 0, or a negative errno with a message in
 * @err that says what to do.
 */
int targets_add_main(struct targets *t, const struct config *cfg, char *err, size_t err_size);
/*
 * Attach the binaries added so far (any failure: a negative errno and a message in @err),
 * then find the plugin directories next to them and attach the plugins that carry probes.
 */
int targets_attach(struct targets *t, struct targets_tally *tally, char *err, size_t err_size);
/*
 * Look again (the owner calls this every few seconds): act on what changed on disk. @now_ns
 * is the wall-clock time (CLOCK_REALTIME) a changed file's mtime is compared with: one
 * written less than a second before is left for a later look.
 */
void targets_watch(struct targets *t, uint64_t now_ns);
/* Detach everything (the source stops); targets_watch must not be called after this. */
void targets_detach_all(struct targets *t);
/*
 * Close what keeps the roots of --pid processes in other mount namespaces open (their
 * processes have exited: nothing is attached again, and the container's mounts need not be
 * kept). The probes stay; targets_watch must not be called after this.
 */
void targets_release_roots(struct targets *t);

/* Discovery: what targets_discover saw. */
struct targets_discovery {
	uint64_t execs;	  /* processes looked at */
	uint64_t known;	  /* their binary was known: traced already, or known to have no probe */
	uint64_t checked; /* binaries whose ELF notes were read */
	uint64_t gone;	  /* exited (or a kernel thread) before we looked */
	uint64_t denied;  /* their /proc/PID/exe could not be opened: not ours to look into */
	uint64_t evicted; /* no-probe verdicts forgotten to make room (looked at again later) */
};

/*
 * Discovery: process @pid has just started a binary (or was running at start). A binary
 * traced already, or known to lack the probe, costs one fstat; an unknown one has its ELF
 * notes read once (the verdict is kept by device and inode, in a bounded table) and, when it
 * carries lightningd:span_emit, is added (opened through the process's root when it runs in
 * a container) and attached with the plugins next to it, and logged at info. Returns 1 when
 * something was attached (counted in @tally), 0 when nothing was to be done, or a negative
 * errno (the process is gone; or attaching failed, warned).
 */
int targets_discover(struct targets *t, uint32_t pid, struct targets_tally *tally);
const struct targets_discovery *targets_discovery_stats(const struct targets *t);

size_t targets_count(const struct targets *t);
/* The path inside the target's root (ours, or that of the process named by targets_root_pid). */
const char *targets_path(const struct targets *t, size_t idx);
/* 0 when the target is in our root, else the --pid process whose root it is opened through. */
uint32_t targets_root_pid(const struct targets *t, size_t idx);
/* From exe_path_get(), held by the targets; NULL past the end or for a file never attached. */
const char *targets_exe_path(const struct targets *t, size_t idx);
size_t targets_n_plugin_dirs(const struct targets *t);
const char *targets_plugin_dir(const struct targets *t, size_t i);

/*
 * The first executable @name in the ':'-separated directories of @path_list (PATH's syntax;
 * NULL or empty: /usr/local/bin:/usr/bin:/bin), written to @out. Returns 0 or -ENOENT.
 */
int targets_find_on_path(const char *name, const char *path_list, char *out, size_t size);

#endif
