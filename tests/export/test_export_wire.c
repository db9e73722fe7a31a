// SPDX-License-Identifier: MIT
/*
 * Data-driven unit tests of what the exporter sends and what it makes of the answers, no
 * network and no clock:
 *   test_export_wire wire tests/data/export_wire/cases.json
 *       "request": the body export_wire_request() builds (gRPC frame, gzip level 1);
 *       "retry_after": export_wire_retry_after() on one value at a given time;
 *       "answer": header lines, a body, an HTTP status and the batch's size ("spans", 1000
 *       unless told) fed to export_wire, and the verdict (outcome, hint, partial success and
 *       whether its count was impossible, the message the exporter logs);
 *   test_export_wire url tests/data/export_url/cases.json
 *       endpoint_url_parse(): the request URL, its display form, TLS, or the error (which must
 *       not contain "error_lacks", a password say), "path_ignored" (gRPC) and "signal_doubled";
 *       the case may say "protocol": "grpc", "append": false, "insecure": true; "redact":
 *       export_wire_redact_url().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "../check.h"
#include "../cases.h"
#include "endpoint.h"
#include "export_http.h"
#include "export_wire.h"

#define DEFAULT_NOW 1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */

/* ---- requests ------------------------------------------------------------------------- */

static int gunzip_all(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	rc = inflate(&z, Z_FINISH);
	*len = z.total_out;
	inflateEnd(&z);
	return rc == Z_STREAM_END && z.avail_in == 0 ? 0 : -EBADMSG;
}

static void check_gzip(const cJSON *expect, bool grpc, const uint8_t *req, size_t len,
		       const uint8_t *plain, size_t plain_len)
{
	size_t off = grpc ? 5 : 0, out_len = 0;
	uint8_t *out = malloc(plain_len + 1);

	if (!CHECK(out && len >= off + 18))
		goto cleanup;
	if (grpc) {
		size_t mlen =
			(size_t)req[1] << 24 | (size_t)req[2] << 16 | (size_t)req[3] << 8 | req[4];

		CHECK_EQ(req[0], cases_int(expect, "grpc_flag", 1));
		CHECK_EQ(mlen, len - off);
	}
	CHECK_MSG(req[off] == 0x1f && req[off + 1] == 0x8b && req[off + 2] == 8,
		  "not a gzip stream");
	CHECK_EQ(req[off + 8], cases_int(expect, "xfl", 4)); /* 4: the fastest level */
	CHECK_EQ(gunzip_all(req + off, len - off, out, plain_len + 1, &out_len), 0);
	CHECK_EQ(out_len, plain_len);
	CHECK(out_len != plain_len || !plain_len || !memcmp(out, plain, plain_len));
cleanup:
	free(out);
}

static void run_request(const cJSON *c)
{
	const cJSON *rq = cases_get(c, "request"), *expect = cases_get(c, "expect");
	bool grpc = !strcmp(cases_str(rq, "protocol", "http"), "grpc");
	bool gzip = cases_bool(rq, "gzip", false);
	struct export_wire *w = export_wire__new(grpc, gzip);
	struct buf enc = BUF_INIT(1 << 20), body = BUF_INIT(1 << 20);
	size_t n = 0, want_len = 0, first_len = 0;
	uint8_t *in = cases_hex(rq, "input_hex", &n),
		*want = cases_hex(expect, "body_hex", &want_len);
	uint8_t *first = NULL;
	const uint8_t *req = NULL;
	size_t req_len = 0;

	if (!CHECK(w && in) || !CHECK_EQ(buf_add(&enc, in, n), 0))
		goto cleanup;
	/* Twice: the gzip stream is reused from batch to batch and must give the same bytes. */
	for (int round = 0; round < 2; round++) {
		if (!CHECK_EQ(export_wire_request(w, &enc, &body, &req, &req_len), 0))
			goto cleanup;
		if (cases_bool(expect, "same_buffer", false))
			CHECK_MSG(req == enc.data && req_len == enc.len, "not sent as encoded");
		if (want)
			CHECK_MSG(req_len == want_len && !memcmp(req, want, want_len),
				  "body differs (%zu bytes, expected %zu)", req_len, want_len);
		if (cases_bool(expect, "gzip", false))
			check_gzip(expect, grpc, req, req_len, in, n);
		if (round == 0) {
			first = malloc(req_len + 1);
			if (!CHECK(first))
				goto cleanup;
			memcpy(first, req, req_len);
			first_len = req_len;
		} else {
			CHECK_MSG(req_len == first_len && !memcmp(req, first, req_len),
				  "a second batch is framed differently");
		}
	}
cleanup:
	free(first);
	free(want);
	free(in);
	buf_free(&body);
	buf_free(&enc);
	export_wire__free(w);
}

/* ---- Retry-After ---------------------------------------------------------------------- */

static void run_retry_after(const cJSON *c)
{
	const char *value = cases_str(c, "retry_after", "");
	const cJSON *want = cases_get(cases_get(c, "expect"), "ms");
	size_t len = strlen(value);
	char *copy = malloc(len ? len : 1); /* exact size: ASan sees a read past the end */
	uint64_t ms = 12345;
	int rc;

	if (!CHECK(copy))
		return;
	memcpy(copy, value, len);
	rc = export_wire_retry_after(copy, len, cases_int(c, "now", 0), &ms);
	if (cJSON_IsNumber(want)) {
		CHECK_EQ(rc, 0);
		CHECK_EQ(ms, (long long)want->valuedouble);
	} else {
		CHECK_EQ(rc, -EINVAL);
		CHECK_EQ(ms, 12345); /* untouched */
	}
	free(copy);
}

/* ---- answers -------------------------------------------------------------------------- */

static const char *const outcome_names[] = {"success", "retry", "refused", "unconfirmed"};

/* Header lines as curl hands them over: CR LF ended, not NUL-terminated. */
static void feed_headers(struct export_wire_answer *a, const cJSON *headers)
{
	const cJSON *h;

	cJSON_ArrayForEach(h, headers)
	{
		size_t n = strlen(h->valuestring);
		bool crlf = n && h->valuestring[n - 1] == '\n';
		char *line = malloc(n + 2);

		if (!CHECK(line))
			return;
		memcpy(line, h->valuestring, n);
		if (!crlf) {
			line[n++] = '\r';
			line[n++] = '\n';
		}
		export_wire_header(a, line, n);
		free(line);
	}
}

/* The body, in pieces as a transfer delivers it: "body" (times "body_times") or "body_hex". */
static void feed_body(struct export_wire_answer *a, const cJSON *ans)
{
	const char *text = cases_str(ans, "body", NULL);
	long long times = cases_int(ans, "body_times", 1);
	size_t n = 0;
	uint8_t *bin = cases_hex(ans, "body_hex", &n);

	if (text) {
		for (long long i = 0; i < times; i++)
			export_wire_body(a, text, strlen(text));
	} else if (bin) {
		for (size_t off = 0; off < n; off += 7)
			export_wire_body(a, bin + off, n - off < 7 ? n - off : 7);
	}
	free(bin);
}

static void run_answer(const cJSON *c)
{
	const cJSON *ans = cases_get(c, "answer"), *expect = cases_get(c, "expect");
	bool grpc = !strcmp(cases_str(ans, "protocol", "http"), "grpc");
	const char *outcome = cases_str(expect, "outcome", "?");
	struct export_wire_answer a;
	struct export_wire_verdict v;

	export_wire_answer_init(&a);
	feed_headers(&a, cases_get(ans, "headers"));
	feed_body(&a, ans);
	memset(&v, 0x5a, sizeof(v));
	export_wire_verdict(&a, grpc, (long)cases_int(ans, "status", 0),
			    cases_bool(ans, "http2", grpc), (size_t)cases_int(ans, "spans", 1000),
			    cases_int(ans, "now", DEFAULT_NOW), &v);
	CHECK_STR((unsigned)v.outcome <= EXPORT_WIRE_UNCONFIRMED ? outcome_names[v.outcome]
								 : "out of range",
		  outcome);
	CHECK_EQ(v.hint_ms, cases_int(expect, "hint_ms", -1));
	CHECK_EQ(v.rejected, cases_int(expect, "rejected", 0));
	CHECK_EQ(v.bad_count, cases_has(expect, "claimed"));
	if (cases_has(expect, "claimed"))
		CHECK_EQ(v.claimed, cases_int(expect, "claimed", 0));
	CHECK_STR(v.message, cases_str(expect, "message", ""));
	if (cases_has(expect, "location"))
		CHECK_STR(a.location, cases_str(expect, "location", ""));
	if (cases_has(expect, "body_len"))
		CHECK_EQ(a.body.len, cases_int(expect, "body_len", 0));
	export_wire_answer_release(&a);
}

static void run_wire(cJSON *c)
{
	if (cases_has(c, "request"))
		run_request(c);
	else if (cases_has(c, "retry_after"))
		run_retry_after(c);
	else if (cases_has(c, "answer"))
		run_answer(c);
	else
		CHECK_FAIL("a case of no known kind");
}

/* ---- URLs ----------------------------------------------------------------------------- */

/* export_wire_redact_url() on "redact", into a buffer of "size" bytes (default 256). */
static void run_redact(const cJSON *c)
{
	const char *url = cases_str(c, "redact", "");
	size_t n = strlen(url), size = (size_t)cases_int(c, "size", 256);
	char *copy = malloc(n ? n : 1), *out = malloc(size + 1);

	if (!CHECK(copy && out))
		goto cleanup;
	memcpy(copy, url, n); /* exact size, no NUL: ASan sees a read past the end */
	out[size] = 'x';
	export_wire_redact_url(copy, n, out, size);
	CHECK_STR(out, cases_str(cases_get(c, "expect"), "shown", "?"));
	CHECK_MSG(out[size] == 'x', "written past the buffer");
cleanup:
	free(out);
	free(copy);
}

static void run_url(cJSON *c)
{
	const cJSON *expect = cases_get(c, "expect");
	const char *want_err = cases_str(expect, "error", NULL);
	const char *lacks = cases_str(expect, "error_lacks", NULL);
	struct endpoint_url u;
	char err[512];
	int rc;

	if (cases_has(c, "redact")) {
		run_redact(c);
		return;
	}
	rc = endpoint_url_parse(cases_str(c, "endpoint", ""),
				!strcmp(cases_str(c, "protocol", "http"), "grpc"),
				cases_bool(c, "append", true), cases_bool(c, "insecure", false), &u,
				err, sizeof(err));
	if (want_err) {
		CHECK_EQ(rc, -EINVAL);
		CHECK_MSG(strstr(err, want_err), "error \"%s\" does not say \"%s\"", err, want_err);
		CHECK_MSG(!lacks || !strstr(err, lacks), "error \"%s\" says \"%s\"", err, lacks);
		CHECK(!u.url && !u.display);
	} else if (CHECK_MSG(rc == 0, "failed: %s", err)) {
		CHECK_STR(u.url, cases_str(expect, "url", ""));
		CHECK_STR(u.display, cases_str(expect, "display", ""));
		CHECK_EQ(u.tls, cases_bool(expect, "tls", false));
		CHECK_EQ(u.path_ignored, cases_bool(expect, "path_ignored", false));
		CHECK_EQ(u.signal_doubled, cases_bool(expect, "signal_doubled", false));
	}
	endpoint_url_release(&u);
}

int main(int argc, char **argv)
{
	const char *suite = argc > 2 ? argv[1] : "";
	bool all_fail = argc > 3 && !strcmp(argv[3], "--all-fail");

	if (!strcmp(suite, "wire"))
		cases_run(argv[2], NULL, all_fail, run_wire);
	else if (!strcmp(suite, "url"))
		cases_run(argv[2], NULL, all_fail, run_url);
	else {
		fprintf(stderr, "usage: test_export_wire wire|url CASES.json [--all-fail]\n");
		return 2;
	}
	return check_summary();
}
