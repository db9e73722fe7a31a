// SPDX-License-Identifier: MIT
/*
 * targets: where lightningd and its C plugins are, and what became of them on disk (see
 * targets.h). Every decision about a file is taken here; attaching and detaching are the
 * owner's callbacks, whose handles this file keeps per target: the probes of the file now at
 * the path, and those of the file it replaced (a process may still run the old one).
 */
#include "targets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elf_notes.h"
#include "exe_paths.h"
#include "log.h"
#include "span.h"

#define TARGETS_SETTLE_NS     1000000000ll /* a changed file must be this old to be attached */
#define TARGETS_MAX_ROOTS     (1 + 2 * CONFIG_MAX_LIST) /* ours, one per --pid or /proc/PID/root */
#define TARGETS_PREFIX_MAX    32			/* "/proc/self/fd/N" */
#define TARGETS_AT_MAX	      (PATH_MAX + TARGETS_PREFIX_MAX)
#define TARGETS_MAX_LINKS     40   /* symlinks followed in one path, as the kernel's MAXSYMLINKS */
#define TARGETS_NO_PROBES_MAX 1024 /* discovery: binaries known to carry no probe */

/* What a file was when we last looked: a new inode, size or mtime means a new binary. */
struct targets_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/*
 * A root the files of a process in another mount namespace (a container) or chroot are
 * opened through. Its /proc/PID/root is opened once (O_PATH) and paths inside it are opened
 * as /proc/self/fd/N/<path>: our own descriptor, so the link still resolves after the
 * privileges are dropped (following /proc/PID/root needs ptrace access to PID), and no
 * realpath() turns it back into a path of ours. Index 0 is our own root: no prefix.
 */
struct targets_root {
	int fd;		   /* O_PATH of /proc/PID/root; -1 for ours or released */
	uint32_t pid;	   /* the process it was found through, for messages */
	dev_t ns_dev, dev; /* its mount namespace and root directory */
	ino_t ns_ino, ino;
	char prefix[TARGETS_PREFIX_MAX]; /* "/proc/self/fd/N"; "" for ours */
};

struct targets_bin {
	char *path;	      /* absolute, symlinks resolved, as the processes in its root see it */
	unsigned root;	      /* the root it is opened through (index in roots) */
	const char *exe_path; /* exe_path_get(), held for good: its name (once attached) */
	bool plugin;
	bool has_probes;	 /* the file we looked at carries lightningd:span_emit */
	bool present;		 /* the path existed at the last look */
	struct targets_ident id; /* the file the probes (or the no-probes verdict) belong to */
	void *att;		 /* the owner's handle for the probes attached to it, or NULL */
	/*
	 * The probes of the file this one replaced. An upgrade installs the new binary while the
	 * old lightningd still runs from the old inode until it is restarted: keep tracing it.
	 */
	void *prev;
	unsigned failures; /* consecutive failed re-attaches (warn once, keep trying) */
};

struct targets {
	const struct targets_ops *ops;
	void *ctx;
	bool plugins;
	bool full_warned;
	struct targets_root roots[TARGETS_MAX_ROOTS];
	size_t n_roots;
	char *plugin_dirs[TARGETS_MAX_PLUGIN_DIRS];
	unsigned plugin_dir_roots[TARGETS_MAX_PLUGIN_DIRS];
	size_t n_plugin_dirs;
	struct targets_bin bins[TARGETS_MAX]; /* index = USDT cookie */
	size_t n_bins;
	/* Discovery: files seen without the probe (or not traceable), each looked at once. */
	struct targets_ident no_probes[TARGETS_NO_PROBES_MAX];
	size_t n_no_probes, no_probes_next;
	struct targets_discovery disc;
};

/* ---- files ---- */

static void targets_ident_of(const struct stat *st, struct targets_ident *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

static int targets_ident_get(const char *path, struct targets_ident *id)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	targets_ident_of(&st, id);
	return 0;
}

static bool targets_ident_same_file(const struct targets_ident *a, const struct targets_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static bool targets_ident_equal(const struct targets_ident *a, const struct targets_ident *b)
{
	return targets_ident_same_file(a, b) && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ---- roots ---- */

/* Where @path inside root @root is opened: in @buf (TARGETS_AT_MAX bytes), or @path itself. */
static const char *targets_at(const struct targets *t, unsigned root, const char *path, char *buf)
{
	if (!root)
		return path;
	snprintf(buf, TARGETS_AT_MAX, "%s%s", t->roots[root].prefix, path);
	return buf;
}

/* @path as a user on the host can reach it: /proc/PID/root/<path> for another root. */
static const char *targets_shown(const struct targets *t, unsigned root, const char *path,
				 char *buf)
{
	if (!root)
		return path;
	snprintf(buf, TARGETS_AT_MAX, "/proc/%u/root%s", t->roots[root].pid, path);
	return buf;
}

static bool targets_same_root(const struct targets_root *r, const struct stat *ns,
			      const struct stat *dir)
{
	return r->ns_dev == ns->st_dev && r->ns_ino == ns->st_ino && r->dev == dir->st_dev &&
	       r->ino == dir->st_ino;
}

/*
 * The root process @pid sees its files in: 0 (ours) when it shares our mount namespace and
 * root directory, as a process on the host does, else the index of one opened through
 * /proc/PID/root (the same one for every process of one container). A negative errno when
 * the process is gone or not ours to look into.
 */
static int targets_root_of_pid(struct targets *t, uint32_t pid)
{
	struct stat self_ns, self_dir, ns, dir;
	struct targets_root *r;
	char p[64];
	int fd, ret;

	snprintf(p, sizeof(p), "/proc/%u/ns/mnt", pid);
	if (stat("/proc/self/ns/mnt", &self_ns) || stat("/", &self_dir) || stat(p, &ns))
		return -errno;
	snprintf(p, sizeof(p), "/proc/%u/root", pid);
	fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &dir)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	t->roots[0].ns_dev = self_ns.st_dev;
	t->roots[0].ns_ino = self_ns.st_ino;
	t->roots[0].dev = self_dir.st_dev;
	t->roots[0].ino = self_dir.st_ino;
	for (size_t i = 0; i < t->n_roots; i++) {
		if (targets_same_root(&t->roots[i], &ns, &dir)) {
			close(fd);
			return (int)i;
		}
	}
	if (t->n_roots == TARGETS_MAX_ROOTS) {
		close(fd);
		return -ENOSPC;
	}
	r = &t->roots[t->n_roots];
	r->fd = fd;
	r->pid = pid;
	r->ns_dev = ns.st_dev;
	r->ns_ino = ns.st_ino;
	r->dev = dir.st_dev;
	r->ino = dir.st_ino;
	snprintf(r->prefix, sizeof(r->prefix), "/proc/self/fd/%d", fd);
	log_debug("process %u runs in another root (a container?): its files are opened through "
		  "/proc/%u/root",
		  pid, pid);
	return (int)t->n_roots++;
}

/* Drop the last component of @out (length *@len): "/a/b" becomes "/a", "/a" becomes "". */
static void targets_path_up(char *out, size_t *len)
{
	while (*len && out[*len - 1] != '/')
		(*len)--;
	if (*len)
		(*len)--;
	out[*len] = '\0';
}

/*
 * realpath() inside root @root: every symlink in absolute @path resolved as the processes in
 * that root see it (an absolute target starts again at the root, ".." stops at it). Writes
 * the path inside the root to @out (PATH_MAX bytes). Returns 0 or a negative errno.
 */
static int targets_realpath_in(const struct targets *t, unsigned root, const char *path, char *out)
{
	char rest[PATH_MAX], next[PATH_MAX], link[PATH_MAX], at[TARGETS_AT_MAX];
	unsigned links = 0;
	size_t len = 0;
	const char *p;

	if (path[0] != '/' || (size_t)snprintf(rest, sizeof(rest), "%s", path) >= sizeof(rest))
		return path[0] != '/' ? -EINVAL : -ENAMETOOLONG;
	out[0] = '\0';
	for (p = rest; *p;) {
		const char *c = p + strspn(p, "/");
		size_t clen = strcspn(c, "/");
		struct stat st;
		ssize_t n;

		p = c + clen;
		if (clen == 0 || (clen == 1 && c[0] == '.'))
			continue;
		if (clen == 2 && c[0] == '.' && c[1] == '.') {
			targets_path_up(out, &len);
			continue;
		}
		if (len + 1 + clen >= PATH_MAX)
			return -ENAMETOOLONG;
		out[len++] = '/';
		memcpy(out + len, c, clen);
		len += clen;
		out[len] = '\0';
		if (lstat(targets_at(t, root, out, at), &st))
			return -errno;
		if (!S_ISLNK(st.st_mode))
			continue;
		if (++links > TARGETS_MAX_LINKS)
			return -ELOOP;
		n = readlink(at, link, sizeof(link) - 1);
		if (n < 0)
			return -errno;
		link[n] = '\0';
		if ((size_t)snprintf(next, sizeof(next), "%s/%s", link, p) >= sizeof(next))
			return -ENAMETOOLONG;
		memcpy(rest, next, sizeof(rest));
		p = rest;
		if (link[0] == '/')
			len = 0;
		else
			targets_path_up(out, &len);
		out[len] = '\0';
	}
	if (!len)
		strcpy(out, "/");
	return 0;
}

/* realpath() of @path in root @root into @out (PATH_MAX bytes): 0 or a negative errno. */
static int targets_resolve(const struct targets *t, unsigned root, const char *path, char *out)
{
	if (root)
		return targets_realpath_in(t, root, path, out);
	return realpath(path, out) ? 0 : -errno;
}

void targets_release_roots(struct targets *t)
{
	for (size_t i = 1; i < t->n_roots; i++) {
		if (t->roots[i].fd >= 0)
			close(t->roots[i].fd);
		t->roots[i].fd = -1;
	}
}

/* ---- the table ---- */

static void targets_detach(struct targets *t, void **att)
{
	t->ops->detach(t->ctx, *att);
	*att = NULL;
}

/*
 * Attach the probes of target @idx's file into *@att. Returns what ops->attach returns; on
 * success the target gets its exe_path.
 */
static int targets_attach_bin(struct targets *t, size_t idx, void **att)
{
	struct targets_bin *b = &t->bins[idx];
	char at[TARGETS_AT_MAX];
	int n;

	*att = NULL;
	n = t->ops->attach(t->ctx, idx, targets_at(t, b->root, b->path, at), att);
	if (n < 0)
		return n;
	/* Interned once something can send spans: files without probes take no entry. */
	b->exe_path = exe_path_get(b->path);
	return n;
}

static int targets_find_path(const struct targets *t, unsigned root, const char *path)
{
	for (size_t i = 0; i < t->n_bins; i++)
		if (t->bins[i].root == root && !strcmp(t->bins[i].path, path))
			return (int)i;
	return -1;
}

/* The entry (other than @except) last seen as file @id; with @attached, only one with probes. */
static int targets_find_file(const struct targets *t, const struct targets_ident *id, size_t except,
			     bool attached)
{
	for (size_t i = 0; i < t->n_bins; i++) {
		const struct targets_bin *b = &t->bins[i];

		if (i != except && targets_ident_same_file(&b->id, id) && (!attached || b->att))
			return (int)i;
	}
	return -1;
}

/* Add a binary in root @root (not attached yet). Returns its index, or a negative errno. */
static int targets_add(struct targets *t, unsigned root, const char *path,
		       const struct targets_ident *id, bool plugin)
{
	struct targets_bin *b;

	if (t->n_bins == TARGETS_MAX) {
		if (!t->full_warned)
			log_warn("more than %d binaries to watch: %s and later ones are not traced",
				 TARGETS_MAX, path);
		t->full_warned = true;
		return -ENOSPC;
	}
	b = &t->bins[t->n_bins];
	memset(b, 0, sizeof(*b));
	b->path = strdup(path);
	if (!b->path)
		return -ENOMEM;
	b->root = root;
	b->plugin = plugin;
	b->present = true;
	b->id = *id;
	return (int)t->n_bins++;
}

struct targets *targets__new(const struct targets_ops *ops, void *ctx, bool plugins)
{
	struct targets *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ops = ops;
	t->ctx = ctx;
	t->plugins = plugins;
	t->roots[0].fd = -1;
	t->n_roots = 1;
	return t;
}

void targets_detach_all(struct targets *t)
{
	for (size_t i = 0; i < t->n_bins; i++) {
		targets_detach(t, &t->bins[i].att);
		targets_detach(t, &t->bins[i].prev);
	}
}

void targets__free(struct targets *t)
{
	if (!t)
		return;
	for (size_t i = t->n_bins; i-- > 0;) {
		targets_detach(t, &t->bins[i].att);
		targets_detach(t, &t->bins[i].prev);
		free(t->bins[i].path);
	}
	for (size_t i = 0; i < t->n_plugin_dirs; i++)
		free(t->plugin_dirs[i]);
	targets_release_roots(t);
	free(t);
}

size_t targets_count(const struct targets *t)
{
	return t->n_bins;
}

const char *targets_path(const struct targets *t, size_t idx)
{
	return idx < t->n_bins ? t->bins[idx].path : NULL;
}

uint32_t targets_root_pid(const struct targets *t, size_t idx)
{
	return idx < t->n_bins ? t->roots[t->bins[idx].root].pid : 0;
}

const char *targets_exe_path(const struct targets *t, size_t idx)
{
	return idx < t->n_bins ? t->bins[idx].exe_path : NULL;
}

size_t targets_n_plugin_dirs(const struct targets *t)
{
	return t->n_plugin_dirs;
}

const char *targets_plugin_dir(const struct targets *t, size_t i)
{
	return i < t->n_plugin_dirs ? t->plugin_dirs[i] : NULL;
}

/* ---- where lightningd is ---- */

int targets_find_on_path(const char *name, const char *path_list, char *out, size_t size)
{
	const char *p, *end;

	if (!path_list || !*path_list)
		path_list = "/usr/local/bin:/usr/bin:/bin";
	for (p = path_list; *p; p = *end ? end + 1 : end) {
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

static const char targets_no_probes_help[] =
	"Core Lightning was built without USDT probes. Rebuild it with <sys/sdt.h> installed "
	"(Debian/Ubuntu: apt-get install systemtap-sdt-dev; then ./configure must write "
	"HAVE_USDT=1 to config.vars) and check with: readelf -n %s | grep -A2 stapsdt";

/* Resolve one --lightningd argument (or the default) into an absolute path of ours. */
static int targets_resolve_main(const char *arg, char *out, char *err, size_t err_size)
{
	char found[PATH_MAX];
	int ret;

	if (!strchr(arg, '/')) {
		if (targets_find_on_path(arg, getenv("PATH"), found, sizeof(found))) {
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
	return 0;
}

/* File @at (@shown in messages) must be an ELF file with the span_emit probe. */
static int targets_check_main(const char *at, const char *shown, char *err, size_t err_size)
{
	int ret = elf_notes_count_probe(at, TARGETS_PROVIDER, "span_emit");

	if (ret == -ENOEXEC) {
		snprintf(
			err, err_size,
			"%s is not an ELF executable (a wrapper script?): pass the real lightningd "
			"binary with --lightningd",
			shown);
		return ret;
	}
	if (ret < 0) {
		snprintf(err, err_size, "cannot read %s: %s", shown, strerror(-ret));
		return ret;
	}
	if (ret == 0) {
		int n = snprintf(err, err_size, "%s has no %s:span_emit probe. ", shown,
				 TARGETS_PROVIDER);

		if (n >= 0 && (size_t)n < err_size)
			snprintf(err + n, err_size - n, targets_no_probes_help, shown);
		return -ENOMSG;
	}
	return 0;
}

/* The binary process @pid runs, as its /proc/PID/exe link names it (inside its root). */
static int targets_exe_of_pid(uint32_t pid, char *out, size_t size, char *err, size_t err_size)
{
	char link[64];
	ssize_t len;
	int ret;

	snprintf(link, sizeof(link), "/proc/%u/exe", pid);
	len = readlink(link, out, size - 1);
	if (len < 0) {
		ret = -errno;
		snprintf(err, err_size,
			 "--pid %u: cannot find its binary (%s): is the process running? Pass the "
			 "binary with --lightningd",
			 pid, strerror(-ret));
		return ret;
	}
	out[len] = '\0';
	return 0;
}

/* Add main binary @real (resolved, in root @root), unless it is one of those added already. */
static int targets_add_one_main(struct targets *t, unsigned root, const char *real, char *err,
				size_t err_size)
{
	char at_buf[TARGETS_AT_MAX], shown_buf[TARGETS_AT_MAX];
	const char *at = targets_at(t, root, real, at_buf);
	const char *shown = targets_shown(t, root, real, shown_buf);
	struct targets_ident id = {0};
	int ret;

	ret = targets_check_main(at, shown, err, err_size);
	if (ret)
		return ret;
	ret = targets_ident_get(at, &id);
	if (ret) {
		snprintf(err, err_size, "%s: %s", shown, strerror(-ret));
		return ret;
	}
	if (targets_find_path(t, root, real) >= 0 ||
	    targets_find_file(t, &id, SIZE_MAX, false) >= 0)
		return 0; /* given twice, or a hard link of one given */
	ret = targets_add(t, root, real, &id, false);
	if (ret < 0) {
		snprintf(err, err_size, "%s: %s", shown, strerror(-ret));
		return ret;
	}
	t->bins[ret].has_probes = true;
	return 0;
}

/*
 * Add the main binary at @path inside root @root (a negative errno: that root could not be
 * opened); @what names the argument it came from in messages. In our own root, @path may be
 * a name on PATH and is resolved with realpath() as always.
 */
static int targets_add_main_in(struct targets *t, int root, const char *path, const char *what,
			       char *err, size_t err_size)
{
	char real[PATH_MAX];
	int ret;

	if (root < 0) {
		snprintf(err, err_size, "%s: cannot look into the root of its process: %s", what,
			 strerror(-root));
		return root;
	}
	if (!root) {
		ret = targets_resolve_main(path, real, err, err_size);
	} else {
		ret = targets_realpath_in(t, (unsigned)root, path, real);
		if (ret)
			snprintf(err, err_size, "%s: %s (/proc/%u/root%s): %s", what, path,
				 t->roots[root].pid, path, strerror(-ret));
	}
	return ret ? ret : targets_add_one_main(t, (unsigned)root, real, err, err_size);
}

/* @arg is /proc/PID/root/<path>: its PID and <path> ("/" for the root itself). */
static bool targets_split_proc_root(const char *arg, uint32_t *pid, const char **path)
{
	const char *digits = arg + strlen("/proc/");
	unsigned long n;
	char *end;

	if (strncmp(arg, "/proc/", strlen("/proc/")) || *digits < '1' || *digits > '9')
		return false;
	errno = 0;
	n = strtoul(digits, &end, 10);
	if (errno || n > UINT32_MAX || strncmp(end, "/root", 5) || (end[5] && end[5] != '/'))
		return false;
	*pid = (uint32_t)n;
	*path = end[5] ? end + 5 : "/";
	return true;
}

/* One --lightningd argument: /proc/PID/root/<path> is <path> as process PID sees it. */
static int targets_add_lightningd(struct targets *t, const char *arg, char *err, size_t err_size)
{
	char what[PATH_MAX + 32];
	const char *path;
	uint32_t pid;
	int root;

	if (!targets_split_proc_root(arg, &pid, &path))
		return targets_add_main_in(t, 0, arg, arg, err, err_size);
	snprintf(what, sizeof(what), "--lightningd %s", arg);
	root = targets_root_of_pid(t, pid);
	/* A process sharing our root: realpath() of the whole argument is right. */
	return targets_add_main_in(t, root, root ? path : arg, what, err, err_size);
}

/* One --pid process: the binary it runs, opened through its root (a container's). */
static int targets_add_pid(struct targets *t, uint32_t pid, char *err, size_t err_size)
{
	char exe[PATH_MAX], what[64];
	int ret;

	ret = targets_exe_of_pid(pid, exe, sizeof(exe), err, err_size);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "--pid %u: its binary", pid);
	return targets_add_main_in(t, targets_root_of_pid(t, pid), exe, what, err, err_size);
}

int targets_add_main(struct targets *t, const struct config *cfg, char *err, size_t err_size)
{
	int ret = 0;

	if (!cfg->n_lightningd && !cfg->n_pids)
		return targets_add_main_in(t, 0, "lightningd", "lightningd", err, err_size);
	for (size_t i = 0; i < cfg->n_lightningd && !ret; i++)
		ret = targets_add_lightningd(t, cfg->lightningd[i], err, err_size);
	/* Without --lightningd, the binaries the --pid processes run. */
	for (size_t i = 0; i < cfg->n_pids && !cfg->n_lightningd && !ret; i++)
		ret = targets_add_pid(t, cfg->pids[i], err, err_size);
	return ret;
}

/* ---- plugins ---- */

static void targets_add_plugin_dir(struct targets *t, unsigned root, const char *dir,
				   const char *rel)
{
	char cand[PATH_MAX], real[PATH_MAX], at[TARGETS_AT_MAX];
	struct stat st;

	if ((size_t)snprintf(cand, sizeof(cand), "%s/%s", dir, rel) >= sizeof(cand))
		return;
	if (targets_resolve(t, root, cand, real) || stat(targets_at(t, root, real, at), &st) ||
	    !S_ISDIR(st.st_mode))
		return;
	for (size_t i = 0; i < t->n_plugin_dirs; i++)
		if (t->plugin_dir_roots[i] == root && !strcmp(t->plugin_dirs[i], real))
			return;
	if (t->n_plugin_dirs == TARGETS_MAX_PLUGIN_DIRS)
		return;
	t->plugin_dirs[t->n_plugin_dirs] = strdup(real);
	t->plugin_dir_roots[t->n_plugin_dirs] = root;
	if (t->plugin_dirs[t->n_plugin_dirs])
		t->n_plugin_dirs++;
}

/*
 * Plugins live next to lightningd: <prefix>/bin/lightningd has
 * <prefix>/libexec/c-lightning/plugins/, a build tree's lightningd/lightningd has plugins/.
 */
static void targets_plugin_dirs_of(struct targets *t, unsigned root, const char *binary)
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
	targets_add_plugin_dir(t, root, dir, "../libexec/c-lightning/plugins");
	targets_add_plugin_dir(t, root, dir, "plugins");
	targets_add_plugin_dir(t, root, dir, "../plugins");
}

/*
 * Plugin file @path (file @id) is the file entry @b was last seen as. Unless it is that file
 * under a second name (a hard link), the file was renamed to @path: the entry follows it.
 */
static void targets_renamed(struct targets *t, struct targets_bin *b, const char *path,
			    const struct targets_ident *id)
{
	struct targets_ident cur = {0};
	char at[TARGETS_AT_MAX];
	char *copy;

	if (!targets_ident_get(targets_at(t, b->root, b->path, at), &cur) &&
	    targets_ident_same_file(&cur, id))
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
		b->exe_path = exe_path_get(path);
}

/*
 * Look at plugin file @path: a new executable is added (and attached when it has probes).
 * Quietly ignores what is not a plugin with probes. Returns how many probes were attached.
 */
static unsigned targets_consider_plugin(struct targets *t, unsigned root, const char *path)
{
	struct targets_ident id = {0};
	char at[TARGETS_AT_MAX];
	struct stat st;
	void *att;
	int idx, n;

	if (targets_find_path(t, root, path) >= 0)
		return 0; /* known: targets_check looks at it */
	if (stat(targets_at(t, root, path, at), &st) || !S_ISREG(st.st_mode) ||
	    !(st.st_mode & 0111))
		return 0;
	targets_ident_of(&st, &id);
	idx = targets_find_file(t, &id, SIZE_MAX, false);
	if (idx >= 0) {
		targets_renamed(t, &t->bins[idx], path, &id);
		return 0;
	}
	idx = targets_add(t, root, path, &id, true);
	if (idx < 0)
		return 0;
	n = targets_attach_bin(t, idx, &att);
	if (n == -ENOMSG || n == -ENOEXEC) {
		log_debug("%s: no %s:span_emit probe, not traced", path, TARGETS_PROVIDER);
		return 0;
	}
	if (n < 0) {
		log_warn("plugin %s: attaching the probes failed: %s%s", path, strerror(-n),
			 t->ops->err_hint(t->ctx, n));
		return 0;
	}
	t->bins[idx].att = att;
	t->bins[idx].has_probes = true;
	log_debug("attached %d probes to plugin %s (binary %d)", n, path, idx);
	return n;
}

/*
 * Look at every file in plugin directory @i (dir and root); count what is attached into
 * @tally (or NULL).
 */
static void targets_scan_plugin_dir(struct targets *t, size_t i, struct targets_tally *tally)
{
	const char *dir = t->plugin_dirs[i];
	unsigned root = t->plugin_dir_roots[i];
	char at[TARGETS_AT_MAX];
	DIR *d = opendir(targets_at(t, root, dir, at));
	struct dirent *de;
	unsigned n;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX], real[PATH_MAX];
		const char *name = path;

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		/* @dir is resolved: only a symlink (or a type not told) needs resolving. */
		if (de->d_type != DT_REG) {
			if (targets_resolve(t, root, path, real))
				continue;
			name = real;
		}
		n = targets_consider_plugin(t, root, name);
		if (tally) {
			tally->probes += n;
			tally->plugins += n > 0;
		}
	}
	closedir(d);
}

/*
 * Attach main binary @i and note the plugin directories next to it; count its probes into
 * @tally. Returns 0, or a negative errno with a message in @err.
 */
static int targets_attach_main(struct targets *t, size_t i, struct targets_tally *tally, char *err,
			       size_t err_size)
{
	struct targets_bin *b = &t->bins[i];
	int ret = targets_attach_bin(t, i, &b->att);
	char buf[TARGETS_AT_MAX];
	const char *shown = targets_shown(t, b->root, b->path, buf);

	if (ret < 0) {
		snprintf(err, err_size, "attaching to %s failed: %s%s", shown, strerror(-ret),
			 t->ops->err_hint(t->ctx, ret));
		return ret;
	}
	tally->probes += ret;
	log_debug("attached %d probes to %s (binary %zu)", ret, shown, i);
	if (t->plugins)
		targets_plugin_dirs_of(t, b->root, b->path);
	return 0;
}

int targets_attach(struct targets *t, struct targets_tally *tally, char *err, size_t err_size)
{
	size_t n_main = t->n_bins;

	memset(tally, 0, sizeof(*tally));
	tally->mains = n_main;
	for (size_t i = 0; i < n_main; i++) {
		int ret = targets_attach_main(t, i, tally, err, err_size);

		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < t->n_plugin_dirs; i++)
		targets_scan_plugin_dir(t, i, tally);
	return 0;
}

/* ---- discovery: the binaries of processes as they start ---- */

static bool targets_no_probes_known(const struct targets *t, const struct targets_ident *id)
{
	for (size_t i = 0; i < t->n_no_probes; i++)
		if (targets_ident_equal(&t->no_probes[i], id))
			return true;
	return false;
}

/* Remember file @id as not traced; the oldest verdict makes room when the table is full. */
static void targets_no_probes_add(struct targets *t, const struct targets_ident *id)
{
	if (t->n_no_probes < TARGETS_NO_PROBES_MAX) {
		t->no_probes[t->n_no_probes++] = *id;
		return;
	}
	t->no_probes[t->no_probes_next] = *id;
	t->no_probes_next = (t->no_probes_next + 1) % TARGETS_NO_PROBES_MAX;
	t->disc.evicted++;
}

/* Is the file process @pid runs (open as @fd, named @exe) one with the span_emit probe? */
static bool targets_exe_has_probes(struct targets *t, uint32_t pid, int fd, const char *exe)
{
	char at[64];
	int ret;

	snprintf(at, sizeof(at), "/proc/self/fd/%d", fd);
	ret = elf_notes_count_probe(at, TARGETS_PROVIDER, "span_emit");
	t->disc.checked++;
	if (ret > 0)
		return true;
	log_debug("discovery: pid %u runs %s: %s, not traced", pid, exe,
		  ret == 0 ? "no " TARGETS_PROVIDER ":span_emit probe" : strerror(-ret));
	return false;
}

/*
 * Add and attach the binary @exe (as process @pid names it, in its root) that carries the
 * probe, with the plugins next to it. Returns 1 when attached, 0 when it turned out to be
 * known under another name, or a negative errno (warned).
 */
static int targets_discover_add(struct targets *t, uint32_t pid, const char *exe,
				struct targets_tally *tally)
{
	size_t before = t->n_bins, dirs = t->n_plugin_dirs;
	char err[PATH_MAX + 256], what[64];
	int root, ret;

	snprintf(what, sizeof(what), "pid %u: its binary", pid);
	root = targets_root_of_pid(t, pid);
	ret = targets_add_main_in(t, root, exe, what, err, sizeof(err));
	if (!ret && t->n_bins == before)
		return 0;
	if (!ret)
		ret = targets_attach_main(t, before, tally, err, sizeof(err));
	if (ret) {
		log_warn("discovery: pid %u runs %s, which has %s probes, but it is not traced: %s",
			 pid, exe, TARGETS_PROVIDER, err);
		if (t->n_bins > before) {
			free(t->bins[before].path);
			t->n_bins = before;
		}
		return ret;
	}
	tally->mains = 1;
	for (size_t i = dirs; i < t->n_plugin_dirs; i++)
		targets_scan_plugin_dir(t, i, tally);
	log_info("discovered %s (pid %u, %s%.0u): attached %u probes, %u plugins",
		 t->bins[before].path, pid,
		 root ? "in a container: the root of process " : "on the host",
		 root ? t->roots[root].pid : 0, tally->probes, tally->plugins);
	return 1;
}

int targets_discover(struct targets *t, uint32_t pid, struct targets_tally *tally)
{
	struct targets_ident id = {0};
	char link[64], exe[PATH_MAX];
	struct stat st;
	ssize_t len;
	int fd, ret;

	memset(tally, 0, sizeof(*tally));
	t->disc.execs++;
	snprintf(link, sizeof(link), "/proc/%u/exe", pid);
	fd = open(link, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		if (ret != -EACCES && ret != -EPERM) {
			t->disc.gone++; /* exited already, or a kernel thread */
			return ret;
		}
		if (t->disc.denied++ == 0)
			log_warn("discovery: cannot open %s (%s): processes of other users are not "
				 "found (cln-otlp needs CAP_SYS_PTRACE for that)",
				 link, strerror(-ret));
		return ret;
	}
	targets_ident_of(&st, &id);
	if (targets_find_file(t, &id, SIZE_MAX, false) >= 0 || targets_no_probes_known(t, &id)) {
		close(fd);
		t->disc.known++;
		return 0;
	}
	len = readlink(link, exe, sizeof(exe) - 1);
	if (len < 0) {
		ret = -errno;
		close(fd);
		t->disc.gone++;
		return ret;
	}
	exe[len] = '\0';
	if (!targets_exe_has_probes(t, pid, fd, exe)) {
		close(fd);
		targets_no_probes_add(t, &id);
		return 0;
	}
	close(fd);
	ret = targets_discover_add(t, pid, exe, tally);
	if (ret < 0)
		targets_no_probes_add(t, &id); /* warned once, not at every exec */
	return ret;
}

const struct targets_discovery *targets_discovery_stats(const struct targets *t)
{
	return &t->disc;
}

/* ---- watching for upgrades ---- */

/* Target @b now traces file @id with probes @att; those of the file it replaced stay as prev. */
static void targets_install(struct targets *t, struct targets_bin *b, void *att,
			    const struct targets_ident *id)
{
	targets_detach(t, &b->prev);
	b->prev = b->att;
	b->att = att;
	b->id = *id;
	b->failures = 0;
	b->has_probes = true;
}

/*
 * The new file at @b's path may be traced already under the temporary name it was installed
 * as (pay.dpkg-new, then renamed over pay): take those probes over rather than attaching
 * twice. Their records carry the other entry's cookie, so it now names this path.
 * Returns false when no other entry traces that file.
 */
static bool targets_take_over(struct targets *t, size_t idx, const struct targets_ident *id)
{
	struct targets_bin *b = &t->bins[idx], *tmp;
	int n = targets_find_file(t, id, idx, true);

	if (n < 0)
		return false;
	tmp = &t->bins[n];
	targets_install(t, b, tmp->att, id);
	tmp->att = NULL;
	tmp->has_probes = false;
	b->exe_path = exe_path_get(b->path);
	tmp->exe_path = b->exe_path;
	log_info("%s was replaced (installed as %s): its probes are attached", b->path, tmp->path);
	return true;
}

static void targets_check(struct targets *t, size_t idx, uint64_t now_ns)
{
	struct targets_bin *b = &t->bins[idx];
	struct targets_ident id = {0};
	char at[TARGETS_AT_MAX];
	bool had_probes;
	int64_t age;
	void *att;
	int n;

	if (targets_ident_get(targets_at(t, b->root, b->path, at), &id)) {
		if (b->present)
			log_debug("%s is gone; keeping its probes until it comes back", b->path);
		b->present = false;
		return;
	}
	b->present = true;
	if (targets_ident_equal(&id, &b->id))
		return;
	/* Being written (cp, install): wait until it has settled. A future mtime is no reason. */
	age = (int64_t)now_ns - ((int64_t)id.mtime.tv_sec * 1000000000ll + id.mtime.tv_nsec);
	if (age >= 0 && age < TARGETS_SETTLE_NS)
		return;
	/*
	 * Rewritten in place (same inode): nothing can still run the old contents, so the old
	 * probe offsets are meaningless now. Detach them before attaching the new ones.
	 */
	if (targets_ident_same_file(&id, &b->id))
		targets_detach(t, &b->att);
	if (targets_take_over(t, idx, &id))
		return;
	n = targets_attach_bin(t, idx, &att);
	if (n == -ENOMSG || n == -ENOEXEC) {
		log_msg(b->has_probes ? LOG_LVL_WARN : LOG_LVL_DEBUG,
			"%s was replaced by a file without %s:span_emit probes: not traced until "
			"a build with probes is installed",
			b->path, TARGETS_PROVIDER);
		b->has_probes = false;
		b->id = id;
		return;
	}
	if (n < 0) {
		/* Maybe half-written still: keep the old identity and try again next time. */
		if (b->failures++ == 0)
			log_warn("%s changed but attaching to it failed: %s%s (retrying)", b->path,
				 strerror(-n), t->ops->err_hint(t->ctx, n));
		return;
	}
	had_probes = b->has_probes;
	targets_install(t, b, att, &id);
	if (!had_probes && b->plugin)
		log_info("%s now has probes: attached %d", b->path, n);
	else
		log_info("%s was replaced: attached %d probes to the new file", b->path, n);
}

void targets_watch(struct targets *t, uint64_t now_ns)
{
	size_t n = t->n_bins;

	for (size_t i = 0; i < n; i++)
		targets_check(t, i, now_ns);
	for (size_t i = 0; i < t->n_plugin_dirs; i++)
		targets_scan_plugin_dir(t, i, NULL);
}
