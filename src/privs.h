/* SPDX-License-Identifier: MIT */
/*
 * privs: once every source is set up, give up the privileges the running daemon no longer
 * needs (capabilities, the bounding set, the user), and forbid gaining new ones. Only this
 * module includes libcap. privs.c says which capabilities stay and why.
 */
#ifndef CLN_OTLP_PRIVS_H
#define CLN_OTLP_PRIVS_H

#include <stdbool.h>
#include <stddef.h>

struct privs_opts {
	/* The eBPF source runs: keep what attaching to upgraded binaries and new plugins needs. */
	bool attach;
	/*
	 * The eBPF source discovers processes as they start (no source option): also keep what
	 * opening other users' /proc/PID/exe and /proc/PID/root needs.
	 */
	bool discover;
	/*
	 * The node finder's helper process (src/finder.h): keep only what reading /proc of
	 * other users' processes and connecting to their lightning-rpc need. attach and
	 * discover are then ignored.
	 */
	bool find_nodes;
	/*
	 * Switch to this user (its groups too). NULL: started as root, PRIVS_DEFAULT_USER if it
	 * exists, else PRIVS_FALLBACK_USER; otherwise the current user. A user of uid 0 given
	 * here keeps root, with a warning.
	 */
	const char *user;
};

#define PRIVS_DEFAULT_USER  "cln-otlp"
#define PRIVS_FALLBACK_USER "nobody"

/*
 * Drop everything but what @o needs, from the effective, permitted, inheritable, ambient
 * and (when allowed to) bounding sets; switch user; set no_new_privs. Logs at info level
 * what was kept and why. Must run before any thread starts (capabilities are per thread).
 * Returns 0, or a negative errno with a message in @err that says what to do.
 */
int privs_drop(const struct privs_opts *o, char *err, size_t err_size);
/*
 * After privs_drop: can the process, as it now is, open @path (named by option @who) for
 * reading? Files read later (TLS files libcurl opens at each connection) must be. Returns 0,
 * or a negative errno with a message in @err that says what to do.
 */
int privs_check_readable(const char *who, const char *path, char *err, size_t err_size);

/*
 * For --check: whether this process holds what loading the BPF programs and creating uprobes
 * needs (CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON where the kernel takes CAP_PERFMON for
 * uprobes: privs.c). @what says what is held, or what is missing.
 */
bool privs_can_attach(char *what, size_t size);

/*
 * Drop every capability left (effective and permitted) once nothing needs them any more:
 * the eBPF source will attach nothing again. Affects the calling thread and the threads it
 * starts later. Logs at info level. Returns 0 or a negative errno with a message in @err.
 */
int privs_drop_all(char *err, size_t err_size);

#endif
