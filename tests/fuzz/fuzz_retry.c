// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the parsers and decisions of the retry policy (src/retry.h) that take
 * what a collector sends: Retry-After values, HTTP dates, the base64 grpc-status-details-bin
 * trailer and the google.rpc.RetryInfo inside it, and the schedule of waits.
 *
 * Input: byte 0 picks the mode (below), bytes 1-8 are a little-endian u64 (a clock, or a
 * budget), the rest is the value.
 *   0  retry_parse_retry_after   delay-seconds must match a reference; a date must agree
 *                                with retry_parse_http_date; 0 <= delay <= one day
 *   1  retry_parse_http_date     a parsed date printed back in each of the three forms
 *                                parses to the same time
 *   2  text_base64_decode       length and bytes agree with a reference and across buffer
 *                                sizes; the bytes then go to retry_grpc_retry_info
 *   3  retry_grpc_retry_info     0, -ENOENT or -EBADMSG; a delay of at most a day (and ms)
 *   4  retry_next                waits stay within the budget, follow the server's hint
 *                                when there is one, else stay within the backoff bounds
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_util.h"
#include "retry.h"
#include "text.h"

#define DAY_MS (86400ULL * 1000)
#define UNSET  0xdeadbeefdeadbeefULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

static void check_retry_after(const char *v, size_t len, time_t now)
{
	const char *p = v, *end = v ? v + len : v;
	uint64_t ms = UNSET, secs = 0;
	time_t when;
	int r = retry_parse_retry_after(v, len, now, &ms);

	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	if (r) {
		FUZZ_CHECK(ms == UNSET, "output on failure");
	} else {
		FUZZ_CHECK(ms <= DAY_MS && ms % 1000 == 0, "delay %llu ms", (unsigned long long)ms);
	}
	/* Reference: blanks around; digits only: seconds (capped at a day); else a date. */
	while (p < end && blank(*p))
		p++;
	while (end > p && (blank(end[-1]) || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (p == end) {
		FUZZ_CHECK(r == -EINVAL, "accepted a blank value");
		return;
	}
	if (digit(*p)) {
		const char *q;

		for (q = p; q < end && digit(*q); q++)
			if (secs <= 86400)
				secs = secs * 10 + (uint64_t)(*q - '0');
		if (q != end) {
			FUZZ_CHECK(r == -EINVAL, "accepted seconds followed by junk");
			return;
		}
		FUZZ_CHECK(r == 0 && ms == (secs > 86400 ? 86400 : secs) * 1000,
			   "%.*s seconds gave %llu ms", (int)(end - p), p, (unsigned long long)ms);
		return;
	}
	if (retry_parse_http_date(p, (size_t)(end - p), &when) < 0) {
		FUZZ_CHECK(r == -EINVAL, "accepted what is not a date");
		return;
	}
	FUZZ_CHECK(r == 0, "rejected a date");
	if (when <= now)
		FUZZ_CHECK(ms == 0, "a past date gave %llu ms", (unsigned long long)ms);
	else
		FUZZ_CHECK(ms == ((uint64_t)(when - now) > 86400 ? 86400 : (uint64_t)(when - now)) *
					   1000,
			   "date delay %llu ms", (unsigned long long)ms);
}

static void reparse(const char *fmt, const struct tm *tm, time_t t)
{
	char text[128];
	size_t n = strftime(text, sizeof(text), fmt, tm);
	time_t back = 0;

	FUZZ_CHECK(n > 0, "strftime");
	FUZZ_CHECK(retry_parse_http_date(text, n, &back) == 0 && back == t,
		   "\"%s\" does not parse back to %lld", text, (long long)t);
}

static void check_http_date(const char *v, size_t len)
{
	time_t t = (time_t)0x5a5a5a5a;
	struct tm tm;
	int r = retry_parse_http_date(v, len, &t);

	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	if (r) {
		FUZZ_CHECK(t == (time_t)0x5a5a5a5a, "output on failure");
		return;
	}
	FUZZ_CHECK(gmtime_r(&t, &tm) != NULL, "gmtime_r");
	if (tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
		return;				      /* four-digit years only */
	reparse("%a, %d %b %Y %H:%M:%S GMT", &tm, t); /* IMF-fixdate */
	reparse("%a %b %e %H:%M:%S %Y", &tm, t);      /* asctime */
	if (tm.tm_year + 1900 >= 1970 && tm.tm_year + 1900 <= 2069)
		reparse("%A, %d-%b-%y %H:%M:%S GMT", &tm, t); /* RFC 850, two-digit year */
}

static int b64v(char c)
{
	const char *std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p;

	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	p = c ? strchr(std, c) : NULL;
	return p ? (int)(p - std) : -1;
}

static void check_retry_info(const uint8_t *b, size_t n)
{
	uint64_t ms = UNSET, ms2 = UNSET;
	int r = retry_grpc_retry_info(b, n, &ms);

	FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EBADMSG, "returned %d", r);
	FUZZ_CHECK(r == 0 ? ms <= DAY_MS + 999 : ms == UNSET, "delay %llu ms",
		   (unsigned long long)ms);
	FUZZ_CHECK(retry_grpc_retry_info(b, n, &ms2) == r && ms2 == ms, "not deterministic");
}

static void check_base64(const char *v, size_t len, size_t small)
{
	uint8_t *out = malloc(len + 1), *ref = malloc(len + 1), *tiny = malloc(small ? small : 1);
	size_t k = len, nref = 0;
	uint32_t acc = 0;
	int bits = 0, n, n2;
	bool ok = true;

	if (!out || !ref || !tiny)
		goto out;
	/* Reference: trailing '=' dropped; every other character in either alphabet. */
	while (k && v[k - 1] == '=')
		k--;
	for (size_t i = 0; i < k && ok; i++) {
		int d = b64v(v[i]);

		if (d < 0) {
			ok = false;
			break;
		}
		acc = acc << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			ref[nref++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 6)
		ok = false; /* one dangling character */
	n = text_base64_decode(v, len, out, len + 1);
	if (!ok) {
		FUZZ_CHECK(n == -EINVAL, "decoded invalid base64 (%d)", n);
		goto out;
	}
	FUZZ_CHECK(n >= 0 && (size_t)n == nref && !memcmp(out, ref, nref),
		   "base64 differs from the reference (%d/%zu)", n, nref);
	n2 = text_base64_decode(v, len, tiny, small);
	if (nref <= small)
		FUZZ_CHECK(n2 == n && !memcmp(tiny, ref, nref), "small buffer");
	else
		FUZZ_CHECK(n2 == -EINVAL, "overran a %zu-byte buffer", small);
	check_retry_info(out, (size_t)n);
out:
	free(out);
	free(ref);
	free(tiny);
}

static void check_schedule(const uint8_t *d, size_t len, uint64_t budget)
{
	struct retry_policy p;
	struct retry_state st;
	uint64_t now = 1000000 + (budget >> 32), first = now, waited = 0;

	budget &= 0x7fffffff; /* config caps the budget at INT_MAX ms */
	retry_policy_init(&p, budget);
	retry_state_start(&st, now);
	for (size_t i = 0; i + 12 <= len; i += 12) {
		uint64_t rnd, wait = UNSET, elapsed, remaining, prev = st.prev_wait_ms;
		uint16_t took, h;
		int64_t hint;
		unsigned attempts = st.attempts;
		bool again;

		memcpy(&rnd, d + i, 8);
		memcpy(&took, d + i + 8, 2);
		memcpy(&h, d + i + 10, 2);
		hint = h == 0xffff ? -1 : (int64_t)h * 100; /* up to 6553 s */
		now += took;
		elapsed = now - first;
		again = retry_next(&p, &st, now, hint, rnd, &wait);
		FUZZ_CHECK(again == (elapsed < budget), "retry %d at %llu of %llu ms", again,
			   (unsigned long long)elapsed, (unsigned long long)budget);
		if (!again)
			break;
		remaining = budget - elapsed;
		FUZZ_CHECK(wait <= remaining, "waits %llu ms, %llu left", (unsigned long long)wait,
			   (unsigned long long)remaining);
		FUZZ_CHECK(st.attempts == attempts + 1, "attempts");
		if (hint >= 0) {
			FUZZ_CHECK(
				wait == ((uint64_t)hint < remaining ? (uint64_t)hint : remaining),
				"hint %lld ms, waits %llu", (long long)hint,
				(unsigned long long)wait);
		} else {
			uint64_t lo = p.initial_ms < remaining ? p.initial_ms : remaining;
			uint64_t hi = prev * 3 > p.initial_ms ? prev * 3 : p.initial_ms;

			FUZZ_CHECK(wait >= lo && wait <= p.max_wait_ms && wait <= hi,
				   "backoff %llu ms (previous %llu)", (unsigned long long)wait,
				   (unsigned long long)prev);
		}
		now += wait;
		waited += wait;
		FUZZ_CHECK(now - first <= budget, "past the budget");
	}
	FUZZ_CHECK(waited <= budget, "waited %llu of %llu ms", (unsigned long long)waited,
		   (unsigned long long)budget);
}

static void check_codes(uint64_t x)
{
	long status = (long)(x % 1000);
	int code = (int)((x >> 16) % 20);

	/* An HTTP status worth retrying maps to a gRPC code worth retrying, and back. */
	FUZZ_CHECK(!retry_http_status(status) || retry_grpc_code(retry_http_to_grpc(status), false),
		   "HTTP %ld", status);
	FUZZ_CHECK(!retry_grpc_code(code, false) || retry_grpc_code(code, true), "code %d", code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t clock;
	size_t len;
	char *v;

	if (size < 9)
		return 0;
	memcpy(&clock, data + 1, 8);
	len = size - 9;
	v = fuzz_dup(data + 9, len);
	if (len && !v)
		return 0;
	check_codes(clock);
	switch (data[0] % 5) {
	case 0:
		check_retry_after(v, len, (time_t)(clock % (1ULL << 34))); /* to the year 2514 */
		break;
	case 1:
		check_http_date(v, len);
		break;
	case 2:
		check_base64(v, len, clock % 64);
		break;
	case 3:
		check_retry_info((const uint8_t *)v, len);
		break;
	default:
		check_schedule((const uint8_t *)v, len, clock);
		break;
	}
	free(v);
	return 0;
}
