// SPDX-License-Identifier: MIT
/*
 * check: --check (see check.h). One function per check, each printing its own lines; the
 * work is the other modules': targets and elf_notes (which binaries, which probes),
 * privs (capabilities), source_usdt (load, attach, detach), source_socket (the path, the
 * datagram queue), node_info (getinfo), export_http (one empty request).
 */
#include "check.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "elf_notes.h"
#include "export_http.h"
#include "loop.h"
#include "node_info.h"
#include "nodes.h"
#include "privs.h"
#include "source_socket.h"
#include "source_usdt.h"
#include "targets.h"

#define CHECK_MSG_CAP	   1024
#define CHECK_MAX_EXES	   64	/* distinct executables looked at for probes */
#define CHECK_MAX_SHOWN	   16	/* running lightningd processes listed */
#define CHECK_NODE_WAIT_MS 3000 /* for getinfo's answer */

struct check_wait {
	struct nodes *nodes;
	struct loop_timer *timer;
	uint64_t deadline_ms;
};

struct check {
	const struct config *cfg;
	FILE *out;
	unsigned failed;
};

static void check_line(struct check *c, char mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One line: '+' passed, '-' failed (counted), '!' a warning. */
static void check_line(struct check *c, char mark, const char *fmt, ...)
{
	va_list ap;

	fputs(mark == '+' ? "✓ " : mark == '-' ? "✗ " : "! ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
	fflush(c->out);
	if (mark == '-')
		c->failed++;
}

/* ---- the binaries and their probes ------------------------------------------------------ */

static int check_no_attach(void *ctx, size_t idx, const char *path, void **att)
{
	return -ENOTSUP;
}

static void check_no_detach(void *ctx, void *att)
{
}

static const char *check_no_hint(void *ctx, int err)
{
	return "";
}

static const struct targets_ops check_targets_ops = {
	.attach = check_no_attach,
	.detach = check_no_detach,
	.err_hint = check_no_hint,
};

/* The file target @i is, as we can open it (through its process's root if in one). */
static void check_target_file(const struct targets *t, size_t i, char *out, size_t size)
{
	uint32_t root = targets_root_pid(t, i);

	if (root)
		snprintf(out, size, "/proc/%u/root%s", root, targets_path(t, i));
	else
		snprintf(out, size, "%s", targets_path(t, i));
}

/* The binaries these options trace. Returns them (NULL: none, a ✗ was printed). */
static struct targets *check_binaries(struct check *c)
{
	struct targets *t = targets__new(&check_targets_ops, NULL, false);
	char err[CHECK_MSG_CAP], file[PATH_MAX + 32];

	if (!t) {
		check_line(c, '-', "lightningd binary: out of memory");
		return NULL;
	}
	if (targets_add_main(t, c->cfg, err, sizeof(err)) < 0) {
		if (!c->cfg->n_lightningd && !c->cfg->n_pids) {
			/* No source option: the daemon discovers nodes as they start. */
			check_line(c, '!',
				   "lightningd binary: none on PATH — with no source option "
				   "cln-otlp discovers every binary with the lightningd:span_emit "
				   "probe as its processes start (running ones are listed below)");
			return t;
		}
		check_line(c, '-', "lightningd binary: %s", err);
		targets__free(t);
		return NULL;
	}
	for (size_t i = 0; i < targets_count(t); i++) {
		uint32_t root = targets_root_pid(t, i);
		int n;

		check_target_file(t, i, file, sizeof(file));
		n = elf_notes_count_probe(file, TARGETS_PROVIDER, "span_emit");
		if (root)
			snprintf(err, sizeof(err), " (in the root of process %u)", root);
		else
			err[0] = '\0';
		check_line(c, '+',
			   "lightningd binary %s%s carries the lightningd:span_emit probe "
			   "(%d sites)",
			   targets_path(t, i), err, n);
	}
	return t;
}

/* ---- the running processes carrying the probes ------------------------------------------ */

struct check_exe {
	dev_t dev;
	ino_t ino;
	bool probes;
};

struct check_procs {
	struct check_exe exes[CHECK_MAX_EXES];
	size_t n_exes;
	unsigned lightningd, others, shown;
};

/* Does the executable of process @pid (identity @st) carry the probe? Cached per file. */
static bool check_exe_probes(struct check_procs *p, uint32_t pid, const struct stat *st)
{
	char exe[64];
	bool probes;

	for (size_t i = 0; i < p->n_exes; i++)
		if (p->exes[i].dev == st->st_dev && p->exes[i].ino == st->st_ino)
			return p->exes[i].probes;
	snprintf(exe, sizeof(exe), "/proc/%u/exe", pid);
	probes = elf_notes_count_probe(exe, TARGETS_PROVIDER, "span_emit") > 0;
	if (p->n_exes < CHECK_MAX_EXES)
		p->exes[p->n_exes++] = (struct check_exe){st->st_dev, st->st_ino, probes};
	return probes;
}

/* Is the file @st one of the targets? */
static bool check_traced(const struct targets *t, const struct stat *st)
{
	char file[PATH_MAX + 32];
	struct stat ts;

	for (size_t i = 0; t && i < targets_count(t); i++) {
		check_target_file(t, i, file, sizeof(file));
		if (stat(file, &ts) == 0 && ts.st_dev == st->st_dev && ts.st_ino == st->st_ino)
			return true;
	}
	return false;
}

static void check_one_proc(struct check *c, struct check_procs *p, const struct targets *t,
			   uint32_t pid)
{
	char link[64], comm[32] = "", exe[PATH_MAX] = "?";
	struct stat st;
	ssize_t n;
	FILE *f;

	snprintf(link, sizeof(link), "/proc/%u/exe", pid);
	if (stat(link, &st) < 0 || !check_exe_probes(p, pid, &st))
		return;
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 1] = '\0';
	snprintf(link, sizeof(link), "/proc/%u/comm", pid);
	f = fopen(link, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	if (strcmp(comm, "lightningd")) {
		p->others++; /* a plugin */
		return;
	}
	if (p->lightningd++ >= CHECK_MAX_SHOWN)
		return;
	p->shown++;
	if (check_traced(t, &st))
		check_line(c, '+',
			   "running: lightningd pid %u (%s) carries the probes and is traced", pid,
			   exe);
	else
		check_line(
			c, '!',
			"running: lightningd pid %u (%s) carries the probes but these options do "
			"not trace it — give --pid %u (or --lightningd with its binary)",
			pid, exe, pid);
}

/* Every process whose executable carries lightningd:span_emit (those we may look at). */
static void check_running(struct check *c, const struct targets *t)
{
	struct check_procs *p = calloc(1, sizeof(*p));
	struct dirent *de;
	DIR *d;

	d = p ? opendir("/proc") : NULL;
	if (!d) {
		check_line(c, '!', "running: cannot look at /proc: %s", strerror(errno));
		free(p);
		return;
	}
	while ((de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]))
			check_one_proc(c, p, t, (uint32_t)strtoul(de->d_name, NULL, 10));
	closedir(d);
	if (p->lightningd > p->shown)
		check_line(c, '!', "running: %u more lightningd processes not listed",
			   p->lightningd - p->shown);
	if (!p->lightningd)
		check_line(c, '!',
			   "running: no lightningd process with the probes runs now (%u other "
			   "processes carry them) — the probes are traced from its start",
			   p->others);
	free(p);
}

/* ---- privileges, and the real load and attach ------------------------------------------- */

static void check_privileges(struct check *c)
{
	char what[CHECK_MSG_CAP];

	if (privs_can_attach(what, sizeof(what)))
		check_line(c, '+', "privileges: %s", what);
	else
		check_line(c, '-',
			   "privileges: %s — run cln-otlp as root, or give it the capabilities "
			   "(setcap cap_bpf,cap_perfmon,cap_sys_admin+ep cln-otlp)",
			   what);
}

static void check_attach(struct check *c, struct loop *loop)
{
	char err[CHECK_MSG_CAP];
	struct source_usdt *src = source_usdt__new(loop, c->cfg, NULL, err, sizeof(err));

	if (!src) {
		check_line(c, '-', "eBPF: %s", err);
		return;
	}
	source_usdt__free(src);
	check_line(c, '+',
		   "eBPF: loaded the programs, attached the probes and detached them "
		   "(uprobes and the BPF ring buffer work)");
}

static void check_usdt(struct check *c, struct loop *loop)
{
	struct targets *t = check_binaries(c);

	check_running(c, t);
	check_privileges(c);
	if (t)
		check_attach(c, loop);
	targets__free(t);
}

/* ---- the socket -------------------------------------------------------------------------- */

static void check_socket(struct check *c)
{
	char err[CHECK_MSG_CAP];
	long qlen;

	if (source_socket_check_path(c->cfg->socket_path, err, sizeof(err)) < 0)
		check_line(c, '-', "socket: %s", err);
	else
		check_line(c, '+', "socket %s: free, in a directory cln-otlp may create it in",
			   c->cfg->socket_path);
	if (source_socket_qlen_read(&qlen) < 0)
		check_line(c, '!', "net.unix.max_dgram_qlen: cannot be read: %s", strerror(errno));
	else if (qlen >= SOURCE_SOCKET_QLEN_TARGET)
		check_line(c, '+', "net.unix.max_dgram_qlen is %ld in this network namespace",
			   qlen);
	else if (source_socket_qlen_raisable())
		check_line(c, '!',
			   "net.unix.max_dgram_qlen is %ld in this network namespace, below %d: "
			   "cln-otlp raises it when it starts",
			   qlen, SOURCE_SOCKET_QLEN_TARGET);
	else
		check_line(
			c, '-',
			"net.unix.max_dgram_qlen is %ld in this network namespace: lightningd "
			"loses the spans it sends while %ld wait on the socket, and cln-otlp cannot "
			"raise it — sysctl -w net.unix.max_dgram_qlen=%d as root in the node's "
			"network namespace (in a compose file: sysctls: net.unix.max_dgram_qlen: "
			"%d)",
			qlen, qlen, SOURCE_SOCKET_QLEN_TARGET, SOURCE_SOCKET_QLEN_TARGET);
}

/* ---- the node's RPC ---------------------------------------------------------------------- */

static void check_node(struct check *c, struct loop *loop)
{
	struct node_info_cfg ncfg = {.rpc_file = c->cfg->rpc_file,
				     .startup_wait_ms = CHECK_NODE_WAIT_MS};
	struct otlp_resource_cfg res = {0};
	char where[PATH_MAX], why[CHECK_MSG_CAP];
	struct getinfo_ident id;
	struct node_info *ni = node_info__new(loop, &ncfg, &res);

	if (!ni) {
		check_line(c, '-', "node RPC: out of memory");
		return;
	}
	if (node_info_answered(ni, &id, where, sizeof(where), why, sizeof(why)))
		check_line(c, '+', "node RPC %s: getinfo answered: node %s (alias \"%s\", %s, %s)",
			   where, id.id, id.alias, id.network[0] ? id.network : "network unknown",
			   id.version[0] ? id.version : "version unknown");
	else
		check_line(
			c, '-',
			"node RPC%s%s: %s — start lightningd, or name its socket with --rpc-file "
			"(lightningd's lightning-rpc); cln-otlp must be able to open it",
			where[0] ? " " : "", where, why);
	node_info__free(ni);
}

/* Each node found: its identity, or why it has none. */
static void check_node_line(void *ctx, const struct nodes_view *v)
{
	struct check *c = ctx;
	char in[FINDER_ID_SIZE + 16] = "";

	if (v->container_id[0])
		snprintf(in, sizeof(in), " (container %.12s)", v->container_id);
	if (v->ident)
		check_line(c, '+',
			   "node RPC %s%s: getinfo answered: node %s (alias \"%s\", %s, %s)",
			   v->shown, in, v->ident->id, v->ident->alias,
			   v->ident->network[0] ? v->ident->network : "network unknown",
			   v->ident->version[0] ? v->ident->version : "version unknown");
	else
		check_line(c, '-',
			   "node RPC of lightningd pid %u%s: %s — its spans would go without the "
			   "node's identity; --rpc-file names its socket",
			   v->pid, in, v->why[0] ? v->why : "no answer in time");
}

static void check_nodes_tick(struct loop *loop, void *ctx)
{
	struct check_wait *w = ctx;

	if (nodes_settled(w->nodes) || clock_mono_ms() >= w->deadline_ms)
		loop_stop(loop);
	else
		loop_timer_arm(w->timer, 20);
}

/*
 * A process to ask about: named lightningd and, with --lightningd, running one of those
 * binaries (other nodes on the host are not this run's).
 */
static bool check_node_wanted(const struct config *cfg, uint32_t pid)
{
	char path[64], comm[32] = "";
	struct stat exe, st;
	bool named;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	if (!(f = fopen(path, "re")))
		return false;
	named = fgets(comm, sizeof(comm), f) && !strncmp(comm, "lightningd", 10);
	fclose(f);
	if (!named || !cfg->n_lightningd)
		return named;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	if (stat(path, &exe) < 0)
		return false;
	for (size_t i = 0; i < cfg->n_lightningd; i++)
		if (stat(cfg->lightningd[i], &st) == 0 && st.st_dev == exe.st_dev &&
		    st.st_ino == exe.st_ino)
			return true;
	return false;
}

/*
 * Live sources without --rpc-file: every node gets its own identity. Ask each lightningd
 * this run would trace (the --pid processes, those running a --lightningd binary, or every
 * one named lightningd; the finder trusts only those whose binary carries the probe) as
 * the daemon would, with our privileges.
 */
static void check_nodes(struct check *c, struct loop *loop)
{
	struct otlp_resource_cfg res = {0};
	struct check_wait w = {.deadline_ms = clock_mono_ms() + CHECK_NODE_WAIT_MS};
	struct dirent *de;
	DIR *dir = opendir("/proc");

	w.nodes = nodes__new(loop, NULL, &res);
	w.timer = loop_timer__new(loop, check_nodes_tick, &w);
	if (!w.nodes || !w.timer || !dir) {
		check_line(c, '-', "node RPC: cannot look: %s", dir ? "out of memory" : "no /proc");
		goto cleanup;
	}
	for (size_t i = 0; i < c->cfg->n_pids; i++)
		nodes_saw(w.nodes, c->cfg->pids[i]);
	while (!c->cfg->n_pids && (de = readdir(dir))) {
		unsigned long pid = strtoul(de->d_name, NULL, 10);

		if (pid && pid <= UINT32_MAX && check_node_wanted(c->cfg, (uint32_t)pid))
			nodes_saw(w.nodes, (uint32_t)pid);
	}
	loop_timer_arm(w.timer, 0);
	loop_run(loop);
	nodes_for_each(w.nodes, check_node_line, c);
	if (!nodes_seen(w.nodes))
		check_line(c, '!',
			   "node RPC: no lightningd with the lightningd:span_emit probe runs now: "
			   "each node's identity is asked when it starts");
cleanup:
	if (dir)
		closedir(dir);
	loop_timer__free(w.timer);
	nodes__free(w.nodes);
}

/* ---- the collector ----------------------------------------------------------------------- */

static void check_collector(struct check *c)
{
	char msg[CHECK_MSG_CAP];

	if (export_http_check(c->cfg, msg, sizeof(msg)) < 0)
		check_line(c, '-', "collector %s", msg);
	else
		check_line(c, '+', "collector %s", msg);
}

int check_run(const struct config *cfg, FILE *out)
{
	struct check c = {.cfg = cfg, .out = out};
	struct loop *loop = loop__new();

	if (!loop) {
		check_line(&c, '-', "cannot set up an event loop: %s", strerror(errno));
		return 1;
	}
	if (cfg->usdt)
		check_usdt(&c, loop);
	if (cfg->socket_path)
		check_socket(&c);
	if (!cfg->rpc_file && (cfg->usdt || cfg->socket_path))
		check_nodes(&c, loop);
	else if (cfg->rpc_file || cfg->follow)
		check_node(&c, loop);
	if (cfg->exporter == CONFIG_EXPORTER_OTLP)
		check_collector(&c);
	loop__free(loop);
	return c.failed ? 1 : 0;
}
