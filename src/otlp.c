// SPDX-License-Identifier: MIT
/*
 * The mapping from CLN spans to OTLP is computed once per span (otlp_map) and then
 * written out by two encoders: protobuf through protobuf-c's generated structs, and
 * OTLP/JSON by hand (hex ids, 64-bit integers as strings, enums as integers). Answers
 * (partial success, google.rpc.Status, RetryInfo) are decoded with protobuf-c too.
 */
#include "otlp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "semconv.h"
#include "text.h"
#include "uuid5.h"

#ifndef CLN_OTLP_VERSION
#define CLN_OTLP_VERSION "0"
#endif

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest otlp_pb_request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans otlp_pb_rs;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans otlp_pb_ss;
typedef Opentelemetry__Proto__Trace__V1__Span otlp_pb_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event otlp_pb_event;
typedef Opentelemetry__Proto__Trace__V1__Status otlp_pb_status;
typedef Opentelemetry__Proto__Common__V1__KeyValue otlp_pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue otlp_pb_any;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope otlp_pb_scope;
typedef Opentelemetry__Proto__Resource__V1__Resource otlp_pb_resource;

/* ---- buffers -------------------------------------------------------------------------- */

void otlp_buf_init(struct otlp_buf *buf)
{
	buf_init(&buf->bytes, OTLP_BUF_MAX);
	buf->pb_scratch = NULL;
}

struct otlp_pb_mem;
static void otlp_pb_mem_free(struct otlp_pb_mem *m);

void otlp_buf_release(struct otlp_buf *buf)
{
	otlp_pb_mem_free(buf->pb_scratch);
	buf->pb_scratch = NULL;
	buf_free(&buf->bytes);
}

/* ---- the mapping ---------------------------------------------------------------------- */

struct otlp_map {
	int kind;
	int status_code;
	const struct span_str *status_msg; /* NULL: none */
	uint32_t keep;			   /* bit i: tag i is an attribute */
	uint32_t n_attrs; /* kept tags + added ones + cln.truncated + cln.trace_id_derived */
	const char *names[SPAN_MAX_TAGS]; /* tag i's attribute name; NULL: its own key */
	const char *rpc_system;		  /* rpc.system.name, or NULL */
	const char *db_system;		  /* db.system.name, or NULL */
	char method[SEMCONV_METHOD_MAX];  /* rpc.method derived from the request id; "": none */
};

static bool otlp_str_is(const struct span_str *s, const char *lit)
{
	return s->len == strlen(lit) && !memcmp(s->ptr, lit, s->len);
}

static bool otlp_str_case_is(const struct span_str *s, const char *lit)
{
	return s->len == strlen(lit) && !strncasecmp(s->ptr, lit, s->len);
}

/* Zipkin's span.kind values, as the Collector's translator reads them. */
static int otlp_kind_of(const struct span_str *v)
{
	static const char *const kinds[] = {"",	      "internal", "server",
					    "client", "producer", "consumer"};

	for (int i = 1; i < 6; i++)
		if (otlp_str_case_is(v, kinds[i]))
			return i;
	return -1;
}

void otlp_status_of(const struct span *s, struct otlp_status *st)
{
	const struct span_tag *code_tag = NULL;

	memset(st, 0, sizeof(*st));
	for (uint32_t i = 0; i < s->n_tags; i++) {
		const struct span_tag *t = &s->tags[i];

		if (otlp_str_is(&t->key, "error")) {
			/* CLN: "false" is not an error (plugins tag every RPC so). */
			if (otlp_str_is(&t->value, "false"))
				continue;
			st->code = OTLP_STATUS_ERROR;
			st->consumed |= 1u << i;
			if (!otlp_str_is(&t->value, "true") && t->value.len && !st->message)
				st->message = &t->value;
		} else if (otlp_str_is(&t->key, "otel.status_code")) {
			code_tag = t;
		} else if (otlp_str_is(&t->key, "otel.status_description")) {
			st->message = &t->value;
			st->consumed |= 1u << i;
		}
	}
	/* An explicit OpenTelemetry status wins over the error tag. */
	if (code_tag) {
		if (otlp_str_case_is(&code_tag->value, "ERROR"))
			st->code = OTLP_STATUS_ERROR;
		else if (otlp_str_case_is(&code_tag->value, "OK"))
			st->code = OTLP_STATUS_OK;
		else if (otlp_str_case_is(&code_tag->value, "UNSET"))
			st->code = OTLP_STATUS_UNSET;
		else
			code_tag = NULL; /* not a status: an attribute like any other */
		if (code_tag)
			st->consumed |= 1u << (code_tag - s->tags);
	}
	if (st->code != OTLP_STATUS_ERROR)
		st->message = NULL; /* only an error status carries a message */
}

static bool otlp_has_key(const struct span *s, const char *key)
{
	for (uint32_t i = 0; i < s->n_tags; i++)
		if (otlp_str_is(&s->tags[i].key, key))
			return true;
	return false;
}

/*
 * The semantic conventions (semconv.h): the kind the span's name gives, its tags' names and
 * the attributes added. A rename or an added attribute whose name a tag of the span already
 * has is not made: no key twice. --raw-tags: the kind only.
 */
static void otlp_map_semconv(const struct otlp_resource_cfg *cfg, const struct span *s,
			     struct otlp_map *m)
{
	enum semconv_class cls = semconv_class_of(s->name.ptr, s->name.len);
	const struct span_tag *id = NULL;
	bool has_method = otlp_has_key(s, SEMCONV_ATTR_RPC_METH);
	const char *method;
	size_t mlen;

	m->kind = (int)semconv_kind_of(cls);
	if (cfg->raw_tags)
		return;
	for (uint32_t i = 0; i < s->n_tags; i++) {
		const struct span_tag *t = &s->tags[i];
		const char *name = semconv_rename(cls, t->key.ptr, t->key.len);

		if (!name || otlp_has_key(s, name))
			continue;
		m->names[i] = name;
		if (!strcmp(name, SEMCONV_ATTR_RPC_METH))
			has_method = true;
		if (cls == SEMCONV_RPC_CLIENT && otlp_str_is(&t->key, "id"))
			id = t;
	}
	if (semconv_is_rpc(cls) && !otlp_has_key(s, SEMCONV_ATTR_RPC_SYS))
		m->rpc_system = SEMCONV_RPC_SYSTEM;
	if (id && !has_method &&
	    semconv_method_from_id(id->value.ptr, id->value.len, &method, &mlen)) {
		memcpy(m->method, method, mlen);
		m->method[mlen] = '\0';
	}
	if (cls == SEMCONV_DB && cfg->db_system && !otlp_has_key(s, SEMCONV_ATTR_DB_SYS))
		m->db_system = cfg->db_system(cfg->proc_ctx, s->pid);
}

static void otlp_map_span(const struct otlp_resource_cfg *cfg, const struct span *s,
			  struct otlp_map *m)
{
	struct otlp_status st;
	int kind;

	memset(m, 0, sizeof(*m));
	otlp_map_semconv(cfg, s, m);
	otlp_status_of(s, &st);
	m->status_code = st.code;
	m->status_msg = st.message;
	for (uint32_t i = 0; i < s->n_tags; i++) {
		const struct span_tag *t = &s->tags[i];

		if (st.consumed & (1u << i))
			continue;
		/* CLN's own span.kind, when it sends one, wins over the name's. */
		if (otlp_str_is(&t->key, "span.kind") && (kind = otlp_kind_of(&t->value)) > 0) {
			m->kind = kind;
			continue;
		}
		m->keep |= 1u << i;
	}
	m->n_attrs = (uint32_t)__builtin_popcount(m->keep) + (m->rpc_system ? 1 : 0) +
		     (m->method[0] ? 1 : 0) + (m->db_system ? 1 : 0) + (s->truncated ? 1 : 0) +
		     (s->trace_id_derived ? 1 : 0);
}

/* The attribute name of tag @t of @s. */
static const char *otlp_tag_name(const struct span *s, const struct otlp_map *m, uint32_t t)
{
	return m->names[t] ? m->names[t] : s->tags[t].key.ptr;
}

/* ---- resources ------------------------------------------------------------------------ */

struct otlp_group {
	const char *service; /* NUL-terminated */
	uint32_t pid;
	const char *exe_path;
	int64_t uid;		   /* -1: unknown */
	char uuid[UUID5_STR_SIZE]; /* its service.instance.id, while a request is encoded */
	size_t n_spans;
	size_t first; /* index into the order array */
};

struct otlp_plan {
	struct otlp_group *groups;
	size_t n_groups;
	size_t *order; /* span indices, grouped */
};

static const char *otlp_service_of(const struct otlp_resource_cfg *cfg, const struct span *s)
{
	if (cfg->service_name && *cfg->service_name)
		return cfg->service_name;
	if (s->service.len)
		return s->service.ptr;
	return "unknown_service";
}

static void otlp_plan_free(struct otlp_plan *plan)
{
	free(plan->groups);
	free(plan->order);
}

static int64_t otlp_uid_of(const struct span *s)
{
	return s->has_uid ? (int64_t)s->uid : -1;
}

/* Group spans by (service.name, pid, executable, uid), in order of first appearance. */
static int otlp_plan(const struct otlp_resource_cfg *cfg, struct span *const *spans, size_t n,
		     struct otlp_plan *plan)
{
	size_t *group_of = NULL, *fill = NULL;
	int err = -ENOMEM;

	memset(plan, 0, sizeof(*plan));
	plan->groups = calloc(n ? n : 1, sizeof(*plan->groups));
	plan->order = calloc(n ? n : 1, sizeof(*plan->order));
	group_of = calloc(n ? n : 1, sizeof(*group_of));
	if (!plan->groups || !plan->order || !group_of)
		goto cleanup;
	for (size_t i = 0; i < n; i++) {
		const char *svc = otlp_service_of(cfg, spans[i]);
		size_t g;

		for (g = 0; g < plan->n_groups; g++) {
			struct otlp_group *gr = &plan->groups[g];

			if (gr->pid == spans[i]->pid && gr->exe_path == spans[i]->exe_path &&
			    gr->uid == otlp_uid_of(spans[i]) && !strcmp(gr->service, svc))
				break;
		}
		if (g == plan->n_groups) {
			plan->groups[g].service = svc;
			plan->groups[g].pid = spans[i]->pid;
			plan->groups[g].exe_path = spans[i]->exe_path;
			plan->groups[g].uid = otlp_uid_of(spans[i]);
			plan->n_groups++;
		}
		plan->groups[g].n_spans++;
		group_of[i] = g;
	}
	fill = calloc(plan->n_groups ? plan->n_groups : 1, sizeof(*fill));
	if (!fill)
		goto cleanup;
	for (size_t g = 0, at = 0; g < plan->n_groups; g++) {
		plan->groups[g].first = at;
		fill[g] = at;
		at += plan->groups[g].n_spans;
	}
	for (size_t i = 0; i < n; i++)
		plan->order[fill[group_of[i]]++] = i;
	err = 0;
cleanup:
	free(group_of);
	free(fill);
	if (err)
		otlp_plan_free(plan);
	return err;
}

static const char *otlp_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool otlp_cfg_has(const struct otlp_resource_cfg *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n_attrs; i++)
		if (!strcmp(cfg->attrs[i].key, key))
			return true;
	return false;
}

/* The resource attributes of a group, as (key, string value | int value). */
struct otlp_rattr {
	const char *key;
	const char *str; /* NULL: int */
	int64_t num;
};

/* Our six, up to 32 configured ones, the node's identity (5), service.instance.id, spare. */
#define OTLP_MAX_RATTRS (6 + 32 + 26)

/*
 * cln-otlp's namespace for service.instance.id is the one the semantic conventions give
 * for UUIDv5 instance ids (https://opentelemetry.io/docs/specs/semconv/registry/attributes/
 * service/ : "SHOULD use the following UUID as the namespace"):
 * 4d63009a-8d0f-11ee-aad7-4c796ed8e320.
 */
static const uint8_t otlp_instance_ns[16] = {0x4d, 0x63, 0x00, 0x9a, 0x8d, 0x0f, 0x11, 0xee,
					     0xaa, 0xd7, 0x4c, 0x79, 0x6e, 0xd8, 0xe3, 0x20};

static const char *otlp_rattr_str(const struct otlp_rattr *out, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(out[i].key, key))
			return out[i].str;
	return NULL;
}

static bool otlp_rattr_has(const struct otlp_rattr *out, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(out[i].key, key))
			return true;
	return false;
}

/*
 * service.instance.id: one running process of a node is one instance. UUIDv5 of
 * "<cln.node.id>/<process.executable.name>/<process.pid>" (executable "" when unknown): the
 * same for every span of that process, another one for each of its subdaemons and plugins,
 * and a new one when it is restarted (a new pid). Nothing but the UUID leaves the machine
 * (the node id is sent anyway as cln.node.id). Only for a process of a known node; a
 * configured service.instance.id wins.
 */
static size_t otlp_instance_id(const struct otlp_group *g, struct otlp_rattr *out, size_t n,
			       char uuid[UUID5_STR_SIZE])
{
	const char *node = otlp_rattr_str(out, n, "cln.node.id");
	char name[512];
	int len;

	if (!node || !*node || !g->pid || n >= OTLP_MAX_RATTRS ||
	    otlp_rattr_has(out, n, "service.instance.id"))
		return n;
	len = snprintf(name, sizeof(name), "%s/%s/%u", node,
		       g->exe_path ? otlp_basename(g->exe_path) : "", g->pid);
	if (len < 0 || (size_t)len >= sizeof(name))
		return n;
	uuid5_str(otlp_instance_ns, name, (size_t)len, uuid);
	out[n++] = (struct otlp_rattr){"service.instance.id", uuid, 0};
	return n;
}

/*
 * The resource of a group, each key once. Which value wins is the SDK's resource merge
 * (https://opentelemetry.io/docs/specs/otel/resource/sdk/ , "Merge": the updating
 * resource's value wins), what is configured updating what cln-otlp finds out:
 *   - service.name: OTEL_SERVICE_NAME (--service-name), else service.name of
 *     OTEL_RESOURCE_ATTRIBUTES (config.c lifts it out), else the span's serviceName;
 *   - OTEL_RESOURCE_ATTRIBUTES and --resource-attr (and --rpc-file's node identity, which
 *     node_info puts after them without replacing any) win over what is detected: the
 *     process (process.pid, process.executable.*, process.user.id), host.name, the node's
 *     identity (nodes.h) and the derived service.instance.id. A configured value is a
 *     string, as the variable gives it (process.pid=1 is "1").
 * Order: service.name, the detected ones not configured, the configured ones, the node's
 * ones not configured, service.instance.id. @uuid holds the latter's text.
 */
static size_t otlp_resource_attrs(const struct otlp_resource_cfg *cfg, const struct otlp_group *g,
				  struct otlp_rattr *out, char uuid[UUID5_STR_SIZE])
{
	struct otlp_rattr found[6];
	size_t n = 0, nf = 0;

	out[n++] = (struct otlp_rattr){"service.name", g->service, 0};
	if (g->pid)
		found[nf++] = (struct otlp_rattr){"process.pid", NULL, g->pid};
	if (g->exe_path) {
		found[nf++] = (struct otlp_rattr){"process.executable.name",
						  otlp_basename(g->exe_path), 0};
		found[nf++] = (struct otlp_rattr){"process.executable.path", g->exe_path, 0};
	}
	if (g->uid >= 0)
		found[nf++] = (struct otlp_rattr){"process.user.id", NULL, g->uid};
	if (cfg->host_name && *cfg->host_name)
		found[nf++] = (struct otlp_rattr){"host.name", cfg->host_name, 0};
	for (size_t i = 0; i < nf; i++)
		if (!otlp_cfg_has(cfg, found[i].key))
			out[n++] = found[i];
	for (size_t i = 0; i < cfg->n_attrs && n < OTLP_MAX_RATTRS; i++) {
		if (!strcmp(cfg->attrs[i].key, "service.name") ||
		    otlp_rattr_has(out, n, cfg->attrs[i].key))
			continue;
		out[n++] = (struct otlp_rattr){cfg->attrs[i].key, cfg->attrs[i].value, 0};
	}
	if (cfg->proc_attrs && g->pid) {
		const struct otlp_kv *pa = NULL;
		size_t np = cfg->proc_attrs(cfg->proc_ctx, g->pid, &pa);

		for (size_t i = 0; i < np && n < OTLP_MAX_RATTRS; i++)
			if (!otlp_rattr_has(out, n, pa[i].key))
				out[n++] = (struct otlp_rattr){pa[i].key, pa[i].value, 0};
	}
	return otlp_instance_id(g, out, n, uuid);
}

static const char *otlp_event_name(enum span_event_kind kind)
{
	return kind == SPAN_EVENT_SUSPEND ? "cln.suspend" : "cln.resume";
}

/* ---- protobuf ------------------------------------------------------------------------- */

/*
 * All the generated structs one request needs. They live in the output buffer's scratch
 * and only grow, so a steady stream of batches allocates nothing; strings point into the
 * spans and the configuration (no copies).
 */
struct otlp_pb_mem {
	size_t cap_groups, cap_spans, cap_kv, cap_events;
	otlp_pb_rs *rs;
	otlp_pb_rs **rs_ptrs;
	otlp_pb_ss *ss;
	otlp_pb_ss **ss_ptrs;
	otlp_pb_resource *res;
	otlp_pb_span *spans;
	otlp_pb_span **span_ptrs;
	otlp_pb_status *status;
	struct otlp_map *maps;
	otlp_pb_kv *kv;
	otlp_pb_kv **kv_ptrs;
	otlp_pb_any *any;
	otlp_pb_event *events;
	otlp_pb_event **event_ptrs;
};

static void otlp_pb_mem_free(struct otlp_pb_mem *m)
{
	if (!m)
		return;
	free(m->rs);
	free(m->rs_ptrs);
	free(m->ss);
	free(m->ss_ptrs);
	free(m->res);
	free(m->spans);
	free(m->span_ptrs);
	free(m->status);
	free(m->maps);
	free(m->kv);
	free(m->kv_ptrs);
	free(m->any);
	free(m->events);
	free(m->event_ptrs);
	free(m);
}

static int otlp_grow(void **ptr, size_t size, size_t count)
{
	void *p = realloc(*ptr, (count ? count : 1) * size);

	if (!p)
		return -ENOMEM;
	*ptr = p;
	return 0;
}

#define OTLP_GROW(m, arr, count) otlp_grow((void **)&(m)->arr, sizeof(*(m)->arr), (count))

/* Room for @groups resources, @spans spans, @kv attributes and @events events. */
static int otlp_pb_mem_reserve(struct otlp_pb_mem *m, size_t groups, size_t spans, size_t kv,
			       size_t events)
{
	if (groups > m->cap_groups) {
		if (OTLP_GROW(m, rs, groups) || OTLP_GROW(m, rs_ptrs, groups) ||
		    OTLP_GROW(m, ss, groups) || OTLP_GROW(m, ss_ptrs, groups) ||
		    OTLP_GROW(m, res, groups))
			return -ENOMEM;
		m->cap_groups = groups;
	}
	if (spans > m->cap_spans) {
		if (OTLP_GROW(m, spans, spans) || OTLP_GROW(m, span_ptrs, spans) ||
		    OTLP_GROW(m, status, spans) || OTLP_GROW(m, maps, spans))
			return -ENOMEM;
		m->cap_spans = spans;
	}
	if (kv > m->cap_kv) {
		if (OTLP_GROW(m, kv, kv) || OTLP_GROW(m, kv_ptrs, kv) || OTLP_GROW(m, any, kv))
			return -ENOMEM;
		m->cap_kv = kv;
	}
	if (events > m->cap_events) {
		if (OTLP_GROW(m, events, events) || OTLP_GROW(m, event_ptrs, events))
			return -ENOMEM;
		m->cap_events = events;
	}
	return 0;
}

static otlp_pb_kv *otlp_pb_kv_str(struct otlp_pb_mem *m, size_t *nkv, const char *key,
				  const char *value)
{
	otlp_pb_kv *kv = &m->kv[*nkv];
	otlp_pb_any *any = &m->any[*nkv];

	opentelemetry__proto__common__v1__any_value__init(any);
	any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	any->string_value = (char *)value;
	opentelemetry__proto__common__v1__key_value__init(kv);
	kv->key = (char *)key;
	kv->value = any;
	m->kv_ptrs[*nkv] = kv;
	(*nkv)++;
	return kv;
}

/* A boolean attribute set to true: CLN markers such as cln.truncated. */
static void otlp_pb_kv_true(struct otlp_pb_mem *m, size_t *nkv, const char *key)
{
	otlp_pb_kv *kv = otlp_pb_kv_str(m, nkv, key, NULL);

	kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
	kv->value->bool_value = 1;
}

/* Cursors into the scratch arrays while one request is filled in. */
struct otlp_pb_fill {
	struct otlp_pb_mem *mem;
	size_t kv_at;
	size_t ev_at;
};

/* One span: the strings are NUL-terminated in its arena, so protobuf-c points at them. */
static void otlp_pb_span_fill(struct otlp_pb_fill *f, const struct span *s,
			      const struct otlp_map *mp, otlp_pb_span *ps, otlp_pb_status *st)
{
	struct otlp_pb_mem *mem = f->mem;
	size_t first_attr = f->kv_at, first_ev = f->ev_at;

	opentelemetry__proto__trace__v1__span__init(ps);
	ps->trace_id.data = (uint8_t *)s->trace_id;
	ps->trace_id.len = 16;
	ps->span_id.data = (uint8_t *)s->span_id;
	ps->span_id.len = 8;
	if (s->has_parent) {
		ps->parent_span_id.data = (uint8_t *)s->parent_id;
		ps->parent_span_id.len = 8;
	}
	ps->name = (char *)s->name.ptr;
	ps->kind = mp->kind;
	ps->start_time_unix_nano = s->timestamp_us * 1000;
	ps->end_time_unix_nano = (s->timestamp_us + s->duration_us) * 1000;
	for (uint32_t t = 0; t < s->n_tags; t++)
		if (mp->keep & (1u << t))
			otlp_pb_kv_str(mem, &f->kv_at, otlp_tag_name(s, mp, t),
				       s->tags[t].value.ptr);
	if (mp->rpc_system)
		otlp_pb_kv_str(mem, &f->kv_at, SEMCONV_ATTR_RPC_SYS, mp->rpc_system);
	if (mp->method[0])
		otlp_pb_kv_str(mem, &f->kv_at, SEMCONV_ATTR_RPC_METH, mp->method);
	if (mp->db_system)
		otlp_pb_kv_str(mem, &f->kv_at, SEMCONV_ATTR_DB_SYS, mp->db_system);
	if (s->truncated)
		otlp_pb_kv_true(mem, &f->kv_at, "cln.truncated");
	if (s->trace_id_derived)
		otlp_pb_kv_true(mem, &f->kv_at, "cln.trace_id_derived");
	ps->n_attributes = f->kv_at - first_attr;
	ps->attributes = &mem->kv_ptrs[first_attr];
	for (uint32_t e = 0; e < s->n_events; e++) {
		otlp_pb_event *ev = &mem->events[f->ev_at];

		opentelemetry__proto__trace__v1__span__event__init(ev);
		ev->time_unix_nano = s->events[e].time_unix_ns;
		ev->name = (char *)otlp_event_name(s->events[e].kind);
		mem->event_ptrs[f->ev_at++] = ev;
	}
	ps->n_events = f->ev_at - first_ev;
	/* No events at all: the array was never allocated (NULL + 0 is undefined). */
	ps->events = ps->n_events ? &mem->event_ptrs[first_ev] : NULL;
	ps->dropped_events_count = s->dropped_events;
	opentelemetry__proto__trace__v1__status__init(st);
	st->code = mp->status_code;
	/* protobuf-c needs NUL-terminated strings: a tag value is one. */
	if (mp->status_msg)
		st->message = (char *)mp->status_msg->ptr;
	ps->status = st;
}

/* One ResourceSpans (group @g of @plan): its resource, its one ScopeSpans, its spans. */
static void otlp_pb_group_fill(struct otlp_pb_fill *f, const struct otlp_resource_cfg *cfg,
			       const struct otlp_plan *plan, size_t g, otlp_pb_scope *scope,
			       struct span *const *spans, const struct otlp_map *maps)
{
	struct otlp_pb_mem *mem = f->mem;
	struct otlp_group *gr = &plan->groups[g];
	struct otlp_rattr rattrs[OTLP_MAX_RATTRS];
	size_t nr = otlp_resource_attrs(cfg, gr, rattrs, gr->uuid), first_kv = f->kv_at;
	otlp_pb_resource *res = &mem->res[g];
	otlp_pb_rs *rs = &mem->rs[g];
	otlp_pb_ss *ss = &mem->ss[g];

	opentelemetry__proto__resource__v1__resource__init(res);
	for (size_t a = 0; a < nr; a++) {
		otlp_pb_kv *kv = otlp_pb_kv_str(mem, &f->kv_at, rattrs[a].key, rattrs[a].str);

		if (!rattrs[a].str) {
			kv->value->value_case =
				OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
			kv->value->int_value = rattrs[a].num;
		}
	}
	res->n_attributes = nr;
	res->attributes = &mem->kv_ptrs[first_kv];

	opentelemetry__proto__trace__v1__scope_spans__init(ss);
	ss->scope = scope;
	ss->n_spans = gr->n_spans;
	ss->spans = &mem->span_ptrs[gr->first];
	mem->ss_ptrs[g] = ss;

	opentelemetry__proto__trace__v1__resource_spans__init(rs);
	rs->resource = res;
	rs->n_scope_spans = 1;
	rs->scope_spans = &mem->ss_ptrs[g];
	mem->rs_ptrs[g] = rs;

	for (size_t k = 0; k < gr->n_spans; k++) {
		size_t idx = plan->order[gr->first + k];

		otlp_pb_span_fill(f, spans[idx], &maps[idx], &mem->spans[gr->first + k],
				  &mem->status[gr->first + k]);
		mem->span_ptrs[gr->first + k] = &mem->spans[gr->first + k];
	}
}

int otlp_encode_pb(const struct otlp_resource_cfg *cfg, struct span *const *spans, size_t n,
		   struct otlp_buf *out)
{
	otlp_pb_request req =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	otlp_pb_scope scope = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
	struct otlp_pb_fill f = {0};
	struct otlp_plan plan;
	size_t n_kv = 0, n_events = 0, size;
	int err;

	buf_reset(&out->bytes);
	if (!out->pb_scratch && !(out->pb_scratch = calloc(1, sizeof(struct otlp_pb_mem))))
		return -ENOMEM;
	f.mem = out->pb_scratch;
	err = otlp_plan(cfg, spans, n, &plan);
	if (err)
		return err;
	err = otlp_pb_mem_reserve(f.mem, plan.n_groups, n, 0, 0);
	if (err)
		goto cleanup;
	for (size_t i = 0; i < n; i++) {
		otlp_map_span(cfg, spans[i], &f.mem->maps[i]);
		n_kv += f.mem->maps[i].n_attrs;
		n_events += spans[i]->n_events;
	}
	n_kv += plan.n_groups * OTLP_MAX_RATTRS;
	err = otlp_pb_mem_reserve(f.mem, plan.n_groups, n, n_kv, n_events);
	if (err)
		goto cleanup;
	scope.name = OTLP_SCOPE_NAME;
	scope.version = CLN_OTLP_VERSION;
	for (size_t g = 0; g < plan.n_groups; g++)
		otlp_pb_group_fill(&f, cfg, &plan, g, &scope, spans, f.mem->maps);
	req.n_resource_spans = plan.n_groups;
	req.resource_spans = f.mem->rs_ptrs;
	size = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
		&req);
	err = buf_reserve(&out->bytes, size);
	if (err)
		goto cleanup;
	out->bytes.len =
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
			&req, out->bytes.data);
cleanup:
	otlp_plan_free(&plan);
	return err;
}

/* ---- OTLP/JSON ------------------------------------------------------------------------ */

struct otlp_json {
	struct buf *b;
	int err;
};

static void oj_raw(struct otlp_json *j, const char *s, size_t n)
{
	if (!j->err)
		j->err = buf_add(j->b, s, n);
}

static void oj_lit(struct otlp_json *j, const char *s)
{
	oj_raw(j, s, strlen(s));
}

/* A JSON string: the input is valid UTF-8 (span.c makes it so); escape what JSON needs. */
static void oj_str(struct otlp_json *j, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	oj_raw(j, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		oj_raw(j, s + i - run, run);
		run = 0;
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		oj_raw(j, esc, elen);
	}
	oj_raw(j, s + n - run, run);
	oj_raw(j, "\"", 1);
}

static void oj_cstr(struct otlp_json *j, const char *s)
{
	oj_str(j, s, strlen(s));
}

static void oj_u64str(struct otlp_json *j, uint64_t v)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "\"%" PRIu64 "\"", v);

	oj_raw(j, num, (size_t)len);
}

static void oj_int(struct otlp_json *j, long long v)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "%lld", v);

	oj_raw(j, num, (size_t)len);
}

static void oj_hex(struct otlp_json *j, const uint8_t *bytes, size_t n)
{
	char hex[33];

	text_hex_encode(bytes, n, hex);
	oj_raw(j, "\"", 1);
	oj_raw(j, hex, 2 * n);
	oj_raw(j, "\"", 1);
}

static void oj_kv_str(struct otlp_json *j, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	oj_lit(j, "{\"key\":");
	oj_str(j, key, klen);
	oj_lit(j, ",\"value\":{\"stringValue\":");
	oj_str(j, val, vlen);
	oj_lit(j, "}}");
}

/* An attribute the mapping adds (NULL @val: none). */
static void oj_added(struct otlp_json *j, const char *key, const char *val, bool *first)
{
	if (!val)
		return;
	if (!*first)
		oj_lit(j, ",");
	*first = false;
	oj_kv_str(j, key, strlen(key), val, strlen(val));
}

static void oj_span(struct otlp_json *j, const struct span *s, const struct otlp_map *m)
{
	bool first = true;

	oj_lit(j, "{\"traceId\":");
	oj_hex(j, s->trace_id, 16);
	oj_lit(j, ",\"spanId\":");
	oj_hex(j, s->span_id, 8);
	if (s->has_parent) {
		oj_lit(j, ",\"parentSpanId\":");
		oj_hex(j, s->parent_id, 8);
	}
	oj_lit(j, ",\"name\":");
	oj_str(j, s->name.ptr, s->name.len);
	oj_lit(j, ",\"kind\":");
	oj_int(j, m->kind);
	oj_lit(j, ",\"startTimeUnixNano\":");
	oj_u64str(j, s->timestamp_us * 1000);
	oj_lit(j, ",\"endTimeUnixNano\":");
	oj_u64str(j, (s->timestamp_us + s->duration_us) * 1000);
	oj_lit(j, ",\"attributes\":[");
	for (uint32_t t = 0; t < s->n_tags; t++) {
		if (!(m->keep & (1u << t)))
			continue;
		if (!first)
			oj_lit(j, ",");
		first = false;
		if (m->names[t])
			oj_kv_str(j, m->names[t], strlen(m->names[t]), s->tags[t].value.ptr,
				  s->tags[t].value.len);
		else
			oj_kv_str(j, s->tags[t].key.ptr, s->tags[t].key.len, s->tags[t].value.ptr,
				  s->tags[t].value.len);
	}
	oj_added(j, SEMCONV_ATTR_RPC_SYS, m->rpc_system, &first);
	oj_added(j, SEMCONV_ATTR_RPC_METH, m->method[0] ? m->method : NULL, &first);
	oj_added(j, SEMCONV_ATTR_DB_SYS, m->db_system, &first);
	if (s->truncated) {
		oj_lit(j, first ? "{\"key\":\"cln.truncated\",\"value\":{\"boolValue\":true}}"
				: ",{\"key\":\"cln.truncated\",\"value\":{\"boolValue\":true}}");
		first = false;
	}
	if (s->trace_id_derived)
		oj_lit(j,
		       first ? "{\"key\":\"cln.trace_id_derived\",\"value\":{\"boolValue\":true}}"
			     : ",{\"key\":\"cln.trace_id_derived\",\"value\":{\"boolValue\":true}}");
	oj_lit(j, "]");
	if (s->n_events) {
		oj_lit(j, ",\"events\":[");
		for (uint32_t e = 0; e < s->n_events; e++) {
			oj_lit(j, e ? ",{\"timeUnixNano\":" : "{\"timeUnixNano\":");
			oj_u64str(j, s->events[e].time_unix_ns);
			oj_lit(j, ",\"name\":");
			oj_cstr(j, otlp_event_name(s->events[e].kind));
			oj_lit(j, "}");
		}
		oj_lit(j, "]");
	}
	if (s->dropped_events) {
		oj_lit(j, ",\"droppedEventsCount\":");
		oj_int(j, s->dropped_events);
	}
	oj_lit(j, ",\"status\":{");
	if (m->status_msg) {
		oj_lit(j, "\"message\":");
		oj_str(j, m->status_msg->ptr, m->status_msg->len);
		oj_lit(j, ",");
	}
	oj_lit(j, "\"code\":");
	oj_int(j, m->status_code);
	oj_lit(j, "}}");
}

int otlp_encode_json(const struct otlp_resource_cfg *cfg, struct span *const *spans, size_t n,
		     struct otlp_buf *out)
{
	struct otlp_json j = {&out->bytes, 0};
	struct otlp_rattr rattrs[OTLP_MAX_RATTRS];
	struct otlp_plan plan;
	int err;

	buf_reset(&out->bytes);
	err = otlp_plan(cfg, spans, n, &plan);
	if (err)
		return err;
	oj_lit(&j, "{\"resourceSpans\":[");
	for (size_t g = 0; g < plan.n_groups; g++) {
		struct otlp_group *gr = &plan.groups[g];
		size_t nr = otlp_resource_attrs(cfg, gr, rattrs, gr->uuid);

		oj_lit(&j,
		       g ? ",{\"resource\":{\"attributes\":[" : "{\"resource\":{\"attributes\":[");
		for (size_t a = 0; a < nr; a++) {
			if (a)
				oj_lit(&j, ",");
			if (rattrs[a].str) {
				oj_kv_str(&j, rattrs[a].key, strlen(rattrs[a].key), rattrs[a].str,
					  strlen(rattrs[a].str));
				continue;
			}
			oj_lit(&j, "{\"key\":");
			oj_cstr(&j, rattrs[a].key);
			oj_lit(&j, ",\"value\":{\"intValue\":");
			oj_u64str(&j, (uint64_t)rattrs[a].num);
			oj_lit(&j, "}}");
		}
		oj_lit(&j, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"" OTLP_SCOPE_NAME
			   "\",\"version\":\"" CLN_OTLP_VERSION "\"},\"spans\":[");
		for (size_t k = 0; k < gr->n_spans; k++) {
			size_t idx = plan.order[gr->first + k];
			struct otlp_map m;

			if (k)
				oj_lit(&j, ",");
			otlp_map_span(cfg, spans[idx], &m);
			oj_span(&j, spans[idx], &m);
		}
		oj_lit(&j, "]}]}");
	}
	oj_lit(&j, "]}");
	otlp_plan_free(&plan);
	return j.err;
}

/* ---- responses ------------------------------------------------------------------------ */

static void otlp_copy_msg(const char *src, char *msg, size_t msg_size)
{
	if (!msg_size)
		return;
	snprintf(msg, msg_size, "%s", src ? src : "");
}

int otlp_decode_response(const uint8_t *data, size_t len, int64_t *rejected, char *msg,
			 size_t msg_size)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp;

	*rejected = 0;
	otlp_copy_msg(NULL, msg, msg_size);
	resp = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
		NULL, len, data);
	if (!resp)
		return -EBADMSG;
	if (resp->partial_success) {
		*rejected = resp->partial_success->rejected_spans;
		otlp_copy_msg(resp->partial_success->error_message, msg, msg_size);
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
		resp, NULL);
	return 0;
}

int otlp_decode_rpc_status(const uint8_t *data, size_t len, char *msg, size_t msg_size)
{
	Google__Rpc__Status *st;

	otlp_copy_msg(NULL, msg, msg_size);
	st = google__rpc__status__unpack(NULL, len, data);
	if (!st)
		return -EBADMSG;
	otlp_copy_msg(st->message, msg, msg_size);
	google__rpc__status__free_unpacked(st, NULL);
	return 0;
}

/* The type URL of a google.rpc.RetryInfo: any host (even none), "/google.rpc.RetryInfo". */
static bool otlp_is_retry_info(const char *type_url)
{
	static const char name[] = "/google.rpc.RetryInfo";
	size_t n = type_url ? strlen(type_url) : 0, k = sizeof(name) - 1;

	return n >= k && memcmp(type_url + n - k, name, k) == 0;
}

int otlp_decode_retry_info(const uint8_t *data, size_t len, int64_t *seconds, int32_t *nanos)
{
	Google__Rpc__Status *st;
	Google__Rpc__RetryInfo *ri = NULL;
	int err = -ENOENT;

	if (!len)
		return -ENOENT; /* no RetryInfo in nothing */
	st = google__rpc__status__unpack(NULL, len, data);
	if (!st)
		return -EBADMSG;
	for (size_t i = 0; i < st->n_details; i++) {
		const Google__Protobuf__Any *any = st->details[i];

		if (!otlp_is_retry_info(any->type_url))
			continue;
		ri = google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
		if (!ri) {
			err = -EBADMSG;
			goto cleanup;
		}
		*seconds = ri->retry_delay ? ri->retry_delay->seconds : 0;
		*nanos = ri->retry_delay ? ri->retry_delay->nanos : 0;
		err = 0;
		goto cleanup;
	}
cleanup:
	if (ri)
		google__rpc__retry_info__free_unpacked(ri, NULL);
	google__rpc__status__free_unpacked(st, NULL);
	return err;
}
