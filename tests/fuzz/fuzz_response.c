// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: export_wire, what the exporter makes of a collector's answer (header
 * lines, a body, an HTTP status and version -> a verdict) and how it frames a request.
 *
 * Input: byte 0 flags (bit 0 gRPC, bit 1 HTTP/2, bit 2 gzip the request, bits 3-7 the size of
 * the pieces the body arrives in), bytes 1-2 the HTTP status (little-endian, mod 1000),
 * bytes 3-10 the wall clock (seconds; its low 16 bits are also the batch's span count), then
 * header lines ending in '\n' up to an empty line, then the body.
 *
 * Invariants checked:
 *   - the verdict is one of the four; its message is NUL-terminated, printable ASCII, and
 *     says "HTTP <status>" or "gRPC status <code>" as the answer was; only a success has a
 *     partial-success count, from 0 to the batch's size (an impossible count flagged and
 *     clamped), only a retry has a hint;
 *   - the outcome follows the policy (retry.h) for the status or grpc-status seen, a 3xx is
 *     refused as a redirect, and a hint is exactly the Retry-After (HTTP) or RetryInfo (gRPC)
 *     delay, at most a day;
 *   - an OTLP/HTTP protobuf success reports what otlp_decode_response says of the body,
 *     unconfirmed exactly when it cannot decode it (or the body is an HTML page); so does a
 *     gRPC success of its message, and a gRPC body whose frame is cut short is unconfirmed;
 *   - the body redacted as a URL is printable, hides userinfo as "***@" and is the URL
 *     itself when there is nothing to hide;
 *   - the body is kept up to its cap, whatever the pieces; feeding the answer again after a
 *     junk answer and a status line gives the same verdict (a status line forgets);
 *   - a request framed (gRPC and/or gzip) reads back as the bytes given, and a gRPC success
 *     carrying that frame as its message decodes like the message itself;
 *   - no leaks, no reads past the exact-size copies.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "export_wire.h"
#include "fuzz_util.h"
#include "otlp.h"
#include "retry.h"

#define HINT_MAX ((int64_t)RETRY_HINT_MAX_S * 1000 + 999)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	bool grpc, http2, gzip;
	size_t piece;
	size_t spans; /* in the batch answered */
	long status;
	int64_t now;
	const uint8_t *headers;
	size_t headers_len;
	const uint8_t *body;
	size_t body_len;
};

/* Each line (with its '\n') in an exact-size copy, as curl hands them over. */
static void feed_headers(struct export_wire_answer *a, const uint8_t *h, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (h[i] != '\n' && i + 1 < n)
			continue;
		char *line = fuzz_dup(h + start, i + 1 - start);

		if (line)
			export_wire_header(a, line, i + 1 - start);
		free(line);
		start = i + 1;
	}
}

static void feed_body(struct export_wire_answer *a, const struct input *in, size_t piece)
{
	for (size_t off = 0; off < in->body_len; off += piece) {
		size_t k = in->body_len - off < piece ? in->body_len - off : piece;
		char *copy = fuzz_dup(in->body + off, k);

		if (copy)
			export_wire_body(a, copy, k);
		free(copy);
	}
}

static void verdict_of(const struct input *in, struct export_wire_answer *a, size_t piece,
		       struct export_wire_verdict *v)
{
	feed_headers(a, in->headers, in->headers_len);
	feed_body(a, in, piece);
	export_wire_verdict(a, in->grpc, in->status, in->http2, in->spans, in->now, v);
}

/* @rejected as a verdict on a batch of @spans must count it: clamped, flagged if it was off. */
static void check_count(const struct input *in, const struct export_wire_verdict *v,
			int64_t rejected)
{
	bool bad = rejected < 0 || (uint64_t)rejected > in->spans;
	int64_t want = rejected < 0 ? 0 : bad ? (int64_t)in->spans : rejected;

	FUZZ_CHECK(v->rejected == want && v->bad_count == bad && (!bad || v->claimed == rejected),
		   "count %lld of %zu spans gave %lld (bad %d, claimed %lld)", (long long)rejected,
		   in->spans, (long long)v->rejected, v->bad_count, (long long)v->claimed);
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void check_message(const struct export_wire_verdict *v)
{
	const char *end = memchr(v->message, '\0', sizeof(v->message));

	FUZZ_CHECK(end, "message not NUL-terminated");
	for (const char *p = v->message; p < end; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "unprintable byte 0x%02x in \"%s\"",
			   (unsigned char)*p, v->message);
}

static void check_http(const struct input *in, const struct export_wire_answer *a,
		       const struct export_wire_verdict *v)
{
	char head[64];

	if (in->status >= 200 && in->status < 300) {
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_SUCCESS ||
				   v->outcome == EXPORT_WIRE_UNCONFIRMED,
			   "HTTP %ld neither a success nor unconfirmed", in->status);
		if (!a->body.len)
			FUZZ_CHECK(v->outcome == EXPORT_WIRE_SUCCESS, "an empty body unconfirmed");
		if (!strncasecmp(a->content_type, "text/html", 9) && a->body.len)
			FUZZ_CHECK(v->outcome == EXPORT_WIRE_UNCONFIRMED, "an HTML page a success");
		else if (!a->json && a->body.len && a->body.len < EXPORT_WIRE_BODY_CAP) {
			int64_t rejected = -7;
			char msg[EXPORT_WIRE_TEXT_CAP];
			int rc = otlp_decode_response(a->body.data, a->body.len, &rejected, msg,
						      sizeof(msg));

			FUZZ_CHECK((v->outcome == EXPORT_WIRE_UNCONFIRMED) == (rc < 0),
				   "outcome %d, decoding said %d", v->outcome, rc);
			if (rc == 0)
				check_count(in, v, rejected);
		}
		return;
	}
	if (in->status >= 300 && in->status < 400) {
		snprintf(head, sizeof(head), "HTTP %ld redirect, not followed", in->status);
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_REFUSED && starts(v->message, head),
			   "a redirect gave %d \"%s\"", v->outcome, v->message);
		return;
	}
	snprintf(head, sizeof(head), "HTTP %ld", in->status);
	FUZZ_CHECK(starts(v->message, head), "\"%s\" for HTTP %ld", v->message, in->status);
	FUZZ_CHECK(v->outcome == (retry_http_status(in->status) ? EXPORT_WIRE_RETRY
								: EXPORT_WIRE_REFUSED),
		   "HTTP %ld gave outcome %d", in->status, v->outcome);
	if (v->outcome == EXPORT_WIRE_RETRY && a->has_retry_after)
		FUZZ_CHECK(a->retry_after_date ? v->hint_ms >= 0
					       : v->hint_ms == a->retry_after * 1000,
			   "hint %lld for a Retry-After of %lld", (long long)v->hint_ms,
			   (long long)a->retry_after);
	else if (v->outcome == EXPORT_WIRE_RETRY)
		FUZZ_CHECK(v->hint_ms == -1, "hint %lld without Retry-After",
			   (long long)v->hint_ms);
	if (a->has_retry_after && !a->retry_after_date)
		FUZZ_CHECK(a->retry_after >= 0 && a->retry_after <= RETRY_HINT_MAX_S,
			   "Retry-After %lld s", (long long)a->retry_after);
}

/*
 * A gRPC success: a frame cut short is unconfirmed; a whole uncompressed one decodes as its
 * message does.
 */
static void check_grpc_frame(const struct input *in, const struct export_wire_answer *a,
			     const struct export_wire_verdict *v)
{
	const uint8_t *d = a->body.data;
	size_t n = a->body.len, mlen;
	int64_t rejected = -7;
	char msg[EXPORT_WIRE_TEXT_CAP];
	int rc;

	if (!n)
		return;
	mlen = n < 5 ? SIZE_MAX
		     : (size_t)d[1] << 24 | (size_t)d[2] << 16 | (size_t)d[3] << 8 | d[4];
	if (n < 5 || mlen > n - 5) {
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_UNCONFIRMED,
			   "a %zu-byte body framing %zu bytes decoded", n, mlen);
		return;
	}
	if (d[0] == 1)
		return; /* compressed: check_own_frame reads those back */
	rc = otlp_decode_response(d + 5, mlen, &rejected, msg, sizeof(msg));
	FUZZ_CHECK((v->outcome == EXPORT_WIRE_UNCONFIRMED) == (rc < 0),
		   "gRPC outcome %d, decoding said %d", v->outcome, rc);
	if (rc == 0)
		check_count(in, v, rejected);
}

static void check_grpc(const struct input *in, const struct export_wire_answer *a,
		       const struct export_wire_verdict *v)
{
	int code = a->grpc_status;
	char head[64];

	if (!in->http2) {
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_REFUSED, "gRPC over HTTP/1 not refused");
		return;
	}
	if (code == 0) {
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_SUCCESS ||
				   v->outcome == EXPORT_WIRE_UNCONFIRMED,
			   "grpc-status 0 neither a success nor unconfirmed");
		check_grpc_frame(in, a, v);
		return;
	}
	FUZZ_CHECK(v->outcome != EXPORT_WIRE_SUCCESS && v->outcome != EXPORT_WIRE_UNCONFIRMED,
		   "grpc-status %d a success", code);
	if (code < 0 && in->status >= 300 && in->status < 400) {
		FUZZ_CHECK(v->outcome == EXPORT_WIRE_REFUSED &&
				   strstr(v->message, "redirect, not followed"),
			   "a gRPC redirect gave %d \"%s\"", v->outcome, v->message);
		return;
	}
	if (code > 0) {
		snprintf(head, sizeof(head), "gRPC status %d ", code);
		FUZZ_CHECK(starts(v->message, head), "\"%s\" for grpc-status %d", v->message, code);
		FUZZ_CHECK((v->outcome == EXPORT_WIRE_RETRY) ==
				   retry_grpc_code(code, a->has_retry_info),
			   "grpc-status %d (RetryInfo %d) gave outcome %d", code, a->has_retry_info,
			   v->outcome);
	} else {
		int mapped = in->status == 200 ? 13 : retry_http_to_grpc(in->status);

		snprintf(head, sizeof(head), "HTTP %ld without", in->status);
		FUZZ_CHECK(starts(v->message, head), "\"%s\"", v->message);
		FUZZ_CHECK((v->outcome == EXPORT_WIRE_RETRY) == retry_grpc_code(mapped, false),
			   "HTTP %ld without grpc-status gave outcome %d", in->status, v->outcome);
	}
	if (v->outcome == EXPORT_WIRE_RETRY)
		FUZZ_CHECK(v->hint_ms == (a->has_retry_info ? (int64_t)a->retry_info_ms : -1),
			   "hint %lld, RetryInfo %d %llu", (long long)v->hint_ms, a->has_retry_info,
			   (unsigned long long)a->retry_info_ms);
	FUZZ_CHECK(memchr(a->grpc_message, '\0', sizeof(a->grpc_message)), "grpc-message");
}

static void check_verdict(const struct input *in, const struct export_wire_answer *a,
			  const struct export_wire_verdict *v)
{
	FUZZ_CHECK(v->outcome == EXPORT_WIRE_SUCCESS || v->outcome == EXPORT_WIRE_RETRY ||
			   v->outcome == EXPORT_WIRE_REFUSED ||
			   v->outcome == EXPORT_WIRE_UNCONFIRMED,
		   "outcome %d", v->outcome);
	check_message(v);
	FUZZ_CHECK(v->outcome == EXPORT_WIRE_SUCCESS || (v->rejected == 0 && !v->bad_count),
		   "partial success on a failure");
	FUZZ_CHECK(v->rejected >= 0 && (uint64_t)v->rejected <= in->spans,
		   "%lld rejected of %zu spans", (long long)v->rejected, in->spans);
	FUZZ_CHECK(v->outcome != EXPORT_WIRE_UNCONFIRMED || v->message[0],
		   "an unconfirmed answer says nothing");
	FUZZ_CHECK(v->outcome == EXPORT_WIRE_RETRY ? v->hint_ms >= -1 && v->hint_ms <= HINT_MAX
						   : v->hint_ms == -1,
		   "hint %lld ms", (long long)v->hint_ms);
	FUZZ_CHECK(a->body.len <= EXPORT_WIRE_BODY_CAP, "body %zu bytes", a->body.len);
	if (in->grpc)
		check_grpc(in, a, v);
	else
		check_http(in, a, v);
}

static bool same_verdict(const struct export_wire_verdict *x, const struct export_wire_verdict *y)
{
	return x->outcome == y->outcome && x->hint_ms == y->hint_ms && x->rejected == y->rejected &&
	       x->bad_count == y->bad_count && x->claimed == y->claimed &&
	       !strcmp(x->message, y->message);
}

/* A status line forgets: a junk answer first, then the real one, gives the same verdict. */
static void check_reset(const struct input *in, const struct export_wire_verdict *v)
{
	static const char junk[] = "retry-after: 3\r\ngrpc-status: 8\r\ncontent-type: "
				   "application/json\r\ngrpc-encoding: gzip\r\ngrpc-message: x\r\n";
	struct export_wire_answer a;
	struct export_wire_verdict v2;

	export_wire_answer_init(&a);
	feed_headers(&a, (const uint8_t *)junk, sizeof(junk) - 1);
	export_wire_body(&a, "junk", 4);
	FUZZ_CHECK(export_wire_header(&a, "HTTP/1.1 200 OK\r\n", 17), "a status line ignored");
	verdict_of(in, &a, 1 + in->piece * 3, &v2);
	FUZZ_CHECK(same_verdict(v, &v2), "a previous answer leaked into the verdict");
	export_wire_answer_release(&a);
}

/* Inflate a whole gzip stream; true when it is one and gives exactly @want. */
static bool gunzips_to(const uint8_t *gz, size_t n, const uint8_t *want, size_t want_len)
{
	uint8_t *out = malloc(want_len + 1);
	z_stream z;
	bool ok = false;

	memset(&z, 0, sizeof(z));
	if (!out || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		goto cleanup;
	z.next_in = (Bytef *)gz;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)(want_len + 1);
	ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.avail_in == 0 && z.total_out == want_len &&
	     (!want_len || !memcmp(out, want, want_len));
	inflateEnd(&z);
cleanup:
	free(out);
	return ok;
}

/* A gRPC success whose message is our own frame decodes like the message itself. */
static void check_own_frame(const struct input *in, const uint8_t *req, size_t len)
{
	struct export_wire_answer a;
	struct export_wire_verdict v;
	int64_t rejected = 0;
	char msg[EXPORT_WIRE_TEXT_CAP];
	int rc = otlp_decode_response(in->body, in->body_len, &rejected, msg, sizeof(msg));

	export_wire_answer_init(&a);
	if (in->gzip)
		export_wire_header(&a, "grpc-encoding: gzip\r\n", 21);
	export_wire_header(&a, "grpc-status: 0\r\n", 16);
	export_wire_body(&a, req, len);
	export_wire_verdict(&a, true, 200, true, in->spans, in->now, &v);
	FUZZ_CHECK(v.outcome == (rc < 0 ? EXPORT_WIRE_UNCONFIRMED : EXPORT_WIRE_SUCCESS),
		   "our own frame reads back as %d/%lld, the message as %d/%lld", v.outcome,
		   (long long)v.rejected, rc, (long long)rejected);
	if (rc == 0)
		check_count(in, &v, rejected);
	export_wire_answer_release(&a);
}

/* The body as a URL to log: printable; userinfo hidden; nothing else to hide, unchanged. */
static void check_redact(const struct input *in)
{
	char out[EXPORT_WIRE_TEXT_CAP];
	const char *end, *url = (const char *)in->body;
	size_t n = in->body_len;
	bool plain = n && n < sizeof(out);

	export_wire_redact_url(url, n, out, sizeof(out));
	end = memchr(out, '\0', sizeof(out));
	FUZZ_CHECK(end, "redacted URL not NUL-terminated");
	for (const char *p = out; p < end; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "unprintable byte in \"%s\"", out);
	for (size_t i = 0; i < n && plain; i++)
		plain = url[i] > 0x20 && url[i] < 0x7f && !strchr("@?#", url[i]);
	if (plain)
		FUZZ_CHECK(!strncmp(out, url, n) && !out[n], "\"%.*s\" became \"%s\"", (int)n, url,
			   out);
	if (n > 3 && n < sizeof(out) / 2 && !memchr(url, '\0', n)) {
		const char *sep = memmem(url, n, "://", 3), *at, *stop;

		if (!sep || sep == url)
			return;
		for (const char *p = url; p < sep; p++)
			if (!isalnum((unsigned char)*p) && !strchr("+-.", *p))
				return;
		stop = sep + 3;
		while (stop < url + n && !strchr("/?#", *stop))
			stop++;
		at = memchr(sep + 3, '@', (size_t)(stop - sep - 3));
		if (at)
			FUZZ_CHECK(strstr(out, "***@"), "userinfo shown in \"%s\"", out);
	}
}

/* Frame the body as a request and read it back. */
static void check_request(const struct input *in)
{
	struct export_wire *w = export_wire__new(in->grpc, in->gzip);
	struct buf enc = BUF_INIT(1 << 20), body = BUF_INIT(1 << 20);
	size_t off = in->grpc ? 5 : 0, len = 0;
	const uint8_t *req = NULL;

	if (!w || buf_add(&enc, in->body, in->body_len) < 0)
		goto cleanup;
	FUZZ_CHECK(export_wire_request(w, &enc, &body, &req, &len) == 0, "framing failed");
	FUZZ_CHECK(len >= off, "%zu bytes", len);
	if (in->grpc) {
		size_t mlen =
			(size_t)req[1] << 24 | (size_t)req[2] << 16 | (size_t)req[3] << 8 | req[4];

		FUZZ_CHECK(mlen == len - 5 && req[0] == (in->gzip ? 1 : 0), "gRPC frame");
	}
	if (in->gzip)
		FUZZ_CHECK(gunzips_to(req + off, len - off, in->body, in->body_len) &&
				   req[off + 8] == 4,
			   "not the bytes given, gzip'd at level 1");
	else
		FUZZ_CHECK(len == off + in->body_len &&
				   (!in->body_len || !memcmp(req + off, in->body, in->body_len)),
			   "the request is not the bytes given");
	if (in->grpc && len <= EXPORT_WIRE_BODY_CAP && in->body_len <= EXPORT_WIRE_BODY_CAP)
		check_own_frame(in, req, len);
cleanup:
	buf_free(&body);
	buf_free(&enc);
	export_wire__free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct export_wire_answer a;
	struct export_wire_verdict v, v1;
	struct input in;
	uint16_t status;
	size_t i;

	if (size < 11)
		return 0;
	memset(&in, 0, sizeof(in));
	in.grpc = data[0] & 1;
	in.http2 = data[0] & 2;
	in.gzip = data[0] & 4;
	in.piece = 1 + (data[0] >> 3) * 97;
	memcpy(&status, data + 1, 2);
	in.status = status % 1000;
	memcpy(&in.now, data + 3, 8);
	in.spans = (size_t)((uint64_t)in.now & 0xffff);
	in.headers = data + 11;
	for (i = 11; i + 1 < size && !(data[i] == '\n' && data[i + 1] == '\n'); i++)
		;
	in.headers_len = i + 1 < size ? i + 1 - 11 : size - 11;
	in.body = i + 1 < size ? data + i + 2 : data + size;
	in.body_len = (size_t)(data + size - in.body);

	export_wire_answer_init(&a);
	verdict_of(&in, &a, in.piece, &v);
	check_verdict(&in, &a, &v);
	FUZZ_CHECK(a.body.len == (in.body_len < EXPORT_WIRE_BODY_CAP ? in.body_len
								     : EXPORT_WIRE_BODY_CAP) &&
			   (!a.body.len || !memcmp(a.body.data, in.body, a.body.len)),
		   "body kept %zu of %zu bytes", a.body.len, in.body_len);
	export_wire_answer_release(&a);

	/* The same answer in one piece. */
	export_wire_answer_init(&a);
	verdict_of(&in, &a, in.body_len ? in.body_len : 1, &v1);
	FUZZ_CHECK(same_verdict(&v, &v1), "the verdict depends on how the body was cut");
	export_wire_answer_release(&a);

	check_reset(&in, &v);
	check_redact(&in);
	check_request(&in);
	return 0;
}
