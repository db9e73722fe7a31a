// SPDX-License-Identifier: MIT
/*
 * source_usdt: the eBPF source. One skeleton (bpf/source_usdt.bpf.c) whose USDT programs are
 * attached, by path and for every process (pid -1), to lightningd and to each C plugin found
 * next to it; the index of the binary is the USDT cookie, so every record says which binary
 * it came from. Records arrive in one ring buffer, consumed from the loop: on the ring's
 * epoll fd (the kernel wakes us only past a fill threshold) and on a short timer.
 * A timer also watches the binaries: an upgraded binary (new inode) is attached again, and
 * plugins that appear later are picked up.
 */
#include "source_usdt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "span.h"
#include "stats.h"

#ifndef CLN_OTLP_HAVE_BPF

struct source_usdt {
	int unused;
};

struct source_usdt *source_usdt__new(struct loop *loop, const struct config *cfg,
				     struct pipeline *p, char *err, size_t err_size)
{
	snprintf(err, err_size,
		 "this build has no eBPF capture (built with -DCLN_OTLP_BPF=OFF): use --file or "
		 "--socket");
	return NULL;
}

void source_usdt_drain(struct source_usdt *src)
{
}

void source_usdt__free(struct source_usdt *src)
{
}

#else /* CLN_OTLP_HAVE_BPF */

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "usdt_record.h"
#include "source_usdt.skel.h"
#include "elf_notes.h"

#define USDT_PROVIDER	     "lightningd"
#define USDT_MAX_BINARIES    256 /* lightningd(s), plugins, and files seen without probes */
#define USDT_MAX_PLUGIN_DIRS (3 * CONFIG_MAX_LIST)
#define USDT_POLL_MS	     25	  /* consume at least this often: nothing sits in the ring */
#define USDT_BUDGET	     4096 /* records per turn of the loop, so nothing else starves */
#define USDT_DRAIN_ROUNDS    512  /* 2M records: more than a 1 GiB ring can hold */
#define USDT_WATCH_MS	     2000 /* look for replaced binaries and new plugins */
#define USDT_SETTLE_NS	     1000000000ll /* a changed file must be this old to be attached */
#define USDT_RINGBUF_DEFAULT (16u << 20)
#define USDT_UPROBE_PMU	     "/sys/bus/event_source/devices/uprobe/type"

enum usdt_probe {
	USDT_EMIT = 0,
	USDT_SUSPEND,
	USDT_RESUME,
	USDT_START,
	USDT_END,
	USDT__MAX,
};

static const char *const usdt_probe_names[USDT__MAX] = {
	[USDT_EMIT] = "span_emit",   [USDT_SUSPEND] = "span_suspend", [USDT_RESUME] = "span_resume",
	[USDT_START] = "span_start", [USDT_END] = "span_end",
};

/* What a file was when we last looked: a new inode, size or mtime means a new binary. */
struct usdt_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct usdt_binary {
	char *path;	      /* absolute, symlinks resolved */
	const char *exe_path; /* interned copy for process.executable.path (once attached) */
	bool plugin;
	bool has_probes;      /* the file we looked at carries lightningd:span_emit */
	bool present;	      /* the path existed at the last look */
	struct usdt_ident id; /* the file the links (or the no-probes verdict) belong to */
	struct bpf_link *links[USDT__MAX];
	/*
	 * Links of the file this one replaced. An upgrade installs the new binary while the old
	 * lightningd still runs from the old inode until it is restarted: keep tracing it.
	 */
	struct bpf_link *prev[USDT__MAX];
	unsigned failures; /* consecutive failed re-attaches (warn once, keep trying) */
};

struct source_usdt {
	struct loop *loop;
	struct pipeline *p;
	struct source_usdt_bpf *skel;
	struct ring_buffer *rb;
	int rb_epfd;
	struct loop_timer *poll_timer;
	struct loop_timer *watch_timer;
	bool want[USDT__MAX]; /* probes to attach */
	bool no_plugins;
	int64_t real_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */

	int ncpus;
	struct usdt_record_counters *percpu; /* lookup buffer, ncpus entries */
	uint64_t cnt[USDT_RECORD_CNT__MAX];  /* totals already accounted */

	char *plugin_dirs[USDT_MAX_PLUGIN_DIRS];
	size_t n_plugin_dirs;
	struct usdt_binary bins[USDT_MAX_BINARIES]; /* index = USDT cookie */
	size_t n_bins;
	bool full_warned;

	unsigned budget; /* records left in this turn */
	bool stopped;	 /* drained: reads nothing more */
	uint64_t spans, events, bad;
	struct log_ratelimit rl_lost, rl_read, rl_cut, rl_bad, rl_attach;
};

/* ---- libbpf's messages ---- */

/*
 * While loading, libbpf's warnings are held back: when the kernel refuses (not root), our
 * own message says what to do and theirs would only bury it.
 */
static struct {
	bool hold;
	unsigned n;
	char lines[8][256];
} usdt_held;

static int usdt_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum log_level lvl = level == LIBBPF_WARN ? LOG_LVL_WARN : LOG_LVL_DEBUG;
	char line[512];

	if (usdt_held.hold && lvl == LOG_LVL_WARN) {
		if (usdt_held.n < 8)
			vsnprintf(usdt_held.lines[usdt_held.n++], sizeof(usdt_held.lines[0]), fmt,
				  ap);
		return 0;
	}
	if (lvl > log_get_level())
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg(lvl, "%s", line); /* libbpf prefixes its own lines */
	return 0;
}

static void usdt_release_held(enum log_level lvl)
{
	for (unsigned i = 0; i < usdt_held.n; i++)
		log_msg(lvl, "%s", usdt_held.lines[i]);
	usdt_held.n = 0;
	usdt_held.hold = false;
}

/* ---- clocks ---- */

/* bpf_ktime_get_ns() is CLOCK_MONOTONIC; spans speak wall-clock time. */
static void usdt_sync_clock(struct source_usdt *src)
{
	int64_t m1 = (int64_t)clock_mono_ns();
	int64_t r = (int64_t)clock_real_ns();
	int64_t m2 = (int64_t)clock_mono_ns();

	src->real_offset_ns = r - (m1 + (m2 - m1) / 2);
}

/* ---- binaries ---- */

static int usdt_ident_get(const char *path, struct usdt_ident *id)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	return 0;
}

static bool usdt_ident_same_file(const struct usdt_ident *a, const struct usdt_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static bool usdt_ident_equal(const struct usdt_ident *a, const struct usdt_ident *b)
{
	return usdt_ident_same_file(a, b) && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void usdt_links_destroy(struct bpf_link **links)
{
	for (int i = 0; i < USDT__MAX; i++) {
		bpf_link__destroy(links[i]);
		links[i] = NULL;
	}
}

static unsigned usdt_links_count(struct bpf_link *const *links)
{
	unsigned n = 0;

	for (int i = 0; i < USDT__MAX; i++)
		n += links[i] != NULL;
	return n;
}

struct usdt_probe_count {
	int n[USDT__MAX];
};

static int usdt_count_cb(const struct elf_notes_probe *probe, void *ctx)
{
	struct usdt_probe_count *c = ctx;

	if (strcmp(probe->provider, USDT_PROVIDER))
		return 0;
	for (int i = 0; i < USDT__MAX; i++)
		if (!strcmp(probe->name, usdt_probe_names[i]))
			c->n[i]++;
	return 0;
}

/*
 * Attach the wanted probes of binary @idx into @links. Returns the number attached, -ENOMSG
 * when the file has no lightningd:span_emit, -ENOEXEC when it is not ELF, or the attach
 * error (nothing stays attached then).
 */
static int usdt_attach(struct source_usdt *src, size_t idx, struct bpf_link **links)
{
	struct usdt_binary *b = &src->bins[idx];
	struct bpf_program *progs[USDT__MAX] = {
		[USDT_EMIT] = src->skel->progs.cln_span_emit,
		[USDT_SUSPEND] = src->skel->progs.cln_span_suspend,
		[USDT_RESUME] = src->skel->progs.cln_span_resume,
		[USDT_START] = src->skel->progs.cln_span_start,
		[USDT_END] = src->skel->progs.cln_span_end,
	};
	LIBBPF_OPTS(bpf_usdt_opts, opts, .usdt_cookie = idx);
	struct usdt_probe_count c = {{0}};
	int err, n = 0;

	err = elf_notes_for_each_probe(b->path, usdt_count_cb, &c);
	if (err)
		return err;
	if (c.n[USDT_EMIT] == 0)
		return -ENOMSG;
	for (int i = 0; i < USDT__MAX; i++) {
		if (!src->want[i] || c.n[i] == 0)
			continue;
		links[i] = bpf_program__attach_usdt(progs[i], -1, b->path, USDT_PROVIDER,
						    usdt_probe_names[i], &opts);
		if (!links[i]) {
			err = -errno;
			log_debug("attaching %s:%s to %s failed: %s", USDT_PROVIDER,
				  usdt_probe_names[i], b->path, strerror(-err));
			usdt_links_destroy(links);
			return err ? err : -EINVAL;
		}
		n++;
	}
	/* Interned once something can send spans: files without probes take no entry. */
	b->exe_path = span_intern(b->path);
	return n;
}

static int usdt_find_path(const struct source_usdt *src, const char *path)
{
	for (size_t i = 0; i < src->n_bins; i++)
		if (!strcmp(src->bins[i].path, path))
			return (int)i;
	return -1;
}

/* The entry (other than @except) last seen as file @id; with @attached, only one with probes. */
static int usdt_find_file(const struct source_usdt *src, const struct usdt_ident *id, size_t except,
			  bool attached)
{
	for (size_t i = 0; i < src->n_bins; i++) {
		const struct usdt_binary *b = &src->bins[i];

		if (i != except && usdt_ident_same_file(&b->id, id) &&
		    (!attached || usdt_links_count(b->links)))
			return (int)i;
	}
	return -1;
}

/* Add a binary (not attached yet). Returns its index, or a negative errno. */
static int usdt_add_bin(struct source_usdt *src, const char *path, const struct usdt_ident *id,
			bool plugin)
{
	struct usdt_binary *b;

	if (src->n_bins == USDT_MAX_BINARIES) {
		if (!src->full_warned)
			log_warn("more than %d binaries to watch: %s and later ones are not traced",
				 USDT_MAX_BINARIES, path);
		src->full_warned = true;
		return -ENOSPC;
	}
	b = &src->bins[src->n_bins];
	memset(b, 0, sizeof(*b));
	b->path = strdup(path);
	if (!b->path)
		return -ENOMEM;
	b->plugin = plugin;
	b->present = true;
	b->id = *id;
	return (int)src->n_bins++;
}

static void usdt_bin_free(struct usdt_binary *b)
{
	usdt_links_destroy(b->links);
	usdt_links_destroy(b->prev);
	free(b->path);
}

/* ---- where lightningd is, and its plugins ---- */

static int usdt_find_on_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	const char *p, *end;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		size_t len;

		end = strchrnul(p, ':');
		len = end - p;
		if (len == 0)
			continue;
		if ((size_t)snprintf(out, size, "%.*s/%s", (int)len, p, name) >= size)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static const char usdt_no_probes_help[] =
	"Core Lightning was built without USDT probes. Rebuild it with <sys/sdt.h> installed "
	"(Debian/Ubuntu: apt-get install systemtap-sdt-dev; then ./configure must write "
	"HAVE_USDT=1 to config.vars) and check with: readelf -n %s | grep -A2 stapsdt";

/* Resolve one --lightningd argument (or the default) into an absolute path with probes. */
static int usdt_resolve_main(const char *arg, char *out, char *err, size_t err_size)
{
	char found[PATH_MAX];
	struct usdt_probe_count c = {{0}};
	int ret;

	if (!strchr(arg, '/')) {
		if (usdt_find_on_path(arg, found, sizeof(found))) {
			snprintf(err, err_size,
				 "%s not found on PATH: pass its path with --lightningd, e.g. "
				 "--lightningd /usr/local/bin/lightningd",
				 arg);
			return -ENOENT;
		}
		arg = found;
	}
	if (!realpath(arg, out)) {
		ret = -errno;
		snprintf(err, err_size,
			 "--lightningd %s: %s: pass the path of the lightningd binary", arg,
			 strerror(-ret));
		return ret;
	}
	ret = elf_notes_for_each_probe(out, usdt_count_cb, &c);
	if (ret == -ENOEXEC) {
		snprintf(
			err, err_size,
			"%s is not an ELF executable (a wrapper script?): pass the real lightningd "
			"binary with --lightningd",
			out);
		return ret;
	}
	if (ret) {
		snprintf(err, err_size, "cannot read %s: %s", out, strerror(-ret));
		return ret;
	}
	if (c.n[USDT_EMIT] == 0) {
		int n = snprintf(err, err_size, "%s has no %s:span_emit probe. ", out,
				 USDT_PROVIDER);

		if (n >= 0 && (size_t)n < err_size)
			snprintf(err + n, err_size - n, usdt_no_probes_help, out);
		return -ENOMSG;
	}
	return 0;
}

static void usdt_add_plugin_dir(struct source_usdt *src, const char *dir, const char *rel)
{
	char cand[PATH_MAX], real[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(cand, sizeof(cand), "%s/%s", dir, rel) >= sizeof(cand))
		return;
	if (!realpath(cand, real) || stat(real, &st) || !S_ISDIR(st.st_mode))
		return;
	for (size_t i = 0; i < src->n_plugin_dirs; i++)
		if (!strcmp(src->plugin_dirs[i], real))
			return;
	if (src->n_plugin_dirs == USDT_MAX_PLUGIN_DIRS)
		return;
	src->plugin_dirs[src->n_plugin_dirs] = strdup(real);
	if (src->plugin_dirs[src->n_plugin_dirs])
		src->n_plugin_dirs++;
}

/*
 * Plugins live next to lightningd: <prefix>/bin/lightningd has
 * <prefix>/libexec/c-lightning/plugins/, a build tree's lightningd/lightningd has plugins/.
 */
static void usdt_plugin_dirs_of(struct source_usdt *src, const char *binary)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", binary);
	slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	if (!dir[0])
		strcpy(dir, "/");
	usdt_add_plugin_dir(src, dir, "../libexec/c-lightning/plugins");
	usdt_add_plugin_dir(src, dir, "plugins");
	usdt_add_plugin_dir(src, dir, "../plugins");
}

static const char *usdt_err_hint(int err)
{
	if (err == -EPERM || err == -EACCES)
		return " (run as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN: kernels "
		       "since mid-2025 want CAP_SYS_ADMIN to create uprobes)";
	if (access(USDT_UPROBE_PMU, R_OK))
		return " (the kernel has no uprobes: " USDT_UPROBE_PMU " is missing; it needs "
		       "CONFIG_UPROBE_EVENTS)";
	return "";
}

/*
 * Look at plugin file @path: a new executable is added (and attached when it has probes).
 * Quietly ignores what is not a plugin with probes.
 */
static void usdt_consider_plugin(struct source_usdt *src, const char *path)
{
	struct bpf_link *links[USDT__MAX] = {NULL};
	struct usdt_ident id = {0};
	struct stat st;
	int idx, n;

	if (stat(path, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return;
	if (usdt_find_path(src, path) >= 0)
		return;
	if (usdt_ident_get(path, &id))
		return;
	idx = usdt_find_file(src, &id, SIZE_MAX, false);
	if (idx >= 0) {
		struct usdt_binary *b = &src->bins[idx];
		struct usdt_ident cur = {0};
		char *copy;

		if (!usdt_ident_get(b->path, &cur) && usdt_ident_same_file(&cur, &id))
			return; /* the same file under a second name (a hard link) */
		/* Renamed: installers write `pay.dpkg-new` and move it into place. */
		copy = strdup(path);
		if (!copy)
			return;
		log_debug("%s was renamed to %s", b->path, path);
		free(b->path);
		b->path = copy;
		b->present = true;
		if (b->exe_path)
			b->exe_path = span_intern(path);
		return;
	}
	idx = usdt_add_bin(src, path, &id, true);
	if (idx < 0)
		return;
	n = usdt_attach(src, idx, links);
	if (n == -ENOMSG || n == -ENOEXEC) {
		log_debug("%s: no %s:span_emit probe, not traced", path, USDT_PROVIDER);
		return;
	}
	if (n < 0) {
		log_warn("plugin %s: attaching the probes failed: %s%s", path, strerror(-n),
			 usdt_err_hint(n));
		return;
	}
	memcpy(src->bins[idx].links, links, sizeof(links));
	src->bins[idx].has_probes = true;
	log_debug("attached %d probes to plugin %s (binary %d)", n, path, idx);
}

static void usdt_scan_plugin_dir(struct source_usdt *src, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX], real[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		if (!realpath(path, real))
			continue;
		usdt_consider_plugin(src, real);
	}
	closedir(d);
}

/* ---- watching for upgrades ---- */

static void usdt_check_binary(struct source_usdt *src, size_t idx)
{
	struct usdt_binary *b = &src->bins[idx];
	struct bpf_link *links[USDT__MAX] = {NULL};
	struct usdt_ident id = {0};
	int64_t age;
	int n;

	if (usdt_ident_get(b->path, &id)) {
		if (b->present)
			log_debug("%s is gone; keeping its probes until it comes back", b->path);
		b->present = false;
		return;
	}
	b->present = true;
	if (usdt_ident_equal(&id, &b->id))
		return;
	/* Being written (cp, install): wait until it has settled. A future mtime is no reason. */
	age = (int64_t)clock_real_ns() -
	      ((int64_t)id.mtime.tv_sec * 1000000000ll + id.mtime.tv_nsec);
	if (age >= 0 && age < USDT_SETTLE_NS)
		return;
	/*
	 * Rewritten in place (same inode): nothing can still run the old contents, so the old
	 * probe offsets are meaningless now. Detach them before attaching the new ones.
	 */
	if (usdt_ident_same_file(&id, &b->id))
		usdt_links_destroy(b->links);
	/*
	 * The new file may be traced already under the temporary name it was installed as
	 * (pay.dpkg-new, then renamed over pay): take those probes over rather than attaching
	 * twice. Their records carry the other entry's cookie, so it now names this path.
	 */
	n = usdt_find_file(src, &id, idx, true);
	if (n >= 0) {
		struct usdt_binary *tmp = &src->bins[n];

		usdt_links_destroy(b->prev);
		memcpy(b->prev, b->links, sizeof(b->prev));
		memcpy(b->links, tmp->links, sizeof(b->links));
		memset(tmp->links, 0, sizeof(tmp->links));
		tmp->has_probes = false;
		b->exe_path = span_intern(b->path);
		tmp->exe_path = b->exe_path;
		b->id = id;
		b->failures = 0;
		b->has_probes = true;
		log_info("%s was replaced (installed as %s): its probes are attached", b->path,
			 tmp->path);
		return;
	}
	n = usdt_attach(src, idx, links);
	if (n == -ENOMSG || n == -ENOEXEC) {
		log_msg(b->has_probes ? LOG_LVL_WARN : LOG_LVL_DEBUG,
			"%s was replaced by a file without %s:span_emit probes: not traced until "
			"a build with probes is installed",
			b->path, USDT_PROVIDER);
		b->has_probes = false;
		b->id = id;
		return;
	}
	if (n < 0) {
		/* Maybe half-written still: keep the old identity and try again next time. */
		if (b->failures++ == 0)
			log_warn("%s changed but attaching to it failed: %s%s (retrying)", b->path,
				 strerror(-n), usdt_err_hint(n));
		return;
	}
	usdt_links_destroy(b->prev);
	memcpy(b->prev, b->links, sizeof(b->prev));
	memcpy(b->links, links, sizeof(b->links));
	b->id = id;
	b->failures = 0;
	if (!b->has_probes && b->plugin)
		log_info("%s now has probes: attached %d", b->path, n);
	else
		log_info("%s was replaced: attached %d probes to the new file", b->path, n);
	b->has_probes = true;
}

static void usdt_watch_cb(struct loop *loop, void *ctx)
{
	struct source_usdt *src = ctx;
	size_t n = src->n_bins;

	usdt_sync_clock(src);
	for (size_t i = 0; i < n; i++)
		usdt_check_binary(src, i);
	for (size_t i = 0; i < src->n_plugin_dirs; i++)
		usdt_scan_plugin_dir(src, src->plugin_dirs[i]);
	loop_timer_arm(src->watch_timer, USDT_WATCH_MS);
}

/* ---- the ring buffer ---- */

static int usdt_on_record(void *ctx, void *data, size_t size)
{
	struct source_usdt *src = ctx;
	const struct usdt_record_hdr *h = data;
	struct pipeline_origin origin;
	const char *exe = NULL;

	if (src->budget == 0)
		return -EAGAIN; /* not reached: the previous record stopped the round */
	if (size < sizeof(*h)) {
		src->bad++;
		log_limited(&src->rl_bad, LOG_LVL_WARN, "short ring buffer record (%zu bytes)",
			    size);
		return 0;
	}
	if (h->binary < src->n_bins)
		exe = src->bins[h->binary].exe_path;
	switch (h->kind) {
	case USDT_RECORD_EMIT:
		if (h->json_len > size - sizeof(*h) || h->json_len > USDT_RECORD_JSON_MAX) {
			src->bad++;
			log_limited(&src->rl_bad, LOG_LVL_WARN,
				    "ring buffer record claims %u bytes of JSON in %zu",
				    h->json_len, size);
			return 0;
		}
		src->spans++;
		origin.source = STATS_SRC_USDT;
		origin.pid = h->pid;
		origin.exe_path = exe;
		pipeline_ingest(src->p, &origin, (const char *)(h + 1), h->json_len);
		break;
	case USDT_RECORD_SUSPEND:
	case USDT_RECORD_RESUME:
		src->events++;
		pipeline_span_event(src->p, h->pid, h->span_id,
				    h->kind == USDT_RECORD_SUSPEND ? SPAN_EVENT_SUSPEND
								   : SPAN_EVENT_RESUME,
				    (uint64_t)((int64_t)h->ktime_ns + src->real_offset_ns));
		break;
	case USDT_RECORD_START:
	case USDT_RECORD_END:
		break; /* the span itself arrives with span_emit */
	default:
		src->bad++;
		log_limited(&src->rl_bad, LOG_LVL_WARN, "unknown ring buffer record kind %u",
			    h->kind);
		break;
	}
	/* Past the budget, stop this round (this record counts as consumed). */
	return --src->budget == 0 ? -EAGAIN : 0;
}

/* Fold the kernel's per-CPU counters into stats and warn when they grow. */
static void usdt_read_counters(struct source_usdt *src)
{
	uint64_t tot[USDT_RECORD_CNT__MAX] = {0}, d[USDT_RECORD_CNT__MAX];
	__u32 zero = 0;

	if (bpf_map__lookup_elem(src->skel->maps.counters, &zero, sizeof(zero), src->percpu,
				 sizeof(*src->percpu) * src->ncpus, 0))
		return;
	for (int c = 0; c < src->ncpus; c++)
		for (int i = 0; i < USDT_RECORD_CNT__MAX; i++)
			tot[i] += src->percpu[c].v[i];
	for (int i = 0; i < USDT_RECORD_CNT__MAX; i++) {
		d[i] = tot[i] - src->cnt[i];
		src->cnt[i] = tot[i];
	}
	if (d[USDT_RECORD_CNT_RB_LOST]) {
		stats.ringbuf_lost += d[USDT_RECORD_CNT_RB_LOST];
		log_limited(&src->rl_lost, LOG_LVL_WARN,
			    "ring buffer full: %llu probe records lost (%llu in all); raise "
			    "--ringbuf-size",
			    (unsigned long long)d[USDT_RECORD_CNT_RB_LOST],
			    (unsigned long long)tot[USDT_RECORD_CNT_RB_LOST]);
	}
	if (d[USDT_RECORD_CNT_READ_FAIL])
		log_limited(&src->rl_read, LOG_LVL_WARN,
			    "could not read %llu span payloads from the traced process (%llu in "
			    "all)",
			    (unsigned long long)d[USDT_RECORD_CNT_READ_FAIL],
			    (unsigned long long)tot[USDT_RECORD_CNT_READ_FAIL]);
	if (d[USDT_RECORD_CNT_CUT])
		log_limited(&src->rl_cut, LOG_LVL_WARN,
			    "%llu span payloads longer than %d bytes were cut",
			    (unsigned long long)d[USDT_RECORD_CNT_CUT], USDT_RECORD_JSON_MAX);
}

/* One round of at most USDT_BUDGET records. Returns true when more are waiting. */
static bool usdt_consume(struct source_usdt *src)
{
	int n;

	src->budget = USDT_BUDGET;
	n = ring_buffer__consume(src->rb);
	if (n < 0 && n != -EAGAIN)
		log_limited(&src->rl_bad, LOG_LVL_WARN, "reading the ring buffer failed: %s",
			    strerror(-n));
	usdt_read_counters(src);
	return n == -EAGAIN;
}

static void usdt_rb_ready(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_usdt *src = ctx;

	/* More than a round's worth: continue at the next turn, after the other work. */
	if (usdt_consume(src))
		loop_timer_arm(src->poll_timer, 0);
}

static void usdt_poll_cb(struct loop *loop, void *ctx)
{
	struct source_usdt *src = ctx;

	loop_timer_arm(src->poll_timer, usdt_consume(src) ? 0 : USDT_POLL_MS);
}

void source_usdt_drain(struct source_usdt *src)
{
	if (!src || !src->rb || src->stopped)
		return;
	/* Detach first: every record fired before this point is read, none after. */
	for (size_t i = 0; i < src->n_bins; i++) {
		usdt_links_destroy(src->bins[i].links);
		usdt_links_destroy(src->bins[i].prev);
	}
	for (int round = 0; round < USDT_DRAIN_ROUNDS && usdt_consume(src); round++)
		;
	loop_timer_disarm(src->poll_timer);
	loop_timer_disarm(src->watch_timer);
	loop_del(src->loop, src->rb_epfd);
	src->rb_epfd = -1;
	src->stopped = true;
	log_debug("eBPF capture stopped: %llu spans and %llu suspend/resume events read",
		  (unsigned long long)src->spans, (unsigned long long)src->events);
}

/* ---- set-up ---- */

static int usdt_load(struct source_usdt *src, const struct config *cfg, char *err, size_t err_size)
{
	uint64_t rb_size = cfg->ringbuf_size ? cfg->ringbuf_size : USDT_RINGBUF_DEFAULT;
	long page = sysconf(_SC_PAGESIZE);
	int ret;

	if (rb_size & (rb_size - 1) || rb_size < (uint64_t)page || rb_size > (1ull << 30)) {
		snprintf(err, err_size,
			 "--ringbuf-size %llu: must be a power of two from %ld to 1G bytes",
			 (unsigned long long)rb_size, page);
		return -EINVAL;
	}
	src->skel = source_usdt_bpf__open();
	if (!src->skel) {
		ret = -errno;
		snprintf(err, err_size, "opening the BPF object failed: %s", strerror(-ret));
		return ret ? ret : -EINVAL;
	}
	src->skel->rodata->filter_pids = cfg->n_pids > 0;
	src->skel->rodata->wakeup_bytes = rb_size / 8;
	ret = bpf_map__set_max_entries(src->skel->maps.rb, rb_size);
	if (ret) {
		snprintf(err, err_size, "sizing the ring buffer failed: %s", strerror(-ret));
		return ret;
	}
	/* Every program exists; only the wanted ones are loaded. Nothing attaches itself. */
	bpf_program__set_autoload(src->skel->progs.cln_span_start, src->want[USDT_START]);
	bpf_program__set_autoload(src->skel->progs.cln_span_end, src->want[USDT_END]);
	bpf_program__set_autoattach(src->skel->progs.cln_span_emit, false);
	bpf_program__set_autoattach(src->skel->progs.cln_span_suspend, false);
	bpf_program__set_autoattach(src->skel->progs.cln_span_resume, false);
	bpf_program__set_autoattach(src->skel->progs.cln_span_start, false);
	bpf_program__set_autoattach(src->skel->progs.cln_span_end, false);

	usdt_held.hold = true;
	ret = source_usdt_bpf__load(src->skel);
	usdt_release_held(ret && ret != -EPERM && ret != -EACCES ? LOG_LVL_WARN : LOG_LVL_DEBUG);
	if (ret) {
		if (ret == -EPERM || ret == -EACCES)
			snprintf(err, err_size,
				 "loading the BPF programs was refused (%s): run cln-otlp as root, "
				 "or give it CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (setcap "
				 "cap_bpf,cap_perfmon,cap_sys_admin+ep cln-otlp)",
				 strerror(-ret));
		else if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) <= 0)
			snprintf(err, err_size,
				 "the kernel has no BPF ring buffer (Linux 5.8 or later needed): "
				 "loading failed with %s; use --socket or --file instead",
				 strerror(-ret));
		else
			snprintf(err, err_size,
				 "loading the BPF programs failed: %s (run with -v for libbpf's "
				 "log)",
				 strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < cfg->n_pids; i++) {
		__u32 pid = cfg->pids[i];
		__u8 one = 1;

		ret = bpf_map__update_elem(src->skel->maps.pids, &pid, sizeof(pid), &one,
					   sizeof(one), BPF_ANY);
		if (ret) {
			snprintf(err, err_size, "--pid %u: %s", pid, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The binaries asked for: --lightningd, else the --pid processes', else lightningd on PATH. */
static int usdt_main_binaries(struct source_usdt *src, const struct config *cfg, char *err,
			      size_t err_size)
{
	const char *args[CONFIG_MAX_LIST];
	char procs[CONFIG_MAX_LIST][PATH_MAX];
	size_t n = 0;
	int ret;

	if (cfg->n_lightningd) {
		for (size_t i = 0; i < cfg->n_lightningd; i++)
			args[n++] = cfg->lightningd[i];
	} else if (cfg->n_pids) {
		for (size_t i = 0; i < cfg->n_pids && i < CONFIG_MAX_LIST; i++) {
			char link[64];
			ssize_t len;

			snprintf(link, sizeof(link), "/proc/%u/exe", cfg->pids[i]);
			len = readlink(link, procs[n], sizeof(procs[n]) - 1);
			if (len < 0) {
				ret = -errno;
				snprintf(err, err_size,
					 "--pid %u: cannot find its binary (%s): is the process "
					 "running? Pass the binary with --lightningd",
					 cfg->pids[i], strerror(-ret));
				return ret;
			}
			procs[n][len] = '\0';
			args[n] = procs[n];
			n++;
		}
	} else {
		args[n++] = "lightningd";
	}
	for (size_t i = 0; i < n; i++) {
		char real[PATH_MAX];
		struct usdt_ident id = {0};

		ret = usdt_resolve_main(args[i], real, err, err_size);
		if (ret)
			return ret;
		ret = usdt_ident_get(real, &id);
		if (ret) {
			snprintf(err, err_size, "%s: %s", real, strerror(-ret));
			return ret;
		}
		if (usdt_find_path(src, real) >= 0 ||
		    usdt_find_file(src, &id, SIZE_MAX, false) >= 0)
			continue; /* given twice, or a hard link of one given */
		ret = usdt_add_bin(src, real, &id, false);
		if (ret < 0) {
			snprintf(err, err_size, "%s: %s", real, strerror(-ret));
			return ret;
		}
		src->bins[ret].has_probes = true;
	}
	return 0;
}

struct source_usdt *source_usdt__new(struct loop *loop, const struct config *cfg,
				     struct pipeline *p, char *err, size_t err_size)
{
	struct source_usdt *src;
	size_t n_main;
	unsigned n_links = 0, n_plugins = 0;
	int ret;

	libbpf_set_print(usdt_libbpf_print);
	src = calloc(1, sizeof(*src));
	if (!src) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	src->loop = loop;
	src->p = p;
	src->rb_epfd = -1;
	src->no_plugins = cfg->no_plugins;
	src->want[USDT_EMIT] = src->want[USDT_SUSPEND] = src->want[USDT_RESUME] = true;
	src->want[USDT_START] = src->want[USDT_END] = cfg->all_probes;
	usdt_sync_clock(src);

	/* What to trace first: these errors need no privileges to report. */
	ret = usdt_main_binaries(src, cfg, err, err_size);
	if (ret)
		goto fail;
	n_main = src->n_bins;
	if (access(USDT_UPROBE_PMU, R_OK)) {
		snprintf(err, err_size,
			 "the kernel has no uprobe support (%s is missing): eBPF capture needs a "
			 "kernel built with CONFIG_UPROBE_EVENTS; use --socket or --file instead",
			 USDT_UPROBE_PMU);
		goto fail;
	}

	ret = usdt_load(src, cfg, err, err_size);
	if (ret)
		goto fail;
	src->ncpus = libbpf_num_possible_cpus();
	if (src->ncpus <= 0) {
		snprintf(err, err_size, "cannot count CPUs: %s", strerror(-src->ncpus));
		goto fail;
	}
	src->percpu = calloc(src->ncpus, sizeof(*src->percpu));
	if (!src->percpu) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}

	for (size_t i = 0; i < n_main; i++) {
		struct usdt_binary *b = &src->bins[i];

		ret = usdt_attach(src, i, b->links);
		if (ret < 0) {
			snprintf(err, err_size, "attaching to %s failed: %s%s", b->path,
				 strerror(-ret), usdt_err_hint(ret));
			goto fail;
		}
		n_links += ret;
		log_debug("attached %d probes to %s (binary %zu)", ret, b->path, i);
		if (!src->no_plugins)
			usdt_plugin_dirs_of(src, b->path);
	}
	for (size_t i = 0; i < src->n_plugin_dirs; i++)
		usdt_scan_plugin_dir(src, src->plugin_dirs[i]);
	for (size_t i = n_main; i < src->n_bins; i++) {
		unsigned n = usdt_links_count(src->bins[i].links);

		n_links += n;
		n_plugins += n > 0;
	}

	src->rb = ring_buffer__new(bpf_map__fd(src->skel->maps.rb), usdt_on_record, src, NULL);
	if (!src->rb) {
		snprintf(err, err_size, "setting up the ring buffer reader failed: %s",
			 strerror(errno));
		goto fail;
	}
	src->rb_epfd = ring_buffer__epoll_fd(src->rb);
	ret = loop_add(loop, src->rb_epfd, EPOLLIN, usdt_rb_ready, src);
	if (ret) {
		src->rb_epfd = -1;
		snprintf(err, err_size, "watching the ring buffer failed: %s", strerror(-ret));
		goto fail;
	}
	src->poll_timer = loop_timer__new(loop, usdt_poll_cb, src);
	src->watch_timer = loop_timer__new(loop, usdt_watch_cb, src);
	if (!src->poll_timer || !src->watch_timer ||
	    loop_timer_arm(src->poll_timer, USDT_POLL_MS) ||
	    loop_timer_arm(src->watch_timer, USDT_WATCH_MS)) {
		snprintf(err, err_size, "creating timers failed: %s", strerror(errno));
		goto fail;
	}

	log_info("attached %u probes to %zu binaries (%s%s, %u plugins)%s", n_links,
		 n_main + n_plugins, src->bins[0].path, n_main > 1 ? " and others" : "", n_plugins,
		 cfg->n_pids ? ", only the --pid processes" : "");
	return src;
fail:
	source_usdt__free(src);
	return NULL;
}

void source_usdt__free(struct source_usdt *src)
{
	if (!src)
		return;
	loop_timer__free(src->watch_timer);
	loop_timer__free(src->poll_timer);
	if (src->rb_epfd >= 0)
		loop_del(src->loop, src->rb_epfd);
	if (src->rb) {
		usdt_read_counters(src);
		if (src->cnt[USDT_RECORD_CNT_RB_LOST] || src->cnt[USDT_RECORD_CNT_READ_FAIL])
			log_warn("eBPF capture: %llu spans read, %llu lost to a full ring buffer, "
				 "%llu unreadable",
				 (unsigned long long)src->spans,
				 (unsigned long long)src->cnt[USDT_RECORD_CNT_RB_LOST],
				 (unsigned long long)src->cnt[USDT_RECORD_CNT_READ_FAIL]);
		else
			log_debug("eBPF capture: %llu spans and %llu suspend/resume events read",
				  (unsigned long long)src->spans, (unsigned long long)src->events);
	}
	ring_buffer__free(src->rb);
	for (size_t i = src->n_bins; i-- > 0;)
		usdt_bin_free(&src->bins[i]);
	for (size_t i = 0; i < src->n_plugin_dirs; i++)
		free(src->plugin_dirs[i]);
	source_usdt_bpf__destroy(src->skel);
	free(src->percpu);
	free(src);
}

#endif /* CLN_OTLP_HAVE_BPF */
