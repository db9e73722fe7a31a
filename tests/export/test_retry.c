// SPDX-License-Identifier: MIT
/*
 * Unit tests of the retry policy (src/retry.c), no network and no clock:
 *   test_retry tests/data/retry/cases.json
 * Data-driven cases: which HTTP statuses and gRPC codes retry, the HTTP to gRPC mapping, and
 * schedules of retry_next() steps (time, server hint, random value -> wait or give up). Then
 * properties no list of cases covers: 400 pseudo-random backoffs stay within their bounds
 * and the budget ends them. Then the parsers of what a server sends: Retry-After in both
 * forms, RetryInfo, base64.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "cases.h"
#include "retry.h"
#include "text.h"

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

static void suite_cases(const char *path)
{
	cJSON *cases = cases_load(path), *c;

	cJSON_ArrayForEach(c, cases)
	{
		bool want = cases_bool(cases_get(c, "expect"), "retry", false);

		check_case(cases_str(c, "name", "?"));
		if (cases_has(c, "http_status"))
			run_http_status(c, want);
		else if (cases_has(c, "grpc_code"))
			run_grpc_code(c, want);
		else if (cases_has(c, "http_to_grpc"))
			run_http_to_grpc(c);
		else if (cases_has(c, "steps"))
			run_schedule(c);
		else
			CHECK_MSG(false, "a case of no known kind");
	}
	check_case(NULL);
	cJSON_Delete(cases);
}

static int ra(const char *s, time_t now, uint64_t *ms)
{
	return retry_parse_retry_after(s, strlen(s), now, ms);
}

static void test_retry_after(void)
{
	/* 784111777 = Sun, 06 Nov 1994 08:49:37 GMT */
	const time_t t0 = 784111777;
	uint64_t ms = 12345;
	time_t t;

	CHECK_EQ(ra("2", 0, &ms), 0);
	CHECK_EQ(ms, 2000);
	CHECK_EQ(ra("  120 \r\n", 0, &ms), 0);
	CHECK_EQ(ms, 120000);
	CHECK_EQ(ra("0", 0, &ms), 0);
	CHECK_EQ(ms, 0);
	CHECK_EQ(ra("99999999999999999999999", 0, &ms), 0);
	CHECK_EQ(ms, 86400000); /* capped, no overflow */

	CHECK_EQ(ra("", 0, &ms), -EINVAL);
	CHECK_EQ(ra("   ", 0, &ms), -EINVAL);
	CHECK_EQ(ra("-1", 0, &ms), -EINVAL);
	CHECK_EQ(ra("1.5", 0, &ms), -EINVAL);
	CHECK_EQ(ra("2s", 0, &ms), -EINVAL);
	CHECK_EQ(ra("soon", 0, &ms), -EINVAL);

	/* The three date forms of RFC 9110 section 5.6.7. */
	CHECK_EQ(retry_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
	CHECK_EQ(t, t0);
	CHECK_EQ(retry_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), 0);
	CHECK_EQ(t, t0);
	CHECK_EQ(retry_parse_http_date("Sun Nov  6 08:49:37 1994", 24, &t), 0);
	CHECK_EQ(t, t0);
	CHECK_EQ(retry_parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", 29, &t), 0);
	CHECK_EQ(t, 0);
	CHECK_EQ(retry_parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT", 29, &t), 0);
	CHECK_EQ(t, 1835481599);

	/* In the future: the difference; in the past: at once. */
	CHECK_EQ(ra("Sun, 06 Nov 1994 08:49:37 GMT", t0 - 7, &ms), 0);
	CHECK_EQ(ms, 7000);
	CHECK_EQ(ra("Sun, 06 Nov 1994 08:49:37 GMT", t0 + 100, &ms), 0);
	CHECK_EQ(ms, 0);
	CHECK_EQ(ra(" Sun, 06 Nov 1994 08:49:37 GMT ", t0 - 1, &ms), 0);
	CHECK_EQ(ms, 1000);

	/* Malformed dates. */
	static const char *const bad[] = {
		"Sun, 06 Nov 1994 08:49:37",
		"Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 32 Nov 1994 08:49:37 GMT",
		"Sun, 31 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nox 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:49:37 GMT",
		"Sun, 06 Nov 1994 08:60:37 GMT",
		"Sun, 06 Nov 1994 8:49:37 GMT",
		"Sun, 06-Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT x",
		"Sun Nov  6 08:49:37",
		"Sun Nov  6 08:49:37 94",
		"06 Nov 1994 08:49:37 GMT",
		"Su, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 November 1994 08:49:37 GMT",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_MSG(retry_parse_http_date(bad[i], strlen(bad[i]), &t) == -EINVAL,
			  "accepted bad date \"%s\"", bad[i]);
	}
	/* Bounded input: a valid date followed by bytes outside @len parses. */
	CHECK_EQ(retry_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMTxyz", 29, &t), 0);
	CHECK_EQ(retry_parse_http_date("Sun, 06 Nov 1994 08:49:37 GM", 28, &t), -EINVAL);
}

/* A tiny protobuf writer for building test messages. */
struct w {
	uint8_t b[256];
	size_t n;
};

static void w_varint(struct w *w, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;

		v >>= 7;
		w->b[w->n++] = c | (v ? 0x80 : 0);
	} while (v);
}

static void w_key(struct w *w, unsigned field, unsigned type)
{
	w_varint(w, (uint64_t)field << 3 | type);
}

static void w_bytes(struct w *w, unsigned field, const void *p, size_t n)
{
	w_key(w, field, 2);
	w_varint(w, n);
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void build_status(struct w *out, const char *type_url, int64_t secs, int32_t nanos,
			 bool with_delay)
{
	struct w dur = {0}, info = {0}, any = {0};

	if (secs) {
		w_key(&dur, 1, 0);
		w_varint(&dur, (uint64_t)secs);
	}
	if (nanos) {
		w_key(&dur, 2, 0);
		w_varint(&dur, (uint64_t)nanos);
	}
	if (with_delay)
		w_bytes(&info, 1, dur.b, dur.n);
	w_bytes(&any, 1, type_url, strlen(type_url));
	w_bytes(&any, 2, info.b, info.n);

	memset(out, 0, sizeof(*out));
	w_key(out, 1, 0);
	w_varint(out, 8);
	w_bytes(out, 2, "slow down", 9);
	/* an unrelated detail first, then RetryInfo */
	{
		struct w other = {0};

		w_bytes(&other, 1, "type.googleapis.com/google.rpc.DebugInfo", 40);
		w_bytes(&other, 2, "\x0a\x01x", 3);
		w_bytes(out, 3, other.b, other.n);
	}
	w_bytes(out, 3, any.b, any.n);
}

static void test_retry_info(void)
{
	struct w st;
	uint64_t ms = 0;

	build_status(&st, "type.googleapis.com/google.rpc.RetryInfo", 3, 500000000, true);
	CHECK_EQ(retry_grpc_retry_info(st.b, st.n, &ms), 0);
	CHECK_EQ(ms, 3500);

	build_status(&st, "type.googleapis.com/google.rpc.RetryInfo", 0, 0, false);
	ms = 99;
	CHECK_EQ(retry_grpc_retry_info(st.b, st.n, &ms), 0);
	CHECK_EQ(ms, 0);

	/* Another type whose name merely ends the same way is not RetryInfo. */
	build_status(&st, "type.googleapis.com/my.google.rpc.RetryInfoX", 3, 0, true);
	CHECK_EQ(retry_grpc_retry_info(st.b, st.n, &ms), -ENOENT);
	build_status(&st, "type.googleapis.com/xgoogle.rpc.RetryInfo", 3, 0, true);
	CHECK_EQ(retry_grpc_retry_info(st.b, st.n, &ms), -ENOENT);

	/* No details at all. */
	CHECK_EQ(retry_grpc_retry_info((const uint8_t *)"\x08\x08", 2, &ms), -ENOENT);
	CHECK_EQ(retry_grpc_retry_info(NULL, 0, &ms), -ENOENT);

	/* Truncated anywhere: an error, never a read past the end. */
	build_status(&st, "type.googleapis.com/google.rpc.RetryInfo", 3, 500000000, true);
	for (size_t n = 1; n < st.n; n++) {
		uint8_t *copy = malloc(n);
		int rc;

		memcpy(copy, st.b, n);
		rc = retry_grpc_retry_info(copy, n, &ms);
		CHECK(rc == -EBADMSG || rc == -ENOENT);
		free(copy);
	}
}

static void test_base64(void)
{
	uint8_t out[16];

	CHECK_EQ(text_base64_decode("aGVsbG8=", 8, out, sizeof(out)), 5);
	CHECK(memcmp(out, "hello", 5) == 0);
	CHECK_EQ(text_base64_decode("aGVsbG8", 7, out, sizeof(out)), 5);
	CHECK(memcmp(out, "hello", 5) == 0);
	CHECK_EQ(text_base64_decode("-_8", 3, out, sizeof(out)), 2);
	CHECK_EQ(out[0], 0xfb);
	CHECK_EQ(out[1], 0xff);
	CHECK_EQ(text_base64_decode("", 0, out, sizeof(out)), 0);
	CHECK_EQ(text_base64_decode("a", 1, out, sizeof(out)), -EINVAL);
	CHECK_EQ(text_base64_decode("a*bc", 4, out, sizeof(out)), -EINVAL);
	CHECK_EQ(text_base64_decode("aGVsbG8=", 8, out, 4), -EINVAL); /* would overflow */
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
	if (argc != 2) {
		fprintf(stderr, "usage: test_retry CASES.json\n");
		return 2;
	}
	suite_cases(argv[1]);
	test_backoff_bounds();
	check_case("Retry-After");
	test_retry_after();
	check_case("RetryInfo");
	test_retry_info();
	check_case("base64");
	test_base64();
	return check_summary();
}
