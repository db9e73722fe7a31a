// SPDX-License-Identifier: MIT
/*
 * The unit test runner, for what needs no root, kernel or network:
 *
 *   test_unit SUITE CASES.json [NAME]     a data-driven suite: every case, or case NAME
 *   test_unit --all-fail SUITE CASES.json every case must fail a check (must_fail.json files:
 *                                         they prove the suite's checks can fail)
 *   test_unit SUITE                       a code-driven suite
 *
 * Data-driven: span (tests/data/span: payload -> struct span or reject reason), otlp
 * (tests/data/otlp: spans -> OTLP/JSON and protobuf; a case may set service_name,
 * resource_attrs, node_attrs and db_system (a node for every pid), raw_tags), config (tests/data/config: argv and
 * environment -> struct config or error message), orphans (tests/data/orphans: what the
 * cut-span table does, step by step). Code-driven: queue, suspend, suspend_bound, pipeline,
 * pipeline_orphans, pipeline_adopt_wide, pipeline_derive_family, orphans_cache.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "../check.h"
#include "../cases.h"
#include "exe_paths.h"

#include "config.h"
#include "export.h"
#include "loop.h"
#include "orphans.h"
#include "otlp.h"
#include "park.h"
#include "pipeline.h"
#include "queue.h"
#include "span.h"
#include "stats.h"
#include "suspend.h"
#include "text.h"

/* ---- data files ------------------------------------------------------------------------ */

/* A bad data file is not a failed check: say where, and stop. */
__attribute__((noreturn, format(printf, 1, 2))) static void data_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test data: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* A string member; NULL when absent or null, a data error when of another type. */
static const char *get_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cases_get(obj, key);

	if (cJSON_IsNull(v))
		return NULL;
	if (v && !cJSON_IsString(v))
		data_error("\"%s\" is not a string", key);
	return v ? v->valuestring : NULL;
}

static double get_num(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *v = cases_get(obj, key);

	if (v && !cJSON_IsNumber(v))
		data_error("\"%s\" is not a number", key);
	return v ? v->valuedouble : dflt;
}

/* "key": "text" or "key": ["text", ...]: the @i-th text, NULL past the end. */
static const char *get_text(const cJSON *obj, const char *key, int i)
{
	const cJSON *v = cases_get(obj, key);

	if (cJSON_IsString(v))
		return i ? NULL : v->valuestring;
	v = cJSON_GetArrayItem(v, i);
	if (v && !cJSON_IsString(v))
		data_error("\"%s\" holds a non-string", key);
	return v ? v->valuestring : NULL;
}

/* [k, v]: how the cases write tags, headers and attributes. */
static cJSON *pair(const char *k, const char *v)
{
	cJSON *p = cJSON_CreateArray();

	cJSON_AddItemToArray(p, cJSON_CreateString(k));
	cJSON_AddItemToArray(p, cJSON_CreateString(v));
	return p;
}

/* The cases' own "expect": every field it names must be in @got, equal; others unchecked. */
static void check_fields(const cJSON *got, const cJSON *expect)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, expect)
	{
		const cJSON *g = cases_get(got, e->string);
		bool ok = g && cJSON_Compare(g, e, true);
		char *gs = ok ? NULL : g ? cJSON_PrintUnformatted(g) : strdup("(none)");
		char *es = ok ? NULL : cJSON_PrintUnformatted(e);

		CHECK_MSG(ok, "%s: got %s, expected %s", e->string, gs, es);
		free(gs);
		free(es);
	}
}

/*
 * A span as CLN writes it: id, parent (0: none) and traceId (hex). Without a traceId: what
 * CLN leaves of a span longer than its 2048-byte buffer, the first 2047 bytes (@size must
 * be at least SPAN_CLN_BUF), the traceId lost with the tail. Returns the length.
 */
static size_t span_payload(char *json, size_t size, uint64_t id, uint64_t parent, const char *trace)
{
	char par[64] = "";
	size_t n;

	if (parent)
		snprintf(par, sizeof(par), "\"parentId\":\"%016llx\",", (unsigned long long)parent);
	n = (size_t)snprintf(json, size,
			     "[{\"id\":\"%016llx\",\"name\":\"n\",\"timestamp\":1,\"duration\":2,"
			     "\"localEndpoint\":{\"serviceName\":\"lightningd\"},%s\"tags\":{%s",
			     (unsigned long long)id, par, trace ? "}," : "\"query\":\"");
	if (trace)
		return n + (size_t)snprintf(json + n, size - n, "\"traceId\":\"%s\"}]", trace);
	memset(json + n, 'z', SPAN_CLN_BUF - 1 - n);
	json[SPAN_CLN_BUF - 1] = '\0';
	return SPAN_CLN_BUF - 1;
}

/* A span, or (@trace NULL) a span CLN cut before its traceId. */
static struct span *mk_span_family(uint64_t id, uint64_t parent, const char *trace)
{
	char json[SPAN_CLN_BUF];
	enum span_reject why = SPAN_OK;
	struct span *s;
	size_t len = span_payload(json, sizeof(json), id, parent, trace);

	if (span_parse(json, len, &s, &why) < 0 || s->has_trace_id != !!trace)
		data_error("bad test span %s: %s", json, span_reject_str(why));
	return s;
}

/* 8 bytes of an id, big-endian, as a number. */
static uint64_t span_u64(const uint8_t id[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | id[i];
	return v;
}

#define TRACE "074c67a29952a72ce3a9ce4137f3d273"

static struct span *mk_span(uint64_t id)
{
	return mk_span_family(id, 0, TRACE);
}

/* ---- span ----------------------------------------------------------------------------- */

static const char *path_names[] = {"fast", "json", "recovered"};

static cJSON *span_to_json(const struct span *s)
{
	cJSON *o = cJSON_CreateObject(), *tags = cJSON_CreateArray();
	char hex[33];

	text_hex_encode(s->span_id, 8, hex);
	cJSON_AddStringToObject(o, "span_id", hex);
	if (s->has_trace_id) {
		text_hex_encode(s->trace_id, 16, hex);
		cJSON_AddStringToObject(o, "trace_id", hex);
	}
	cJSON_AddBoolToObject(o, "has_trace_id", s->has_trace_id);
	cJSON_AddBoolToObject(o, "short_trace_id", s->short_trace_id);
	if (s->has_parent) {
		text_hex_encode(s->parent_id, 8, hex);
		cJSON_AddStringToObject(o, "parent_id", hex);
	} else {
		cJSON_AddNullToObject(o, "parent_id");
	}
	cJSON_AddStringToObject(o, "name", s->name.ptr);
	cJSON_AddStringToObject(o, "service", s->service.ptr);
	cJSON_AddNumberToObject(o, "timestamp", (double)s->timestamp_us);
	cJSON_AddNumberToObject(o, "duration", (double)s->duration_us);
	for (uint32_t i = 0; i < s->n_tags; i++)
		cJSON_AddItemToArray(tags, pair(s->tags[i].key.ptr, s->tags[i].value.ptr));
	cJSON_AddItemToObject(o, "tags", tags);
	cJSON_AddBoolToObject(o, "truncated", s->truncated);
	cJSON_AddNumberToObject(o, "dup_tags", s->dup_tags);
	cJSON_AddNumberToObject(o, "payload_len", s->payload_len);
	cJSON_AddStringToObject(o, "path", path_names[s->path]);
	return o;
}

/*
 * "repeat": [TEXT, N]: every @REPEAT@ in the case's strings (input and expect) becomes TEXT
 * N times, for payloads too long to write out.
 */
static void case_repeat(cJSON *node, const char *text, size_t times)
{
	cJSON *child;

	if (cJSON_IsString(node) && strstr(node->valuestring, "@REPEAT@")) {
		const char *at = strstr(node->valuestring, "@REPEAT@");
		size_t head = (size_t)(at - node->valuestring), n = strlen(text) * times;
		size_t tail = strlen(at + 8);
		char *s = malloc(head + n + tail + 1);

		if (!s)
			abort();
		memcpy(s, node->valuestring, head);
		for (size_t i = 0; i < times; i++)
			memcpy(s + head + i * strlen(text), text, strlen(text));
		memcpy(s + head + n, at + 8, tail + 1);
		cJSON_SetValuestring(node, s);
		free(s);
		case_repeat(node, text, times); /* another @REPEAT@ in the same string */
	}
	cJSON_ArrayForEach(child, node) case_repeat(child, text, times);
}

/* A case's payload: "input" (text) or "input_hex" (raw bytes). Caller frees. */
static char *case_payload(cJSON *c, size_t *len)
{
	const cJSON *rep = cases_get(c, "repeat");
	const char *in, *hex = get_str(c, "input_hex");
	char *buf;

	if (rep) {
		const cJSON *t = cJSON_GetArrayItem(rep, 0), *n = cJSON_GetArrayItem(rep, 1);

		if (!cJSON_IsString(t) || !cJSON_IsNumber(n) || n->valuedouble < 0)
			data_error("\"repeat\" is not [TEXT, N]");
		case_repeat(c, t->valuestring, (size_t)n->valuedouble);
	}
	in = get_str(c, "input");
	if (in) {
		*len = strlen(in);
		return strdup(in);
	}
	if (!hex)
		data_error("a span case without input or input_hex");
	*len = strlen(hex) / 2;
	buf = malloc(*len + 1);
	if (!buf || !text_hex_decode(hex, *len * 2, (uint8_t *)buf))
		data_error("bad input_hex");
	return buf;
}

static void span_case(cJSON *c)
{
	const char *reject = get_str(c, "reject");
	enum span_reject why = SPAN_OK;
	struct span *s = NULL;
	size_t len;
	char *payload = case_payload(c, &len);
	int r = span_parse(payload, len, &s, &why);

	if (reject) {
		CHECK_MSG(r < 0 && !strcmp(span_reject_str(why), reject),
			  "expected reject %s, got %s", reject,
			  r < 0 ? span_reject_str(why) : "a span");
	} else if (CHECK_MSG(r == 0, "rejected (%s)", span_reject_str(why))) {
		cJSON *got = span_to_json(s);

		check_fields(got, cases_get(c, "expect"));
		cJSON_Delete(got);
	}
	span__free(s);
	free(payload);
}

/* ---- otlp ----------------------------------------------------------------------------- */

static void add_kv(cJSON *arr, Opentelemetry__Proto__Common__V1__KeyValue *kv)
{
	cJSON *o = cJSON_CreateObject(), *v = cJSON_CreateObject();
	char num[32];

	cJSON_AddStringToObject(o, "key", kv->key);
	switch (kv->value->value_case) {
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
		cJSON_AddStringToObject(v, "stringValue", kv->value->string_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
		snprintf(num, sizeof(num), "%lld", (long long)kv->value->int_value);
		cJSON_AddStringToObject(v, "intValue", num);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
		cJSON_AddBoolToObject(v, "boolValue", kv->value->bool_value);
		break;
	default:
		cJSON_AddStringToObject(v, "unexpected", "value type");
	}
	cJSON_AddItemToObject(o, "value", v);
	cJSON_AddItemToArray(arr, o);
}

static void add_hex(cJSON *o, const char *key, ProtobufCBinaryData *b)
{
	char hex[65];

	if (!b->len)
		return;
	text_hex_encode(b->data, b->len > 32 ? 32 : b->len, hex);
	cJSON_AddStringToObject(o, key, hex);
}

static void add_u64s(cJSON *o, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	cJSON_AddStringToObject(o, key, num);
}

/* The protobuf request decoded back into OTLP/JSON's shape, to compare both encoders. */
static cJSON *pb_to_json(const uint8_t *data, size_t len)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
			NULL, len, data);
	cJSON *root, *rss;

	if (!req)
		return NULL;
	root = cJSON_CreateObject();
	rss = cJSON_AddArrayToObject(root, "resourceSpans");
	for (size_t i = 0; i < req->n_resource_spans; i++) {
		Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[i];
		cJSON *jrs = cJSON_CreateObject(), *res = cJSON_AddObjectToObject(jrs, "resource");
		cJSON *attrs = cJSON_AddArrayToObject(res, "attributes");
		cJSON *sss = cJSON_AddArrayToObject(jrs, "scopeSpans");

		for (size_t a = 0; a < rs->resource->n_attributes; a++)
			add_kv(attrs, rs->resource->attributes[a]);
		for (size_t k = 0; k < rs->n_scope_spans; k++) {
			Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[k];
			cJSON *jss = cJSON_CreateObject(),
			      *sc = cJSON_AddObjectToObject(jss, "scope");
			cJSON *spans = cJSON_AddArrayToObject(jss, "spans");

			cJSON_AddStringToObject(sc, "name", ss->scope->name);
			cJSON_AddStringToObject(sc, "version", ss->scope->version);
			for (size_t s = 0; s < ss->n_spans; s++) {
				Opentelemetry__Proto__Trace__V1__Span *sp = ss->spans[s];
				cJSON *js = cJSON_CreateObject(), *st;
				cJSON *sattrs;

				add_hex(js, "traceId", &sp->trace_id);
				add_hex(js, "spanId", &sp->span_id);
				add_hex(js, "parentSpanId", &sp->parent_span_id);
				cJSON_AddStringToObject(js, "name", sp->name);
				cJSON_AddNumberToObject(js, "kind", sp->kind);
				add_u64s(js, "startTimeUnixNano", sp->start_time_unix_nano);
				add_u64s(js, "endTimeUnixNano", sp->end_time_unix_nano);
				sattrs = cJSON_AddArrayToObject(js, "attributes");
				for (size_t a = 0; a < sp->n_attributes; a++)
					add_kv(sattrs, sp->attributes[a]);
				if (sp->n_events) {
					cJSON *evs = cJSON_AddArrayToObject(js, "events");

					for (size_t e = 0; e < sp->n_events; e++) {
						cJSON *je = cJSON_CreateObject();

						add_u64s(je, "timeUnixNano",
							 sp->events[e]->time_unix_nano);
						cJSON_AddStringToObject(je, "name",
									sp->events[e]->name);
						cJSON_AddItemToArray(evs, je);
					}
				}
				if (sp->dropped_events_count)
					cJSON_AddNumberToObject(js, "droppedEventsCount",
								sp->dropped_events_count);
				st = cJSON_AddObjectToObject(js, "status");
				if (sp->status && sp->status->message && *sp->status->message)
					cJSON_AddStringToObject(st, "message", sp->status->message);
				cJSON_AddNumberToObject(st, "code",
							sp->status ? sp->status->code : 0);
				cJSON_AddItemToArray(spans, js);
			}
			cJSON_AddItemToArray(sss, jss);
		}
		cJSON_AddItemToArray(rss, jrs);
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
	return root;
}

static void fix_version(cJSON *node)
{
	cJSON *child;

	if (cJSON_IsString(node) && !strcmp(node->valuestring, "@VERSION@"))
		cJSON_SetValuestring(node, CLN_OTLP_VERSION);
	cJSON_ArrayForEach(child, node) fix_version(child);
}

static void compare_json(const char *what, cJSON *got, cJSON *expect)
{
	bool ok = got && cJSON_Compare(got, expect, true);
	char *gs = ok ? NULL : got ? cJSON_PrintUnformatted(got) : strdup("(undecodable)");
	char *es = ok ? NULL : cJSON_PrintUnformatted(expect);

	CHECK_MSG(ok, "%s:\n  got      %s\n  expected %s", what, gs, es);
	free(gs);
	free(es);
}

/* A node's attributes and wallet for every pid, as nodes.c gives them ("node_attrs", "db_system"). */
struct otlp_case_node {
	struct otlp_kv kvs[8];
	size_t n;
	const char *db_system;
};

static size_t otlp_case_proc_attrs(void *ctx, uint32_t pid, const struct otlp_kv **attrs)
{
	struct otlp_case_node *node = ctx;

	(void)pid;
	*attrs = node->kvs;
	return node->n;
}

static const char *otlp_case_db_system(void *ctx, uint32_t pid)
{
	(void)pid;
	return ((struct otlp_case_node *)ctx)->db_system;
}

/* "resource_attrs" into @res, "node_attrs" and "db_system" into @node (and @res's callbacks). */
static void otlp_case_resource(cJSON *c, struct otlp_resource_cfg *res, struct otlp_kv *kvs,
			       struct otlp_case_node *node)
{
	const cJSON *rattrs = cJSON_GetObjectItem(c, "resource_attrs"), *ra;
	const cJSON *nattrs = cJSON_GetObjectItem(c, "node_attrs");
	const cJSON *db = cJSON_GetObjectItem(c, "db_system");

	cJSON_ArrayForEach(ra, rattrs)
	{
		if (res->n_attrs == 8)
			data_error("more than 8 resource_attrs");
		kvs[res->n_attrs].key = cJSON_GetArrayItem(ra, 0)->valuestring;
		kvs[res->n_attrs].value = cJSON_GetArrayItem(ra, 1)->valuestring;
		res->n_attrs++;
	}
	cJSON_ArrayForEach(ra, nattrs)
	{
		if (node->n == 8)
			data_error("more than 8 node_attrs");
		node->kvs[node->n].key = cJSON_GetArrayItem(ra, 0)->valuestring;
		node->kvs[node->n].value = cJSON_GetArrayItem(ra, 1)->valuestring;
		node->n++;
	}
	if (cJSON_IsString(db))
		node->db_system = db->valuestring;
	if (nattrs)
		res->proc_attrs = otlp_case_proc_attrs;
	if (db)
		res->db_system = otlp_case_db_system;
	res->proc_ctx = node;
	res->raw_tags = cJSON_IsTrue(cJSON_GetObjectItem(c, "raw_tags"));
}

static void otlp_case(cJSON *c)
{
	const cJSON *inputs = cJSON_GetObjectItem(c, "inputs"), *in;
	const cJSON *svc = cJSON_GetObjectItem(c, "service_name");
	struct otlp_case_node node = {.n = 0};
	cJSON *expect = cJSON_Duplicate(cJSON_GetObjectItem(c, "expect"), true);
	struct otlp_kv kvs[8];
	struct otlp_resource_cfg res = {.host_name = "testhost", .attrs = kvs};
	struct span *spans[16];
	struct otlp_buf buf = OTLP_BUF_INIT;
	size_t n = 0;
	cJSON *got;

	fix_version(expect);
	if (cJSON_IsString(svc))
		res.service_name = svc->valuestring;
	otlp_case_resource(c, &res, kvs, &node);
	cJSON_ArrayForEach(in, inputs)
	{
		const char *p = cJSON_GetObjectItem(in, "payload")->valuestring;
		const cJSON *pid = cJSON_GetObjectItem(in, "pid");
		const cJSON *exe = cJSON_GetObjectItem(in, "exe");
		const cJSON *uid = cJSON_GetObjectItem(in, "uid");
		const cJSON *evs = cJSON_GetObjectItem(in, "events"), *ev;
		enum span_reject why = SPAN_OK;

		if (n == 16)
			data_error("more than 16 inputs");
		if (!CHECK_MSG(span_parse(p, strlen(p), &spans[n], &why) == 0, "input rejected: %s",
			       span_reject_str(why)))
			continue;
		if (cJSON_IsNumber(pid))
			spans[n]->pid = (uint32_t)pid->valuedouble;
		if (cJSON_IsString(exe))
			spans[n]->exe_path = exe_path_get(exe->valuestring);
		if (cJSON_IsNumber(uid)) {
			spans[n]->uid = (uint32_t)uid->valuedouble;
			spans[n]->has_uid = true;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItem(in, "derive")))
			orphans_derive(spans[n]); /* a cut span no family told */
		cJSON_ArrayForEach(ev, evs)
		{
			const char *kind = cJSON_GetArrayItem(ev, 0)->valuestring;

			span_add_event(spans[n],
				       strcmp(kind, "suspend") ? SPAN_EVENT_RESUME
							       : SPAN_EVENT_SUSPEND,
				       strtoull(cJSON_GetArrayItem(ev, 1)->valuestring, NULL, 10));
		}
		n++;
	}
	if (CHECK_MSG(otlp_encode_json(&res, spans, n, &buf) == 0, "json encoding failed")) {
		char *text = strndup((char *)buf.bytes.data, buf.bytes.len);

		got = cJSON_Parse(text);
		compare_json("OTLP/JSON", got, expect);
		cJSON_Delete(got);
		free(text);
	}
	if (CHECK_MSG(otlp_encode_pb(&res, spans, n, &buf) == 0, "protobuf encoding failed")) {
		got = pb_to_json(buf.bytes.data, buf.bytes.len);
		compare_json("protobuf", got, expect);
		cJSON_Delete(got);
	}
	otlp_buf_release(&buf);
	for (size_t i = 0; i < n; i++)
		span__free(spans[i]);
	cJSON_Delete(expect);
}

/* ---- queue, suspend --------------------------------------------------------------------- */

static void suite_queue(void)
{
	struct queue_cfg cfg = {.max_spans = 4, .max_bytes = 1 << 20, .batch_size = 3};
	struct queue *q = queue__new(&cfg);
	struct queue_batch b1, b2;
	uint64_t drops = stats.dropped[STATS_DROP_QUEUE_FULL];
	int r;

	for (int i = 1; i <= 4; i++)
		CHECK_MSG(queue_push_take(q, mk_span(i)) == 0, "queue push within bound: push %d",
			  i);
	CHECK_MSG(queue_push_take(q, mk_span(5)) == -ENOSPC, "queue full by spans: push past cap");
	CHECK_MSG(stats.dropped[STATS_DROP_QUEUE_FULL] == drops + 1, "queue drop counted");
	r = queue_take_batch(q, &b1);
	CHECK_MSG(r == 3 && b1.n == 3, "batch of batch_size: got %d", r);
	CHECK_MSG(b1.spans[0]->span_id[7] == 1 && b1.spans[2]->span_id[7] == 3, "fifo order");
	/* Spans in an unreleased batch still count against the bound. */
	CHECK_MSG(queue_push_take(q, mk_span(6)) == -ENOSPC, "in-flight spans count");
	queue_release_batch(q, &b1);
	CHECK_MSG(queue_push_take(q, mk_span(7)) == 0, "room after release");
	r = queue_take_batch(q, &b2);
	CHECK_MSG(r == 2 && b2.spans[0]->span_id[7] == 4 && b2.spans[1]->span_id[7] == 7,
		  "rest in one batch: got %d", r);
	queue_release_batch(q, &b2);
	CHECK_MSG(queue_take_batch(q, &b2) == 0 && queue_waiting(q) == 0, "empty");
	queue__free(q);

	/* The byte bound. */
	cfg.max_spans = 100;
	cfg.max_bytes = 2 * (sizeof(struct span) + 64);
	q = queue__new(&cfg);
	CHECK_MSG(queue_push_take(q, mk_span(1)) == 0, "byte bound: first fits");
	r = 0;
	for (int i = 2; i < 10; i++)
		r += queue_push_take(q, mk_span(i)) == -ENOSPC;
	CHECK_MSG(r >= 7, "byte bound: refuses past max_bytes: refused %d", r);
	queue__free(q); /* frees what is still waiting: valgrind/ASan check it */

	/*
	 * A batch shed into a body larger than its spans: the bytes held grow past their peak,
	 * which must follow them (else "fallen below the peak" wraps and asks for a trim at
	 * every call).
	 */
	cfg.max_bytes = 1 << 20;
	q = queue__new(&cfg);
	queue_push_take(q, mk_span(1));
	queue_take_batch(q, &b1);
	queue_batch_shed(&b1, b1.bytes + 4096);
	CHECK_MSG(!queue_trim_due(q, 1000, 1000), "a body larger than its spans: no trim due");
	CHECK_MSG(!queue_trim_due(q, 1000, 1000), "and none at the next call either");
	queue_release_batch(q, &b1);
	queue__free(q);
}

static void suite_suspend(void)
{
	struct suspend_table *t = suspend_table__new(2, 1000);
	struct span *s = mk_span(0x1234);

	suspend_table_add(t, 7, 0x1234, SPAN_EVENT_SUSPEND, 100, 0);
	suspend_table_add(t, 7, 0x1234, SPAN_EVENT_RESUME, 200, 0);
	suspend_table_add(t, 8, 0x1234, SPAN_EVENT_SUSPEND, 300, 0); /* other process */
	s->pid = 7;
	suspend_table_take(t, s);
	CHECK_MSG(s->n_events == 2 && s->events[0].kind == SPAN_EVENT_SUSPEND &&
			  s->events[0].time_unix_ns == 100 && s->events[1].time_unix_ns == 200,
		  "events attached in order: n_events=%u", s->n_events);
	CHECK_MSG(suspend_table_size(t) == 1, "taken entry forgotten: size %zu",
		  suspend_table_size(t));
	suspend_table_add(t, 9, 1, SPAN_EVENT_SUSPEND, 1, 10);
	suspend_table_add(t, 9, 2, SPAN_EVENT_SUSPEND, 1, 20); /* evicts the oldest */
	CHECK_MSG(suspend_table_size(t) == 2 && suspend_table_expired(t) == 1,
		  "bounded: oldest evicted: size %zu", suspend_table_size(t));
	suspend_table_expire(t, 1015);
	CHECK_MSG(suspend_table_size(t) == 1, "expiry after TTL: size %zu", suspend_table_size(t));
	suspend_table_expire(t, 5000);
	CHECK_MSG(suspend_table_size(t) == 0, "all expired: size %zu", suspend_table_size(t));
	for (int i = 0; i < SPAN_MAX_EVENTS + 3; i++)
		suspend_table_add(t, 1, 0x1234, SPAN_EVENT_SUSPEND, (uint64_t)i, 6000);
	s->pid = 1;
	s->n_events = 0;
	suspend_table_take(t, s);
	CHECK_MSG(s->n_events == SPAN_MAX_EVENTS && s->dropped_events == 3,
		  "events past the cap are counted: n=%u dropped=%u", s->n_events,
		  s->dropped_events);
	span__free(s);
	suspend_table__free(t);
}

/* ---- pipeline: batching by size and age with a recording exporter ---------------------- */

struct rec_exporter {
	struct exporter ex;
	size_t batches;
	size_t spans;
	size_t sizes[64];
	unsigned pending;
	struct queue_batch *held[64];
	bool hold;	      /* keep batches until released (an exporter waiting on the network) */
	uint64_t got_ids[16]; /* the first spans exported: ids, traceIds */
	char got_traces[16][33];
	const char *want_trace; /* spans exported in this trace are counted in in_trace */
	size_t in_trace;
};

static int rec_submit(struct exporter *ex, struct queue_batch *b)
{
	struct rec_exporter *r = (struct rec_exporter *)ex;

	if (r->batches < 64)
		r->sizes[r->batches] = b->n;
	for (size_t i = 0; i < b->n; i++) {
		char hex[33];

		text_hex_encode(b->spans[i]->trace_id, 16, hex);
		r->in_trace += r->want_trace && !strcmp(hex, r->want_trace);
		if (r->spans + i >= 16)
			continue;
		r->got_ids[r->spans + i] = span_u64(b->spans[i]->span_id);
		memcpy(r->got_traces[r->spans + i], hex, 33);
	}
	r->batches++;
	r->spans += b->n;
	if (r->hold) {
		r->held[r->pending++] = b;
		return 0;
	}
	ex->done(ex->done_ctx, b, EXPORT_OK);
	return 0;
}

static bool rec_busy(const struct exporter *ex)
{
	return ((const struct rec_exporter *)ex)->pending >= 2;
}

static unsigned rec_pending(const struct exporter *ex)
{
	return ((const struct rec_exporter *)ex)->pending;
}

static void rec_abort(struct exporter *ex)
{
	struct rec_exporter *r = (struct rec_exporter *)ex;

	while (r->pending) {
		struct queue_batch *b = r->held[--r->pending];

		ex->done(ex->done_ctx, b, EXPORT_FAIL_SHUTDOWN);
	}
}

static void rec_free(struct exporter *ex)
{
}

static const struct exporter_ops rec_ops = {
	.submit = rec_submit,
	.busy = rec_busy,
	.pending = rec_pending,
	.abort = rec_abort,
	.free = rec_free,
};

static void stop_loop(struct loop *loop, void *ctx)
{
	loop_stop(loop);
}

/* A span as the pipeline gets it: the JSON, through the real entry point. */
static void ingest(struct pipeline *p, const struct pipeline_origin *origin, uint64_t id,
		   uint64_t parent, const char *trace)
{
	char json[SPAN_CLN_BUF];

	pipeline_ingest(p, origin, json, span_payload(json, sizeof(json), id, parent, trace));
}

/*
 * 300,000 distinct suspended ids through the pipeline as the daemon sets it up (default
 * bound): the table stays at its bound, under 1 MiB, and every event pushed out is counted.
 */
static void suite_suspend_bound(void)
{
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 16, .max_bytes = 1 << 20, .batch_size = 16},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 600000};
	struct suspend_table *t = suspend_table__new(SUSPEND_DEFAULT_MAX, 600000);
	struct loop *loop = loop__new();
	struct rec_exporter rec = {.ex = {.ops = &rec_ops}};
	struct pipeline *p;
	uint64_t before = stats.events_evicted;
	const uint64_t n = 300000;
	uint64_t ev = 0;

	CHECK_MSG(t && loop, "set-up");
	if (!t || !loop)
		return;
	for (uint64_t i = 1; i <= n; i++) {
		int r = suspend_table_add(t, 1, i, SPAN_EVENT_SUSPEND, i, 0);

		CHECK_MSG(r >= 0, "add %llu: %d", (unsigned long long)i, r);
		ev += r > 0 ? (uint64_t)r : 0;
		CHECK_MSG(suspend_table_size(t) <= SUSPEND_DEFAULT_MAX, "over its bound: %zu",
			  suspend_table_size(t));
	}
	CHECK_MSG(suspend_table_size(t) == SUSPEND_DEFAULT_MAX, "at its bound: size %zu",
		  suspend_table_size(t));
	CHECK_MSG(suspend_table_mem(t) < (1u << 20), "under 1 MiB: %zu bytes",
		  suspend_table_mem(t));
	CHECK_MSG(ev == n - SUSPEND_DEFAULT_MAX && suspend_table_evicted(t) == ev,
		  "every evicted event counted: returned %llu, table says %llu, want %llu",
		  (unsigned long long)ev, (unsigned long long)suspend_table_evicted(t),
		  (unsigned long long)(n - SUSPEND_DEFAULT_MAX));
	suspend_table__free(t);

	/* The pipeline with no bound given uses the default, and counts into stats. */
	p = pipeline__new(loop, &cfg, &rec.ex);
	CHECK_MSG(p != NULL, "pipeline");
	if (!p)
		return;
	for (uint64_t i = 1; i <= n; i++)
		pipeline_span_event(p, 1, i, i % 2 ? SPAN_EVENT_SUSPEND : SPAN_EVENT_RESUME, i);
	CHECK_MSG(stats.events_evicted - before == n - SUSPEND_DEFAULT_MAX,
		  "stats.events_evicted: %llu, want %llu",
		  (unsigned long long)(stats.events_evicted - before),
		  (unsigned long long)(n - SUSPEND_DEFAULT_MAX));
	pipeline__free(p);
	loop__free(loop);
}

static void suite_pipeline(void)
{
	struct rec_exporter rec = {.ex = {.ops = &rec_ops}};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 1000, .max_bytes = 64 << 20, .batch_size = 10},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 1000,
		.suspend_max = 16};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &rec.ex);
	struct loop_timer *t = loop_timer__new(loop, stop_loop, NULL);
	uint64_t dropped = stats_dropped_total(), events = stats.events;
	uint64_t events_dropped = stats.events_dropped;

	for (int i = 1; i <= 25; i++) {
		if (i == 3)
			pipeline_span_event(p, 42, 3, SPAN_EVENT_SUSPEND, 77);
		/* Span 4: 65 suspend/resume pairs, 2 events past the limit. */
		for (int e = 0; i == 4 && e < SPAN_MAX_EVENTS + 2; e++)
			pipeline_span_event(p, 42, 4,
					    e % 2 ? SPAN_EVENT_RESUME : SPAN_EVENT_SUSPEND,
					    100 + (uint64_t)e);
		ingest(p, &origin, (uint64_t)i, 0, TRACE);
	}
	CHECK_MSG(stats.events - events == 1 + SPAN_MAX_EVENTS &&
			  stats.events_dropped - events_dropped == 2,
		  "events attached %llu, dropped %llu: expected %d and 2",
		  (unsigned long long)(stats.events - events),
		  (unsigned long long)(stats.events_dropped - events_dropped), 1 + SPAN_MAX_EVENTS);
	CHECK_MSG(rec.batches == 2 && rec.sizes[0] == 10 && rec.sizes[1] == 10,
		  "full batches go at once: batches=%zu", rec.batches);
	loop_timer_arm(t, 500);
	loop_run(loop);
	CHECK_MSG(rec.batches == 3 && rec.sizes[2] == 5,
		  "the rest goes after the schedule delay: batches=%zu", rec.batches);
	CHECK_MSG(stats.events >= 1, "suspend event reached its span: events=%llu",
		  (unsigned long long)stats.events);

	/* An exporter at capacity: batches wait in the queue, nothing is lost. */
	rec.hold = true;
	for (int i = 100; i < 160; i++)
		ingest(p, &origin, (uint64_t)i, 0, TRACE);
	CHECK_MSG(rec.pending == 2, "in flight capped by the exporter: pending=%u", rec.pending);
	CHECK_MSG(!pipeline_idle(p), "the rest waits: idle");
	pipeline_abort(p);
	CHECK_MSG(stats_dropped_total() - dropped == 60 && stats.dropped[STATS_DROP_SHUTDOWN] == 60,
		  "abort counts what was not delivered: dropped %llu",
		  (unsigned long long)(stats_dropped_total() - dropped));
	CHECK_MSG(pipeline_idle(p), "idle after abort: not idle");
	loop_timer__free(t);
	pipeline__free(p);
	loop__free(loop);
}

/*
 * Spans CLN cut: given a child's traceId, held for their parent, or (no family tells)
 * given a traceId of their own and counted.
 */
static void suite_pipeline_orphans(void)
{
	static const char *const T1 = "11111111111111111111111111111111",
				 *const T2 = "22222222222222222222222222222222",
				 *const D1 = "0000002affffffff00000000000000e1",
				 *const D2 = "0000002affffffff00000000000000c3";
	static const struct {
		uint64_t id;
		const char *trace;
	} want[] = {{0xc1, T1}, {0xb1, T1}, {0xd2, T2}, {0xc2, T2}, {0xe1, D1}, {0xc3, D2}};
	struct rec_exporter rec = {.ex = {.ops = &rec_ops}};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 100, .max_bytes = 1 << 20, .batch_size = 100},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 1000,
		.suspend_max = 16};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &rec.ex);
	uint64_t dropped = stats_dropped_total(), truncated = stats.truncated;
	uint64_t derived = stats.trace_id_derived;

	ingest(p, &origin, 0xc1, 0xb1, NULL); /* cut: held until its parent comes */
	ingest(p, &origin, 0xb1, 0xa1, T1);   /* which adopts it */
	ingest(p, &origin, 0xd2, 0xc2, T2);   /* a child tells its parent's traceId */
	ingest(p, &origin, 0xc2, 0xb2, NULL); /* to the cut parent */
	ingest(p, &origin, 0xe1, 0, NULL);    /* a cut root no child told: a traceId of its own */
	ingest(p, &origin, 0xc3, 0xb3, NULL); /* held; its parent never comes */
	CHECK_MSG(stats.trace_id_derived == derived + 1, "the cut root not given its own traceId");
	pipeline_flush(p);
	CHECK_MSG(stats.trace_id_derived == derived + 2,
		  "the span still held at the flush not given its own traceId");
	CHECK_MSG(stats_dropped_total() == dropped, "%llu spans dropped",
		  (unsigned long long)(stats_dropped_total() - dropped));
	CHECK_MSG(rec.spans == 6, "%zu spans exported, expected 6", rec.spans);
	for (size_t i = 0; i < 6 && i < rec.spans; i++)
		CHECK_MSG(rec.got_ids[i] == want[i].id && !strcmp(rec.got_traces[i], want[i].trace),
			  "exported %zu: %llx in trace %s, expected %llx in %s", i,
			  (unsigned long long)rec.got_ids[i], rec.got_traces[i],
			  (unsigned long long)want[i].id, want[i].trace);
	CHECK_MSG(stats.truncated == truncated + 4, "%llu cut spans delivered, expected 4",
		  (unsigned long long)(stats.truncated - truncated));
	pipeline__free(p);
	loop__free(loop);
}

/*
 * 70 cut children, each with a cut grandchild (emitted first, as CLN does), then their
 * parent: every one of the 140 takes the parent's traceId (adoption once stopped at 64,
 * and the grandchildren of those 64 were lost).
 */
static void suite_pipeline_adopt_wide(void)
{
	enum { CHILDREN = 70 };
	struct rec_exporter rec = {.ex = {.ops = &rec_ops}, .want_trace = TRACE};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 1000, .max_bytes = 64 << 20, .batch_size = 100},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 60000,
		.suspend_max = 16};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &rec.ex);
	uint64_t derived = stats.trace_id_derived, dropped = stats_dropped_total();

	for (uint64_t i = 0; i < CHILDREN; i++) {
		ingest(p, &origin, 0x20000 + i, 0x10000 + i, NULL); /* grandchild */
		ingest(p, &origin, 0x10000 + i, 0xb1, NULL);	    /* child */
	}
	ingest(p, &origin, 0xb1, 0xa1, TRACE);
	pipeline_flush(p);
	CHECK_MSG(rec.in_trace == 2 * CHILDREN + 1, "%zu of %d spans in the parent's trace",
		  rec.in_trace, 2 * CHILDREN + 1);
	CHECK_MSG(rec.spans == 2 * CHILDREN + 1, "%zu spans exported", rec.spans);
	CHECK_MSG(stats.trace_id_derived == derived && stats_dropped_total() == dropped,
		  "%llu given their own traceId, %llu dropped",
		  (unsigned long long)(stats.trace_id_derived - derived),
		  (unsigned long long)(stats_dropped_total() - dropped));
	pipeline__free(p);
	loop__free(loop);
}

/*
 * A chain of cut spans whose top never meets its parent: given up together at the flush,
 * newest (the top) first, they share the top's derived traceId.
 */
static void suite_pipeline_derive_family(void)
{
	struct rec_exporter rec = {.ex = {.ops = &rec_ops},
				   .want_trace = "0000002affffffff00000000000000b1"};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 1000, .max_bytes = 64 << 20, .batch_size = 100},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 60000,
		.suspend_max = 16};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &rec.ex);

	ingest(p, &origin, 0xd1, 0xc1, NULL);
	ingest(p, &origin, 0xc1, 0xb1, NULL);
	ingest(p, &origin, 0xb1, 0xa1, NULL); /* 0xa1 never comes */
	pipeline_flush(p);
	CHECK_MSG(rec.spans == 3 && rec.in_trace == 3, "%zu of %zu spans in the top's trace",
		  rec.in_trace, rec.spans);
	pipeline__free(p);
	loop__free(loop);
}

/* ---- config ------------------------------------------------------------------------------
 *
 * A case (tests/data/config/cases.json) gives one of:
 *   "args": [...], "env": {...}   config_load() with argv[0] supplied and that environment
 *   "decode": "TEXT"              config_percent_decode(TEXT)   -> {"decoded": text or null}
 *   "kv": "TEXT"                  config_parse_kv_list(TEXT, 4) -> {"ret", "n", "kv"}
 *   "header_lines": "TEXT"        config_parse_header_lines(TEXT, 4)
 *                                   -> {"ret", "n", "kv", "bad_line"}
 *   "args" and "wipe": true       also config_wipe_argv() on a copy of argv after the load
 *                                   -> "wiped": [argv[1..]], "n_wiped" beside the fields
 *   "usage": true                 config_usage()                -> its text
 * and what must come of it:
 *   "expect": {FIELD: VALUE}      those fields of the result (config_to_json), equal
 *   "error": TEXT or [TEXT, ...]  config_load() fails with -EINVAL, the message holds each
 *   "contains": TEXT or [...]     the usage text holds each
 *   "absent": TEXT or [...]       neither the message nor the result holds any
 * A value that is not UTF-8 text is written {"hex": "..."}. In every case: no message may
 * hold "SECRET" (the cases' secret header values); a failed load has a message, a good one
 * none; config_free() twice is safe; loading again gives the same answer (getopt state);
 * no usage line is over 80 columns.
 */

#define CONFIG_CANARY "SECRET"

static const cJSON *config_env; /* the running case's environment */

static const char *config_getenv(const char *name)
{
	return cJSON_GetStringValue(cases_get(config_env, name));
}

/* Every {"hex": "..."} in @node becomes the string of those bytes. */
static void config_unhex(cJSON *node)
{
	for (cJSON *child = node ? node->child : NULL, *next; child; child = next) {
		const char *hex = cJSON_IsObject(child) ? get_str(child, "hex") : NULL;
		size_t n = hex ? strlen(hex) / 2 : 0;
		char bytes[256] = "";

		next = child->next;
		if (!hex) {
			config_unhex(child);
			continue;
		}
		if (n >= sizeof(bytes) || !text_hex_decode(hex, n * 2, (uint8_t *)bytes) ||
		    strlen(bytes) != n)
			data_error("bad hex value \"%s\" (odd, not hex, too long or with a NUL)",
				   hex);
		if (child->string)
			cJSON_ReplaceItemInObjectCaseSensitive(node, child->string,
							       cJSON_CreateString(bytes));
		else
			cJSON_ReplaceItemViaPointer(node, child, cJSON_CreateString(bytes));
	}
}

static const char *errno_name(int ret)
{
	switch (ret) {
	case 0:
		return "0";
	case -EINVAL:
		return "-EINVAL";
	case -E2BIG:
		return "-E2BIG";
	case -ENOMEM:
		return "-ENOMEM";
	default:
		return "other";
	}
}

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* Every field of struct config, under the names the cases use. */
static cJSON *config_to_json(const struct config *c)
{
	static const char *const exporters[] = {"otlp", "stdout", "console", "none"};
	static const char *const protocols[] = {"http/protobuf", "http/json", "grpc"};
	cJSON *o = cJSON_CreateObject(), *a;
	size_t i;

	a = cJSON_AddArrayToObject(o, "files");
	for (i = 0; i < c->n_files; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->files[i]));
	cJSON_AddBoolToObject(o, "follow", c->follow);
	cJSON_AddItemToObject(o, "socket", str_or_null(c->socket_path));
	cJSON_AddNumberToObject(o, "socket_mode", c->socket_mode);
	cJSON_AddItemToObject(o, "socket_group", str_or_null(c->socket_group));
	a = cJSON_AddArrayToObject(o, "socket_allow_uids");
	for (i = 0; i < c->n_socket_allow_uids; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->socket_allow_uids[i]));
	a = cJSON_AddArrayToObject(o, "lightningd");
	for (i = 0; i < c->n_lightningd; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->lightningd[i]));
	cJSON_AddBoolToObject(o, "usdt", c->usdt);
	cJSON_AddBoolToObject(o, "no_plugins", c->no_plugins);
	cJSON_AddBoolToObject(o, "all_probes", c->all_probes);
	a = cJSON_AddArrayToObject(o, "pids");
	for (i = 0; i < c->n_pids; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(c->pids[i]));
	cJSON_AddNumberToObject(o, "ringbuf_size", (double)c->ringbuf_size);

	cJSON_AddStringToObject(o, "exporter", exporters[c->exporter]);
	cJSON_AddStringToObject(o, "protocol", protocols[c->protocol]);
	cJSON_AddItemToObject(o, "endpoint", str_or_null(c->endpoint));
	cJSON_AddBoolToObject(o, "endpoint_append", c->endpoint_append);
	a = cJSON_AddArrayToObject(o, "headers");
	for (i = 0; i < c->n_headers; i++)
		cJSON_AddItemToArray(a, pair(c->headers[i].key, c->headers[i].value));
	cJSON_AddNumberToObject(o, "n_headers", (double)c->n_headers);
	cJSON_AddBoolToObject(o, "gzip", c->gzip);
	cJSON_AddNumberToObject(o, "timeout_ms", (double)c->timeout_ms);
	cJSON_AddItemToObject(o, "ca_cert", str_or_null(c->ca_cert));
	cJSON_AddItemToObject(o, "client_cert", str_or_null(c->client_cert));
	cJSON_AddItemToObject(o, "client_key", str_or_null(c->client_key));
	cJSON_AddBoolToObject(o, "insecure", c->insecure);
	cJSON_AddBoolToObject(o, "tls_skip_verify", c->tls_skip_verify);
	cJSON_AddNumberToObject(o, "max_inflight", c->max_inflight);
	cJSON_AddNumberToObject(o, "retry_max_elapsed_ms", (double)c->retry_max_elapsed_ms);
	cJSON_AddItemToObject(o, "spool_dir", str_or_null(c->spool_dir));
	cJSON_AddNumberToObject(o, "spool_bytes", (double)c->spool_bytes);

	cJSON_AddNumberToObject(o, "max_queue_spans", (double)c->max_queue_spans);
	cJSON_AddNumberToObject(o, "max_queue_bytes", (double)c->max_queue_bytes);
	cJSON_AddNumberToObject(o, "batch_size", (double)c->batch_size);
	cJSON_AddNumberToObject(o, "schedule_delay_ms", (double)c->schedule_delay_ms);
	cJSON_AddNumberToObject(o, "export_timeout_ms", (double)c->export_timeout_ms);
	cJSON_AddNumberToObject(o, "shutdown_timeout_ms", (double)c->shutdown_timeout_ms);

	a = cJSON_AddArrayToObject(o, "drop_spans");
	for (i = 0; i < c->n_drop_spans; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->drop_spans[i]));
	cJSON_AddNumberToObject(o, "sample_ratio", c->sample_ratio);
	cJSON_AddBoolToObject(o, "keep_errors", c->keep_errors);
	cJSON_AddBoolToObject(o, "keep_slow", c->keep_slow);
	cJSON_AddNumberToObject(o, "keep_slower_ns", (double)c->keep_slower_ns);
	cJSON_AddNumberToObject(o, "hold_ms", (double)c->hold_ms);
	cJSON_AddNumberToObject(o, "hold_spans", (double)c->hold_spans);
	cJSON_AddNumberToObject(o, "hold_bytes", (double)c->hold_bytes);

	cJSON_AddItemToObject(o, "service_name", str_or_null(c->service_name));
	a = cJSON_AddArrayToObject(o, "resource");
	for (i = 0; i < c->n_resource_attrs; i++)
		cJSON_AddItemToArray(a, pair(c->resource_attrs[i].key, c->resource_attrs[i].value));
	cJSON_AddNumberToObject(o, "n_resource", (double)c->n_resource_attrs);

	cJSON_AddNumberToObject(o, "verbosity", c->verbosity);
	cJSON_AddNumberToObject(o, "log_level", c->log_level);
	cJSON_AddBoolToObject(o, "sdk_disabled", c->sdk_disabled);
	a = cJSON_AddArrayToObject(o, "warnings");
	for (i = 0; i < c->n_warnings; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->warnings[i]));
	cJSON_AddNumberToObject(o, "warnings_lost", (double)c->warnings_lost);
	cJSON_AddNumberToObject(o, "stats_interval_s", (double)c->stats_interval_s);
	cJSON_AddItemToObject(o, "metrics_listen", str_or_null(c->metrics_listen));
	cJSON_AddItemToObject(o, "header_file", str_or_null(c->header_file));
	cJSON_AddItemToObject(o, "user", str_or_null(c->user));
	cJSON_AddItemToObject(o, "rpc_file", str_or_null(c->rpc_file));
	cJSON_AddNumberToObject(o, "suspend_ttl_ms", (double)c->suspend_ttl_ms);
	cJSON_AddBoolToObject(o, "help", c->help);
	cJSON_AddBoolToObject(o, "version", c->version);
	return o;
}

static cJSON *config_decode(const char *text)
{
	cJSON *o = cJSON_CreateObject();
	char *d = config_percent_decode(text, strlen(text));

	cJSON_AddItemToObject(o, "decoded", str_or_null(d));
	free(d);
	return o;
}

static cJSON *config_kv(const char *text)
{
	struct config_kv h[4];
	cJSON *o = cJSON_CreateObject(), *a;
	size_t n = 0;
	int ret;

	memset(h, 0xa5, sizeof(h)); /* entries past n must not be touched or freed */
	ret = config_parse_kv_list(text, h, 4, &n);
	cJSON_AddStringToObject(o, "ret", errno_name(ret));
	cJSON_AddNumberToObject(o, "n", (double)n);
	a = cJSON_AddArrayToObject(o, "kv");
	for (size_t i = 0; i < n; i++) {
		cJSON_AddItemToArray(a, pair(h[i].key, h[i].value));
		free(h[i].key);
		free(h[i].value);
	}
	return o;
}

static cJSON *config_header_lines(const char *text)
{
	struct config_kv h[4];
	cJSON *o = cJSON_CreateObject(), *a;
	size_t n = 0, bad = 0;
	int ret;

	memset(h, 0xa5, sizeof(h)); /* entries past n must not be touched or freed */
	ret = config_parse_header_lines(text, strlen(text), h, 4, &n, &bad);
	cJSON_AddStringToObject(o, "ret", errno_name(ret));
	cJSON_AddNumberToObject(o, "n", (double)n);
	cJSON_AddNumberToObject(o, "bad_line", (double)bad);
	a = cJSON_AddArrayToObject(o, "kv");
	for (size_t i = 0; i < n; i++) {
		cJSON_AddItemToArray(a, pair(h[i].key, h[i].value));
		free(h[i].key);
		free(h[i].value);
	}
	return o;
}

/* config_wipe_argv() on a copy of @argv (@argc entries): what is left, into @got. */
static void config_wipe_case(cJSON *got, int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));
	cJSON *a = cJSON_AddArrayToObject(got, "wiped");
	size_t n;

	if (!copy)
		abort();
	for (int i = 0; i < argc; i++)
		if (!(copy[i] = strdup(argv[i])))
			abort();
	n = config_wipe_argv(argc, copy);
	cJSON_AddNumberToObject(got, "n_wiped", (double)n);
	for (int i = 0; i < argc; i++) {
		if (i)
			cJSON_AddItemToArray(a, cJSON_CreateString(copy[i]));
		free(copy[i]);
	}
	free(copy);
}

/* The usage text, every line at most 80 columns. Caller frees. */
static char *config_usage_text(void)
{
	char *buf = NULL;
	size_t len = 0, longest = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		abort();
	config_usage(f);
	fclose(f);
	for (const char *line = buf; *line;) {
		size_t n = strcspn(line, "\n");

		if (n > longest)
			longest = n;
		line += n + (line[n] == '\n');
	}
	CHECK_MSG(longest <= 80, "a usage line is %zu columns long, more than 80", longest);
	return buf;
}

/* config_load() with the case's arguments; @argv holds argc + 1 pointers. */
static int config_case_load(const cJSON *c, struct config *cfg, char **argv, char *err,
			    size_t err_size)
{
	const cJSON *arg;
	int argc = 0;

	argv[argc++] = "cln-otlp";
	cJSON_ArrayForEach(arg, cases_get(c, "args"))
	{
		if (!cJSON_IsString(arg))
			data_error("an argument is not a string");
		argv[argc++] = arg->valuestring;
	}
	argv[argc] = NULL;
	memset(err, 0, err_size);
	return config_load(cfg, argc, argv, config_getenv, err, err_size);
}

static void config_case(cJSON *c)
{
	const char *decode, *kv, *lines, *text;
	bool usage, load;
	char err[512] = "", *usage_text = NULL, *printed, **argv;
	struct config cfg, again;
	cJSON *got = NULL;
	int ret = 0;

	config_unhex(c);
	config_env = cases_get(c, "env");
	decode = get_str(c, "decode");
	kv = get_str(c, "kv");
	lines = get_str(c, "header_lines");
	usage = cJSON_IsTrue(cases_get(c, "usage"));
	load = !decode && !kv && !lines && !usage;
	argv = calloc((size_t)cJSON_GetArraySize(cases_get(c, "args")) + 2, sizeof(*argv));
	if (decode) {
		got = config_decode(decode);
	} else if (kv) {
		got = config_kv(kv);
	} else if (lines) {
		got = config_header_lines(lines);
	} else if (usage) {
		usage_text = config_usage_text();
	} else {
		ret = config_case_load(c, &cfg, argv, err, sizeof(err));
		if (!ret)
			got = config_to_json(&cfg);
		if (!ret && cJSON_IsTrue(cases_get(c, "wipe")))
			config_wipe_case(got, cJSON_GetArraySize(cases_get(c, "args")) + 1, argv);
		CHECK_MSG(ret || !err[0], "success but a message: %s", err);
		CHECK_MSG(!ret || err[0], "failed (%d) without a message", ret);
	}

	if (cases_get(c, "error")) {
		CHECK_MSG(ret == -EINVAL, "expected -EINVAL, got %s%s%s", errno_name(ret),
			  err[0] ? ": " : "", err);
		for (int i = 0; (text = get_text(c, "error", i)); i++)
			CHECK_MSG(strstr(err, text), "message \"%s\" lacks \"%s\"", err, text);
	} else if (load) {
		CHECK_MSG(!ret, "unexpected error %s: %s", errno_name(ret), err);
	}
	CHECK_MSG(!strstr(err, CONFIG_CANARY), "a secret header value leaked into the message: %s",
		  err);
	if (cases_get(c, "expect"))
		check_fields(got, cases_get(c, "expect"));
	for (int i = 0; (text = get_text(c, "contains", i)); i++)
		CHECK_MSG(usage_text && strstr(usage_text, text), "the usage text lacks \"%s\"",
			  text);
	printed = got ? cJSON_PrintUnformatted(got) : NULL;
	for (int i = 0; (text = get_text(c, "absent", i)); i++)
		CHECK_MSG(!strstr(err, text) && !(printed && strstr(printed, text)) &&
				  !(usage_text && strstr(usage_text, text)),
			  "\"%s\" should not appear (message: %s)", text, err);

	if (load) {
		/* Safe after failure, and idempotent; a second load gives the same answer. */
		config_free(&cfg);
		config_free(&cfg);
		CHECK_MSG(config_case_load(c, &again, argv, err, sizeof(err)) == ret,
			  "a second config_load() answers otherwise than the first (%d)", ret);
		config_free(&again);
		config_free(NULL);
	}
	free(printed);
	free(usage_text);
	cJSON_Delete(got);
	free(argv);
	config_env = NULL;
}

/* ---- orphans -------------------------------------------------------------------------------
 *
 * A case (tests/data/orphans/cases.json) makes a table with orphans__new("max_held", "ttl_ms")
 * (defaults 1024, as the pipeline's, and 1000) and runs its "steps", each one call:
 *   {"op": "learn", "span": S}
 *   {"op": "resolve", "span": S, "trace": T}        T: the traceId S gets; null: none
 *   {"op": "hold", "span": S, "at": MS, "evicted": ID} ID: the span handed back (-ENOSPC);
 *                                                   absent or null: none (0)
 *   {"op": "adopt", "parent": S, "adopted": [ID, ...]} in that order, with S's traceId
 *                                                   (orphans_adopt, then orphans_take)
 *   {"op": "expire", "at": MS, "expired": [ID, ...]}
 *   {"op": "derive", "span": S, "trace": T}         orphans_derive() gives S traceId T
 * "max" bounds each orphans_take and expire (default 64, as the pipeline's take); "held": N
 * after any step checks orphans_held(); "derived": true|false checks trace_id_derived of
 * what resolve or adopt gave out. A span S is {"pid": N, "id": ID, "parent": ID, "trace": T};
 * ids and traceIds are hex, leading zeros left out; without "trace", CLN cut the span before
 * it; "derived": true marks its traceId as one orphans_derive() made.
 */

#define ORPHANS_CASE_OUT 256 /* spans one step may hand out, at most */

/* An id of the data: hex, leading zeros left out. */
static uint64_t hex_u64(const char *hex)
{
	uint8_t b[8] = {0};
	char pad[16];
	size_t n = strlen(hex);

	if (!n || n > 16)
		data_error("\"%s\" is not an id", hex);
	memset(pad, '0', 16);
	memcpy(pad + 16 - n, hex, n);
	if (!text_hex_decode(pad, 16, b))
		data_error("\"%s\" is not hex", hex);
	return span_u64(b);
}

/* A traceId of the data, in the 32 hex digits a span has. */
static void trace_hex(const char *t, char out[33])
{
	size_t n = strlen(t);

	if (!n || n > 32)
		data_error("\"%s\" is not a traceId", t);
	memset(out, '0', 32);
	memcpy(out + 32 - n, t, n);
	out[32] = '\0';
}

static struct span *orphans_span(const cJSON *sp)
{
	const char *id = get_str(sp, "id"), *parent = get_str(sp, "parent");
	const char *trace = get_str(sp, "trace");
	char t[33];
	struct span *s;

	if (!id)
		data_error("a span without an id");
	if (trace)
		trace_hex(trace, t);
	s = mk_span_family(hex_u64(id), parent ? hex_u64(parent) : 0, trace ? t : NULL);
	s->pid = (uint32_t)get_num(sp, "pid", 0);
	s->trace_id_derived = cJSON_IsTrue(cases_get(sp, "derived"));
	return s;
}

/*
 * The spans handed out are those of @want, in order (with @trace, when given, and marked
 * derived as @derived says: cJSON true/false, or NULL for unchecked); freed here.
 */
static void orphans_check_out(int step, struct span **out, size_t n, const cJSON *want,
			      const uint8_t *trace, const cJSON *derived)
{
	char got[512] = "", *wants = cJSON_PrintUnformatted(want);
	bool same = (int)n == cJSON_GetArraySize(want);
	size_t len = 0;

	if (!cJSON_IsArray(want))
		data_error("step %d: no list of the spans handed out", step);
	for (size_t i = 0; i < n; i++) {
		const cJSON *w = cJSON_GetArrayItem(want, (int)i);
		uint64_t id = span_u64(out[i]->span_id);

		same = same && cJSON_IsString(w) && hex_u64(w->valuestring) == id;
		if (len < sizeof(got))
			len += (size_t)snprintf(got + len, sizeof(got) - len, "%s\"%llx\"",
						i ? "," : "", (unsigned long long)id);
		if (trace)
			CHECK_MSG(out[i]->has_trace_id && !memcmp(out[i]->trace_id, trace, 16),
				  "step %d: %llx handed out without its parent's traceId", step,
				  (unsigned long long)id);
		if (derived)
			CHECK_MSG(out[i]->trace_id_derived == cJSON_IsTrue(derived),
				  "step %d: %llx trace_id_derived %d", step, (unsigned long long)id,
				  out[i]->trace_id_derived);
	}
	CHECK_MSG(same, "step %d: handed out [%s], expected %s", step, got, wants);
	for (size_t i = 0; i < n; i++)
		span__free(out[i]);
	free(wants);
}

static void orphans_case(cJSON *c)
{
	struct orphans *o = orphans__new((size_t)get_num(c, "max_held", 1024),
					 (uint64_t)get_num(c, "ttl_ms", 1000));
	const cJSON *step;
	int i = 0;

	cJSON_ArrayForEach(step, cases_get(c, "steps"))
	{
		const char *op = get_str(step, "op"), *want;
		size_t max = (size_t)get_num(step, "max", 64), n, got_n, k;
		double at = get_num(step, "at", 0);
		struct span *out[ORPHANS_CASE_OUT], *s, *evicted;
		char got[33], t[33];
		uint64_t ev;
		bool r;
		int ret;

		i++;
		if (!op || !max || max > ORPHANS_CASE_OUT || at < 0 || at >= 0x1p64)
			data_error("step %d: no op, a max of 0 or over %d or a time out of range",
				   i, ORPHANS_CASE_OUT);
		if (!strcmp(op, "learn")) {
			s = orphans_span(cases_get(step, "span"));
			orphans_learn(o, s);
			span__free(s);
		} else if (!strcmp(op, "resolve")) {
			if (!cases_get(step, "trace"))
				data_error("step %d: resolve without the traceId expected", i);
			want = get_str(step, "trace");
			trace_hex(want ? want : "0", t);
			s = orphans_span(cases_get(step, "span"));
			r = orphans_resolve(o, s);
			text_hex_encode(s->trace_id, 16, got);
			CHECK_MSG(r == !!want && s->has_trace_id == !!want && !strcmp(got, t),
				  "step %d: resolved %d to %s, expected %s", i, r, got,
				  want ? t : "nothing");
			if (cases_get(step, "derived"))
				CHECK_MSG(s->trace_id_derived ==
						  cJSON_IsTrue(cases_get(step, "derived")),
					  "step %d: resolved with trace_id_derived %d", i,
					  s->trace_id_derived);
			span__free(s);
		} else if (!strcmp(op, "derive")) {
			want = get_str(step, "trace");
			if (!want)
				data_error("step %d: derive without the traceId expected", i);
			trace_hex(want, t);
			s = orphans_span(cases_get(step, "span"));
			orphans_derive(s);
			text_hex_encode(s->trace_id, 16, got);
			CHECK_MSG(s->has_trace_id && s->trace_id_derived && !strcmp(got, t),
				  "step %d: derived %s (marked %d), expected %s", i, got,
				  s->trace_id_derived, t);
			span__free(s);
		} else if (!strcmp(op, "hold")) {
			want = get_str(step, "evicted");
			s = orphans_span(cases_get(step, "span"));
			ret = orphans_hold(o, s, (uint64_t)at, &evicted);
			ev = evicted ? span_u64(evicted->span_id) : 0;
			CHECK_MSG(ret == (want ? -ENOSPC : 0) && ev == (want ? hex_u64(want) : 0),
				  "step %d: hold returned %d, evicted %llx, expected %s evicted", i,
				  ret, (unsigned long long)ev, want ? want : "none");
			span__free(evicted);
		} else if (!strcmp(op, "adopt")) {
			s = orphans_span(cases_get(step, "parent"));
			n = orphans_adopt(o, s);
			got_n = 0;
			do {
				k = ORPHANS_CASE_OUT - got_n < max ? ORPHANS_CASE_OUT - got_n : max;
				k = orphans_take(o, out + got_n, k);
				got_n += k;
			} while (k && got_n < ORPHANS_CASE_OUT);
			CHECK_MSG(got_n == n, "step %d: adopted %zu, handed out %zu", i, n, got_n);
			orphans_check_out(i, out, got_n, cases_get(step, "adopted"), s->trace_id,
					  cases_get(step, "derived"));
			span__free(s);
		} else if (!strcmp(op, "expire")) {
			n = orphans_expire(o, (uint64_t)at, out, max);
			orphans_check_out(i, out, n, cases_get(step, "expired"), NULL, NULL);
		} else {
			data_error("step %d: unknown op %s", i, op);
		}
		if (cases_get(step, "held"))
			CHECK_MSG(orphans_held(o) == (size_t)get_num(step, "held", 0),
				  "step %d: %zu held, expected %g", i, orphans_held(o),
				  get_num(step, "held", 0));
	}
	if (!i)
		data_error("a case without steps");
	orphans__free(o); /* frees what is still held: valgrind/ASan check it */
}

/* Span ids as CLN makes them, pseudo-random u64s (splitmix64). */
static uint64_t random_id(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * The tables that remember traceIds are bounded: past their size old families are
 * forgotten, recent ones are remembered, and a cut span is never given another family's
 * traceId. Table 0: children tell their cut parent; table 1: a parent tells its cut child.
 */
static void suite_orphans_cache(void)
{
	enum { FAMILIES = 10000, RECENT = 100 };
	static uint64_t parents[FAMILIES];
	struct orphans *o = orphans__new(1, 1000);
	uint64_t state = 42;
	char trace[33];
	struct span *s;

	for (int table = 0; table < 2; table++) {
		size_t found = 0, recent = 0, wrong = 0;

		for (uint64_t i = 0; i < FAMILIES; i++) {
			parents[i] = random_id(&state);
			snprintf(trace, sizeof(trace), "%032llx", (unsigned long long)i + 1);
			s = table ? mk_span_family(parents[i], 0, trace)
				  : mk_span_family(random_id(&state), parents[i], trace);
			s->pid = 1;
			orphans_learn(o, s);
			span__free(s);
		}
		for (uint64_t i = 0; i < FAMILIES; i++) {
			s = table ? mk_span_family(random_id(&state), parents[i], NULL)
				  : mk_span_family(parents[i], 0, NULL);
			s->pid = 2; /* another process: nothing to tell */
			wrong += orphans_resolve(o, s);
			s->pid = 1;
			if (orphans_resolve(o, s)) {
				found++;
				recent += i >= FAMILIES - RECENT;
				wrong +=
					span_u64(s->trace_id) || span_u64(s->trace_id + 8) != i + 1;
			}
			span__free(s);
		}
		CHECK_MSG(!wrong, "table %d: %zu cut spans given another family's traceId", table,
			  wrong);
		CHECK_MSG(found < FAMILIES, "table %d: all %d families remembered: unbounded",
			  table, FAMILIES);
		CHECK_MSG(recent >= RECENT * 9 / 10,
			  "table %d: %zu of the last %d families remembered", table, recent,
			  RECENT);
	}
	orphans__free(o);
}

/* ---- main -------------------------------------------------------------------------------- */

/* ---- park: bodies waiting in memory ------------------------------------------------------ */

/* @len bytes of @name repeated: a body that says which it is. */
static uint8_t *park_payload(const char *name, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);
	size_t k = strlen(name);

	if (!d)
		data_error("out of memory");
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)name[i % k];
	return d;
}

/* The name a body was made from (its first bytes up to the first repeat: names differ). */
static bool park_is(const struct park_body *b, const char *name, size_t len)
{
	struct buf out = BUF_INIT(1 << 20);
	uint8_t *want = park_payload(name, len);
	bool same = park_open(b, &out) == 0 && out.len == len && !memcmp(out.data, want, len);

	buf_free(&out);
	free(want);
	return same;
}

/*
 * A case: "max_bodies", "max_data" and "headers" (the byte bound: max_data bytes of data
 * and that many body headers, max_bodies unless given), then "steps":
 * {"put": NAME, "len", "spans", "deflate", "expect": "ok"|"ENOSPC"}, {"take": NAME|null}
 * (the oldest, opened and compared with what was put), each with optional "bodies",
 * "held_spans" and "data" (park_bytes() less the headers) to check after it.
 */
static void park_case(cJSON *c)
{
	size_t max_bodies = (size_t)get_num(c, "max_bodies", 16);
	size_t headers = (size_t)get_num(c, "headers", (double)max_bodies);
	struct park_cfg cfg = {.max_bodies = max_bodies,
			       .max_bytes = (size_t)get_num(c, "max_data", 1 << 20) +
					    headers * sizeof(struct park_body)};
	struct park *p = park__new(&cfg);
	const cJSON *st;
	int i = 0;

	CHECK_MSG(p != NULL, "park__new");
	if (!p)
		return;
	cJSON_ArrayForEach(st, cJSON_GetObjectItem(c, "steps"))
	{
		const char *put = get_str(st, "put"), *want = get_str(st, "expect");
		size_t len = (size_t)get_num(st, "len", 0);
		const cJSON *take = cJSON_GetObjectItem(st, "take");

		i++;
		if (put) {
			uint8_t *d = park_payload(put, len);
			struct park_body *b =
				park_seal(d, len, (uint32_t)get_num(st, "spans", 1),
					  cJSON_IsTrue(cJSON_GetObjectItem(st, "deflate")));
			int r = b ? park_put(p, b) : -ENOMEM;

			free(d);
			if (r < 0)
				free(b);
			const char *got = r == 0 ? "ok" : r == -ENOSPC ? "ENOSPC" : "ENOMEM";

			CHECK_MSG(!strcmp(got, want ? want : "ok"), "step %d: put %s: %s, want %s",
				  i, put, got, want ? want : "ok");
			if (b && r == 0 && cJSON_IsTrue(cJSON_GetObjectItem(st, "deflate")))
				CHECK_MSG(b->len < len, "step %d: %s deflated: %zu of %zu bytes", i,
					  put, b->len, len);
		} else if (take) {
			struct park_body *b = park_take(p);
			const char *name = cJSON_IsString(take) ? take->valuestring : NULL;

			CHECK_MSG(!b == !name, "step %d: take: %s, want %s", i,
				  b ? "a body" : "none", name ? name : "none");
			if (b && name)
				CHECK_MSG(park_is(b, name, b->raw_len),
					  "step %d: the oldest is %s, as put", i, name);
			free(b);
		}
		if (cJSON_GetObjectItem(st, "bodies"))
			CHECK_MSG(park_bodies(p) == (size_t)get_num(st, "bodies", 0),
				  "step %d: %zu bodies", i, park_bodies(p));
		if (cJSON_GetObjectItem(st, "held_spans"))
			CHECK_MSG(park_spans(p) == (size_t)get_num(st, "held_spans", 0),
				  "step %d: %zu spans", i, park_spans(p));
		if (cJSON_GetObjectItem(st, "data"))
			CHECK_MSG(park_bytes(p) - park_bodies(p) * sizeof(struct park_body) ==
					  (size_t)get_num(st, "data", 0),
				  "step %d: %zu bytes of data", i,
				  park_bytes(p) - park_bodies(p) * sizeof(struct park_body));
	}
	park__free(p); /* frees what is left: ASan checks it */
}

/* An exporter that parks (export_http's contract, with what it keeps in a plain array). */
struct park_exporter {
	struct rec_exporter rec; /* first */
	struct queue_batch *parked[128];
	size_t n_parked;
};

static int parkx_park(struct exporter *ex, struct queue_batch *b)
{
	struct park_exporter *x = (struct park_exporter *)ex;

	if (x->n_parked == 128)
		return -ENOSPC;
	CHECK_MSG(b->spans != NULL, "a parked batch comes with its spans");
	x->parked[x->n_parked++] = b;
	queue_batch_shed(b, 100); /* "encoded in 100 bytes" */
	return 0;
}

static bool parkx_busy(const struct exporter *ex)
{
	return rec_busy(ex) || ((const struct park_exporter *)ex)->n_parked;
}

static unsigned parkx_pending(const struct exporter *ex)
{
	return rec_pending(ex) + (unsigned)((const struct park_exporter *)ex)->n_parked;
}

static void parkx_abort(struct exporter *ex)
{
	struct park_exporter *x = (struct park_exporter *)ex;

	rec_abort(ex);
	for (size_t i = 0; i < x->n_parked; i++)
		ex->done(ex->done_ctx, x->parked[i], EXPORT_FAIL_SHUTDOWN);
	x->n_parked = 0;
}

static const struct exporter_ops parkx_ops = {
	.submit = rec_submit,
	.busy = parkx_busy,
	.pending = parkx_pending,
	.abort = parkx_abort,
	.free = rec_free,
	.park = parkx_park,
};

/*
 * Every slot taken: full batches are parked, their spans shed, still counted as held
 * (in_queue) but at the bytes the exporter says; delivered, they count as exported.
 */
static void suite_pipeline_park(void)
{
	struct park_exporter x = {.rec = {.ex = {.ops = &parkx_ops}, .hold = true}};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 1000, .max_bytes = 64 << 20, .batch_size = 10},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 1000};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &x.rec.ex);
	uint64_t exported = stats.exported;

	CHECK_MSG(p != NULL, "pipeline");
	if (!p)
		return;
	for (int i = 1; i <= 55; i++)
		ingest(p, &origin, (uint64_t)i, 0, TRACE);
	CHECK_MSG(x.rec.pending == 2 && x.n_parked == 3,
		  "2 batches in the exporter's slots, 3 parked: %u, %zu", x.rec.pending,
		  x.n_parked);
	CHECK_MSG(stats.queue_spans == 55, "every span still held: in_queue=%llu",
		  (unsigned long long)stats.queue_spans);
	CHECK_MSG(x.n_parked == 3 && !x.parked[0]->spans && x.parked[0]->n == 10,
		  "a parked batch keeps its count, not its spans");
	CHECK_MSG(stats.queue_bytes <
			  2 * 10 * sizeof(struct span) + 3 * 100 + 5 * (sizeof(struct span) + 256),
		  "parked batches held at their body's bytes: queue_bytes=%llu",
		  (unsigned long long)stats.queue_bytes);
	/* Delivered: parked batches count as exported, their bytes released. */
	x.rec.hold = false;
	while (x.rec.pending)
		x.rec.ex.done(x.rec.ex.done_ctx, x.rec.held[--x.rec.pending], EXPORT_OK);
	for (size_t i = 0; i < x.n_parked; i++)
		x.rec.ex.done(x.rec.ex.done_ctx, x.parked[i], EXPORT_OK);
	x.n_parked = 0;
	pipeline_flush(p);
	CHECK_MSG(stats.exported - exported == 55 && stats.queue_spans == 0 &&
			  stats.queue_bytes == 0,
		  "every span exported once, nothing held: exported %llu, in_queue %llu, "
		  "queue_bytes %llu",
		  (unsigned long long)(stats.exported - exported),
		  (unsigned long long)stats.queue_spans, (unsigned long long)stats.queue_bytes);
	pipeline__free(p);
	loop__free(loop);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_ASAN 1
#endif
#endif

static size_t self_rss(void)
{
	unsigned long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%lu %lu", &size, &rss) != 2)
		rss = 0;
	if (f)
		fclose(f);
	return rss * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * A backlog of 40,000 spans (an exporter that cannot take them), then delivered: once the
 * queue has drained, the memory goes back to the system, although something allocated
 * during the backlog still sits above it in the heap.
 */
static void suite_pipeline_trim(void)
{
	struct rec_exporter rec = {.ex = {.ops = &rec_ops}, .hold = true};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 65536, .max_bytes = 256 << 20, .batch_size = 4096},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 1000};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &rec.ex);
	size_t rss0, rss1, rss2;
	void *pin;

	CHECK_MSG(p != NULL, "pipeline");
	if (!p)
		return;
	malloc_trim(0);
	rss0 = self_rss();
	for (uint64_t i = 1; i <= 40000; i++)
		ingest(p, &origin, i, 0, TRACE);
	pin = malloc(64 << 10); /* above the spans in the heap: they cannot shrink it */
	rss1 = self_rss();
#ifndef UNIT_ASAN
	CHECK_MSG(rss1 > rss0 + (10u << 20), "the backlog took memory: %zu -> %zu", rss0, rss1);
#endif
	rec.hold = false;
	while (rec.pending)
		rec.ex.done(rec.ex.done_ctx, rec.held[--rec.pending], EXPORT_OK);
	pipeline_flush(p);
	rss2 = self_rss();
	CHECK_MSG(stats.queue_spans == 0, "drained: in_queue=%llu",
		  (unsigned long long)stats.queue_spans);
#ifdef UNIT_ASAN
	/* AddressSanitizer's allocator keeps freed memory in quarantine: RSS tells nothing. */
	rss1 = rss0 + (20u << 20);
	rss2 = rss0;
#endif
	CHECK_MSG(rss2 < rss0 + (2u << 20), "memory given back once drained: %zu -> %zu -> %zu",
		  rss0, rss1, rss2);
	free(pin);
	pipeline__free(p);
	loop__free(loop);
}

static bool trim_holding;

static bool trim_hold(void *ctx, uint64_t now_ms, uint64_t *until_ms)
{
	*until_ms = now_ms + 1000;
	return trim_holding;
}

/*
 * 40,000 spans held as structs (a new node's identity being asked), then parked as compact
 * bodies once the hold ends: they are still held, but the memory of their structs goes back
 * to the system at once, not at the end of the outage.
 */
static void suite_pipeline_trim_parked(void)
{
	struct park_exporter x = {.rec = {.ex = {.ops = &parkx_ops}, .hold = true}};
	struct pipeline_cfg cfg = {
		.queue = {.max_spans = 65536, .max_bytes = 256 << 20, .batch_size = 512},
		.schedule_delay_ms = 50,
		.suspend_ttl_ms = 1000};
	struct pipeline_hooks hooks = {.hold = trim_hold};
	struct pipeline_origin origin = {.source = STATS_SRC_FILE, .pid = 42};
	struct loop *loop = loop__new();
	struct pipeline *p = pipeline__new(loop, &cfg, &x.rec.ex);
	size_t rss0, rss1, rss2;
	void *pin;

	CHECK_MSG(p != NULL, "pipeline");
	if (!p)
		return;
	pipeline_set_hooks(p, &hooks);
	trim_holding = true;
	malloc_trim(0);
	rss0 = self_rss();
	for (uint64_t i = 1; i <= 40000; i++)
		ingest(p, &origin, i, 0, TRACE);
	pin = malloc(64 << 10); /* above the spans in the heap: they cannot shrink it */
	rss1 = self_rss();
	CHECK_MSG(x.rec.pending == 0 && x.n_parked == 0, "held back: %u sent, %zu parked",
		  x.rec.pending, x.n_parked);
	trim_holding = false;
	ingest(p, &origin, 40001, 0, TRACE);
	rss2 = self_rss();
	CHECK_MSG(x.rec.pending == 2 && x.n_parked == 76 && stats.queue_spans == 40001,
		  "2 batches sent, 76 parked, every span still held: %u, %zu, %llu", x.rec.pending,
		  x.n_parked, (unsigned long long)stats.queue_spans);
#ifdef UNIT_ASAN
	rss1 = rss0 + (20u << 20);
	rss2 = rss0;
#endif
	CHECK_MSG(rss1 > rss0 + (10u << 20) && rss2 < rss0 + (6u << 20),
		  "the structs' memory given back once parked: %zu -> %zu -> %zu", rss0, rss1,
		  rss2);
	free(pin);
	pipeline_abort(p); /* the parked batches given up: done() for each */
	pipeline__free(p);
	loop__free(loop);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(cJSON *c);
	} data_suites[] = {
		{"span", span_case},	   {"otlp", otlp_case}, {"config", config_case},
		{"orphans", orphans_case}, {"park", park_case},
	};
	static const struct {
		const char *name;
		void (*run)(void);
	} code_suites[] = {
		{"queue", suite_queue},
		{"suspend", suite_suspend},
		{"suspend_bound", suite_suspend_bound},
		{"pipeline", suite_pipeline},
		{"pipeline_orphans", suite_pipeline_orphans},
		{"pipeline_adopt_wide", suite_pipeline_adopt_wide},
		{"pipeline_derive_family", suite_pipeline_derive_family},
		{"orphans_cache", suite_orphans_cache},
		{"pipeline_park", suite_pipeline_park},
		{"pipeline_trim", suite_pipeline_trim},
		{"pipeline_trim_parked", suite_pipeline_trim_parked},
	};
	bool all_fail = argc > 1 && !strcmp(argv[1], "--all-fail"), ran = false;
	const char *suite, *data, *only;

	if (all_fail) {
		argv++;
		argc--;
	}
	suite = argc > 1 ? argv[1] : "";
	data = argc > 2 ? argv[2] : NULL;
	only = argc > 3 ? argv[3] : NULL;
	for (size_t i = 0; i < sizeof(data_suites) / sizeof(data_suites[0]) && data; i++) {
		if (!strcmp(suite, data_suites[i].name) && argc <= 4) {
			cases_run(data, only, all_fail, data_suites[i].run);
			ran = true;
		}
	}
	for (size_t i = 0; i < sizeof(code_suites) / sizeof(code_suites[0]) && !all_fail; i++) {
		if (!strcmp(suite, code_suites[i].name) && argc == 2) {
			code_suites[i].run();
			ran = true;
		}
	}
	if (!ran) {
		fprintf(stderr,
			"usage: test_unit [--all-fail] span|otlp|config|orphans|park CASES.json "
			"[NAME]\n"
			"       test_unit queue|suspend|pipeline|pipeline_orphans|"
			"pipeline_adopt_wide|\n"
			"                 pipeline_derive_family|orphans_cache|pipeline_park|\n"
			"                 pipeline_trim\n");
		return 2;
	}
	exe_paths_reset();
	return check_summary();
}
