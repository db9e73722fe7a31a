// SPDX-License-Identifier: MIT
/*
 * test_semconv kinds DIR: every span in DIR (recursively): the span_emit lines of CLN trace
 * files, and every string of every .json file that parses as a CLN span (the data-driven
 * cases' payloads), encoded as protobuf and decoded again; each span's kind must be the one
 * its name gives (the rules written out again below, independently of src/semconv.c), unless
 * it carries a span.kind tag. A DIR named cln-v26-startup (the real captures) must exercise
 * every rule.
 * test_semconv uuid5: SHA-1 against RFC 3174's vectors, UUIDv5 against RFC 9562's example.
 * test_semconv wallet: the wallet kind from lightningd's command line (finder_wallet).
 */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "../check.h"
#include "finder.h"
#include "otlp.h"
#include "span.h"
#include "uuid5.h"
#include "../trace_lines.h"

enum { K_INTERNAL = 1, K_SERVER = 2, K_CLIENT = 3 };
enum { R_SERVER, R_PLUGIN_RPC, R_PLUGIN_CALL, R_DB, R_OTHER, R__N };

static const char *const rule_names[R__N] = {"lightningd/jsonrpc SERVER", "jsonrpc CLIENT",
					     "plugin/* CLIENT", "db_* CLIENT", "the rest INTERNAL"};
static unsigned rule_hits[R__N];
static unsigned n_spans;

/* The rules, as they are stated. */
static int expected_rule(const char *name)
{
	if (!strcmp(name, "lightningd/jsonrpc"))
		return R_SERVER;
	if (!strcmp(name, "jsonrpc"))
		return R_PLUGIN_RPC;
	if (!strncmp(name, "plugin/", 7))
		return R_PLUGIN_CALL;
	if (!strncmp(name, "db_", 3))
		return R_DB;
	return R_OTHER;
}

static const int rule_kind[R__N] = {K_SERVER, K_CLIENT, K_CLIENT, K_CLIENT, K_INTERNAL};

static bool has_kind_tag(const struct span *s)
{
	for (uint32_t i = 0; i < s->n_tags; i++)
		if (!strcmp(s->tags[i].key.ptr, "span.kind"))
			return true;
	return false;
}

/* Encode @s alone, decode it, compare its kind. */
static void check_span(const char *where, struct span *s)
{
	struct otlp_resource_cfg res = {.host_name = "test"};
	struct otlp_buf buf = OTLP_BUF_INIT;
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	int rule = expected_rule(s->name.ptr);

	if (has_kind_tag(s))
		return;
	if (!CHECK_MSG(otlp_encode_pb(&res, &s, 1, &buf) == 0, "%s: encoding failed", where))
		goto out;
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
		NULL, buf.bytes.len, buf.bytes.data);
	if (CHECK_MSG(req && req->n_resource_spans == 1, "%s: does not decode", where)) {
		int kind = req->resource_spans[0]->scope_spans[0]->spans[0]->kind;

		CHECK_MSG(kind == rule_kind[rule], "%s: span \"%s\" has kind %d, the rule (%s) %d",
			  where, s->name.ptr, kind, rule_names[rule], rule_kind[rule]);
		rule_hits[rule]++;
		n_spans++;
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
out:
	otlp_buf_release(&buf);
}

static void try_payload(const char *where, const char *text, size_t len)
{
	enum span_reject why;
	struct span *s;

	if (span_parse(text, len, &s, &why) < 0)
		return; /* not a span, or one the cases reject on purpose */
	check_span(where, s);
	span__free(s);
}

static void walk_json(const char *where, const cJSON *node)
{
	const cJSON *child;

	if (cJSON_IsString(node) && strstr(node->valuestring, "\"name\""))
		try_payload(where, node->valuestring, strlen(node->valuestring));
	cJSON_ArrayForEach(child, node) walk_json(where, child);
}

static void kinds_json(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	ssize_t len;
	cJSON *root;

	if (!CHECK_MSG(f, "%s: cannot open", path))
		return;
	len = getdelim(&text, &cap, '\0', f);
	fclose(f);
	root = len > 0 ? cJSON_ParseWithLength(text, (size_t)len) : NULL;
	if (CHECK_MSG(root, "%s: not JSON", path))
		walk_json(path, root);
	cJSON_Delete(root);
	free(text);
}

/* A CLN trace file: "span_emit <id> <json>" lines. */
static void kinds_trace(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	const char *json;
	size_t cap = 0, n;
	ssize_t len;

	if (!CHECK_MSG(f, "%s: cannot open", path))
		return;
	while ((len = getline(&line, &cap, f)) > 0)
		if (trace_line_span(line, (size_t)len, &json, &n))
			try_payload(path, json, n);
	free(line);
	fclose(f);
}

static int kinds_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *base = path + ftw->base;
	size_t n = strlen(base);

	(void)st;
	if (type != FTW_F)
		return 0;
	if (n > 5 && !strcmp(base + n - 5, ".json"))
		kinds_json(path);
	else if (!strncmp(base, "lightningd-trace", 16))
		kinds_trace(path);
	return 0;
}

static void suite_kinds(const char *dir)
{
	bool captures = strstr(dir, "cln-v26-startup") != NULL;

	CHECK_MSG(nftw(dir, kinds_visit, 16, FTW_PHYS) == 0, "%s: cannot walk", dir);
	CHECK_MSG(n_spans >= 10, "only %u spans found under %s", n_spans, dir);
	for (int r = 0; r < R__N; r++) {
		printf("%-20s %u spans\n", rule_names[r], rule_hits[r]);
		if (captures)
			CHECK_MSG(rule_hits[r] > 0, "no span of the captures tests \"%s\"",
				  rule_names[r]);
	}
}

/* ---- uuid5 ------------------------------------------------------------------------------ */

static void sha1_is(const char *what, const void *data, size_t len, const char *want)
{
	uint8_t d[20];
	char hex[41];

	uuid5_sha1(data, len, d);
	for (int i = 0; i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	CHECK_MSG(!strcmp(hex, want), "SHA-1 of %s: %s, expected %s", what, hex, want);
}

static void suite_uuid5(void)
{
	static const char abc2[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char rep[] = "0123456701234567012345670123456701234567012345670123456701234567";
	char *big = malloc(1000000), *ten = malloc(640), out[UUID5_STR_SIZE];
	uint8_t dns[16], ns[16];

	if (!CHECK(big && ten))
		return;
	/* RFC 3174, section 7.3 */
	sha1_is("\"abc\"", "abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1_is("TEST2", abc2, strlen(abc2), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	memset(big, 'a', 1000000);
	sha1_is("a million a", big, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	for (int i = 0; i < 10; i++)
		memcpy(ten + 64 * i, rep, 64);
	sha1_is("TEST4", ten, 640, "dea356a2cddd90c7a7ecedc5ebb563934f460452");
	sha1_is("nothing", "", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	/* 55 and 56 bytes: the length no longer fits the block of the padding */
	sha1_is("55 a", big, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
	sha1_is("56 a", big, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
	/* RFC 9562, appendix A.4: namespace DNS, name "www.example.com" */
	CHECK(uuid5_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8", dns) == 0);
	uuid5_str(dns, "www.example.com", 15, out);
	CHECK_STR(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
	CHECK(uuid5_parse("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", ns) == 0 && !memcmp(ns, dns, 16));
	CHECK(uuid5_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c", ns) < 0);
	CHECK(uuid5_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8x", ns) < 0);
	CHECK(uuid5_parse("6ba7b8109dad-11d1-80b4-00c04fd430c8", ns) < 0);
	free(big);
	free(ten);
}

/* ---- wallet ----------------------------------------------------------------------------- */

static void wallet_is(const char *cmdline, size_t len, const char *want)
{
	const char *got = finder_wallet(cmdline, len);

	CHECK_MSG(!strcmp(got, want), "command line \"%s...\": %s, expected %s", cmdline + 11,
		  got, want);
}

#define WALLET_IS(lit, want) wallet_is(lit, sizeof(lit) - 1, want)

static void suite_wallet(void)
{
	WALLET_IS("lightningd\0--network=regtest\0", "sqlite");
	WALLET_IS("lightningd\0--wallet=postgres://u:p@db:5432/cln\0", "postgresql");
	WALLET_IS("lightningd\0--wallet\0postgres://db/cln\0", "postgresql");
	WALLET_IS("lightningd\0--wallet=postgresql://db/cln\0", "postgresql");
	WALLET_IS("lightningd\0--wallet=sqlite3:///var/lib/cln/w.sqlite3\0", "sqlite");
	/* the last one wins, as in lightningd */
	WALLET_IS("lightningd\0--wallet=postgres://db/x\0--wallet=sqlite3:///w\0", "sqlite");
	WALLET_IS("lightningd\0--wallet=sqlite3:///w\0--wallet=postgres://db/x\0", "postgresql");
	/* not the option, nor its value */
	WALLET_IS("lightningd\0--wallet-backup=postgres://db/x\0", "sqlite");
	WALLET_IS("lightningd\0--alias=--wallet=postgres://x\0", "sqlite");
	WALLET_IS("postgres://x\0--network=regtest\0", "sqlite");
	/* a last argument cut short (no NUL: /proc gives 32 KiB at most) is not read */
	WALLET_IS("lightningd\0--wallet=postgres://db", "sqlite");
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "kinds"))
		suite_kinds(argv[2]);
	else if (argc == 2 && !strcmp(argv[1], "uuid5"))
		suite_uuid5();
	else if (argc == 2 && !strcmp(argv[1], "wallet"))
		suite_wallet();
	else {
		fprintf(stderr, "usage: test_semconv kinds DIR | uuid5 | wallet\n");
		return 2;
	}
	return check_summary();
}
