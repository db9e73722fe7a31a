/* SPDX-License-Identifier: MIT */
/*
 * usdt_record: the records the BPF programs (bpf/source_usdt.bpf.c) write into the ring buffer
 * and their user side (src/source_usdt.c) reads back, and the per-CPU counters both share.
 * Included by kernel and user side, so fixed-width types only.
 *
 * Every record starts with struct usdt_record_hdr. A span_emit record is followed by
 * hdr.json_len bytes of JSON (no NUL) and is exactly sizeof(hdr) + json_len bytes long in
 * the ring: real spans (~280 bytes) take ~320 bytes of ring, not 2 KiB. The header holds
 * only what user space reads. An exec record (discovery, no source option given) is a header
 * alone: the tgid that exec'd and when; its binary field is 0.
 */
#ifndef CLN_OTLP_USDT_RECORD_H
#define CLN_OTLP_USDT_RECORD_H

#include <linux/types.h>

/* CLN formats a span into 2048 bytes (common/trace.c); this is all a record can carry. */
#define USDT_RECORD_JSON_MAX 2048

enum usdt_record_kind {
	USDT_RECORD_EMIT = 1,
	USDT_RECORD_START,
	USDT_RECORD_END,
	USDT_RECORD_SUSPEND,
	USDT_RECORD_RESUME,
	USDT_RECORD_EXEC, /* discovery: process hdr.pid exec'd a binary (header only) */
};

struct usdt_record_hdr {
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 span_id;	/* start/end/suspend/resume: arg0; emit: 0 (the JSON has the id) */
	__u32 kind;	/* enum usdt_record_kind */
	__u32 pid;	/* tgid */
	__u32 binary;	/* index of the traced binary: the USDT cookie given at attach */
	__u32 json_len; /* emit: bytes of JSON that follow the header; others: 0 */
};

/* The largest record: what the per-CPU scratch buffer holds. */
struct usdt_record {
	struct usdt_record_hdr hdr;
	/* One byte more than USDT_RECORD_JSON_MAX + NUL, to tell "exactly 2048" from "longer". */
	char json[USDT_RECORD_JSON_MAX + 2];
};

/* Per-CPU counters: the one entry of the `counters` PERCPU_ARRAY, indexed by these. */
enum usdt_record_counter {
	USDT_RECORD_CNT_RB_LOST = 0, /* bpf_ringbuf_output/reserve failed: ring buffer full */
	USDT_RECORD_CNT_READ_FAIL,   /* bpf_probe_read_user_str failed on the JSON */
	USDT_RECORD_CNT_CUT,	     /* JSON longer than USDT_RECORD_JSON_MAX, cut */
	USDT_RECORD_CNT_BUSY,	     /* scratch in use on this CPU (preempted program): fallback */
	USDT_RECORD_CNT__MAX,
};

struct usdt_record_counters {
	__u64 v[USDT_RECORD_CNT__MAX];
};

#endif
