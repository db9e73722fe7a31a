// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: CLN trace-file lines through the file source's real code path. The
 * input is written to a memfd (a regular file, read from a timer) or, through a pipe on
 * standard input, fed in chunks while the source reads (epoll, follow mode; suspend and
 * resume lines are counted, never attached: they carry no time); a source_file, a
 * pipeline and an exporter that only checks and counts run in a loop until the end of the
 * input has been read and flushed.
 *
 * Input: byte 0 is flags, byte 1 a parameter, the rest the file.
 *   bit 0      0: memfd, no follow; 1: pipe on stdin, follow
 *   bit 1      put an over-long line (64 KiB give or take) before the file; bit 2: end it
 *   bits 3-5   queue and exporter: 0-5 large queue (batch sizes 512, 1, 3, 8; exporter
 *              answering at once or one loop turn later), 6 small byte budget, 7 small
 *              span budget (the source pauses while the queue drains)
 *   byte 1     pad length around 64 KiB; pipe chunk size
 *
 * Invariants checked, against a reference reading of the same bytes written here from the
 * format (source_file.h): the number of lines, spans accepted, lines rejected (by reason,
 * in the stats), other lines skipped and suspend/resume events in the source's summary;
 * the payloads received; every accepted span reaches the exporter or is counted dropped
 * (queue full: a cut span without a family gets a traceId of its own, never dropped), and
 * with a large queue none is dropped (a file waits); spans reaching the exporter are well formed; the queue's gauges return to
 * zero; the loop ends. LeakSanitizer checks nothing is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exe_paths.h"
#include "fuzz_util.h"
#include "log.h"
#include "pipeline.h"
#include "source_file.h"
#include "span.h"
#include "stats.h"

/* source_file.c: `span_emit <id> ` and the largest span; longer lines are rejected as too_long */
#define LINE_MAX_BYTES (SPAN_MAX_PAYLOAD + 64)
#define HOLD_MAX       4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- an exporter that checks what it gets -------------------------------------------------- */

struct check_exporter {
	struct exporter ex;
	struct loop_timer *timer; /* answers held batches one loop turn later */
	struct queue_batch *held[HOLD_MAX];
	unsigned n_held;
	unsigned cap; /* 0: answer inside submit() */
	size_t batch_size;
	bool follow;
	uint64_t spans;
	uint64_t events; /* events and dropped events on the spans received */
};

static void check_exported_span(const struct check_exporter *x, const struct span *s)
{
	FUZZ_CHECK(s->has_trace_id && !fuzz_all_zero(s->trace_id, 16), "no traceId");
	FUZZ_CHECK(!fuzz_all_zero(s->span_id, 8), "zero span id");
	FUZZ_CHECK(!s->has_parent || memcmp(s->parent_id, s->span_id, 8), "own parent");
	FUZZ_CHECK(strlen(s->name.ptr) == s->name.len && fuzz_utf8_ok(s->name.ptr, s->name.len),
		   "name");
	FUZZ_CHECK(s->n_events <= SPAN_MAX_EVENTS, "%u events", s->n_events);
	FUZZ_CHECK(s->n_events == 0 && s->dropped_events == 0, "events from a file: no times");
	FUZZ_CHECK(s->pid == 0, "pid %u from nowhere", s->pid);
}

static int cx_submit(struct exporter *ex, struct queue_batch *b)
{
	struct check_exporter *x = (struct check_exporter *)ex;

	FUZZ_CHECK(b->n >= 1 && b->n <= x->batch_size, "batch of %zu (batch size %zu)", b->n,
		   x->batch_size);
	for (size_t i = 0; i < b->n; i++) {
		check_exported_span(x, b->spans[i]);
		x->events += b->spans[i]->n_events + b->spans[i]->dropped_events;
	}
	x->spans += b->n;
	if (!x->cap) {
		ex->done(ex->done_ctx, b, EXPORT_OK);
		return 0;
	}
	FUZZ_CHECK(x->n_held < x->cap, "submit while busy");
	x->held[x->n_held++] = b;
	if (!loop_timer_armed(x->timer))
		loop_timer_arm(x->timer, 0);
	return 0;
}

static bool cx_busy(const struct exporter *ex)
{
	const struct check_exporter *x = (const struct check_exporter *)ex;

	return x->cap && x->n_held >= x->cap;
}

static unsigned cx_pending(const struct exporter *ex)
{
	return ((const struct check_exporter *)ex)->n_held;
}

/* Answer the batches held now, oldest first; those submitted meanwhile wait a turn. */
static void cx_answer(struct check_exporter *x, unsigned n, enum export_result res)
{
	while (n-- && x->n_held) {
		struct queue_batch *b = x->held[0];

		memmove(x->held, x->held + 1, --x->n_held * sizeof(x->held[0]));
		x->ex.done(x->ex.done_ctx, b, res);
	}
}

static void cx_timer(struct loop *loop, void *ctx)
{
	struct check_exporter *x = ctx;

	cx_answer(x, x->n_held, EXPORT_OK);
	if (x->n_held && !loop_timer_armed(x->timer))
		loop_timer_arm(x->timer, 0);
}

static void cx_abort(struct exporter *ex)
{
	struct check_exporter *x = (struct check_exporter *)ex;

	cx_answer(x, x->n_held, EXPORT_FAIL_SHUTDOWN);
}

static void cx_free(struct exporter *ex)
{
}

static const struct exporter_ops cx_ops = {
	.submit = cx_submit,
	.busy = cx_busy,
	.pending = cx_pending,
	.abort = cx_abort,
	.free = cx_free,
};

/* ---- the reference reading ---------------------------------------------------------------- */

struct expect {
	uint64_t lines, accepted, skipped, events, received;
	uint64_t rejected[SPAN_REJECT__MAX];
};

static bool word(const char *l, size_t n, const char *w, size_t *rest)
{
	size_t k = strlen(w);

	if (n < k || memcmp(l, w, k) || (n > k && l[k] != ' '))
		return false;
	*rest = n > k ? k + 1 : k;
	return true;
}

static void ref_payload(struct expect *e, const char *p, size_t n)
{
	enum span_reject why;
	struct span *s;

	e->received++;
	if (span_parse(p, n, &s, &why) == 0) {
		e->accepted++;
		span__free(s);
	} else {
		e->rejected[why]++;
	}
}

/*
 * One line of a trace file (source_file.h): `span_emit <id> <json>`, `span_suspend <id>`,
 * `span_resume <id>` (counted, not attached), `span_start`/`span_end` (ignored), a bare
 * JSON payload starting with '[' or '{', or another line (skipped). A CR before the LF
 * is not part of the line; empty lines are nothing.
 */
static void ref_line(struct expect *e, const char *l, size_t n, bool follow)
{
	size_t rest;
	uint64_t id;

	e->lines++;
	if (n > LINE_MAX_BYTES) {
		e->received++;
		e->rejected[SPAN_REJECT_TOO_LONG]++;
		return;
	}
	if (n && l[n - 1] == '\r')
		n--;
	if (!n)
		return;
	if (word(l, n, "span_emit", &rest)) {
		const char *sp = memchr(l + rest, ' ', n - rest);

		if (!sp) {
			e->received++;
			e->rejected[SPAN_REJECT_EMPTY]++;
			return;
		}
		ref_payload(e, sp + 1, n - (size_t)(sp + 1 - l));
		return;
	}
	if (word(l, n, "span_suspend", &rest) || word(l, n, "span_resume", &rest)) {
		if (span_id_parse_u64(l + rest, n - rest, &id))
			e->events++; /* counted, never attached: the line has no time */
		return;
	}
	if (word(l, n, "span_start", &rest) || word(l, n, "span_end", &rest))
		return;
	if (l[0] != '[' && l[0] != '{') {
		e->skipped++;
		return;
	}
	ref_payload(e, l, n);
}

static void ref_read(struct expect *e, const char *buf, size_t n, bool follow)
{
	while (n) {
		const char *nl = memchr(buf, '\n', n);
		size_t len = nl ? (size_t)(nl - buf) : n;

		ref_line(e, buf, len, follow);
		if (!nl)
			break;
		buf = nl + 1;
		n -= len + 1;
	}
}

/* ---- the run --------------------------------------------------------------------------- */

struct run {
	struct loop *loop;
	struct pipeline *p;
	struct loop_timer *watchdog;
	bool finished;
	/* pipe mode: the writer */
	int wfd;
	const char *wbuf;
	size_t wlen, wdone, chunk;
};

static int devnull = -1;

static void on_idle(void *ctx)
{
	struct run *r = ctx;

	r->finished = true;
	loop_stop(r->loop);
}

static void on_done(void *ctx)
{
	struct run *r = ctx;

	pipeline_on_idle(r->p, on_idle, r);
	pipeline_flush(r->p);
}

static void on_watchdog(struct loop *loop, void *ctx)
{
	FUZZ_CHECK(false, "the file source never finished");
}

static void on_writable(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct run *r = ctx;
	size_t n = r->wlen - r->wdone < r->chunk ? r->wlen - r->wdone : r->chunk;
	ssize_t w = n ? write(fd, r->wbuf + r->wdone, n) : 0;

	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	FUZZ_CHECK(w >= 0, "pipe write: %s", strerror(errno));
	r->wdone += (size_t)w;
	if (r->wdone == r->wlen) {
		loop_del(loop, fd);
		close(fd);
		r->wfd = -1;
	}
}

/* "cln-otlp: PATH: N lines, N spans accepted, N rejected[, N suspend/resume events][, N ...]" */
static void parse_summary(const struct source_file *src, const char *path, struct expect *got)
{
	char *text = NULL, *p, *q;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	unsigned long long lines, spans, rejected;
	char prefix[128];

	FUZZ_CHECK(f != NULL, "open_memstream");
	source_file_summary(src, f);
	fclose(f);
	snprintf(prefix, sizeof(prefix), "cln-otlp: %s: ", path);
	FUZZ_CHECK(!strncmp(text, prefix, strlen(prefix)), "summary: %s", text);
	p = text + strlen(prefix);
	FUZZ_CHECK(sscanf(p, "%llu lines, %llu spans accepted, %llu rejected", &lines, &spans,
			  &rejected) == 3,
		   "summary: %s", text);
	memset(got, 0, sizeof(*got));
	got->lines = lines;
	got->accepted = spans;
	got->received = rejected; /* the total of rejects, compared below */
	q = strchr(p, '\n');
	if (q)
		*q = '\0';
	if ((q = strstr(p, " suspend/resume events"))) {
		while (q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		got->events = strtoull(q, NULL, 10);
	}
	if ((q = strstr(p, " other lines skipped"))) {
		while (q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		got->skipped = strtoull(q, NULL, 10);
	}
	free(text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	prctl(PR_SET_TIMERSLACK, 1UL); /* zero-delay timers fire without 50 us of slack */
	signal(SIGPIPE, SIG_IGN);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct check_exporter x = {.ex = {.ops = &cx_ops, .name = "check"}};
	struct pipeline_cfg cfg = {.queue = {.max_spans = 512, .max_bytes = 64 << 20},
				   .schedule_delay_ms = 0,
				   .suspend_ttl_ms = 60000,
				   .suspend_max = 64};
	static const size_t batch_sizes[] = {512, 1, 3, 8, 512, 2, 4, 2};
	static const unsigned caps[] = {0, 0, 1, 2, 1, 4, 1, 1};
	struct run r = {.wfd = -1};
	struct stats before = stats, *now = &stats;
	struct expect want = {0}, got;
	struct source_file *src = NULL;
	bool pipe_mode, large;
	size_t pad = 0, len;
	unsigned mode;
	char path[64], err[256], *buf;
	uint64_t rejected = 0;
	int fd = -1;

	if (size < 2)
		return 0;
	pipe_mode = data[0] & 1;
	mode = (data[0] >> 3) & 7;
	large = mode < 6;
	if (data[0] & 2)
		pad = LINE_MAX_BYTES - 128 + data[1];
	len = pad + (pad && (data[0] & 4)) + size - 2;
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memset(buf, 'x', pad);
	if (pad && (data[0] & 4))
		buf[pad] = '\n';
	memcpy(buf + len - (size - 2), data + 2, size - 2);
	ref_read(&want, buf, len, pipe_mode);

	cfg.queue.batch_size = batch_sizes[mode];
	if (mode == 6)
		cfg.queue.max_bytes = 16 * 1024;
	if (mode == 7)
		cfg.queue.max_spans = 8;
	x.cap = caps[mode];
	x.batch_size = cfg.queue.batch_size;
	x.follow = pipe_mode;

	r.loop = loop__new();
	FUZZ_CHECK(r.loop != NULL, "loop__new");
	x.timer = loop_timer__new(r.loop, cx_timer, &x);
	r.watchdog = loop_timer__new(r.loop, on_watchdog, &r);
	r.p = pipeline__new(r.loop, &cfg, &x.ex);
	FUZZ_CHECK(x.timer && r.watchdog && r.p, "set-up");
	loop_timer_arm(r.watchdog, 20000);

	if (pipe_mode) {
		int fds[2];

		FUZZ_CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe");
		FUZZ_CHECK(dup2(fds[0], STDIN_FILENO) == STDIN_FILENO, "dup2");
		close(fds[0]);
		fcntl(fds[1], F_SETFL, O_NONBLOCK);
		r.wfd = fds[1];
		r.wbuf = buf;
		r.wlen = len;
		r.chunk = (pad ? 4096 : 7) + (size_t)data[1] * 16; /* never 9000 turns for a pad */
		FUZZ_CHECK(loop_add(r.loop, r.wfd, EPOLLOUT, on_writable, &r) == 0, "watch pipe");
		snprintf(path, sizeof(path), "-");
	} else {
		fd = memfd_create("trace", MFD_CLOEXEC);
		FUZZ_CHECK(fd >= 0, "memfd_create");
		FUZZ_CHECK(write(fd, buf, len) == (ssize_t)len, "memfd write");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	src = source_file__new(r.loop, r.p, path, pipe_mode, on_done, &r, err, sizeof(err));
	FUZZ_CHECK(src != NULL, "source_file__new: %s", err);
	FUZZ_CHECK(loop_run(r.loop) == 0, "loop_run");
	FUZZ_CHECK(r.finished && source_file_done(src), "the loop stopped early");
	FUZZ_CHECK(source_file_error(src) == 0, "read error %d", source_file_error(src));
	FUZZ_CHECK(pipeline_idle(r.p), "not idle after the flush");
	FUZZ_CHECK(now->queue_spans == 0 && now->queue_bytes == 0,
		   "queue gauges at %" PRIu64 " spans, %" PRIu64 " bytes once idle",
		   now->queue_spans, now->queue_bytes);

	/* The source's own account against the reference. */
	parse_summary(src, pipe_mode ? "standard input" : path, &got);
	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		rejected += want.rejected[i];
	FUZZ_CHECK(got.lines == want.lines, "%" PRIu64 " lines, expected %" PRIu64, got.lines,
		   want.lines);
	FUZZ_CHECK(got.accepted == want.accepted, "%" PRIu64 " spans accepted, expected %" PRIu64,
		   got.accepted, want.accepted);
	FUZZ_CHECK(got.received == rejected, "%" PRIu64 " rejected, expected %" PRIu64,
		   got.received, rejected);
	FUZZ_CHECK(got.skipped == want.skipped, "%" PRIu64 " skipped, expected %" PRIu64,
		   got.skipped, want.skipped);
	FUZZ_CHECK(got.events == want.events, "%" PRIu64 " events, expected %" PRIu64, got.events,
		   want.events);

	/* The counters every stage keeps. */
	FUZZ_CHECK(now->received[STATS_SRC_FILE] - before.received[STATS_SRC_FILE] == want.received,
		   "received %" PRIu64 ", expected %" PRIu64,
		   now->received[STATS_SRC_FILE] - before.received[STATS_SRC_FILE], want.received);
	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		FUZZ_CHECK(now->rejected[i] - before.rejected[i] == want.rejected[i],
			   "rejected as %s: %" PRIu64 ", expected %" PRIu64, span_reject_str(i),
			   now->rejected[i] - before.rejected[i], want.rejected[i]);
	FUZZ_CHECK(x.spans +
				   (now->dropped[STATS_DROP_QUEUE_FULL] -
				    before.dropped[STATS_DROP_QUEUE_FULL]) +
				   (now->dropped[STATS_DROP_ORPHAN] -
				    before.dropped[STATS_DROP_ORPHAN]) ==
			   want.accepted,
		   "%" PRIu64 " exported + dropped, %" PRIu64 " accepted", x.spans, want.accepted);
	/* A cut span no family tells gets a traceId of its own: none is ever lost. */
	FUZZ_CHECK(now->dropped[STATS_DROP_ORPHAN] == before.dropped[STATS_DROP_ORPHAN],
		   "cut spans dropped");
	if (large)
		FUZZ_CHECK(now->dropped[STATS_DROP_QUEUE_FULL] ==
				   before.dropped[STATS_DROP_QUEUE_FULL],
			   "a file source lost spans to a large queue");
	FUZZ_CHECK(x.events == 0, "%" PRIu64 " events on spans from a file without times",
		   x.events);

	source_file__free(src);
	pipeline__free(r.p);
	loop_timer__free(r.watchdog);
	loop_timer__free(x.timer);
	loop__free(r.loop);
	if (r.wfd >= 0)
		close(r.wfd);
	if (pipe_mode && devnull >= 0)
		dup2(devnull, STDIN_FILENO);
	if (fd >= 0)
		close(fd);
	free(buf);
	exe_paths_reset();
	return 0;
}
