// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: what a collector answers, as the exporter decodes it:
 * otlp_decode_response (ExportTraceServiceResponse, partial success) and
 * otlp_decode_rpc_status (google.rpc.Status bodies of failed requests and gRPC trailers).
 *
 * Input: byte 0 picks the message buffer size (0 to 1024 bytes); the rest is the body.
 *
 * Invariants checked: the result is 0 or -EBADMSG; the message is NUL-terminated inside
 * its buffer (an exact-size heap buffer, so ASan sees one byte too far) and, on failure,
 * empty with a zero count or code; a small buffer holds a prefix of what a large one
 * holds; decoding is deterministic; no leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "otlp.h"

#define BIG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t msg_sizes[] = {0, 1, 2, 3, 8, 16, 64, 255, 256, 1024};

static void check_msg(const char *small, size_t small_size, const char *big, int r)
{
	size_t n;

	if (!small_size)
		return;
	FUZZ_CHECK(memchr(small, '\0', small_size), "message not NUL-terminated");
	n = strlen(small);
	FUZZ_CHECK(r == 0 || n == 0, "a message on failure");
	FUZZ_CHECK(n == (strlen(big) < small_size - 1 ? strlen(big) : small_size - 1) &&
			   !memcmp(small, big, n),
		   "truncated message is not a prefix of the whole");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t msg_size, len;
	uint8_t *body;
	char *small, big[BIG], big2[BIG];
	int64_t rejected, rejected2;
	int32_t code, code2;
	int r, r2;

	if (size < 1)
		return 0;
	msg_size = msg_sizes[data[0] % (sizeof(msg_sizes) / sizeof(msg_sizes[0]))];
	len = size - 1;
	body = (uint8_t *)fuzz_dup(data + 1, len);
	small = msg_size ? malloc(msg_size) : NULL;
	if ((len && !body) || (msg_size && !small))
		goto out;

	/* ExportTraceServiceResponse */
	memset(big, 'x', sizeof(big));
	r = otlp_decode_response(body, len, &rejected, big, sizeof(big));
	FUZZ_CHECK(r == 0 || r == -EBADMSG, "otlp_decode_response returned %d", r);
	FUZZ_CHECK(memchr(big, '\0', sizeof(big)), "message not NUL-terminated");
	FUZZ_CHECK(r == 0 || (rejected == 0 && !big[0]), "output on failure");
	if (small)
		memset(small, 'x', msg_size);
	r2 = otlp_decode_response(body, len, &rejected2, small, msg_size);
	FUZZ_CHECK(r2 == r && rejected2 == rejected, "decoding depends on the buffer size");
	check_msg(small, msg_size, big, r);
	FUZZ_CHECK(otlp_decode_response(body, len, &rejected2, big2, sizeof(big2)) == r &&
			   rejected2 == rejected && !strcmp(big, big2),
		   "decoding is not deterministic");

	/* google.rpc.Status */
	memset(big, 'x', sizeof(big));
	r = otlp_decode_rpc_status(body, len, &code, big, sizeof(big));
	FUZZ_CHECK(r == 0 || r == -EBADMSG, "otlp_decode_rpc_status returned %d", r);
	FUZZ_CHECK(memchr(big, '\0', sizeof(big)), "message not NUL-terminated");
	FUZZ_CHECK(r == 0 || (code == 0 && !big[0]), "output on failure");
	if (small)
		memset(small, 'x', msg_size);
	r2 = otlp_decode_rpc_status(body, len, &code2, small, msg_size);
	FUZZ_CHECK(r2 == r && code2 == code, "decoding depends on the buffer size");
	check_msg(small, msg_size, big, r);
	FUZZ_CHECK(otlp_decode_rpc_status(body, len, &code2, big2, sizeof(big2)) == r &&
			   code2 == code && !strcmp(big, big2),
		   "decoding is not deterministic");
out:
	free(small);
	free(body);
	return 0;
}
