/* SPDX-License-Identifier: MIT */
/*
 * retry: the OTLP retry policy, pure (no I/O, no clock, no randomness of its own: callers
 * pass the time and a random number, so every decision is testable).
 *   - which answers retry: HTTP 429, 502, 503, 504; gRPC codes 1, 4, 10, 11, 14, 15, and 8
 *     only when the server sent RetryInfo;
 *   - how long to wait: exponential backoff with decorrelated jitter (each wait drawn
 *     between the initial wait and three times the previous one, so it doubles on average,
 *     capped per wait), or the server's hint (Retry-After or gRPC RetryInfo, read by
 *     export_wire, at most RETRY_HINT_MAX_S) when that is longer: a hint never makes a wait
 *     shorter than the backoff (a "Retry-After: 0" would otherwise be a retry storm);
 *   - when to give up: once the time since the first attempt reaches the budget, every
 *     wait being cut to what remains of it.
 */
#ifndef CLN_OTLP_RETRY_H
#define CLN_OTLP_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define RETRY_INITIAL_MS 1000
/*
 * 5 s, not the 30 s some SDKs use: a bridge beside a node usually talks to a collector
 * nearby, a refused connection is cheap, and a long wait after the collector is back only
 * fills the queue. A success also wakes every batch sleeping on its backoff.
 */
#define RETRY_MAX_WAIT_MS 5000
/* A server asking for a longer wait than a day (Retry-After, RetryInfo) gets a day. */
#define RETRY_HINT_MAX_S 86400

struct retry_policy {
	uint64_t initial_ms;	 /* first wait (lower bound of every wait) */
	uint64_t max_wait_ms;	 /* cap of one backoff wait */
	uint64_t max_elapsed_ms; /* budget from the first attempt; 0: never retry */
};

/* The state one batch carries across its attempts. */
struct retry_state {
	uint64_t first_ms; /* monotonic time of the first attempt */
	uint64_t prev_wait_ms;
	unsigned attempts; /* attempts made so far */
};

void retry_policy_init(struct retry_policy *p, uint64_t max_elapsed_ms);
void retry_state_start(struct retry_state *st, uint64_t now_ms);

/* HTTP status codes worth retrying (429, 502, 503, 504). */
bool retry_http_status(long status);
/* gRPC status codes worth retrying; RESOURCE_EXHAUSTED (8) only with RetryInfo. */
bool retry_grpc_code(int code, bool has_retry_info);
/* The gRPC code an HTTP status maps to when a gRPC answer carries no grpc-status. */
int retry_http_to_grpc(long status);

/*
 * Decide what follows a failed retryable attempt that ended at @now_ms. @hint_ms is the
 * server's wait (Retry-After, RetryInfo) or -1 when none: the wait is the longer of it and
 * the backoff; @rnd any random 64-bit value.
 * Returns true and the wait in *wait_ms when another attempt fits in the budget, false
 * when the batch should be given up. Updates @st.
 */
bool retry_next(const struct retry_policy *p, struct retry_state *st, uint64_t now_ms,
		int64_t hint_ms, uint64_t rnd, uint64_t *wait_ms);

#endif
