// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the retry policy (src/retry.h) and what feeds it from a collector: the
 * Retry-After path through curl (export_wire_retry_after, curl_getdate), the base64
 * grpc-status-details-bin trailer (text_base64_decode) and the google.rpc.RetryInfo inside
 * it (otlp_decode_retry_info, then export_wire), and the schedule of waits.
 *
 * Input: byte 0 picks the mode (below), bytes 1-8 are a little-endian u64 (a clock, or a
 * budget), the rest is the value.
 *   0  export_wire_retry_after   0 or -EINVAL, nothing written on failure; digits must be
 *                                seconds (capped at a day), anything else starting with a
 *                                digit junk; a date's validity does not depend on the clock,
 *                                and its wait shrinks second by second as the clock moves on
 *   1  export_wire_retry_after   the clock's time printed in each of the three HTTP date
 *                                forms (IMF-fixdate, RFC 850, asctime), a value-given number
 *                                of seconds ahead, reads back as that wait
 *   2  text_base64_decode        length and bytes agree with a reference and across buffer
 *                                sizes; the bytes then go to the RetryInfo checks (mode 3)
 *   3  otlp_decode_retry_info    0, -ENOENT or -EBADMSG, outputs untouched unless 0,
 *                                deterministic; as a grpc-status-details-bin header,
 *                                export_wire has a hint exactly when it decodes, at most a day
 *   4  retry_next                waits stay within the budget, within the backoff bounds,
 *                                or the server's hint when that is longer (a hint never
 *                                shortens a wait: no storm on "Retry-After: 0")
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_wire.h"
#include "fuzz_util.h"
#include "otlp.h"
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

static void check_retry_after(const char *v, size_t len, int64_t now)
{
	const char *p = v, *end = v + len;
	uint64_t ms = UNSET, later = UNSET, secs = 0;
	int r = export_wire_retry_after(v, len, now, &ms);

	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	FUZZ_CHECK(r ? ms == UNSET : ms <= DAY_MS && ms % 1000 == 0, "delay %llu ms",
		   (unsigned long long)ms);
	/* Reference: blanks around; starting with a digit: digits only, seconds. */
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
		FUZZ_CHECK(q == end ? r == 0 && ms == (secs > 86400 ? 86400 : secs) * 1000
				    : r == -EINVAL,
			   "\"%.*s\" gave %d, %llu ms", (int)(end - p), p, r,
			   (unsigned long long)ms);
		return;
	}
	/* A date: valid or not whatever the clock says; one second later, a second less. */
	if (now == INT64_MAX)
		return;
	FUZZ_CHECK(export_wire_retry_after(v, len, now + 1, &later) == r, "clock-dependent");
	if (r == 0)
		FUZZ_CHECK(later <= ms && (ms - later == 1000 || later == 0 || ms == DAY_MS),
			   "%llu ms, a second later %llu ms", (unsigned long long)ms,
			   (unsigned long long)later);
}

static void reread(const char *fmt, const struct tm *tm, int64_t now, uint64_t want)
{
	char text[128];
	size_t n = strftime(text, sizeof(text), fmt, tm);
	uint64_t ms = UNSET;

	FUZZ_CHECK(n > 0, "strftime");
	FUZZ_CHECK(export_wire_retry_after(text, n, now, &ms) == 0 && ms == want,
		   "\"%s\" at %lld gave %llu ms, expected %llu", text, (long long)now,
		   (unsigned long long)ms, (unsigned long long)want);
}

/* @t printed in the three HTTP forms, read @ahead seconds before it. */
static void check_http_date(uint64_t clock, const uint8_t *v, size_t len)
{
	/* 1970 to 9999 (curl's dates end there), and how far ahead: up to two days */
	time_t t = (time_t)(clock % 253402300800ULL);
	uint32_t ahead = 0;
	uint64_t want;
	struct tm tm;

	memcpy(&ahead, v, len < 4 ? len : 4);
	ahead %= 2 * 86400;
	want = (ahead > 86400 ? 86400 : ahead) * 1000ULL;
	FUZZ_CHECK(gmtime_r(&t, &tm) != NULL, "gmtime_r");
	reread("%a, %d %b %Y %H:%M:%S GMT", &tm, (int64_t)t - ahead, want); /* IMF-fixdate */
	reread("%a %b %e %H:%M:%S %Y", &tm, (int64_t)t - ahead, want);	    /* asctime */
	/* RFC 850's two-digit years: curl reads 71-99 as 19xx, 00-70 as 20xx */
	if (tm.tm_year + 1900 >= 1971 && tm.tm_year + 1900 <= 2070)
		reread("%A, %d-%b-%y %H:%M:%S GMT", &tm, (int64_t)t - ahead, want); /* RFC 850 */
}

/* RetryInfo in a google.rpc.Status, decoded directly and as export_wire's trailer. */
static void check_retry_info(const uint8_t *b, size_t n)
{
	int64_t secs = (int64_t)UNSET, secs2 = (int64_t)UNSET;
	int32_t nanos = 0x5a5a5a5a, nanos2 = 0x5a5a5a5a;
	int r = otlp_decode_retry_info(b, n, &secs, &nanos);
	struct export_wire_answer a;
	char *line;
	size_t k;

	FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EBADMSG, "returned %d", r);
	FUZZ_CHECK(r == 0 || (secs == (int64_t)UNSET && nanos == 0x5a5a5a5a), "output on failure");
	FUZZ_CHECK(otlp_decode_retry_info(b, n, &secs2, &nanos2) == r && secs2 == secs &&
			   nanos2 == nanos,
		   "not deterministic");
	/* The same bytes as a grpc-status-details-bin trailer (standard base64, padded). */
	if (n > 3000)
		return; /* beyond what export_wire decodes */
	line = malloc(32 + 4 * (n / 3 + 1));
	if (!line)
		return;
	k = (size_t)sprintf(line, "grpc-status-details-bin: ");
	for (size_t i = 0; i < n; i += 3) {
		static const char al[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) |
			     (i + 2 < n ? b[i + 2] : 0);

		line[k++] = al[x >> 18];
		line[k++] = al[(x >> 12) & 63];
		line[k++] = i + 1 < n ? al[(x >> 6) & 63] : '=';
		line[k++] = i + 2 < n ? al[x & 63] : '=';
	}
	line[k++] = '\r';
	line[k++] = '\n';
	export_wire_answer_init(&a);
	export_wire_header(&a, line, k);
	FUZZ_CHECK(a.has_retry_info == (r == 0), "RetryInfo %d, decoded %d", a.has_retry_info, r);
	FUZZ_CHECK(a.retry_info_ms <= DAY_MS + 999, "delay %llu ms",
		   (unsigned long long)a.retry_info_ms);
	if (r == 0 && secs >= 0 && nanos >= 0 && secs < 86400)
		FUZZ_CHECK(a.retry_info_ms ==
				   (uint64_t)secs * 1000 + (uint64_t)nanos / 1000000 % 1000,
			   "%lld s %d ns gave %llu ms", (long long)secs, nanos,
			   (unsigned long long)a.retry_info_ms);
	export_wire_answer_release(&a);
	free(line);
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
		{
			uint64_t lo = p.initial_ms < remaining ? p.initial_ms : remaining;
			uint64_t hi = prev * 3 > p.initial_ms ? prev * 3 : p.initial_ms;
			bool backoff = wait >= lo && wait <= p.max_wait_ms && wait <= hi;

			if (hint >= 0 && (uint64_t)hint > (hi < p.max_wait_ms ? hi : p.max_wait_ms))
				FUZZ_CHECK(wait == ((uint64_t)hint < remaining ? (uint64_t)hint
									       : remaining),
					   "hint %lld ms past the backoff, waits %llu",
					   (long long)hint, (unsigned long long)wait);
			else if (hint >= 0)
				FUZZ_CHECK(
					(backoff && wait >= (uint64_t)hint) ||
						wait == ((uint64_t)hint < remaining ? (uint64_t)hint
										    : remaining),
					"hint %lld ms, waits %llu (previous %llu)", (long long)hint,
					(unsigned long long)wait, (unsigned long long)prev);
			else
				FUZZ_CHECK(backoff, "backoff %llu ms (previous %llu)",
					   (unsigned long long)wait, (unsigned long long)prev);
			FUZZ_CHECK(wait >= lo, "waits %llu ms, less than the initial %llu",
				   (unsigned long long)wait, (unsigned long long)lo);
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
	if (!v)
		return 0;
	check_codes(clock);
	switch (data[0] % 5) {
	case 0:
		check_retry_after(v, len, (int64_t)clock);
		break;
	case 1:
		check_http_date(clock, (const uint8_t *)v, len);
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
