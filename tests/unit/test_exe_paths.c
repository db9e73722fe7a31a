// SPDX-License-Identifier: MIT
/*
 * exe_paths: the table of executable paths spans point to. Entries of processes that are
 * gone (no reference left) make room for new paths however many came before; an entry a
 * span still references is never freed (run under ASan, a use after free would stop it);
 * a table full of referenced paths refuses a new one and counts it.
 */
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "exe_paths.h"
#include "span.h"

#define SPAN_JSON                                                                                \
	"[{\"id\":\"00000000000000a1\",\"name\":\"x\",\"timestamp\":1,\"duration\":1,"           \
	"\"localEndpoint\":{\"serviceName\":\"lightningd\"},\"traceId\":\"000000000000000000000" \
	"00000000001\"}]"

static struct span *mk_span(const char *exe)
{
	enum span_reject why;
	struct span *s = NULL;

	if (span_parse(SPAN_JSON, strlen(SPAN_JSON), &s, &why) < 0) {
		CHECK_FAIL("span_parse: %s", span_reject_str(why));
		return NULL;
	}
	s->exe_path = exe_path_ref(exe);
	return s;
}

/* 1000 processes, each its own executable, each gone (cache slot and span released). */
static void test_exited_make_room(void)
{
	char path[64];

	for (int i = 0; i < 4 * EXE_PATHS_MAX; i++) {
		const char *p;
		struct span *s;

		snprintf(path, sizeof(path), "/opt/node/copy-%d/lightningd", i);
		p = exe_path_get(path); /* the source's reference (its pid cache) */
		CHECK_MSG(p && !strcmp(p, path), "path %d kept", i);
		s = mk_span(p);
		exe_path_put(p); /* the process exited: its cache entry goes */
		CHECK_MSG(s && s->exe_path && !strcmp(s->exe_path, path),
			  "path %d still there while its span lives", i);
		span__free(s); /* exported */
	}
	CHECK_EQ(exe_paths_count(), 0);
}

/* The same string shares one entry, and one pointer (otlp.c groups by pointer). */
static void test_shared(void)
{
	const char *a = exe_path_get("/usr/bin/lightningd");
	const char *b = exe_path_get("/usr/bin/lightningd");
	const char *c = exe_path_get("/usr/libexec/c-lightning/plugins/pay");

	CHECK(a && a == b && c && c != a);
	CHECK_EQ(exe_paths_count(), 2);
	exe_path_put(a);
	CHECK_STR(b, "/usr/bin/lightningd");
	CHECK_EQ(exe_paths_count(), 2);
	exe_path_put(b);
	exe_path_put(c);
	CHECK_EQ(exe_paths_count(), 0);
	CHECK(exe_path_get(NULL) == NULL);
	exe_path_put(NULL);
	CHECK(exe_path_ref(NULL) == NULL);
}

/* Full of referenced paths: a new one is refused and counted; the referenced ones live on. */
static void test_full(void)
{
	static struct span *spans[EXE_PATHS_MAX];
	static char want[EXE_PATHS_MAX][64];
	const char *p;

	for (int i = 0; i < EXE_PATHS_MAX; i++) {
		snprintf(want[i], sizeof(want[i]), "/opt/busy-%d/lightningd", i);
		p = exe_path_get(want[i]);
		spans[i] = mk_span(p);
		exe_path_put(p); /* only the span holds it now */
	}
	CHECK(exe_paths_full());
	CHECK(exe_path_get("/opt/one-too-many") == NULL);
	/* A path already there is still found (no new entry needed). */
	p = exe_path_get(want[7]);
	CHECK(p && p == spans[7]->exe_path);
	exe_path_put(p);
	for (int i = 0; i < EXE_PATHS_MAX; i++)
		CHECK_MSG(spans[i] && !strcmp(spans[i]->exe_path, want[i]), "span %d's path", i);
	/* One span goes: its entry with it, and the new path finds room. */
	span__free(spans[0]);
	spans[0] = NULL;
	CHECK(!exe_paths_full());
	p = exe_path_get("/opt/one-too-many");
	CHECK_STR(p, "/opt/one-too-many");
	exe_path_put(p);
	for (int i = 1; i < EXE_PATHS_MAX; i++)
		span__free(spans[i]);
	CHECK_EQ(exe_paths_count(), 0);
}

int main(void)
{
	test_exited_make_room();
	test_shared();
	test_full();
	exe_paths_reset();
	return check_summary();
}
