// SPDX-License-Identifier: MIT
/*
 * The volume rules (src/volume.h), data-driven: tests/data/volume/cases.json.
 *
 *   test_volume [--all-fail] CASES.json [NAME]
 *
 * A case is one of:
 *   {"ratio": R, "threshold": "T", "sampled": {TRACE: bool, ...}}  the ratio sampler's
 *        threshold and decisions (computed independently by tests/volume/sample_answers.py);
 *        each decision asked twice, the same answer both times
 *   {"duration": TEXT, "ns": "N"} or {"duration": TEXT, "error": true}
 *   {"rule": TEXT, "glob": G, "bound_ns": "N" (absent: no bound)} or {"rule": TEXT, "error": true}
 *   {"ratio_text": TEXT, "ratio": R} or {"ratio_text": TEXT, "error": true}
 *   {"cfg": {...}, "steps": [...]}  a volume (cfg: ratio (1), keep_errors, keep_slower_ns,
 *        rules, hold_ms (1000), hold_spans (1000), hold_bytes (1 << 30)) and what it does:
 *          {"add": SPAN, "at": MS}   volume_add
 *          {"expire": MS}            volume_expire
 *          {"flush": true}           volume_flush
 *        then, after any step: "out": ["ID>PARENT" or "ID" for a root, ...] the spans passed
 *        on in this step, in order (absent: none may be); "held": N; "stats": {"sampled_out",
 *        "cut_short", "kept_sampled", "kept_error", "kept_slow", "rule0".. "rule3": N}.
 *        A SPAN is {"id": ID, "parent": ID, "trace": HEX, "name": N ("op"), "us": duration
 *        (500), "error": true}: ids short hex, padded; trace hex (default 1), padded to 32.
 */
#include "../check.h"
#include "../cases.h"

#include <stdarg.h>

#include "span.h"
#include "stats.h"
#include "volume.h"

#define OUT_MAX 4096

static char out_text[OUT_MAX];
static size_t out_n;

static void out_add(void *ctx, struct span *span)
{
	size_t len = strlen(out_text);
	char one[64];
	uint64_t id = 0, parent = 0;

	for (int i = 0; i < 8; i++) {
		id = id << 8 | span->span_id[i];
		parent = parent << 8 | span->parent_id[i];
	}
	if (span->has_parent)
		snprintf(one, sizeof(one), "%s%llx>%llx", len ? "," : "", (unsigned long long)id,
			 (unsigned long long)parent);
	else
		snprintf(one, sizeof(one), "%s%llx", len ? "," : "", (unsigned long long)id);
	if (len + strlen(one) < sizeof(out_text))
		strcat(out_text, one);
	out_n++;
	span__free(span);
}

static uint64_t u64_of(const cJSON *c, const char *key)
{
	return (uint64_t)strtoull(cases_str(c, key, "0"), NULL, 10);
}

static void sample_case(cJSON *c)
{
	double ratio = cJSON_GetNumberValue(cases_get(c, "ratio"));
	uint64_t t = volume_ratio_threshold(ratio);
	const cJSON *e;

	CHECK_MSG(t == u64_of(c, "threshold"), "threshold of %g: %llu, expected %s", ratio,
		  (unsigned long long)t, cases_str(c, "threshold", "?"));
	cJSON_ArrayForEach(e, cases_get(c, "sampled"))
	{
		uint8_t id[16] = {0};
		char hex[33];
		bool got;

		snprintf(hex, sizeof(hex), "%32s", e->string);
		for (int i = 0; i < 32; i++)
			hex[i] = hex[i] == ' ' ? '0' : hex[i];
		if (!text_hex_decode(hex, 32, id)) {
			fprintf(stderr, "not a traceId: %s\n", e->string);
			exit(2);
		}
		got = volume_ratio_sampled(id, t);
		CHECK_MSG(got == cJSON_IsTrue(e), "ratio %g, trace %s: sampled %d", ratio,
			  e->string, got);
		CHECK_MSG(got == volume_ratio_sampled(id, volume_ratio_threshold(ratio)),
			  "trace %s: the same decision asked again", e->string);
	}
}

static void parse_case(cJSON *c)
{
	bool error = cases_bool(c, "error", false);
	const char *text;
	int ret;

	if ((text = cases_str(c, "duration", NULL))) {
		uint64_t ns = 0;

		ret = volume_parse_duration(text, &ns);
		CHECK_MSG(error ? ret < 0 : !ret && ns == u64_of(c, "ns"), "duration %s: %d, %llu ns",
			  text, ret, (unsigned long long)ns);
	} else if ((text = cases_str(c, "rule", NULL))) {
		struct volume_rule r;

		ret = volume_rule_parse(text, &r);
		CHECK_MSG(error ? ret < 0 : !ret, "rule %s: %d", text, ret);
		if (!error && !ret) {
			CHECK_STR(r.glob, cases_str(c, "glob", ""));
			CHECK_EQ(r.has_bound, cases_has(c, "bound_ns"));
			CHECK_EQ(r.shorter_than_ns, u64_of(c, "bound_ns"));
		}
	} else {
		double ratio = -1;

		text = cases_str(c, "ratio_text", "");
		ret = volume_parse_ratio(text, &ratio);
		CHECK_MSG(error ? ret < 0 : !ret && ratio == cJSON_GetNumberValue(cases_get(c, "ratio")),
			  "ratio %s: %d, %g", text, ret, ratio);
	}
}

/* A CLN span_emit payload for @s, parsed. */
static struct span *make_span(const cJSON *s)
{
	char json[1024], trace[33], tags[128] = "";
	const char *parent = cases_str(s, "parent", NULL);
	const char *t = cases_str(s, "trace", "1");
	unsigned long long id = strtoull(cases_str(s, "id", "1"), NULL, 16);
	struct span *span;
	enum span_reject why;
	char parent_field[64] = "";

	snprintf(trace, sizeof(trace), "%32s", t);
	for (int i = 0; i < 32; i++)
		trace[i] = trace[i] == ' ' ? '0' : trace[i];
	if (parent)
		snprintf(parent_field, sizeof(parent_field), "\"parentId\":\"%016llx\",",
			 strtoull(parent, NULL, 16));
	if (cases_bool(s, "error", false))
		snprintf(tags, sizeof(tags), "\"error\":\"true\"");
	snprintf(json, sizeof(json),
		 "[{\"id\":\"%016llx\",\"name\":\"%s\",\"timestamp\":1795660314601294,"
		 "\"duration\":%lld,\"localEndpoint\":{\"serviceName\":\"lightningd\"},%s"
		 "\"tags\":{%s},\"traceId\":\"%s\"}]",
		 id, cases_str(s, "name", "op"), cases_int(s, "us", 500), parent_field, tags, trace);
	if (span_parse(json, strlen(json), &span, &why) < 0) {
		fprintf(stderr, "test data: span does not parse (%s): %s\n", span_reject_str(why),
			json);
		exit(2);
	}
	return span;
}

static void check_stats(const cJSON *want)
{
	static const char *const keys[] = {"kept_sampled", "kept_error", "kept_slow"};
	const cJSON *e;

	cJSON_ArrayForEach(e, want)
	{
		long long v = (long long)cJSON_GetNumberValue(e), got = -1;

		if (!strcmp(e->string, "sampled_out"))
			got = (long long)stats.sampled_out;
		else if (!strcmp(e->string, "cut_short"))
			got = (long long)stats.traces_cut_short;
		for (int i = 0; i < 3; i++)
			if (!strcmp(e->string, keys[i]))
				got = (long long)stats.traces_kept[i];
		if (!strncmp(e->string, "rule", 4))
			got = (long long)stats.rule_dropped[atoi(e->string + 4) % STATS_MAX_RULES];
		CHECK_MSG(got == v, "stats %s: %lld, expected %lld", e->string, got, v);
	}
}

static void steps_case(cJSON *c)
{
	const cJSON *cfgj = cases_get(c, "cfg"), *step, *r;
	const char *rules[VOLUME_MAX_RULES];
	struct volume_cfg cfg = {
		.sample = cases_has(cfgj, "ratio"),
		.ratio = cases_has(cfgj, "ratio") ? cJSON_GetNumberValue(cases_get(cfgj, "ratio"))
						  : 1.0,
		.keep_errors = cases_bool(cfgj, "keep_errors", false),
		.keep_slow = cases_has(cfgj, "keep_slower_ns"),
		.keep_slower_ns = u64_of(cfgj, "keep_slower_ns"),
		.rules = rules,
		.hold_ms = (uint64_t)cases_int(cfgj, "hold_ms", 1000),
		.hold_spans = (size_t)cases_int(cfgj, "hold_spans", 1000),
		.hold_bytes = (size_t)cases_int(cfgj, "hold_bytes", 1LL << 30),
	};
	struct volume *v;
	int n = 0;

	cJSON_ArrayForEach(r, cases_get(cfgj, "rules")) rules[cfg.n_rules++] = r->valuestring;
	memset(&stats, 0, sizeof(stats));
	v = volume__new(&cfg, out_add, NULL);
	CHECK_MSG(v, "volume__new");
	if (!v)
		return;
	CHECK_EQ(stats.n_rules, cfg.n_rules);
	cJSON_ArrayForEach(step, cases_get(c, "steps"))
	{
		const cJSON *want = cases_get(step, "out");
		char expect[OUT_MAX] = "";

		n++;
		out_text[0] = '\0';
		out_n = 0;
		if (cases_has(step, "add"))
			volume_add(v, make_span(cases_get(step, "add")),
				   (uint64_t)cases_int(step, "at", 0));
		else if (cases_has(step, "expire"))
			volume_expire(v, (uint64_t)cases_int(step, "expire", 0));
		else if (cases_has(step, "flush"))
			volume_flush(v);
		cJSON_ArrayForEach(r, want)
		{
			if (expect[0])
				strcat(expect, ",");
			strncat(expect, r->valuestring, sizeof(expect) - strlen(expect) - 1);
		}
		CHECK_MSG(!strcmp(out_text, expect), "step %d: out [%s], expected [%s]", n,
			  out_text, expect);
		if (cases_has(step, "held"))
			CHECK_MSG(volume_held(v) == (size_t)cases_int(step, "held", 0),
				  "step %d: %zu held, expected %lld", n, volume_held(v),
				  cases_int(step, "held", 0));
		if (cases_has(step, "due"))
			CHECK_MSG(volume_next_due_ms(v) == (uint64_t)cases_int(step, "due", 0),
				  "step %d: next due at %llu", n,
				  (unsigned long long)volume_next_due_ms(v));
		check_stats(cases_get(step, "stats"));
	}
	volume__free(v);
	CHECK_MSG(stats.n_rules == 0, "freeing the volume forgets its rules' names");
}

static void volume_case(cJSON *c)
{
	if (cases_has(c, "sampled"))
		sample_case(c);
	else if (cases_has(c, "steps"))
		steps_case(c);
	else
		parse_case(c);
}

int main(int argc, char **argv)
{
	bool all_fail = argc > 1 && !strcmp(argv[1], "--all-fail");

	if (all_fail) {
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: test_volume [--all-fail] CASES.json [NAME]\n");
		return 2;
	}
	cases_run(argv[1], argc > 2 ? argv[2] : NULL, all_fail, volume_case);
	return check_summary();
}
