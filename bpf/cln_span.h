/* SPDX-License-Identifier: MIT */
/*
 * cln_span: the records the BPF programs (cln_span.bpf.c) write into the ring buffer and
 * source_usdt reads back. Shared by kernel and user side, so fixed-width types only.
 *
 * Every record starts with struct cln_span_hdr. A span_emit record is followed by
 * hdr.json_len bytes of JSON (no NUL) and is exactly sizeof(hdr) + json_len bytes long in
 * the ring: real spans (~280 bytes) take ~360 bytes of ring, not 2 KiB.
 */
#ifndef CLN_SPAN_H
#define CLN_SPAN_H

#include <linux/types.h>

/* CLN formats a span into 2048 bytes (common/trace.c); this is all a record can carry. */
#define CLN_SPAN_JSON_MAX 2048
/* arg0 of span_emit: 16 lowercase hex digits and a NUL. */
#define CLN_SPAN_ID_HEX 16

enum cln_span_kind {
	CLN_SPAN_EMIT = 1,
	CLN_SPAN_START,
	CLN_SPAN_END,
	CLN_SPAN_SUSPEND,
	CLN_SPAN_RESUME,
};

/* hdr.flags */
#define CLN_SPAN_F_CUT	   0x1 /* the string at arg1 was longer than CLN_SPAN_JSON_MAX: cut */
#define CLN_SPAN_F_NO_ID   0x2 /* arg0 of span_emit could not be read */
#define CLN_SPAN_F_RESERVE 0x4 /* written through the fixed-size fallback (scratch was busy) */

struct cln_span_hdr {
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 span_id;	/* start/end/suspend/resume: arg0; emit: 0 (see id_hex) */
	__u32 kind;	/* enum cln_span_kind */
	__u32 pid;	/* tgid */
	__u32 tid;
	__u32 binary;	/* index of the traced binary: the USDT cookie given at attach */
	__u32 json_len; /* emit: bytes of JSON that follow the header; others: 0 */
	__u32 flags;	/* CLN_SPAN_F_* */
	char comm[16];
	char id_hex[24]; /* emit: arg0, NUL-terminated (16 hex + NUL, padded to 8 bytes) */
};

/* The largest record: what the per-CPU scratch buffer holds. */
struct cln_span_rec {
	struct cln_span_hdr hdr;
	/* One byte more than CLN_SPAN_JSON_MAX + NUL, to tell "exactly 2048" from "longer". */
	char json[CLN_SPAN_JSON_MAX + 2];
};

/* Per-CPU counters: the one entry of the `counters` PERCPU_ARRAY, indexed by these. */
enum cln_span_counter {
	CLN_SPAN_CNT_RB_LOST = 0, /* bpf_ringbuf_output/reserve failed: ring buffer full */
	CLN_SPAN_CNT_READ_FAIL,	  /* bpf_probe_read_user_str failed on the JSON or the id */
	CLN_SPAN_CNT_CUT,	  /* JSON longer than CLN_SPAN_JSON_MAX, cut */
	CLN_SPAN_CNT_BUSY,	  /* scratch in use on this CPU (preempted program): fallback */
	CLN_SPAN_CNT__MAX,
};

struct cln_span_counters {
	__u64 v[CLN_SPAN_CNT__MAX];
};

#endif
