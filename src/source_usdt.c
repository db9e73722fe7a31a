// SPDX-License-Identifier: MIT
/*
 * source_usdt: the eBPF source. One skeleton (bpf/source_usdt.bpf.c, records as in
 * bpf/usdt_record.h) whose USDT programs are attached, by path and for every process (pid -1),
 * to the binaries targets finds: lightningd and each C plugin next to it. The index of the
 * binary is the USDT cookie, so every record says which binary it came from. A --pid process
 * in a container is attached the same way, its files opened through its own root
 * (/proc/PID/root: see targets.h); its records carry its pid as the host sees it, which the
 * --pid filter matches. Records arrive in one ring buffer, read from the loop, and nothing
 * polls it: the kernel wakes us when a record lands in a ring we had emptied, and we leave
 * that record and the ones that follow in the ring for USDT_LATENCY_MS (they wake nobody
 * meanwhile), then read them all at once; a ring filling past wakeup_bytes
 * wakes us at once (1/8 of it). So an idle node costs no wake-up and a busy one one per
 * USDT_LATENCY_MS, and no span waits in the ring longer than that. Reading copies the
 * records out of the ring into a stage of mmap'd chunks (a memcpy: far faster than any
 * emitter), which the loop then parses USDT_BUDGET records a turn: the ring only has to
 * absorb the reader's wake-up delay, not the parsing, so a small one loses nothing to a
 * burst; the stage is bounded (by --queue-bytes: past it the ring holds the rest, and what
 * the ring cannot hold is counted lost) and returns its memory once read. A slower timer
 * has targets look at the binaries again (upgraded, renamed, new plugins); it calls back
 * here to attach and detach.
 *
 * Discovery (no --lightningd, --pid, --file or --socket): a tracepoint program on
 * sched:sched_process_exec sends an exec record for every process that starts, with a forced
 * wake-up, in a small ring of its own read at once; targets_discover looks at its binary
 * and attaches to it when it carries the probe. One /proc scan at start covers the processes already running (the exec program is
 * attached before it, so none slips between the two).
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
#include "ringbuf.h"
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

void source_usdt_on_no_reattach(struct source_usdt *src, void (*fn)(void *ctx), void *ctx)
{
}

bool source_usdt_discovering(const struct source_usdt *src)
{
	return false;
}

void source_usdt__free(struct source_usdt *src)
{
}

#else /* CLN_OTLP_HAVE_BPF */

#include <dirent.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "elf_notes.h"
#include "source_usdt.skel.h"
#include "targets.h"
#include "usdt_record.h"

#define USDT_LATENCY_MS	     250  /* a woken reader reads this much later: spans wait no longer */
#define USDT_BUDGET	     4096 /* records parsed per turn of the loop, so nothing else starves */
#define USDT_DRAIN_ROUNDS    16384	  /* 64M records: more than a 1 GiB ring can hold */
#define USDT_SLICE	     64		  /* records parsed between two looks at the ring */
#define USDT_WATCH_MS	     2000	  /* look for replaced binaries and new plugins */
#define USDT_RINGBUF_DEFAULT (2u << 20)	  /* see README: what each size absorbs */
#define USDT_STAGE_CHUNK     (256u << 10) /* the stage's unit, mmap'd: returned when read */
#define USDT_STAGE_CAP	     (USDT_STAGE_CHUNK - offsetof(struct usdt_chunk, data))
#define USDT_STAGE_ALIGN(n)  (((n) + 7) & ~(size_t)7)
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

/* Records read out of the ring, not parsed yet: each a uint64_t size, then the record. */
struct usdt_chunk {
	struct usdt_chunk *next;
	size_t len; /* bytes written */
	size_t off; /* bytes handed on */
	unsigned char data[];
};

/* The probes attached to one file: the handle targets keeps for us. */
struct usdt_links {
	struct bpf_link *l[USDT__MAX];
};

struct source_usdt {
	struct loop *loop;
	struct pipeline *p;
	struct source_usdt_bpf *skel;
	struct ringbuf *rb;
	int rb_fd; /* the ring's map fd while the loop watches it, else -1 */
	uint64_t wakeup_bytes;
	bool held;			 /* woken: poll_timer reads the ring in USDT_LATENCY_MS */
	struct usdt_chunk *stage, *tail; /* read, to be parsed, oldest first */
	size_t stage_bytes, stage_max;	 /* stage_max: --queue-bytes, what the queue could take */
	struct ringbuf *exec_rb;	 /* discovery: the exec records */
	int exec_fd;
	struct loop_timer *poll_timer;
	struct loop_timer *watch_timer;
	bool want[USDT__MAX];	/* probes to attach */
	int64_t real_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */

	int ncpus;
	struct usdt_record_counters *percpu; /* lookup buffer, ncpus entries */
	uint64_t cnt[USDT_RECORD_CNT__MAX];  /* totals already accounted */

	struct targets *targets;    /* the binaries; a binary's index is its USDT cookie */
	bool discover;		    /* no source option: attach to binaries as processes start */
	struct bpf_link *exec_link; /* discovery: the sched_process_exec program */

	/* --pid: a pidfd per process still running; when none is left, no attach can come. */
	int pidfds[CONFIG_MAX_LIST];
	size_t n_pidfds, pids_running;
	bool no_reattach;
	void (*on_no_reattach)(void *ctx);
	void *on_no_reattach_ctx;

	bool stopped; /* drained: reads nothing more */
	uint64_t spans, events, bad;
	struct log_ratelimit rl_lost, rl_read, rl_cut, rl_bad;
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

/* ---- attaching: the callbacks targets calls ---- */

struct usdt_probe_count {
	int n[USDT__MAX];
};

static int usdt_count_cb(const struct elf_notes_probe *probe, void *ctx)
{
	struct usdt_probe_count *c = ctx;

	if (strcmp(probe->provider, TARGETS_PROVIDER))
		return 0;
	for (int i = 0; i < USDT__MAX; i++)
		if (!strcmp(probe->name, usdt_probe_names[i]))
			c->n[i]++;
	return 0;
}

static void usdt_links_free(struct usdt_links *links)
{
	if (!links)
		return;
	for (int i = 0; i < USDT__MAX; i++)
		bpf_link__destroy(links->l[i]);
	free(links);
}

static void usdt_detach(void *ctx, void *att)
{
	usdt_links_free(att);
}

/*
 * Attach the wanted probes of binary @idx, file @path, into a new struct usdt_links (*@att).
 * Returns the number attached, -ENOMSG when the file has no lightningd:span_emit, -ENOEXEC
 * when it is not ELF, or the attach error (nothing stays attached then).
 */
static int usdt_attach(void *ctx, size_t idx, const char *path, void **att)
{
	struct source_usdt *src = ctx;
	struct bpf_program *progs[USDT__MAX] = {
		[USDT_EMIT] = src->skel->progs.cln_span_emit,
		[USDT_SUSPEND] = src->skel->progs.cln_span_suspend,
		[USDT_RESUME] = src->skel->progs.cln_span_resume,
		[USDT_START] = src->skel->progs.cln_span_start,
		[USDT_END] = src->skel->progs.cln_span_end,
	};
	LIBBPF_OPTS(bpf_usdt_opts, opts, .usdt_cookie = idx);
	struct usdt_probe_count c = {{0}};
	struct usdt_links *links;
	int err, n = 0;

	err = elf_notes_for_each_probe(path, usdt_count_cb, &c);
	if (err)
		return err;
	if (c.n[USDT_EMIT] == 0)
		return -ENOMSG;
	links = calloc(1, sizeof(*links));
	if (!links)
		return -ENOMEM;
	for (int i = 0; i < USDT__MAX; i++) {
		if (!src->want[i] || c.n[i] == 0)
			continue;
		links->l[i] = bpf_program__attach_usdt(progs[i], -1, path, TARGETS_PROVIDER,
						       usdt_probe_names[i], &opts);
		if (!links->l[i]) {
			err = -errno;
			log_debug("attaching %s:%s to %s failed: %s", TARGETS_PROVIDER,
				  usdt_probe_names[i], path, strerror(-err));
			usdt_links_free(links);
			return err ? err : -EINVAL;
		}
		n++;
	}
	*att = links;
	return n;
}

static const char *usdt_err_hint(void *ctx, int err)
{
	if (err == -EPERM || err == -EACCES)
		return " (run as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN: kernels "
		       "since mid-2025 want CAP_SYS_ADMIN to create uprobes)";
	if (access(USDT_UPROBE_PMU, R_OK))
		return " (the kernel has no uprobes: " USDT_UPROBE_PMU " is missing; it needs "
		       "CONFIG_UPROBE_EVENTS)";
	return "";
}

static const struct targets_ops usdt_targets_ops = {
	.attach = usdt_attach,
	.detach = usdt_detach,
	.err_hint = usdt_err_hint,
};

static void usdt_watch_cb(struct loop *loop, void *ctx)
{
	struct source_usdt *src = ctx;

	usdt_sync_clock(src);
	if (!src->no_reattach)
		targets_watch(src->targets, clock_real_ns());
	loop_timer_arm(src->watch_timer, USDT_WATCH_MS);
}

/* ---- discovery ---- */

/* Process @pid started (exec record written at @ktime_ns, CLOCK_MONOTONIC) or ran at start. */
static void usdt_discover(struct source_usdt *src, uint32_t pid, uint64_t ktime_ns)
{
	struct targets_tally n;

	if (src->stopped || !src->discover || pid == (uint32_t)getpid())
		return;
	if (targets_discover(src->targets, pid, &n) <= 0)
		return;
	if (ktime_ns)
		log_debug("discovery: pid %u: probes live %.3f ms after its exec", pid,
			  (double)(clock_mono_ns() - ktime_ns) / 1e6);
}

/* The one look at the processes running at start (the exec program is attached already). */
static void usdt_scan_proc(struct source_usdt *src)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t before = targets_count(src->targets);

	if (!d) {
		log_warn("discovery: cannot list /proc (%s): only processes started from now on "
			 "are found",
			 strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long pid = strtoul(de->d_name, &end, 10);

		if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end || pid > UINT32_MAX)
			continue;
		usdt_discover(src, (uint32_t)pid, 0);
	}
	closedir(d);
	log_debug("discovery: /proc scanned, %zu binaries traced now (%zu before)",
		  targets_count(src->targets), before);
}

/* libbpf's callback for the exec ring. */
static int usdt_on_exec(void *ctx, const void *data, size_t size)
{
	const struct usdt_record_hdr *h = data;

	if (size >= sizeof(*h) && h->kind == USDT_RECORD_EXEC)
		usdt_discover(ctx, h->pid, h->ktime_ns);
	return 0;
}

/* A process started: look at it now (level-triggered: read until the ring is empty). */
static void usdt_exec_ready(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_usdt *src = ctx;
	int n = ringbuf_consume(src->exec_rb, usdt_on_exec, src);

	if (n < 0)
		log_limited(&src->rl_bad, LOG_LVL_WARN, "reading the exec ring buffer failed: %s",
			    strerror(-n));
}

/* Discovery: read the exec ring, attach the exec program, then look at what runs already. */
static int usdt_start_discovery(struct source_usdt *src, char *err, size_t err_size)
{
	int ret;

	if (!src->discover)
		return 0;
	src->exec_rb = ringbuf__new(bpf_map__fd(src->skel->maps.execs),
				    bpf_map__max_entries(src->skel->maps.execs));
	if (!src->exec_rb) {
		ret = -errno;
		snprintf(err, err_size, "setting up the exec ring buffer reader failed: %s",
			 strerror(-ret));
		return ret ? ret : -EINVAL;
	}
	ret = loop_add(src->loop, ringbuf_fd(src->exec_rb), EPOLLIN, usdt_exec_ready, src);
	if (ret) {
		snprintf(err, err_size, "watching the exec ring buffer failed: %s", strerror(-ret));
		return ret;
	}
	src->exec_fd = ringbuf_fd(src->exec_rb);
	src->exec_link = bpf_program__attach(src->skel->progs.cln_exec);
	if (!src->exec_link) {
		ret = -errno;
		snprintf(err, err_size,
			 "attaching to the sched_process_exec raw tracepoint failed: %s (without "
			 "--lightningd or --pid, new processes are found by their exec)",
			 strerror(-ret));
		return ret ? ret : -EINVAL;
	}
	usdt_scan_proc(src);
	return 0;
}

/* ---- the ring buffer ---- */

/* Hand one record on (from the stage, in the order the ring had them). */
static void usdt_ingest(struct source_usdt *src, const void *data, size_t size)
{
	const struct usdt_record_hdr *h = data;
	struct pipeline_origin origin = {.source = STATS_SRC_USDT};

	if (size < sizeof(*h)) {
		src->bad++;
		log_limited(&src->rl_bad, LOG_LVL_WARN, "short ring buffer record (%zu bytes)",
			    size);
		return;
	}
	switch (h->kind) {
	case USDT_RECORD_EMIT:
		if (h->json_len > size - sizeof(*h) || h->json_len > USDT_RECORD_JSON_MAX) {
			src->bad++;
			log_limited(&src->rl_bad, LOG_LVL_WARN,
				    "ring buffer record claims %u bytes of JSON in %zu",
				    h->json_len, size);
			return;
		}
		src->spans++;
		origin.pid = h->pid;
		origin.exe_path = targets_exe_path(src->targets, h->binary);
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
}

/* ---- the stage: records out of the ring, waiting for their turn ---- */

static struct usdt_chunk *usdt_chunk_new(void)
{
	void *p = mmap(NULL, USDT_STAGE_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p; /* zeroed: next, len and off are 0 */
}

static void usdt_chunk_free(struct usdt_chunk *c)
{
	munmap(c, USDT_STAGE_CHUNK);
}

/* Copy a record to the stage's tail. Returns 0, or -ENOMEM. */
static int usdt_stage_put(struct source_usdt *src, const void *data, size_t size)
{
	size_t need = USDT_STAGE_ALIGN(sizeof(uint64_t) + size);
	struct usdt_chunk *c = src->tail;
	uint64_t n = size;

	if (need > USDT_STAGE_CAP)
		return -ENOMEM; /* cannot happen: a record is at most ~2 KiB */
	if (!c || c->len + need > USDT_STAGE_CAP) {
		c = usdt_chunk_new();
		if (!c)
			return -ENOMEM;
		if (src->tail)
			src->tail->next = c;
		else
			src->stage = c;
		src->tail = c;
		src->stage_bytes += USDT_STAGE_CHUNK;
	}
	memcpy(c->data + c->len, &n, sizeof(n));
	memcpy(c->data + c->len + sizeof(n), data, size);
	c->len += need;
	return 0;
}

/*
 * Hand on at most @max staged records. A chunk read to its end is returned to the
 * system, but the last one, which is kept (emptied) for the next records. Returns true when
 * records are left.
 */
static bool usdt_stage_take(struct source_usdt *src, unsigned max)
{
	struct usdt_chunk *c;
	unsigned n = 0;

	while ((c = src->stage) && n < max) {
		uint64_t size;

		if (c->off == c->len) {
			if (!c->next) {
				c->off = c->len = 0;
				break;
			}
			src->stage = c->next;
			src->stage_bytes -= USDT_STAGE_CHUNK;
			usdt_chunk_free(c);
			continue;
		}
		memcpy(&size, c->data + c->off, sizeof(size));
		usdt_ingest(src, c->data + c->off + sizeof(size), size);
		c->off += USDT_STAGE_ALIGN(sizeof(size) + size);
		n++;
	}
	c = src->stage;
	return c && (c->off < c->len || c->next);
}

static void usdt_stage_free(struct source_usdt *src)
{
	while (src->stage) {
		struct usdt_chunk *c = src->stage;

		src->stage = c->next;
		usdt_chunk_free(c);
	}
	src->tail = NULL;
	src->stage_bytes = 0;
}

/* libbpf's callback: a record out of the ring, into the stage. */
static int usdt_on_record(void *ctx, const void *data, size_t size)
{
	struct source_usdt *src = ctx;

	if (usdt_stage_put(src, data, size))
		usdt_ingest(src, data, size); /* out of memory: at once, rather than lost */
	/* Stage full: stop (this record counts as consumed); the rest waits in the ring. */
	return src->stage_bytes >= src->stage_max ? -EAGAIN : 0;
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
	/* Records the reader itself could not copy (out of memory) are lost as well. */
	tot[USDT_RECORD_CNT_RB_LOST] += ringbuf_skipped(src->rb);
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

/*
 * Read the ring into the stage and hand on at most USDT_BUDGET records, reading the ring
 * again every USDT_SLICE records (no system call: the ring is mapped), so that parsing
 * never keeps the ring waiting more than a few hundred microseconds. Returns true when more
 * are waiting (in the stage, or in the ring behind a full stage).
 */
static bool usdt_pump(struct source_usdt *src)
{
	bool more = false;
	int n = 0;

	for (unsigned done = 0; done < USDT_BUDGET; done += USDT_SLICE) {
		n = ringbuf_consume(src->rb, usdt_on_record, src);
		if (n < 0 && n != -EAGAIN)
			log_limited(&src->rl_bad, LOG_LVL_WARN,
				    "reading the ring buffer failed: %s", strerror(-n));
		more = usdt_stage_take(src, USDT_SLICE);
		if (!more && n != -EAGAIN)
			break;
	}
	usdt_read_counters(src);
	return more || n == -EAGAIN;
}

/* Read now; continue at the next turn (after the other work) while records are left. */
static void usdt_service(struct source_usdt *src)
{
	src->held = false;
	if (usdt_pump(src))
		loop_timer_arm(src->poll_timer, 0);
	else
		loop_timer_disarm(src->poll_timer);
}

/*
 * The ring woke us (edge-triggered: once per wake-up). Either a record landed in an empty
 * ring: leave it there USDT_LATENCY_MS, so the records that follow wake nobody; or the ring
 * filled past wakeup_bytes: read now.
 */
static void usdt_rb_ready(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_usdt *src = ctx;

	if (ringbuf_avail(src->rb) >= src->wakeup_bytes) {
		usdt_service(src);
		return;
	}
	if (loop_timer_armed(src->poll_timer))
		return; /* held already, or a turn to continue is due */
	src->held = true;
	loop_timer_arm(src->poll_timer, USDT_LATENCY_MS);
}

static void usdt_poll_cb(struct loop *loop, void *ctx)
{
	usdt_service(ctx);
}

void source_usdt_drain(struct source_usdt *src)
{
	if (!src || !src->rb || src->stopped)
		return;
	/* Detach first: every record fired before this point is read, none after. */
	bpf_link__destroy(src->exec_link);
	src->exec_link = NULL;
	src->discover = false; /* exec records still in their ring attach nothing now */
	targets_detach_all(src->targets);
	for (int round = 0; round < USDT_DRAIN_ROUNDS && usdt_pump(src); round++)
		;
	loop_timer_disarm(src->poll_timer);
	loop_timer_disarm(src->watch_timer);
	loop_del(src->loop, src->rb_fd);
	src->rb_fd = -1;
	src->stopped = true;
	log_debug("eBPF capture stopped: %llu spans and %llu suspend/resume events read",
		  (unsigned long long)src->spans, (unsigned long long)src->events);
}

/* ---- the --pid processes: once all have exited, nothing is attached again ---- */

static void usdt_no_reattach(struct source_usdt *src)
{
	if (src->no_reattach)
		return;
	src->no_reattach = true;
	targets_release_roots(src->targets);
	log_info("every --pid process has exited: no binary will be attached again");
	if (src->on_no_reattach)
		src->on_no_reattach(src->on_no_reattach_ctx);
}

static void usdt_pid_exited(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct source_usdt *src = ctx;

	for (size_t i = 0; i < src->n_pidfds; i++) {
		if (src->pidfds[i] != fd)
			continue;
		loop_del(loop, fd);
		close(fd);
		src->pidfds[i] = -1;
		src->pids_running--;
	}
	if (!src->pids_running)
		usdt_no_reattach(src);
}

/*
 * A pidfd per --pid process (Linux 5.3): readable when it exits. Where the kernel has none,
 * the processes are not watched and the capabilities for attaching stay.
 */
static void usdt_watch_pids(struct source_usdt *src, const struct config *cfg)
{
	bool watched = true;

	for (size_t i = 0; i < cfg->n_pids && watched; i++) {
		int fd = (int)syscall(SYS_pidfd_open, (pid_t)cfg->pids[i], 0);

		if (fd < 0 && errno == ESRCH)
			continue; /* already gone */
		if (fd < 0 || loop_add(src->loop, fd, EPOLLIN, usdt_pid_exited, src)) {
			log_debug(
				"cannot watch --pid %u for its exit (%s): attaching stays possible",
				cfg->pids[i], strerror(fd < 0 ? errno : EINVAL));
			if (fd >= 0)
				close(fd);
			watched = false;
			break;
		}
		src->pidfds[src->n_pidfds++] = fd;
		src->pids_running++;
	}
	if (!watched)
		src->pids_running = SIZE_MAX; /* never all gone */
	else if (cfg->n_pids && !src->pids_running)
		usdt_no_reattach(src);
}

void source_usdt_on_no_reattach(struct source_usdt *src, void (*fn)(void *ctx), void *ctx)
{
	if (!src)
		return;
	src->on_no_reattach = fn;
	src->on_no_reattach_ctx = ctx;
	if (src->no_reattach && fn)
		fn(ctx);
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
	src->wakeup_bytes = rb_size / 8;
	src->skel->rodata->wakeup_bytes = src->wakeup_bytes;
	ret = bpf_map__set_max_entries(src->skel->maps.rb, rb_size);
	if (ret) {
		snprintf(err, err_size, "sizing the ring buffer failed: %s", strerror(-ret));
		return ret;
	}
	/* Every program exists; only the wanted ones are loaded (usdt_attach attaches them). */
	bpf_program__set_autoload(src->skel->progs.cln_span_start, src->want[USDT_START]);
	bpf_program__set_autoload(src->skel->progs.cln_span_end, src->want[USDT_END]);
	bpf_program__set_autoload(src->skel->progs.cln_exec, src->discover);

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

static struct source_usdt *usdt_alloc(struct loop *loop, const struct config *cfg,
				      struct pipeline *p)
{
	struct source_usdt *src = calloc(1, sizeof(*src));

	if (!src)
		return NULL;
	src->loop = loop;
	src->p = p;
	src->rb_fd = -1;
	src->exec_fd = -1;
	src->stage_max = cfg->max_queue_bytes ? cfg->max_queue_bytes : USDT_STAGE_CHUNK;
	src->want[USDT_EMIT] = src->want[USDT_SUSPEND] = src->want[USDT_RESUME] = true;
	src->want[USDT_START] = src->want[USDT_END] = cfg->all_probes;
	src->discover = !cfg->n_lightningd && !cfg->n_pids;
	usdt_sync_clock(src);
	src->targets = targets__new(&usdt_targets_ops, src, !cfg->no_plugins);
	if (!src->targets) {
		free(src);
		return NULL;
	}
	return src;
}

/* A kernel without uprobes would only fail at the first attach, saying less: check first. */
static int usdt_check_kernel(char *err, size_t err_size)
{
	if (access(USDT_UPROBE_PMU, R_OK)) {
		snprintf(err, err_size,
			 "the kernel has no uprobe support (%s is missing): eBPF capture needs a "
			 "kernel built with CONFIG_UPROBE_EVENTS; use --socket or --file instead",
			 USDT_UPROBE_PMU);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The buffer the kernel's per-CPU counters are read into. */
static int usdt_alloc_counters(struct source_usdt *src, char *err, size_t err_size)
{
	src->ncpus = libbpf_num_possible_cpus();
	if (src->ncpus <= 0) {
		snprintf(err, err_size, "cannot count CPUs: %s", strerror(-src->ncpus));
		return src->ncpus ? src->ncpus : -EINVAL;
	}
	src->percpu = calloc(src->ncpus, sizeof(*src->percpu));
	if (!src->percpu) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/*
 * Read the ring buffer from the loop: its epoll fd, edge-triggered (one event per wake-up:
 * records left in the ring on purpose must not wake us again), and the poll timer, armed
 * only while records wait. Watch the binaries.
 */
static int usdt_start_reading(struct source_usdt *src, char *err, size_t err_size)
{
	int ret;

	src->rb = ringbuf__new(bpf_map__fd(src->skel->maps.rb),
			       bpf_map__max_entries(src->skel->maps.rb));
	if (!src->rb) {
		ret = errno;
		snprintf(err, err_size, "setting up the ring buffer reader failed: %s",
			 strerror(ret));
		return ret ? -ret : -EINVAL;
	}
	ret = loop_add(src->loop, ringbuf_fd(src->rb), EPOLLIN | EPOLLET, usdt_rb_ready, src);
	if (ret) {
		snprintf(err, err_size, "watching the ring buffer failed: %s", strerror(-ret));
		return ret;
	}
	src->rb_fd = ringbuf_fd(src->rb);
	src->poll_timer = loop_timer__new(src->loop, usdt_poll_cb, src);
	src->watch_timer = loop_timer__new(src->loop, usdt_watch_cb, src);
	if (!src->poll_timer || !src->watch_timer ||
	    loop_timer_arm(src->poll_timer, 0) || /* what came before we watched */
	    loop_timer_arm(src->watch_timer, USDT_WATCH_MS)) {
		ret = errno;
		snprintf(err, err_size, "creating timers failed: %s", strerror(ret));
		return ret ? -ret : -EINVAL;
	}
	return 0;
}

static void usdt_log_attached(struct source_usdt *src, const struct config *cfg,
			      const struct targets_tally *n)
{
	uint32_t root_pid = targets_root_pid(src->targets, 0);
	char where[48] = "";

	if (n->mains == 0) {
		log_info("attached %u probes to 0 binaries (none yet: attaching as they start)",
			 n->probes);
		return;
	}
	if (root_pid)
		snprintf(where, sizeof(where), " in the root of process %u", root_pid);
	log_info("attached %u probes to %zu binaries (%s%s%s, %u plugins)%s", n->probes,
		 n->mains + n->plugins, targets_path(src->targets, 0), where,
		 n->mains > 1 ? " and others" : "", n->plugins,
		 cfg->n_pids ? ", only the --pid processes" : "");
}

/*
 * The binaries named (or lightningd on PATH). Discovering, lightningd on PATH is added when
 * there is one, and its absence (or a lightningd without probes there) is no error.
 */
static int usdt_add_main(struct source_usdt *src, const struct config *cfg, char *err,
			 size_t err_size)
{
	int ret = targets_add_main(src->targets, cfg, err, err_size);

	if (!src->discover)
		return ret;
	log_info("no source given: discovering processes that run a binary with the %s:span_emit "
		 "probe (exec events)",
		 TARGETS_PROVIDER);
	if (ret == -ENOENT && !targets_count(src->targets))
		log_debug("discovery: %s", err);
	else if (ret)
		log_warn("discovery: not tracing lightningd on PATH up front: %s", err);
	err[0] = '\0';
	return 0;
}

bool source_usdt_discovering(const struct source_usdt *src)
{
	return src && src->discover;
}

struct source_usdt *source_usdt__new(struct loop *loop, const struct config *cfg,
				     struct pipeline *p, char *err, size_t err_size)
{
	struct targets_tally n;
	struct source_usdt *src;
	int ret;

	libbpf_set_print(usdt_libbpf_print);
	src = usdt_alloc(loop, cfg, p);
	if (!src) {
		snprintf(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto cleanup;
	}
	/* What to trace first: these errors need no privileges to report. */
	ret = usdt_add_main(src, cfg, err, err_size);
	if (ret)
		goto cleanup;
	ret = usdt_check_kernel(err, err_size);
	if (ret)
		goto cleanup;
	ret = usdt_load(src, cfg, err, err_size);
	if (ret)
		goto cleanup;
	ret = usdt_alloc_counters(src, err, err_size);
	if (ret)
		goto cleanup;
	ret = targets_attach(src->targets, &n, err, err_size);
	if (ret)
		goto cleanup;
	ret = usdt_start_reading(src, err, err_size);
	if (ret)
		goto cleanup;
	usdt_watch_pids(src, cfg);
	usdt_log_attached(src, cfg, &n);
	ret = usdt_start_discovery(src, err, err_size);
cleanup:
	if (ret) {
		source_usdt__free(src);
		src = NULL;
	}
	return src;
}

void source_usdt__free(struct source_usdt *src)
{
	if (!src)
		return;
	for (size_t i = 0; i < src->n_pidfds; i++) {
		if (src->pidfds[i] < 0)
			continue;
		loop_del(src->loop, src->pidfds[i]);
		close(src->pidfds[i]);
	}
	bpf_link__destroy(src->exec_link);
	if (src->exec_fd >= 0)
		loop_del(src->loop, src->exec_fd);
	ringbuf__free(src->exec_rb);
	if (src->rb) {
		const struct targets_discovery *d = targets_discovery_stats(src->targets);

		if (src->discover || d->execs)
			log_debug(
				"discovery: %llu processes looked at, %llu of known binaries, %llu "
				"binaries checked for probes, %llu gone before the look, %llu "
				"denied, %llu verdicts forgotten",
				(unsigned long long)d->execs, (unsigned long long)d->known,
				(unsigned long long)d->checked, (unsigned long long)d->gone,
				(unsigned long long)d->denied, (unsigned long long)d->evicted);
	}
	loop_timer__free(src->watch_timer);
	loop_timer__free(src->poll_timer);
	if (src->rb_fd >= 0)
		loop_del(src->loop, src->rb_fd);
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
	ringbuf__free(src->rb);
	usdt_stage_free(src);
	targets__free(src->targets);
	source_usdt_bpf__destroy(src->skel);
	free(src->percpu);
	free(src);
}

#endif /* CLN_OTLP_HAVE_BPF */