// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the request heads the /metrics server parses (metrics_parse_request),
 * any bytes from any client. The input is copied into a buffer of its exact size (ASan
 * sees any read past it).
 *
 * Invariants: 0 or -EINVAL, the same answer twice; on 0, the method is GET or HEAD exactly
 * when the line starts with "GET " or "HEAD ", the path is /metrics only when the request
 * line says so (a query after it allowed), and a request with a body, or one asking to
 * close, is never kept alive.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A header line named @name (case-insensitive) before the end of the head. */
static bool has_header(const char *head, size_t len, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = head, *end = head + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			break;
		p = nl + 1;
		if ((size_t)(end - p) >= n && !strncasecmp(p, name, n))
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics_request a, b;
	char *head = malloc(size ? size : 1);
	int r;

	FUZZ_CHECK(head != NULL, "malloc");
	memcpy(head, data, size);
	r = metrics_parse_request(head, size, &a);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	FUZZ_CHECK(metrics_parse_request(head, size, &b) == r && !memcmp(&a, &b, sizeof(a)),
		   "not deterministic");
	if (r == 0) {
		bool get = size >= 4 && !memcmp(head, "GET ", 4);
		bool hd = size >= 5 && !memcmp(head, "HEAD ", 5);
		const char *sp = memchr(head, ' ', size);

		FUZZ_CHECK((a.method == METRICS_GET) == get, "GET: %d", a.method);
		FUZZ_CHECK((a.method == METRICS_HEAD) == hd, "HEAD: %d", a.method);
		FUZZ_CHECK(!a.metrics_path || (sp && (size_t)(head + size - sp) > 9 &&
					       !memcmp(sp + 1, "/metrics", 8) &&
					       (sp[9] == ' ' || sp[9] == '?')),
			   "path");
		FUZZ_CHECK(!a.keep_alive || (!has_header(head, size, "content-length:") &&
					     !has_header(head, size, "transfer-encoding:")),
			   "kept alive with a body");
	}
	free(head);
	return 0;
}
