// SPDX-License-Identifier: MIT
/*
 * source_usdt.bpf.c: the kernel side of source_usdt (src/source_usdt.c), the USDT programs
 * for Core Lightning's tracing probes (provider `lightningd`):
 *   span_emit(char *id, char *json)  -> one record with the whole JSON
 *   span_start/span_end/span_suspend/span_resume(u64 id) -> one header-only record
 *
 * The JSON is read into a per-CPU scratch buffer (the BPF stack is 512 bytes) and copied
 * into the ring with its real length, so a ring holds as many spans as their bytes allow.
 * Wake-ups follow the work, not a clock: a record wakes the reader only when the reader had
 * read everything before it (the kernel's own test, flags 0: the record is at the consumer
 * position), or when it takes the ring past wakeup_bytes (forced). The reader leaves what a
 * first wake-up announced in the ring for a few milliseconds, so the records that follow
 * wake nobody; an idle node causes no wake-up at all.
 * Every failure is counted in a per-CPU counter, never silently lost.
 *
 * Discovery (no source option): one more program, on the sched_process_exec raw tracepoint,
 * writes a header-only exec record for every exec on the host into a ring of its own (execs)
 * and forces a wake-up, so user
 * space looks at the new process's binary at once (and attaches before it gets far). Only
 * loaded in that mode.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>

#define BPF_USDT_MAX_SPEC_CNT 1024 /* attachments: binaries x probes x call sites */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "usdt_record.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Set by user space before load. */
const volatile bool filter_pids = false;
const volatile __u64 wakeup_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20); /* resized before load */
} rb SEC(".maps");

/* Discovery's exec records: read at once, never held back like the spans' ring. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} execs SEC(".maps");

/* tgids to capture when filter_pids is set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

struct scratch {
	__u64 busy; /* non-zero while a program uses rec on this CPU */
	struct usdt_record rec;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* One entry, so user space reads every counter of every CPU with one lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct usdt_record_counters);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	struct usdt_record_counters *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&counters, &zero);
	if (c && which < USDT_RECORD_CNT__MAX)
		__sync_fetch_and_add(&c->v[which], 1); /* a preempted program may share the CPU */
}

static __always_inline bool wanted(__u32 tgid)
{
	if (!filter_pids)
		return true;
	return bpf_map_lookup_elem(&pids, &tgid) != NULL;
}

/*
 * Force a wake-up only for the record that takes the ring past wakeup_bytes; otherwise let
 * the kernel decide (flags 0): it wakes the reader only when this record is the first one
 * the reader has not read, i.e. the ring was empty for it. A reader that is awake consumes
 * until the ring is empty, so it needs no more; waking it for every record while it catches
 * up would cost each probe hit a cross-CPU wake-up.
 */
static __always_inline __u64 rb_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);

	return avail < wakeup_bytes && avail + size >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : 0;
}

static __always_inline void fill_hdr(struct usdt_record_hdr *h, __u32 kind, __u64 pid_tgid,
				     __u64 cookie)
{
	h->ktime_ns = bpf_ktime_get_ns();
	h->span_id = 0;
	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->binary = (__u32)cookie;
	h->json_len = 0;
}

/*
 * Read the JSON into @rec; returns its length, or -1 (counted). span_emit's arg0 (the span id
 * in hex) is not read: the JSON carries the id.
 */
static __always_inline long read_emit(struct usdt_record *rec, const void *json)
{
	long n;

	n = bpf_probe_read_user_str(rec->json, sizeof(rec->json), json);
	if (n <= 0) {
		count(USDT_RECORD_CNT_READ_FAIL);
		return -1;
	}
	n -= 1; /* the NUL */
	if (n > USDT_RECORD_JSON_MAX) {
		n = USDT_RECORD_JSON_MAX;
		count(USDT_RECORD_CNT_CUT);
	}
	rec->hdr.json_len = n;
	return n;
}

/*
 * The scratch buffer is per CPU, but a uprobe program runs with migration (not preemption)
 * disabled: on a preemptible kernel another task on this CPU may enter while one is inside.
 * The busy flag catches that; the latecomer reserves a full-size record instead.
 */
static __always_inline int emit_reserved(const void *json, __u64 pid_tgid, __u64 cookie)
{
	struct usdt_record *rec;
	long n;

	rec = bpf_ringbuf_reserve(&rb, sizeof(*rec), 0);
	if (!rec) {
		count(USDT_RECORD_CNT_RB_LOST);
		return 0;
	}
	fill_hdr(&rec->hdr, USDT_RECORD_EMIT, pid_tgid, cookie);
	n = read_emit(rec, json);
	if (n < 0) {
		bpf_ringbuf_discard(rec, 0); /* wakes the reader if it waits on this one */
		return 0;
	}
	/* Rare path: the reserved record already counts in the ring's data. */
	bpf_ringbuf_submit(rec, bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA) >= wakeup_bytes
					? BPF_RB_FORCE_WAKEUP
					: 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(cln_span_emit, void *id, void *json)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 cookie = bpf_usdt_cookie(ctx);
	struct scratch *s;
	__u32 zero = 0;
	__u64 size;
	long n;

	if (!wanted(pid_tgid >> 32))
		return 0;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	if (__sync_fetch_and_add(&s->busy, 1) != 0) {
		__sync_fetch_and_add(&s->busy, -1);
		count(USDT_RECORD_CNT_BUSY);
		return emit_reserved(json, pid_tgid, cookie);
	}

	fill_hdr(&s->rec.hdr, USDT_RECORD_EMIT, pid_tgid, cookie);
	n = read_emit(&s->rec, json);
	if (n < 0)
		goto out;
	size = sizeof(struct usdt_record_hdr) + (n & 0xfff);
	if (size > sizeof(s->rec))
		goto out; /* cannot happen; tells the verifier the bound */
	if (bpf_ringbuf_output(&rb, &s->rec, size, rb_flags(size)))
		count(USDT_RECORD_CNT_RB_LOST);
out:
	__sync_fetch_and_add(&s->busy, -1);
	return 0;
}

static __always_inline int id_event(struct pt_regs *ctx, __u32 kind, __u64 span_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct usdt_record_hdr h;

	if (!wanted(pid_tgid >> 32))
		return 0;
	fill_hdr(&h, kind, pid_tgid, bpf_usdt_cookie(ctx));
	h.span_id = span_id;
	if (bpf_ringbuf_output(&rb, &h, sizeof(h), rb_flags(sizeof(h))))
		count(USDT_RECORD_CNT_RB_LOST);
	return 0;
}

SEC("usdt")
int BPF_USDT(cln_span_start, __u64 span_id)
{
	return id_event(ctx, USDT_RECORD_START, span_id);
}

SEC("usdt")
int BPF_USDT(cln_span_end, __u64 span_id)
{
	return id_event(ctx, USDT_RECORD_END, span_id);
}

SEC("usdt")
int BPF_USDT(cln_span_suspend, __u64 span_id)
{
	return id_event(ctx, USDT_RECORD_SUSPEND, span_id);
}

SEC("usdt")
int BPF_USDT(cln_span_resume, __u64 span_id)
{
	return id_event(ctx, USDT_RECORD_RESUME, span_id);
}

/* Discovery: every exec on the host, so user space can attach to a new lightningd at once. */
SEC("raw_tp/sched_process_exec") /* by name: needs no tracefs mounted */
int cln_exec(void *ctx)
{
	struct usdt_record_hdr h;

	fill_hdr(&h, USDT_RECORD_EXEC, bpf_get_current_pid_tgid(), 0);
	if (bpf_ringbuf_output(&execs, &h, sizeof(h), BPF_RB_FORCE_WAKEUP))
		count(USDT_RECORD_CNT_RB_LOST);
	return 0;
}
