// SPDX-License-Identifier: MIT
/*
 * Unit tests of the retry policy (src/retry.c): statuses, Retry-After in both forms,
 * RetryInfo, backoff bounds and the elapsed-time budget. No network, no clock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"
#include "text.h"

static int failures;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                              \
		}                                                                                \
	} while (0)

#define CHECK_EQ(a, b)                                                                            \
	do {                                                                                      \
		long long a_ = (long long)(a), b_ = (long long)(b);                               \
		if (a_ != b_) {                                                                   \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, \
				#a, a_, b_);                                                      \
			failures++;                                                               \
		}                                                                                 \
	} while (0)

static void test_http_status(void)
{
	static const long retryable[] = {429, 502, 503, 504};
	static const long not_retryable[] = {200, 204, 301, 400, 401, 403, 404,
					     408, 413, 415, 500, 501, 505, 599};

	for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++)
		CHECK(retry_http_status(retryable[i]));
	for (size_t i = 0; i < sizeof(not_retryable) / sizeof(not_retryable[0]); i++)
		CHECK(!retry_http_status(not_retryable[i]));
}

static void test_grpc_code(void)
{
	for (int code = 0; code <= 16; code++) {
		bool want = code == 1 || code == 4 || code == 10 || code == 11 || code == 14 ||
			    code == 15;

		CHECK_EQ(retry_grpc_code(code, false), want);
		CHECK_EQ(retry_grpc_code(code, true), want || code == 8);
	}
	CHECK_EQ(retry_http_to_grpc(503), 14);
	CHECK_EQ(retry_http_to_grpc(429), 14);
	CHECK_EQ(retry_http_to_grpc(400), 13);
	CHECK_EQ(retry_http_to_grpc(401), 16);
	CHECK_EQ(retry_http_to_grpc(403), 7);
	CHECK_EQ(retry_http_to_grpc(404), 12);
	CHECK_EQ(retry_http_to_grpc(500), 2);
	CHECK(!retry_grpc_code(retry_http_to_grpc(500), false));
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
		if (retry_parse_http_date(bad[i], strlen(bad[i]), &t) != -EINVAL) {
			fprintf(stderr, "accepted bad date \"%s\"\n", bad[i]);
			failures++;
		}
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

static void test_backoff(void)
{
	struct retry_policy p;
	struct retry_state st;
	uint64_t wait, now = 1000000, total = 0;
	unsigned n = 0;

	retry_policy_init(&p, 300000);
	CHECK_EQ(p.initial_ms, 1000);
	CHECK_EQ(p.max_wait_ms, RETRY_MAX_WAIT_MS);

	/* First wait is the initial one; later ones stay within [initial, min(3*prev, max)]. */
	retry_state_start(&st, now);
	CHECK(retry_next(&p, &st, now, -1, 0xdeadbeef, &wait));
	CHECK_EQ(wait, 1000);
	CHECK_EQ(st.attempts, 2);
	for (uint64_t prev = wait, rnd = 12345; n < 400; n++) {
		uint64_t hi = prev * 3 > RETRY_MAX_WAIT_MS ? RETRY_MAX_WAIT_MS : prev * 3;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		now += wait;
		if (!retry_next(&p, &st, now, -1, rnd >> 11, &wait))
			break;
		/* At least the initial wait, unless cut to what remains of the budget. */
		CHECK(wait >= 1000 || now - st.first_ms + wait == p.max_elapsed_ms);
		CHECK(wait <= RETRY_MAX_WAIT_MS);
		if (now - st.first_ms + wait < p.max_elapsed_ms) /* not cut by the budget */
			CHECK(wait <= (hi > st.prev_wait_ms ? hi : st.prev_wait_ms));
		prev = st.prev_wait_ms;
		total += wait;
	}
	/* The budget ends it: 300 s of waits of at most the cap need that many retries. */
	CHECK(n >= 300000 / RETRY_MAX_WAIT_MS);
	CHECK(n < 400);
	CHECK(now - st.first_ms + 0 <= 300000 + RETRY_MAX_WAIT_MS);
	CHECK(!retry_next(&p, &st, st.first_ms + 300000, -1, 1, &wait));

	/* Largest random values still respect the cap. */
	retry_state_start(&st, 0);
	st.prev_wait_ms = RETRY_MAX_WAIT_MS - 1000;
	CHECK(retry_next(&p, &st, 10, -1, UINT64_MAX, &wait));
	CHECK(wait <= RETRY_MAX_WAIT_MS);
	CHECK(wait >= 1000);

	/* The server's hint is the wait, even past the per-wait cap... */
	retry_state_start(&st, 0);
	CHECK(retry_next(&p, &st, 0, 2000, 7, &wait));
	CHECK_EQ(wait, 2000);
	CHECK(retry_next(&p, &st, 0, 45000, 7, &wait));
	CHECK_EQ(wait, 45000);
	CHECK(retry_next(&p, &st, 0, 0, 7, &wait));
	CHECK_EQ(wait, 0);
	/* ...but never past what remains of the budget. */
	CHECK(retry_next(&p, &st, 290000, 45000, 7, &wait));
	CHECK_EQ(wait, 10000);
	CHECK(retry_next(&p, &st, 299999, -1, 7, &wait));
	CHECK_EQ(wait, 1);
	CHECK(!retry_next(&p, &st, 300000, 1000, 7, &wait));
	CHECK(!retry_next(&p, &st, 400000, -1, 7, &wait));

	/* A zero budget never retries. */
	retry_policy_init(&p, 0);
	retry_state_start(&st, 5);
	CHECK(!retry_next(&p, &st, 5, -1, 7, &wait));

	/* A clock that went backwards counts as no time elapsed. */
	retry_policy_init(&p, 5000);
	retry_state_start(&st, 1000);
	CHECK(retry_next(&p, &st, 10, -1, 7, &wait));
	CHECK_EQ(wait, 1000);
	(void)total;
}

int main(void)
{
	test_http_status();
	test_grpc_code();
	test_retry_after();
	test_retry_info();
	test_base64();
	test_backoff();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("retry: all checks passed\n");
	return 0;
}
