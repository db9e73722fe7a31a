// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: any bytes as a span_emit payload through the parser, then (when it
 * parses) through both OTLP encoders. Invariants checked:
 *   - a failure always names a reason; over-long and blank payloads get theirs;
 *   - a parsed span is well formed: ids non-zero, a parent differs from the span, times
 *     fit in nanoseconds, every string is NUL-free valid UTF-8 of its stated length;
 *   - parsing is deterministic (the same bytes give the same span twice);
 *   - the protobuf decodes back to the same ids, name, times, events and every plain tag;
 *   - the OTLP/JSON parses (cJSON) and says exactly what the protobuf says.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "exe_paths.h"
#include "fuzz_util.h"
#include "otlp.h"
#include "semconv.h"
#include "span.h"

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_request;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *what, const struct span_str *s)
{
	FUZZ_CHECK(s->ptr != NULL, "%s", what);
	FUZZ_CHECK(strlen(s->ptr) == s->len, "%s: length %u, strlen %zu", what, s->len,
		   strlen(s->ptr));
	FUZZ_CHECK(fuzz_utf8_ok(s->ptr, s->len), "%s is not valid UTF-8", what);
}

static bool str_eq(const struct span_str *a, const struct span_str *b)
{
	return a->len == b->len && !memcmp(a->ptr, b->ptr, a->len);
}

static void check_span(const struct span *s, size_t size)
{
	FUZZ_CHECK(!fuzz_all_zero(s->span_id, 8), "zero span id");
	FUZZ_CHECK(!s->has_parent || !fuzz_all_zero(s->parent_id, 8), "zero parent id");
	FUZZ_CHECK(!s->has_parent || memcmp(s->parent_id, s->span_id, 8), "own parent");
	FUZZ_CHECK(s->has_trace_id || s->truncated, "no traceId but not truncated");
	FUZZ_CHECK(!s->has_trace_id || !fuzz_all_zero(s->trace_id, 16), "zero trace id");
	FUZZ_CHECK(s->has_trace_id || fuzz_all_zero(s->trace_id, 16), "stale trace id");
	FUZZ_CHECK(!s->short_trace_id || fuzz_all_zero(s->trace_id, 8), "short trace id");
	FUZZ_CHECK(s->timestamp_us <= UINT64_MAX / 1000 &&
			   s->duration_us <= UINT64_MAX / 1000 - s->timestamp_us,
		   "times overflow in ns");
	FUZZ_CHECK(s->n_tags <= SPAN_MAX_TAGS, "%u tags", s->n_tags);
	FUZZ_CHECK(s->path <= SPAN_PATH_RECOVERED, "path %u", s->path);
	FUZZ_CHECK(s->payload_len == size, "payload_len %u for %zu bytes", s->payload_len, size);
	FUZZ_CHECK(s->n_events == 0 && s->dropped_events == 0, "events from nowhere");
	check_str("name", &s->name);
	check_str("service", &s->service);
	for (uint32_t i = 0; i < s->n_tags; i++) {
		check_str("tag key", &s->tags[i].key);
		check_str("tag value", &s->tags[i].value);
		/* A key given twice keeps one place (the last value): no duplicate attribute. */
		for (uint32_t j = 0; j < i; j++)
			FUZZ_CHECK(!str_eq(&s->tags[i].key, &s->tags[j].key), "tag key twice: %s",
				   s->tags[i].key.ptr);
	}
	FUZZ_CHECK(!s->truncated || s->payload_len == SPAN_CLN_BUF - 1 ||
			   s->payload_len == SPAN_CLN_BUF,
		   "cut at %u bytes, not CLN's length", s->payload_len);
}

/* Two parses of the same bytes must agree on everything. */
static void check_same(const struct span *a, const struct span *b)
{
	FUZZ_CHECK(!memcmp(a->trace_id, b->trace_id, 16) && !memcmp(a->span_id, b->span_id, 8) &&
			   !memcmp(a->parent_id, b->parent_id, 8) &&
			   a->has_parent == b->has_parent && a->truncated == b->truncated &&
			   a->has_trace_id == b->has_trace_id && a->path == b->path &&
			   a->short_trace_id == b->short_trace_id &&
			   a->timestamp_us == b->timestamp_us && a->duration_us == b->duration_us &&
			   a->n_tags == b->n_tags && str_eq(&a->name, &b->name) &&
			   str_eq(&a->service, &b->service),
		   "second parse differs");
	for (uint32_t i = 0; i < a->n_tags; i++)
		FUZZ_CHECK(str_eq(&a->tags[i].key, &b->tags[i].key) &&
				   str_eq(&a->tags[i].value, &b->tags[i].value),
			   "tag %u differs", i);
}

static bool special_tag(const struct span_str *k)
{
	static const char *const keys[] = {"error", "otel.status_code", "otel.status_description",
					   "span.kind"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(k->ptr, keys[i]))
			return true;
	return false;
}

/* The name the mapping gives @tag (semconv.h): CLN's own unless renamed, and not renamed onto
 * a name another tag of the span has. */
static const char *tag_name(const struct span *s, const struct span_tag *tag, bool raw)
{
	const char *to = raw ? NULL
			     : semconv_rename(semconv_class_of(s->name.ptr, s->name.len),
					      tag->key.ptr, tag->key.len);

	if (!to)
		return tag->key.ptr;
	for (uint32_t i = 0; i < s->n_tags; i++)
		if (!strcmp(s->tags[i].key.ptr, to))
			return tag->key.ptr;
	return to;
}

static const pb_span *check_pb(const struct span *s, const pb_request *req, bool raw)
{
	const pb_span *ps;
	const pb_kv *kv;
	size_t kept = 0;

	FUZZ_CHECK(req->n_resource_spans == 1, "%zu resources", req->n_resource_spans);
	FUZZ_CHECK(req->resource_spans[0]->n_scope_spans == 1, "scopes");
	FUZZ_CHECK(req->resource_spans[0]->scope_spans[0]->n_spans == 1, "spans");
	ps = req->resource_spans[0]->scope_spans[0]->spans[0];
	FUZZ_CHECK(ps->trace_id.len == 16 && !memcmp(ps->trace_id.data, s->trace_id, 16),
		   "trace_id");
	FUZZ_CHECK(ps->span_id.len == 8 && !memcmp(ps->span_id.data, s->span_id, 8), "span_id");
	if (s->has_parent)
		FUZZ_CHECK(ps->parent_span_id.len == 8 &&
				   !memcmp(ps->parent_span_id.data, s->parent_id, 8),
			   "parent_span_id");
	else
		FUZZ_CHECK(ps->parent_span_id.len == 0, "parent from nowhere");
	FUZZ_CHECK(!strcmp(ps->name, s->name.ptr), "name");
	FUZZ_CHECK(ps->start_time_unix_nano == s->timestamp_us * 1000, "start");
	FUZZ_CHECK(ps->end_time_unix_nano == (s->timestamp_us + s->duration_us) * 1000, "end");
	FUZZ_CHECK(ps->end_time_unix_nano >= ps->start_time_unix_nano, "ends before it starts");
	FUZZ_CHECK(ps->n_events == s->n_events, "events %zu/%u", ps->n_events, s->n_events);
	FUZZ_CHECK(ps->dropped_events_count == s->dropped_events, "dropped events");
	for (uint32_t e = 0; e < s->n_events; e++)
		FUZZ_CHECK(ps->events[e]->time_unix_nano == s->events[e].time_unix_ns,
			   "event time");
	FUZZ_CHECK(ps->status && ps->status->code <= 2, "status");
	FUZZ_CHECK(ps->kind <= 5, "kind %d", ps->kind);
	/* Every tag without a special meaning is an attribute, in order, its value unchanged. */
	for (uint32_t t = 0; t < s->n_tags; t++) {
		const struct span_tag *tag = &s->tags[t];
		const char *name = tag_name(s, tag, raw);

		if (special_tag(&tag->key))
			continue;
		while (kept < ps->n_attributes && strcmp(ps->attributes[kept]->key, name))
			kept++;
		FUZZ_CHECK(kept < ps->n_attributes, "tag %u (%s as %s) lost", t, tag->key.ptr, name);
		kv = ps->attributes[kept++];
		FUZZ_CHECK(
			kv->value &&
				kv->value->value_case ==
					OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
				!strcmp(kv->value->string_value, tag->value.ptr),
			"tag %u (%s) changed", t, tag->key.ptr);
	}
	return ps;
}

static const cJSON *item(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	FUZZ_CHECK(v != NULL, "JSON has no \"%s\"", key);
	return v;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = item(o, key);

	FUZZ_CHECK(cJSON_IsString(v), "JSON \"%s\" is not a string", key);
	return v->valuestring;
}

static void check_json(const struct span *s, const pb_span *ps, const struct otlp_buf *buf)
{
	const cJSON *rs, *jspan, *attrs, *status, *msg, *res_attrs;
	char hex[33], num[24];
	cJSON *root;
	bool service_seen = false;

	root = cJSON_ParseWithLength((const char *)buf->bytes.data, buf->bytes.len);
	FUZZ_CHECK(root != NULL, "OTLP/JSON does not parse: %.*s", (int)buf->bytes.len,
		   (const char *)buf->bytes.data);
	rs = cJSON_GetArrayItem(item(root, "resourceSpans"), 0);
	FUZZ_CHECK(rs && cJSON_GetArraySize(item(root, "resourceSpans")) == 1, "resourceSpans");
	res_attrs = item(item(rs, "resource"), "attributes");
	for (int i = 0; i < cJSON_GetArraySize(res_attrs); i++) {
		const cJSON *a = cJSON_GetArrayItem(res_attrs, i);

		if (strcmp(jstr(a, "key"), "service.name"))
			continue;
		service_seen = true;
		FUZZ_CHECK(!strcmp(jstr(item(a, "value"), "stringValue"),
				   s->service.len ? s->service.ptr : "unknown_service"),
			   "service.name");
	}
	FUZZ_CHECK(service_seen, "no service.name");
	jspan = cJSON_GetArrayItem(item(cJSON_GetArrayItem(item(rs, "scopeSpans"), 0), "spans"), 0);
	FUZZ_CHECK(jspan != NULL, "no span in JSON");
	fuzz_hex(s->trace_id, 16, hex);
	FUZZ_CHECK(!strcmp(jstr(jspan, "traceId"), hex), "traceId");
	fuzz_hex(s->span_id, 8, hex);
	FUZZ_CHECK(!strcmp(jstr(jspan, "spanId"), hex), "spanId");
	if (s->has_parent) {
		fuzz_hex(s->parent_id, 8, hex);
		FUZZ_CHECK(!strcmp(jstr(jspan, "parentSpanId"), hex), "parentSpanId");
	} else {
		FUZZ_CHECK(!cJSON_HasObjectItem(jspan, "parentSpanId"),
			   "parentSpanId from nowhere");
	}
	FUZZ_CHECK(!strcmp(jstr(jspan, "name"), ps->name), "JSON name differs from protobuf");
	snprintf(num, sizeof(num), "%" PRIu64, ps->start_time_unix_nano);
	FUZZ_CHECK(!strcmp(jstr(jspan, "startTimeUnixNano"), num), "startTimeUnixNano");
	snprintf(num, sizeof(num), "%" PRIu64, ps->end_time_unix_nano);
	FUZZ_CHECK(!strcmp(jstr(jspan, "endTimeUnixNano"), num), "endTimeUnixNano");
	FUZZ_CHECK(item(jspan, "kind")->valueint == (int)ps->kind, "kind");
	attrs = item(jspan, "attributes");
	FUZZ_CHECK(cJSON_GetArraySize(attrs) == (int)ps->n_attributes, "attribute count %d/%zu",
		   cJSON_GetArraySize(attrs), ps->n_attributes);
	for (size_t i = 0; i < ps->n_attributes; i++) {
		const cJSON *a = cJSON_GetArrayItem(attrs, (int)i);
		const pb_kv *kv = ps->attributes[i];

		FUZZ_CHECK(!strcmp(jstr(a, "key"), kv->key), "attribute %zu key", i);
		if (kv->value->value_case ==
		    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
			FUZZ_CHECK(!strcmp(jstr(item(a, "value"), "stringValue"),
					   kv->value->string_value),
				   "attribute %zu value", i);
		else
			FUZZ_CHECK(cJSON_IsTrue(item(item(a, "value"), "boolValue")) &&
					   !strcmp(kv->key, "cln.truncated"),
				   "attribute %zu type", i);
	}
	if (ps->n_events)
		FUZZ_CHECK(cJSON_GetArraySize(item(jspan, "events")) == (int)ps->n_events,
			   "event count");
	else
		FUZZ_CHECK(!cJSON_HasObjectItem(jspan, "events"), "events from nowhere");
	status = item(jspan, "status");
	FUZZ_CHECK(item(status, "code")->valueint == (int)ps->status->code, "status code");
	msg = cJSON_GetObjectItemCaseSensitive(status, "message");
	FUZZ_CHECK(msg ? cJSON_IsString(msg) && !strcmp(msg->valuestring, ps->status->message)
		       : !ps->status->message[0],
		   "status message");
	cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct otlp_kv attrs[] = {{"deployment.environment", "fuzz"}};
	struct otlp_resource_cfg res = {.host_name = "fuzz", .attrs = attrs, .n_attrs = 1};
	struct otlp_buf buf = OTLP_BUF_INIT;
	enum span_reject why, why2;
	struct span *span = NULL, *again = NULL;
	int r, r2;
	char *copy;

	/* Not NUL-terminated on purpose: the parser must honour the length. */
	copy = fuzz_dup(data, size);
	if (size && !copy)
		return 0;
	r = span_parse(copy, size, &span, &why);
	r2 = span_parse(copy, size, &again, &why2);
	FUZZ_CHECK((r == 0) == (r2 == 0) && why == why2, "parse is not deterministic");
	if (r == 0) {
		pb_request *req;
		const pb_span *ps;
		unsigned n_events = size % (SPAN_MAX_EVENTS + 3);

		FUZZ_CHECK(why == SPAN_OK, "success with reason %d", why);
		FUZZ_CHECK(size <= SPAN_MAX_PAYLOAD, "accepted %zu bytes", size);
		check_span(span, size);
		check_same(span, again);
		span->pid = 1234;
		res.raw_tags = size & 1;
		for (unsigned e = 0; e < n_events; e++)
			span_add_event(span, e & 1 ? SPAN_EVENT_RESUME : SPAN_EVENT_SUSPEND, e + 1);
		FUZZ_CHECK(span->n_events + span->dropped_events == n_events, "events lost");
		FUZZ_CHECK(otlp_encode_pb(&res, &span, 1, &buf) == 0, "protobuf encode failed");
		req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
			NULL, buf.bytes.len, buf.bytes.data);
		FUZZ_CHECK(req != NULL, "our protobuf does not decode");
		ps = check_pb(span, req, res.raw_tags);
		FUZZ_CHECK(otlp_encode_json(&res, &span, 1, &buf) == 0, "JSON encode failed");
		check_json(span, ps, &buf);
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
			req, NULL);
	} else {
		FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "returned %d", r);
		FUZZ_CHECK(why > SPAN_OK && why < SPAN_REJECT__MAX, "failure without a reason");
		FUZZ_CHECK(span == NULL, "span on failure");
		if (size > SPAN_MAX_PAYLOAD)
			FUZZ_CHECK(why == SPAN_REJECT_TOO_LONG, "%zu bytes rejected as %s", size,
				   span_reject_str(why));
	}
	span__free(span);
	span__free(again);
	otlp_buf_release(&buf);
	free(copy);
	exe_paths_reset();
	return 0;
}
