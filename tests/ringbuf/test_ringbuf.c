// SPDX-License-Identifier: MIT
/*
 * Unit tests of the ring buffer reader (src/ringbuf.c):
 *   test_ringbuf tests/data/ringbuf/cases.json [--all-fail]
 * Each case lays a ring out in ordinary memory as the kernel does (8-byte headers whose
 * length word carries the busy and discard bits, records on 8 bytes, positions that only
 * grow), from a start position, then reads it: the records handed on (a record crossing
 * the end in one piece), where reading stopped, and the consumer position given back.
 * The mapping of a real ring is the integration tests' (usdt_ringmap, usdt_burst).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../cases.h"
#include "ringbuf.h"

#define BUSY	(1u << 31)
#define DISCARD (1u << 30)

struct got {
	char recs[16][256];
	int n, stop_at;
};

static int collect(void *ctx, const void *data, size_t size)
{
	struct got *g = ctx;

	if (g->n < 16 && size < 256) {
		memcpy(g->recs[g->n], data, size);
		g->recs[g->n][size] = '\0';
	}
	g->n++;
	return g->n == g->stop_at ? -7 : 0;
}

/* Write the case's records into @data from @pos on; the producer position after them. */
static uint64_t lay_out(const cJSON *c, unsigned char *data, uint64_t mask, uint64_t pos)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, cases_get(c, "records"))
	{
		const char *text = cases_str(r, "data", "");
		uint32_t len = (uint32_t)strlen(text), word = len;

		if (cases_bool(r, "busy", false))
			word |= BUSY;
		if (cases_bool(r, "discard", false))
			word |= DISCARD;
		memcpy(data + (pos & mask), &word, 4);
		memset(data + ((pos + 4) & mask), 0, 4);
		for (uint32_t i = 0; i < len; i++)
			data[(pos + 8 + i) & mask] = (unsigned char)text[i];
		pos += (8 + len + 7) & ~7u;
	}
	return pos;
}

static void run_case(cJSON *c)
{
	const cJSON *want = cases_get(c, "expect"), *w;
	size_t size = (size_t)cases_int(c, "size", 64);
	uint64_t start = (uint64_t)cases_int(c, "start", 0), cons = start, prod;
	unsigned char *data = calloc(1, size);
	struct got g = {.stop_at = (int)cases_int(c, "stop_at", -1)};
	struct ringbuf *rb;
	int i = 0, rc;

	prod = lay_out(c, data, size - 1, start);
	rb = ringbuf__new_mem(&cons, &prod, data, size);
	CHECK_MSG(rb, "a reader over %zu bytes", size);
	if (!rb) {
		free(data);
		return;
	}
	CHECK_EQ(ringbuf_avail(rb), prod - start);
	rc = ringbuf_consume(rb, collect, &g);
	CHECK_EQ(rc, cases_int(want, "ret", 0));
	CHECK_EQ(cons - start, cases_int(want, "consumed", 0));
	CHECK_EQ(g.n, cJSON_GetArraySize(cases_get(want, "read")));
	cJSON_ArrayForEach(w, cases_get(want, "read"))
	{
		if (i < g.n && i < 16)
			CHECK_STR(g.recs[i], cJSON_IsString(w) ? w->valuestring : "?");
		i++;
	}
	ringbuf__free(rb);
	free(data);
}

int main(int argc, char **argv)
{
	bool all_fail = argc == 3 && !strcmp(argv[2], "--all-fail");

	if (argc < 2) {
		fprintf(stderr, "usage: test_ringbuf CASES.json [--all-fail]\n");
		return 2;
	}
	cases_run(argv[1], NULL, all_fail, run_case);
	if (!all_fail) {
		uint64_t cons = 0, prod = 0;
		unsigned char data[64];

		check_case("a size that is not a power of two is refused");
		CHECK(!ringbuf__new_mem(&cons, &prod, data, 48));
	}
	return check_summary();
}
