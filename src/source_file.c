// SPDX-License-Identifier: MIT
/*
 * Reading runs in slices from a zero-delay timer (regular files cannot be watched with
 * epoll) or from epoll readiness (pipes, terminals), so a large file never starves the
 * exporter's sockets or the signal fd. When the queue is nearly full, reading pauses
 * until it drains: a file can wait, so nothing read from it is dropped for lack of room.
 *
 * Following a file: before each read, a new inode at the path means the file was replaced
 * (the old one is read to its end, then the new one from its start) and a size below the
 * offset that it was truncated. Each read also takes the FILE_TAIL bytes before the offset,
 * which must be the ones read last time: otherwise the file was truncated and rewritten
 * with as much or more between two looks. Either way it is read again from its start, and
 * what could not be read is counted (follow_truncated, follow_lost_bytes).
 *
 * Auto close (source_file_auto_close, for the files of a directory): at the end of the file,
 * the size is the offset and the writer is gone (/proc/<pid> of the name's .<pid> is absent)
 * or nothing came for the idle time: the fd is closed, and the partial line, offset and tail
 * are kept. source_file_reopen() takes it up there (a write after the close is announced by
 * the directory's watch), so a writer that is alive after all (another pid namespace,
 * hidepid) loses nothing.
 */
#include "source_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* `span_emit <id> ` and the largest span: longer lines are rejected (too_long). */
#define FILE_LINE_MAX	    (SPAN_MAX_PAYLOAD + 64)
#define FILE_SLICE_LINES    1024 /* lines per turn of the loop */
#define FILE_FOLLOW_POLL_MS 200
#define FILE_BACKLOG_MS	    20
#define FILE_FIRST_LINES    5 /* line numbers kept per reject reason */

#define FILE_TAIL 1024 /* following: bytes before the offset compared to spot a rewrite */

struct source_file {
	struct loop *loop;
	struct pipeline *p;
	char *path;
	int fd;
	bool is_stdin;
	bool follow;
	bool pollable; /* epoll works on the fd (pipe, tty) */
	bool done;
	bool stopped;
	bool paused; /* the queue was nearly full: waiting for it to drain */
	bool closed; /* auto close: the fd is closed until source_file_reopen() */
	void (*on_done)(void *ctx);
	void *on_done_ctx;
	void (*on_close)(void *ctx); /* auto close: NULL when off */
	void *on_close_ctx;
	uint64_t idle_ms;      /* auto close: after this long without data (0: only pid gone) */
	uint64_t last_data_ms; /* when data came last (or the file was opened) */
	int error;
	ino_t ino;
	dev_t dev;
	off_t offset;
	bool regular;	      /* a regular file: its size and contents can be checked */
	bool replaced;	      /* following: a new file took the path; finish this one first */
	off_t size_seen;      /* following: the largest size seen since the last (re)start */
	off_t size_look;      /* the size at the last look: seen if the next read finds our tail */
	char tail[FILE_TAIL]; /* the last bytes read, just before offset */
	size_t tail_len;
	struct log_ratelimit rl;
	struct loop_timer *timer;
	struct pipeline_origin origin;

	char *buf; /* FILE_LINE_MAX + 1: the current partial line */
	size_t len;
	bool skipping; /* inside an over-long line: drop bytes up to the next newline */

	uint64_t lineno;
	uint64_t spans;
	uint64_t skipped; /* lines that are neither spans nor trace-file events */
	uint64_t events;
	uint64_t rejected[SPAN_REJECT__MAX];
	uint64_t first_lines[SPAN_REJECT__MAX][FILE_FIRST_LINES];
};

static void source_file_schedule(struct source_file *src, uint64_t ms)
{
	if (!src->stopped && src->timer)
		loop_timer_arm(src->timer, ms);
}

/* A CLN trace file is `<path>.<pid>`: take the pid from the name when it has one. */
static uint32_t source_file_pid_of(const char *path)
{
	const char *dot = strrchr(path, '.');
	char *end;
	unsigned long v;

	if (!dot || !dot[1] || strchr(dot, '/'))
		return 0;
	errno = 0;
	v = strtoul(dot + 1, &end, 10);
	if (*end || errno || v == 0 || v > 0x7fffffff)
		return 0;
	return (uint32_t)v;
}

static void source_file_reject(struct source_file *src, enum span_reject why)
{
	if (src->rejected[why] < FILE_FIRST_LINES)
		src->first_lines[why][src->rejected[why]] = src->lineno;
	src->rejected[why]++;
}

static bool source_file_word(const char *line, size_t len, const char *word, size_t *rest)
{
	size_t n = strlen(word);

	if (len < n || memcmp(line, word, n) || (len > n && line[n] != ' '))
		return false;
	*rest = len > n ? n + 1 : n;
	return true;
}

/* One line: a trace-file record, a bare JSON payload, or something to skip. */
static void source_file_line(struct source_file *src, const char *line, size_t len)
{
	enum span_reject why;
	size_t rest;

	src->lineno++;
	if (len && line[len - 1] == '\r')
		len--;
	if (!len)
		return;
	if (source_file_word(line, len, "span_emit", &rest)) {
		/* `span_emit <id> <json>`: the payload follows the id. */
		const char *json = memchr(line + rest, ' ', len - rest);

		if (!json) {
			stats.received[STATS_SRC_FILE]++;
			stats.rejected[SPAN_REJECT_EMPTY]++;
			source_file_reject(src, SPAN_REJECT_EMPTY);
			return;
		}
		json++;
		len -= (size_t)(json - line);
		line = json;
	} else {
		if (source_file_word(line, len, "span_suspend", &rest) ||
		    source_file_word(line, len, "span_resume", &rest)) {
			uint64_t id;

			/*
			 * The line has no time, and the time it is read is not the event's:
			 * CLN's buffered writes reach a follower 0.1 to several seconds late.
			 * Counted, never attached with a made-up time.
			 */
			if (span_id_parse_u64(line + rest, len - rest, &id)) {
				stats.events_untimed++;
				src->events++;
			}
			return;
		}
		if (source_file_word(line, len, "span_start", &rest) ||
		    source_file_word(line, len, "span_end", &rest))
			return;
		if (line[0] != '[' && line[0] != '{') {
			src->skipped++; /* "Attaching 1 probe..." and the like */
			return;
		}
	}
	why = pipeline_ingest(src->p, &src->origin, line, len);
	if (why != SPAN_OK)
		source_file_reject(src, why);
	else
		src->spans++;
}

/* Feed complete lines from @data; keep the partial tail in src->buf. */
static void source_file_feed(struct source_file *src, const char *data, size_t n)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;

		if (src->skipping) {
			if (nl)
				src->skipping = false;
		} else if (src->len + take > FILE_LINE_MAX) {
			/* Longer than any span can be: count it once, skip to its end. */
			src->lineno++;
			stats.received[STATS_SRC_FILE]++;
			stats.rejected[SPAN_REJECT_TOO_LONG]++;
			source_file_reject(src, SPAN_REJECT_TOO_LONG);
			src->len = 0;
			src->skipping = !nl;
		} else if (!nl) {
			memcpy(src->buf + src->len, data, take);
			src->len += take;
		} else if (src->len) {
			memcpy(src->buf + src->len, data, take);
			source_file_line(src, src->buf, src->len + take);
			src->len = 0;
		} else {
			source_file_line(src, data, take);
		}
		if (!nl)
			return;
		data = nl + 1;
		n -= take + 1;
	}
}

/* End of input: a last line without a newline still counts. */
static void source_file_eof(struct source_file *src)
{
	if (src->len && !src->skipping)
		source_file_line(src, src->buf, src->len);
	src->len = 0;
	src->skipping = false;
}

static int source_file_open(struct source_file *src)
{
	struct stat st;

	src->fd = open(src->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (src->fd < 0)
		return -errno;
	src->regular = false;
	if (fstat(src->fd, &st) == 0) {
		src->ino = st.st_ino;
		src->dev = st.st_dev;
		src->regular = S_ISREG(st.st_mode);
	}
	src->offset = 0;
	src->size_seen = 0;
	src->size_look = 0;
	src->tail_len = 0;
	src->replaced = false;
	src->last_data_ms = clock_mono_ms();
	return 0;
}

/* Keep the last FILE_TAIL bytes read: what must still precede the offset next time. */
static void source_file_keep_tail(struct source_file *src, const char *data, size_t n)
{
	if (n >= FILE_TAIL) {
		memcpy(src->tail, data + n - FILE_TAIL, FILE_TAIL);
		src->tail_len = FILE_TAIL;
		return;
	}
	if (src->tail_len + n > FILE_TAIL) {
		size_t drop = src->tail_len + n - FILE_TAIL;

		memmove(src->tail, src->tail + drop, src->tail_len - drop);
		src->tail_len -= drop;
	}
	memcpy(src->tail + src->tail_len, data, n);
	src->tail_len += n;
}

/*
 * Following, the file was truncated: read it again from its start. What cannot be read any
 * more is counted: the start of a line cut by the truncation, and what was seen in the file
 * past the offset but not read yet. Bytes written and truncated away between two looks are
 * not seen at all: only the event counts then.
 */
static void source_file_restart(struct source_file *src)
{
	uint64_t lost = src->len;

	if (src->size_seen > src->offset)
		lost += (uint64_t)(src->size_seen - src->offset);
	stats.follow_truncated++;
	stats.follow_lost_bytes += lost;
	log_limited(&src->rl, lost ? LOG_LVL_WARN : LOG_LVL_INFO,
		    "%s was truncated: reading it again from its start (%llu bytes lost)",
		    src->path, (unsigned long long)lost);
	src->len = 0;
	src->skipping = false;
	src->tail_len = 0;
	src->size_seen = 0;
	src->size_look = 0;
	src->offset = 0;
}

/*
 * Following, before each read: was the file replaced (a new inode at the path: finish the old
 * one, then read the new one) or cut shorter than the offset?
 */
static void source_file_look(struct source_file *src)
{
	struct stat st;

	if (stat(src->path, &st) == 0 && (st.st_ino != src->ino || st.st_dev != src->dev)) {
		log_info("%s was replaced: reading the rest of the old file, then the new one",
			 src->path);
		src->replaced = true;
		return;
	}
	if (!src->regular || fstat(src->fd, &st) < 0)
		return; /* gone for now: keep the old fd until a new file appears */
	if (st.st_size < src->offset)
		source_file_restart(src);
	else
		src->size_look = st.st_size;
}

/*
 * Following a regular file: read what follows the offset into @chunk together with the
 * FILE_TAIL bytes before it, in one call, and check that those are still the bytes read last
 * time. Size alone misses a file truncated and rewritten with as much or more between two
 * looks; a changed tail reveals it, and the file is read again from its start. Residual
 * limit: a rewrite that leaves those FILE_TAIL bytes as they were (the same lines written
 * again up to there) goes unnoticed. Returns the bytes of new data, at *@data.
 */
static ssize_t source_file_pread(struct source_file *src, char *chunk, size_t size,
				 const char **data)
{
	size_t t = src->tail_len;
	ssize_t n = pread(src->fd, chunk, size, src->offset - (off_t)t);

	if (n < 0)
		return n;
	if ((size_t)n < t || memcmp(chunk, src->tail, t)) {
		source_file_restart(src);
		n = pread(src->fd, chunk, size, 0);
		t = 0;
	} else if (src->size_look > src->size_seen) {
		src->size_seen = src->size_look; /* that size was the file we were reading */
	}
	*data = chunk + t;
	return n < 0 ? n : n - (ssize_t)t;
}

/* Following, at the end of a file that was replaced: on to the new one, from its start. */
static void source_file_switch(struct source_file *src)
{
	source_file_eof(src);
	close(src->fd);
	if (source_file_open(src) < 0)
		src->fd = -1;
}

/* The writer named by the file's .<pid> has ended (as far as this pid namespace shows). */
static bool source_file_writer_gone(const struct source_file *src)
{
	char proc[32];

	if (!src->origin.pid)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%u", (unsigned)src->origin.pid);
	return access(proc, F_OK) < 0 && errno == ENOENT;
}

/* Auto close, at the end of the file: read to its end, and its writer gone or idle. */
static bool source_file_may_close(const struct source_file *src)
{
	struct stat st;

	if (!src->on_close || src->fd < 0 || !src->regular || src->replaced)
		return false;
	if (fstat(src->fd, &st) < 0 || st.st_size != src->offset)
		return false; /* more to read (or truncated: the next look says) */
	if (source_file_writer_gone(src))
		return true;
	return src->idle_ms && clock_mono_ms() - src->last_data_ms >= src->idle_ms;
}

/*
 * Close the fd and the timer's (from the timer's own callback: the loop allows it); keep the
 * place (and a partial line) for source_file_reopen().
 */
static void source_file_close_now(struct source_file *src)
{
	close(src->fd);
	src->fd = -1;
	loop_timer__free(src->timer);
	src->timer = NULL;
	src->closed = true;
	if (!src->len && !src->skipping) {
		free(src->buf);
		src->buf = NULL;
	}
	log_debug("%s read to its end, its writer gone or idle: closed", src->path);
	src->on_close(src->on_close_ctx);
}

/* Read one slice. Returns true when there may be more right away. */
static bool source_file_slice(struct source_file *src)
{
	char chunk[65536];
	const char *data = chunk;
	uint64_t lines_before = src->lineno;

	while (src->lineno - lines_before < FILE_SLICE_LINES) {
		ssize_t n;

		if (pipeline_backlogged(src->p)) {
			src->paused = true;
			source_file_schedule(src, FILE_BACKLOG_MS);
			return false;
		}
		if (src->follow && !src->is_stdin && !src->replaced)
			source_file_look(src);
		if (src->follow && src->regular)
			n = source_file_pread(src, chunk, sizeof(chunk), &data);
		else
			n = read(src->fd, chunk, sizeof(chunk));
		if (n > 0) {
			src->offset += n;
			src->last_data_ms = clock_mono_ms();
			if (src->follow && src->regular)
				source_file_keep_tail(src, data, (size_t)n);
			source_file_feed(src, data, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false; /* pipe: epoll tells when there is more */
		if (n < 0) {
			src->error = -errno;
			log_error("reading %s: %s", src->path, strerror(errno));
			source_file_eof(src);
			src->done = true;
			return false;
		}
		/* End of file (for a pipe: the writer is gone, whatever follow says). */
		if (src->follow && !src->is_stdin) {
			if (src->replaced) {
				source_file_switch(src);
				if (src->fd >= 0)
					continue;
			}
			if (source_file_may_close(src)) {
				source_file_close_now(src);
				return false;
			}
			source_file_schedule(src, FILE_FOLLOW_POLL_MS);
			return false;
		}
		source_file_eof(src);
		src->done = true;
		return false;
	}
	return true;
}

static void source_file_finish(struct source_file *src)
{
	if (src->pollable && src->fd >= 0)
		loop_del(src->loop, src->fd);
	if (src->on_done)
		src->on_done(src->on_done_ctx);
}

static void source_file_run(struct source_file *src)
{
	bool more;

	if (src->done || src->stopped || src->closed)
		return;
	if (src->fd < 0) { /* following a file that is gone: wait for it to come back */
		if (source_file_open(src) < 0) {
			source_file_schedule(src, FILE_FOLLOW_POLL_MS);
			return;
		}
	}
	more = source_file_slice(src);
	if (src->done) {
		source_file_finish(src);
		return;
	}
	if (src->paused) {
		/* Level-triggered epoll would fire on and on: stop watching until it drains. */
		if (src->pollable)
			loop_mod(src->loop, src->fd, 0);
		return;
	}
	if (more && !src->pollable)
		source_file_schedule(src, 0);
}

static void source_file_timer(struct loop *loop, void *ctx)
{
	struct source_file *src = ctx;

	if (src->paused) {
		src->paused = false;
		if (src->pollable)
			loop_mod(loop, src->fd, EPOLLIN);
	}
	source_file_run(src);
}

static void source_file_readable(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	source_file_run(ctx);
}

struct source_file *source_file__new(struct loop *loop, struct pipeline *p, const char *path,
				     bool follow, void (*on_done)(void *ctx), void *ctx, char *err,
				     size_t err_size)
{
	struct source_file *src = calloc(1, sizeof(*src));
	int r;

	if (!src) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	src->loop = loop;
	src->p = p;
	src->follow = follow;
	src->on_done = on_done;
	src->on_done_ctx = ctx;
	src->fd = -1;
	src->is_stdin = !strcmp(path, "-");
	src->path = strdup(src->is_stdin ? "standard input" : path);
	src->buf = malloc(FILE_LINE_MAX + 1);
	src->timer = loop_timer__new(loop, source_file_timer, src);
	if (!src->path || !src->buf || !src->timer) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	src->origin.source = STATS_SRC_FILE;
	if (src->is_stdin) {
		src->fd = dup(STDIN_FILENO);
		if (src->fd < 0) {
			snprintf(err, err_size, "cannot read standard input: %s", strerror(errno));
			goto fail;
		}
		fcntl(src->fd, F_SETFL, fcntl(src->fd, F_GETFL) | O_NONBLOCK);
	} else {
		r = source_file_open(src);
		if (r < 0) {
			snprintf(err, err_size, "cannot open %s: %s%s", path, strerror(-r),
				 r == -ENOENT
					 ? " (check the path; CLN_DEV_TRACE_FILE=<path> writes "
					   "<path>.<pid>)"
					 : "");
			goto fail;
		}
		src->origin.pid = source_file_pid_of(path);
	}
	r = loop_add(loop, src->fd, EPOLLIN, source_file_readable, src);
	if (r == 0) {
		src->pollable = true;
	} else if (r != -EPERM) { /* EPERM: a regular file, read from the timer */
		snprintf(err, err_size, "cannot watch %s: %s", src->path, strerror(-r));
		goto fail;
	}
	source_file_schedule(src, 0);
	return src;
fail:
	source_file__free(src);
	return NULL;
}

void source_file__free(struct source_file *src)
{
	if (!src)
		return;
	if (src->fd >= 0) {
		if (src->pollable && !src->done)
			loop_del(src->loop, src->fd);
		close(src->fd);
	}
	loop_timer__free(src->timer);
	free(src->buf);
	free(src->path);
	free(src);
}

bool source_file_done(const struct source_file *src)
{
	return src->done;
}

int source_file_error(const struct source_file *src)
{
	return src->error;
}

void source_file_stop(struct source_file *src)
{
	if (src->stopped)
		return;
	src->stopped = true;
	if (src->timer)
		loop_timer_disarm(src->timer);
	if (src->pollable && src->fd >= 0 && !src->done)
		loop_mod(src->loop, src->fd, 0);
}

void source_file_summary(const struct source_file *src, FILE *out)
{
	uint64_t rejected = 0;

	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		rejected += src->rejected[i];
	fprintf(out, "cln-otlp: %s: %llu lines, %llu spans accepted, %llu rejected", src->path,
		(unsigned long long)src->lineno, (unsigned long long)src->spans,
		(unsigned long long)rejected);
	if (src->events)
		fprintf(out, ", %llu suspend/resume events (no time in the file: not attached)",
			(unsigned long long)src->events);
	if (src->skipped)
		fprintf(out, ", %llu other lines skipped", (unsigned long long)src->skipped);
	fprintf(out, "\n");
	for (int i = 1; i < SPAN_REJECT__MAX; i++) {
		uint64_t n = src->rejected[i];

		if (!n)
			continue;
		fprintf(out, "cln-otlp:   %s: %llu (line%s", span_reject_str(i),
			(unsigned long long)n, n > 1 ? "s" : "");
		for (uint64_t k = 0; k < n && k < FILE_FIRST_LINES; k++)
			fprintf(out, "%s %llu", k ? "," : "",
				(unsigned long long)src->first_lines[i][k]);
		fprintf(out, "%s)\n", n > FILE_FIRST_LINES ? ", ..." : "");
	}
}

void source_file_auto_close(struct source_file *src, uint64_t idle_ms, void (*on_close)(void *ctx),
			    void *ctx)
{
	src->idle_ms = idle_ms;
	src->on_close = on_close;
	src->on_close_ctx = ctx;
}

bool source_file_closed(const struct source_file *src)
{
	return src->closed;
}

int source_file_reopen(struct source_file *src)
{
	struct stat st;
	ino_t ino = src->ino;
	dev_t dev = src->dev;
	off_t offset = src->offset, size_seen = src->size_seen;
	size_t tail_len = src->tail_len;
	int r;

	if (!src->closed || src->stopped)
		return 0;
	/* Nothing new (a rescan, a write that changed nothing): stay closed. */
	if (stat(src->path, &st) == 0 && st.st_ino == ino && st.st_dev == dev &&
	    st.st_size == offset)
		return 0;
	if (!src->buf)
		src->buf = malloc(FILE_LINE_MAX + 1);
	if (!src->timer)
		src->timer = loop_timer__new(src->loop, source_file_timer, src);
	if (!src->buf || !src->timer)
		return -ENOMEM;
	r = source_file_open(src);
	if (r < 0)
		return r;
	if (src->ino == ino && src->dev == dev) {
		src->offset = offset;
		src->size_seen = size_seen;
		src->tail_len = tail_len;
	} else {
		log_info("%s is a new file: reading it from its start", src->path);
		src->len = 0;
		src->skipping = false;
	}
	src->closed = false;
	source_file_schedule(src, 0);
	return 1;
}

void source_file_release(struct source_file *src)
{
	if (!src->done)
		return;
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	free(src->buf);
	src->buf = NULL;
	loop_timer__free(src->timer);
	src->timer = NULL;
}

void source_file_counts(const struct source_file *src, uint64_t *lines, uint64_t *spans,
			uint64_t *rejected)
{
	*lines = src->lineno;
	*spans = src->spans;
	*rejected = 0;
	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		*rejected += src->rejected[i];
}
