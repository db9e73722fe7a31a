// SPDX-License-Identifier: MIT
/*
 * The watch is set before the directory is listed, so a file created in between is both
 * listed and announced: files are known by name, and a known one is never started twice.
 * Events: IN_CREATE and IN_MOVED_TO start a new file (or take a closed one up again: a new
 * file under an old name); IN_MODIFY takes up a closed or refused file that is written to
 * (an open one reads on by itself). Nothing is scanned when nothing happens, except after an
 * event queue overflow, which lists the directory again.
 */
#include "source_dir.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "log.h"
#include "source_file.h"
#include "stats.h"

#define DIR_EVENT_READS 16 /* reads of the event queue per turn of the loop */

struct dir_entry {
	struct source_dir *d;
	char *name;
	struct source_file *src; /* NULL: refused (no room), not read yet */
	bool open;		 /* counted in n_open */
};

struct source_dir {
	struct loop *loop;
	struct pipeline *p;
	char *dir;     /* the directory */
	char *pattern; /* its last component; NULL: every file not starting with '.' */
	bool follow;
	bool stopped;
	bool done;
	int error;
	int ifd; /* inotify, following */
	void (*on_done)(void *ctx);
	void *on_done_ctx;
	struct loop_timer *timer; /* without follow: start the next file */
	struct dir_entry *entries[SOURCE_DIR_MAX_KNOWN];
	size_t n;
	size_t n_open;
	size_t next; /* without follow: the next entry to read */
	struct log_ratelimit rl;
	/* Files forgotten to make room: their counts, for the summary. */
	uint64_t old_files, old_lines, old_spans, old_rejected;
};

static bool dir_glob_char(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

bool source_dir_wanted(const char *path)
{
	const char *base = strrchr(path, '/');
	struct stat st;

	if (!strcmp(path, "-"))
		return false;
	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode);
	return dir_glob_char(base ? base + 1 : path);
}

static bool dir_match(const struct source_dir *d, const char *name)
{
	if (d->pattern)
		return fnmatch(d->pattern, name, FNM_PERIOD) == 0;
	return name[0] != '.';
}

static struct dir_entry *dir_find(const struct source_dir *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->entries[i]->name, name))
			return d->entries[i];
	return NULL;
}

static void dir_entry_free(struct dir_entry *e)
{
	source_file__free(e->src);
	free(e->name);
	free(e);
}

/* The table is full: fold the oldest entry not being read into the summary, forget it. */
static bool dir_forget_one(struct source_dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct dir_entry *e = d->entries[i];
		uint64_t lines = 0, spans = 0, rejected = 0;

		if (e->open || (!d->follow && i >= d->next))
			continue;
		if (e->src)
			source_file_counts(e->src, &lines, &spans, &rejected);
		d->old_files++;
		d->old_lines += lines;
		d->old_spans += spans;
		d->old_rejected += rejected;
		dir_entry_free(e);
		memmove(&d->entries[i], &d->entries[i + 1], (d->n - i - 1) * sizeof(e));
		d->n--;
		if (!d->follow && d->next > i)
			d->next--;
		return true;
	}
	return false;
}

static struct dir_entry *dir_add(struct source_dir *d, const char *name)
{
	struct dir_entry *e;

	if (d->n == SOURCE_DIR_MAX_KNOWN && !dir_forget_one(d))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->name = strdup(name))) {
		free(e);
		return NULL;
	}
	e->d = d;
	d->entries[d->n++] = e;
	return e;
}

static void dir_entry_closed(void *ctx)
{
	struct dir_entry *e = ctx;

	e->open = false;
	e->d->n_open--;
}

static void dir_entry_done(void *ctx)
{
	struct dir_entry *e = ctx;
	struct source_dir *d = e->d;

	if (source_file_error(e->src))
		d->error++;
	source_file_release(e->src);
	e->open = false;
	d->n_open--;
	if (!d->follow && !d->stopped)
		loop_timer_arm(d->timer, 0);
}

/* Start reading entry @e from its start. Returns false when it cannot be opened. */
static bool dir_start(struct source_dir *d, struct dir_entry *e)
{
	char path[PATH_MAX], err[512];
	int n = snprintf(path, sizeof(path), "%s/%s", d->dir, e->name);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		log_limited(&d->rl, LOG_LVL_WARN, "%s/%s: path too long", d->dir, e->name);
		return false;
	}
	e->src = source_file__new(d->loop, d->p, path, d->follow, dir_entry_done, e, err,
				  sizeof(err));
	if (!e->src) {
		log_limited(&d->rl, LOG_LVL_WARN, "%s", err);
		return false;
	}
	if (d->follow)
		source_file_auto_close(e->src, SOURCE_DIR_IDLE_CLOSE_MS, dir_entry_closed, e);
	e->open = true;
	d->n_open++;
	if (d->follow)
		log_info("%s: following it", path);
	return true;
}

static void dir_refuse(struct source_dir *d, struct dir_entry *e)
{
	stats.files_refused++;
	log_limited(&d->rl, LOG_LVL_WARN,
		    "%s/%s: not read: %d files are read at once already (files_refused)", d->dir,
		    e->name, SOURCE_DIR_MAX_OPEN);
}

/* Following: a file was created, moved in or written to (@fresh: not just written to). */
static void dir_seen(struct source_dir *d, const char *name, bool fresh)
{
	struct dir_entry *e = dir_find(d, name);
	int r;

	if (e && e->open)
		return; /* being read: it reads on (a replaced file included) by itself */
	if (e && e->src) {
		if (d->n_open >= SOURCE_DIR_MAX_OPEN)
			return;
		r = source_file_reopen(e->src);
		if (r > 0) {
			e->open = true;
			d->n_open++;
		} else if (r < 0 && r != -ENOENT) {
			log_limited(&d->rl, LOG_LVL_WARN, "%s/%s: cannot open it again: %s", d->dir,
				    name, strerror(-r));
		}
		return;
	}
	if (!e) {
		if (!fresh)
			return; /* forgotten long ago, or not a file of ours */
		e = dir_add(d, name);
		if (!e) {
			log_limited(&d->rl, LOG_LVL_WARN, "%s/%s: out of memory", d->dir, name);
			return;
		}
	} else if (!fresh && d->n_open >= SOURCE_DIR_MAX_OPEN) {
		return; /* refused, written to again: still no room (counted once) */
	}
	if (d->n_open >= SOURCE_DIR_MAX_OPEN)
		dir_refuse(d, e);
	else
		dir_start(d, e);
}

/* Without follow: the next file, or the end. */
static void dir_next(struct loop *loop, void *ctx)
{
	struct source_dir *d = ctx;

	while (!d->stopped && !d->n_open && d->next < d->n) {
		struct dir_entry *e = d->entries[d->next++];

		if (!dir_start(d, e))
			d->error++;
	}
	if (!d->stopped && !d->n_open && d->next == d->n && !d->done) {
		d->done = true;
		if (d->on_done)
			d->on_done(d->on_done_ctx);
	}
}

static int dir_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The regular files of the directory that match, sorted, into the table; with follow, each
 * is started (or refused) at once. Returns -errno when the directory cannot be listed.
 */
static int dir_scan(struct source_dir *d)
{
	DIR *dir = opendir(d->dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		struct stat st;
		char **grown;

		if (!dir_match(d, de->d_name) || fstatat(dirfd(dir), de->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == SOURCE_DIR_MAX_KNOWN) {
			stats.files_refused++;
			log_limited(&d->rl, LOG_LVL_WARN, "%s/%s: not read: more than %d files",
				    d->dir, de->d_name, SOURCE_DIR_MAX_KNOWN);
			continue;
		}
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown || !(grown[n] = strdup(de->d_name))) {
			names = grown ? grown : names;
			break;
		}
		names = grown;
		n++;
	}
	closedir(dir);
	if (n)
		qsort(names, n, sizeof(*names), dir_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (d->follow)
			dir_seen(d, names[i], true);
		else if (!dir_find(d, names[i]) && !dir_add(d, names[i]))
			stats.files_refused++;
		free(names[i]);
	}
	free(names);
	return 0;
}

static void dir_events(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_dir *d = ctx;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (int k = 0; k < DIR_EVENT_READS; k++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		const struct inotify_event *ev;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				log_limited(&d->rl, LOG_LVL_WARN, "watching %s: %s", d->dir,
					    strerror(errno));
			return;
		}
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (d->stopped)
				continue;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warn("%s: too many changes at once: listing it again", d->dir);
				dir_scan(d);
			} else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				log_warn("%s was removed or moved: no new file will be seen",
					 d->dir);
			} else if (ev->len && !(ev->mask & IN_ISDIR) && dir_match(d, ev->name)) {
				dir_seen(d, ev->name, !(ev->mask & IN_MODIFY));
			}
		}
	}
}

/* Split @path into the directory and the pattern (none for a directory). */
static int dir_split(struct source_dir *d, const char *path)
{
	struct stat st;
	const char *slash;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		d->dir = strdup(path);
		return d->dir ? 0 : -ENOMEM;
	}
	slash = strrchr(path, '/');
	if (!slash)
		d->dir = strdup(".");
	else if (slash == path)
		d->dir = strdup("/");
	else
		d->dir = strndup(path, (size_t)(slash - path));
	d->pattern = strdup(slash ? slash + 1 : path);
	return d->dir && d->pattern ? 0 : -ENOMEM;
}

/* The reason a directory cannot be used, with a hint for a pattern in the wrong place. */
static void dir_fail(const struct source_dir *d, const char *path, const char *what, int e,
		     char *err, size_t err_size)
{
	snprintf(err, err_size, "--file %s: cannot %s the directory %s: %s%s", path, what, d->dir,
		 strerror(e),
		 (e == ENOENT || e == ENOTDIR) && dir_glob_char(d->dir)
			 ? " (only the last component of a pattern may hold * ? [)"
			 : "");
}

static int dir_watch(struct source_dir *d, const char *path, char *err, size_t err_size)
{
	d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->ifd < 0 || inotify_add_watch(d->ifd, d->dir,
					    IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_DELETE_SELF |
						    IN_MOVE_SELF | IN_ONLYDIR) < 0) {
		dir_fail(d, path, "watch", errno, err, err_size);
		return -1;
	}
	if (loop_add(d->loop, d->ifd, EPOLLIN, dir_events, d) < 0) {
		snprintf(err, err_size, "cannot watch the directory %s: %s", d->dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct source_dir *source_dir__new(struct loop *loop, struct pipeline *p, const char *path,
				   bool follow, void (*on_done)(void *ctx), void *ctx, char *err,
				   size_t err_size)
{
	struct source_dir *d = calloc(1, sizeof(*d));
	int r;

	if (!d || dir_split(d, path) < 0) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	d->loop = loop;
	d->p = p;
	d->follow = follow;
	d->on_done = on_done;
	d->on_done_ctx = ctx;
	d->ifd = -1;
	d->timer = loop_timer__new(loop, dir_next, d);
	if (!d->timer) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	if (follow && dir_watch(d, path, err, err_size) < 0)
		goto fail;
	r = dir_scan(d);
	if (r < 0) {
		dir_fail(d, path, "read", -r, err, err_size);
		goto fail;
	}
	if (!follow && !d->n) {
		snprintf(err, err_size, "--file %s: no file matches (--follow waits for them)",
			 path);
		goto fail;
	}
	if (!follow)
		loop_timer_arm(d->timer, 0); /* after the caller has kept d */
	else if (!d->n)
		log_info("%s: no file yet: waiting for one", path);
	return d;
fail:
	source_dir__free(d);
	return NULL;
}

void source_dir__free(struct source_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		dir_entry_free(d->entries[i]);
	if (d->ifd >= 0) {
		loop_del(d->loop, d->ifd);
		close(d->ifd);
	}
	loop_timer__free(d->timer);
	free(d->dir);
	free(d->pattern);
	free(d);
}

int source_dir_error(const struct source_dir *d)
{
	return d->error;
}

void source_dir_stop(struct source_dir *d)
{
	if (d->stopped)
		return;
	d->stopped = true;
	loop_timer_disarm(d->timer);
	for (size_t i = 0; i < d->n; i++)
		if (d->entries[i]->src)
			source_file_stop(d->entries[i]->src);
}

void source_dir_summary(const struct source_dir *d, FILE *out)
{
	if (d->old_files)
		fprintf(out,
			"cln-otlp: %s: %llu earlier files: %llu lines, %llu spans accepted, %llu "
			"rejected\n",
			d->dir, (unsigned long long)d->old_files, (unsigned long long)d->old_lines,
			(unsigned long long)d->old_spans, (unsigned long long)d->old_rejected);
	for (size_t i = 0; i < d->n; i++) {
		const struct dir_entry *e = d->entries[i];

		if (e->src)
			source_file_summary(e->src, out);
		else if (d->follow)
			fprintf(out, "cln-otlp: %s/%s: not read (files_refused)\n", d->dir,
				e->name);
	}
}
