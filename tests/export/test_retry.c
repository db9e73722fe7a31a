// SPDX-License-Identifier: MIT
/*
 * Unit tests of the retry policy (src/retry.c), no network and no clock:
 *   test_retry tests/data/retry/cases.json
 * Data-driven cases: which HTTP statuses and gRPC codes retry, the HTTP to gRPC mapping, and
 * schedules of retry_next() steps (time, server hint, random value -> wait or give up). Then
 * properties no list of cases covers: 400 pseudo-random backoffs stay within their bounds
 * and the budget ends them.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "../cases.h"
#include "retry.h"

static void run_http_status(const cJSON *c, bool want)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, cases_get(c, "http_status")) CHECK_MSG(
		retry_http_status((long)s->valuedouble) == want, "HTTP %ld", (long)s->valuedouble);
}

static void run_grpc_code(const cJSON *c, bool want)
{
	bool info = cases_bool(c, "retry_info", false);
	const cJSON *s;

	cJSON_ArrayForEach(s, cases_get(c, "grpc_code"))
		CHECK_MSG(retry_grpc_code((int)s->valuedouble, info) == want, "gRPC %d%s",
			  (int)s->valuedouble, info ? " with RetryInfo" : "");
}

static void run_http_to_grpc(const cJSON *c)
{
	const cJSON *pair;

	cJSON_ArrayForEach(pair, cases_get(c, "http_to_grpc"))
	{
		long status = (long)cJSON_GetArrayItem(pair, 0)->valuedouble;
		int want = (int)cJSON_GetArrayItem(pair, 1)->valuedouble;

		CHECK_MSG(retry_http_to_grpc(status) == want, "HTTP %ld gave %d, expected %d",
			  status, retry_http_to_grpc(status), want);
		/* a retried HTTP status maps to a retried gRPC code */
		CHECK(!retry_http_status(status) || retry_grpc_code(want, false));
	}
}

/* "steps": each one retry_next() call and what it must decide. */
static void run_schedule(const cJSON *c)
{
	struct retry_policy p;
	struct retry_state st;
	const cJSON *step;

	retry_policy_init(&p, (uint64_t)cases_int(c, "budget_ms", 0));
	retry_state_start(&st, (uint64_t)cases_int(c, "start_ms", 0));
	st.prev_wait_ms = (uint64_t)cases_int(c, "prev_wait_ms", 0);
	cJSON_ArrayForEach(step, cases_get(c, "steps"))
	{
		const cJSON *expect = cases_get(step, "expect");
		uint64_t wait = 0xdeadbeef;
		bool again = retry_next(&p, &st, (uint64_t)cases_int(step, "now_ms", 0),
					cases_int(step, "hint_ms", -1),
					(uint64_t)cases_int(step, "rnd", 0), &wait);

		if (cases_bool(expect, "give_up", false)) {
			CHECK_MSG(!again, "retried (wait %llu ms) where it should give up",
				  (unsigned long long)wait);
			continue;
		}
		if (!CHECK_MSG(again, "gave up"))
			continue;
		CHECK_EQ(wait, cases_int(expect, "wait_ms", -1));
		if (cases_has(expect, "attempts"))
			CHECK_EQ(st.attempts, cases_int(expect, "attempts", 0));
	}
}

static void run_case(cJSON *c)
{
	bool want = cases_bool(cases_get(c, "expect"), "retry", false);

	if (cases_has(c, "http_status"))
		run_http_status(c, want);
	else if (cases_has(c, "grpc_code"))
		run_grpc_code(c, want);
	else if (cases_has(c, "http_to_grpc"))
		run_http_to_grpc(c);
	else if (cases_has(c, "steps"))
		run_schedule(c);
	else
		CHECK_FAIL("a case of no known kind");
}

/* 400 pseudo-random backoffs: each within [initial, min(3 x previous, cap)], cut only by the
 * budget, which ends them. */
static void test_backoff_bounds(void)
{
	struct retry_policy p;
	struct retry_state st;
	uint64_t wait, now = 1000000, rnd = 12345;
	unsigned n = 0;

	check_case("backoff bounds over 400 random draws");
	retry_policy_init(&p, 300000);
	CHECK_EQ(p.initial_ms, RETRY_INITIAL_MS);
	CHECK_EQ(p.max_wait_ms, RETRY_MAX_WAIT_MS);
	retry_state_start(&st, now);
	CHECK(retry_next(&p, &st, now, -1, 0xdeadbeef, &wait));
	for (; n < 400; n++) {
		uint64_t prev = st.prev_wait_ms;
		uint64_t hi = prev * 3 > RETRY_MAX_WAIT_MS ? RETRY_MAX_WAIT_MS : prev * 3;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		now += wait;
		if (!retry_next(&p, &st, now, -1, rnd >> 11, &wait))
			break;
		/* At least the initial wait, unless cut to what remains of the budget. */
		CHECK(wait >= 1000 || now - st.first_ms + wait == p.max_elapsed_ms);
		CHECK(wait <= RETRY_MAX_WAIT_MS);
		if (now - st.first_ms + wait < p.max_elapsed_ms) /* not cut by the budget */
			CHECK(wait <= (hi > 1000 ? hi : 1000));
	}
	/* The budget ends it: 300 s of waits of at most the cap need that many retries. */
	CHECK(n >= 300000 / RETRY_MAX_WAIT_MS);
	CHECK(n < 400);
	CHECK(now - st.first_ms <= 300000 + RETRY_MAX_WAIT_MS);
	CHECK(!retry_next(&p, &st, st.first_ms + 300000, -1, 1, &wait));
	check_case(NULL);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[2], "--all-fail")) {
		cases_run(argv[1], NULL, true, run_case);
		return check_summary();
	}
	if (argc != 2) {
		fprintf(stderr, "usage: test_retry CASES.json [--all-fail]\n");
		return 2;
	}
	cases_run(argv[1], NULL, false, run_case);
	test_backoff_bounds();
	return check_summary();
}
