// SPDX-License-Identifier: MIT
/*
 * The retry policy (see retry.h): a few tables and one decision. Reading what a server
 * asks for (Retry-After, RetryInfo) is export_wire's job; this only weighs it.
 */
#include "retry.h"

void retry_policy_init(struct retry_policy *p, uint64_t max_elapsed_ms)
{
	p->initial_ms = RETRY_INITIAL_MS;
	p->max_wait_ms = RETRY_MAX_WAIT_MS;
	p->max_elapsed_ms = max_elapsed_ms;
}

void retry_state_start(struct retry_state *st, uint64_t now_ms)
{
	st->first_ms = now_ms;
	st->prev_wait_ms = 0;
	st->attempts = 1;
}

bool retry_http_status(long status)
{
	switch (status) {
	case 429: /* Too Many Requests */
	case 502: /* Bad Gateway */
	case 503: /* Service Unavailable */
	case 504: /* Gateway Timeout */
		return true;
	default:
		return false;
	}
}

bool retry_grpc_code(int code, bool has_retry_info)
{
	switch (code) {
	case 1:	 /* CANCELLED */
	case 4:	 /* DEADLINE_EXCEEDED */
	case 10: /* ABORTED */
	case 11: /* OUT_OF_RANGE */
	case 14: /* UNAVAILABLE */
	case 15: /* DATA_LOSS */
		return true;
	case 8: /* RESOURCE_EXHAUSTED: only when the server says when to come back */
		return has_retry_info;
	default:
		return false;
	}
}

/* gRPC's "HTTP to gRPC status code mapping" (doc/http-grpc-status-mapping.md). */
int retry_http_to_grpc(long status)
{
	switch (status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

bool retry_next(const struct retry_policy *p, struct retry_state *st, uint64_t now_ms,
		int64_t hint_ms, uint64_t rnd, uint64_t *wait_ms)
{
	uint64_t elapsed = now_ms > st->first_ms ? now_ms - st->first_ms : 0;
	uint64_t remaining, wait, lo, hi;

	if (elapsed >= p->max_elapsed_ms)
		return false;
	remaining = p->max_elapsed_ms - elapsed;
	/* Decorrelated jitter: uniform in [initial, 3 * previous], capped. */
	lo = p->initial_ms;
	hi = st->prev_wait_ms * 3;
	if (hi > p->max_wait_ms)
		hi = p->max_wait_ms;
	if (hi < lo)
		hi = lo;
	wait = lo + rnd % (hi - lo + 1);
	if (wait > p->max_wait_ms)
		wait = p->max_wait_ms;
	/*
	 * A server's hint may lengthen the wait, never shorten it: "Retry-After: 0", a date in
	 * the past or a RetryInfo of 0 s from a server that keeps failing would have every
	 * batch hammer it as fast as it answers.
	 */
	if (hint_ms >= 0 && (uint64_t)hint_ms > wait)
		wait = (uint64_t)hint_ms;
	if (wait > remaining)
		wait = remaining;
	st->prev_wait_ms = wait > st->prev_wait_ms ? wait : st->prev_wait_ms;
	st->attempts++;
	*wait_ms = wait;
	return true;
}
