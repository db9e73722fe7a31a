// SPDX-License-Identifier: MIT
/*
 * Parsing CLN's span JSON. Three paths fill one `struct span_fields` (raw slices of the
 * input, or of cJSON's strings), and one finisher validates them and builds the span:
 *
 *   span_parse_fast()    strict JSON, the keys CLN writes in any order, strings without
 *                        escapes: CLN's own output. Anything else bails to the next path.
 *   span_parse_cjson()   strict JSON of any shape (escapes, unknown fields) through cJSON.
 *   span_parse_recover() invalid JSON as CLN makes it (an unescaped `"` or `\` or control
 *                        character in a value): anchored on CLN's fixed key order and on
 *                        the `},"traceId":"<hex>"}]` tail, values taken byte for byte.
 *
 * Strings are copied into a scratch arena while parsing (on the stack for CLN's sizes, on
 * the heap for larger payloads), with invalid UTF-8 and NULs replaced by U+FFFD (OTLP
 * strings must be UTF-8); the span is then allocated at its exact size and the arena
 * copied behind it. A tag key given twice keeps its first place and its last value.
 */
#include "span.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "exe_paths.h"
#include "text.h"

/* Every byte may become U+FFFD (3 bytes), plus NULs: the arena a payload of @len needs. */
#define SPAN_ARENA_FOR(len) (3 * (size_t)(len) + 64)

struct span_raw {
	const char *p;
	size_t n;
	bool present;
};

struct span_fields {
	struct span_raw id, parent, trace, name, service;
	bool has_ts, has_dur;
	uint64_t ts, dur;
	bool bad_time;
	bool bad_field;
	bool too_many_tags;
	bool truncated;
	uint32_t dup_tags;
	size_t n_tags;
	struct span_raw tag_key[SPAN_MAX_TAGS];
	struct span_raw tag_val[SPAN_MAX_TAGS];
};

enum span_try {
	SPAN_TRY_OK = 0,
	SPAN_TRY_BAIL, /* this path cannot tell: try the next one */
};

static const char *const span_reject_names[SPAN_REJECT__MAX] = {
	[SPAN_OK] = "ok",
	[SPAN_REJECT_TOO_LONG] = "too_long",
	[SPAN_REJECT_EMPTY] = "empty",
	[SPAN_REJECT_INVALID_JSON] = "invalid_json",
	[SPAN_REJECT_MISSING_FIELD] = "missing_field",
	[SPAN_REJECT_BAD_ID] = "bad_id",
	[SPAN_REJECT_BAD_PARENT_ID] = "bad_parent_id",
	[SPAN_REJECT_BAD_TRACE_ID] = "bad_trace_id",
	[SPAN_REJECT_BAD_TIME] = "bad_time",
	[SPAN_REJECT_BAD_FIELD] = "bad_field",
	[SPAN_REJECT_TOO_MANY_TAGS] = "too_many_tags",
	[SPAN_REJECT_NOMEM] = "nomem",
};

const char *span_reject_str(enum span_reject why)
{
	return (unsigned)why < SPAN_REJECT__MAX ? span_reject_names[why] : "?";
}

/* ---- ids ------------------------------------------------------------------------------ */

bool span_id_parse_u64(const char *hex, size_t n, uint64_t *out)
{
	uint8_t b[8];
	uint64_t v = 0;

	if (n != 16 || !text_hex_decode(hex, n, b))
		return false;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	*out = v;
	return true;
}

static bool span_all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- the scratch arena ---------------------------------------------------------------- */

struct span_builder {
	size_t used;
	char *arena;	  /* SPAN_ARENA_FOR(payload length) bytes */
	struct span span; /* its flexible arena is unused here */
};

static void span_put_utf8(char *dst, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		dst[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		dst[(*o)++] = (char)(0xc0 | cp >> 6);
		dst[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		dst[(*o)++] = (char)(0xe0 | cp >> 12);
		dst[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		dst[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		dst[(*o)++] = (char)(0xf0 | cp >> 18);
		dst[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		dst[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		dst[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/*
 * Copy @raw into the arena, replacing invalid UTF-8 (and NUL) with U+FFFD. Never fails: the
 * arena is sized for the worst case of a maximal payload. Raw strings hold no escapes: the
 * fast path bails on them, cJSON decodes them, and recovery keeps CLN's bytes as they are.
 */
static struct span_str span_arena_put(struct span_builder *b, const struct span_raw *raw)
{
	const unsigned char *s = (const unsigned char *)raw->p;
	struct span_str out;
	char *dst = b->arena;
	size_t o = b->used;

	out.ptr = dst + o;
	for (size_t i = 0; i < raw->n;) {
		size_t l, run = i;

		/* Printable ASCII is the common case: copy runs of it at once. */
		while (run < raw->n && s[run] && s[run] < 0x80)
			run++;
		if (run > i) {
			memcpy(dst + o, s + i, run - i);
			o += run - i;
			i = run;
			continue;
		}
		l = text_utf8_len(s + i, raw->n - i);
		if (!l || s[i] == '\0') {
			span_put_utf8(dst, &o, 0xfffd);
			i++;
			continue;
		}
		memcpy(dst + o, s + i, l);
		o += l;
		i += l;
	}
	dst[o] = '\0';
	out.len = (uint32_t)(o - b->used);
	b->used = o + 1;
	return out;
}

/* ---- shared helpers for the hand-written paths --------------------------------------- */

static bool span_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *span_skip_ws(const char *p, const char *end)
{
	while (p < end && span_is_ws(*p))
		p++;
	return p;
}

/* Parse a non-negative decimal integer the JSON way (no leading zeros, no sign). */
static const char *span_parse_uint(const char *p, const char *end, uint64_t *out, bool *overflow)
{
	const char *start = p;
	uint64_t v = 0;

	*overflow = false;
	if (p < end && *p == '0') {
		*out = 0;
		return p + 1;
	}
	while (p < end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			*overflow = true;
		v = v * 10 + d;
		p++;
	}
	*out = v;
	return p == start ? NULL : p;
}

static bool span_key_is(const struct span_raw *k, const char *name)
{
	size_t n = strlen(name);

	return k->n == n && !memcmp(k->p, name, n);
}

/* Add a tag; a key seen before keeps its place and takes the new value (the last wins). */
static void span_fields_tag(struct span_fields *sf, struct span_raw k, struct span_raw v)
{
	for (size_t i = 0; i < sf->n_tags && i < SPAN_MAX_TAGS; i++) {
		if (sf->tag_key[i].n == k.n && !memcmp(sf->tag_key[i].p, k.p, k.n)) {
			sf->tag_val[i] = v;
			sf->dup_tags++;
			return;
		}
	}
	if (sf->n_tags < SPAN_MAX_TAGS) {
		sf->tag_key[sf->n_tags] = k;
		sf->tag_val[sf->n_tags] = v;
	} else {
		sf->too_many_tags = true;
	}
	sf->n_tags++;
}

/* ---- path 1: the fast strict parser --------------------------------------------------- */

/* Bytes that end a plain string for the fast path: quote, backslash, control characters. */
static const bool span_str_stop[256] = {
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
	[0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
	[0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
	[0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
	[0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

struct span_fast {
	const char *p;
	const char *end;
};

/* A JSON string without escapes or control characters; bails otherwise. */
static enum span_try span_fast_str(struct span_fast *f, struct span_raw *out)
{
	const char *p = f->p;

	if (p >= f->end || *p != '"')
		return SPAN_TRY_BAIL;
	p++;
	out->p = p;
	while (p < f->end && !span_str_stop[(unsigned char)*p])
		p++;
	if (p >= f->end || *p != '"')
		return SPAN_TRY_BAIL; /* escape, control character, or no closing quote */
	out->n = (size_t)(p - out->p);
	out->present = true;
	f->p = p + 1;
	return SPAN_TRY_OK;
}

static bool span_fast_char(struct span_fast *f, char c)
{
	f->p = span_skip_ws(f->p, f->end);
	if (f->p < f->end && *f->p == c) {
		f->p++;
		f->p = span_skip_ws(f->p, f->end);
		return true;
	}
	return false;
}

/* An object of string members; calls back per member. */
static enum span_try span_fast_strobj(struct span_fast *f, struct span_fields *sf, bool tags)
{
	if (!span_fast_char(f, '{'))
		return SPAN_TRY_BAIL;
	if (span_fast_char(f, '}'))
		return SPAN_TRY_OK;
	for (;;) {
		struct span_raw k = {0}, v = {0};

		if (span_fast_str(f, &k) || !span_fast_char(f, ':') || span_fast_str(f, &v))
			return SPAN_TRY_BAIL;
		if (tags) {
			span_fields_tag(sf, k, v);
		} else if (span_key_is(&k, "serviceName")) {
			if (sf->service.present)
				return SPAN_TRY_BAIL;
			sf->service = v;
		}
		if (span_fast_char(f, '}'))
			return SPAN_TRY_OK;
		if (!span_fast_char(f, ','))
			return SPAN_TRY_BAIL;
	}
}

static enum span_try span_fast_member(struct span_fast *f, struct span_fields *sf)
{
	struct span_raw k = {0};
	struct span_raw *str = NULL;

	if (span_fast_str(f, &k) || !span_fast_char(f, ':'))
		return SPAN_TRY_BAIL;
	if (span_key_is(&k, "id"))
		str = &sf->id;
	else if (span_key_is(&k, "name"))
		str = &sf->name;
	else if (span_key_is(&k, "parentId"))
		str = &sf->parent;
	else if (span_key_is(&k, "traceId"))
		str = &sf->trace;
	if (str) {
		if (str->present)
			return SPAN_TRY_BAIL;
		return span_fast_str(f, str);
	}
	if (span_key_is(&k, "timestamp") || span_key_is(&k, "duration")) {
		bool ts = k.n == 9, ovf;
		uint64_t v;
		const char *q = span_parse_uint(f->p, f->end, &v, &ovf);

		if (!q || ovf || (ts ? sf->has_ts : sf->has_dur))
			return SPAN_TRY_BAIL;
		/* A fraction or exponent is still JSON: the general parser judges it. */
		if (q < f->end && (*q == '.' || *q == 'e' || *q == 'E'))
			return SPAN_TRY_BAIL;
		f->p = q;
		if (ts)
			sf->has_ts = true, sf->ts = v;
		else
			sf->has_dur = true, sf->dur = v;
		return SPAN_TRY_OK;
	}
	if (span_key_is(&k, "localEndpoint"))
		return span_fast_strobj(f, sf, false);
	if (span_key_is(&k, "tags")) {
		if (sf->n_tags)
			return SPAN_TRY_BAIL;
		return span_fast_strobj(f, sf, true);
	}
	return SPAN_TRY_BAIL; /* unknown field: the general parser */
}

static enum span_try span_parse_fast(const char *json, size_t len, struct span_fields *sf)
{
	struct span_fast f = {json, json + len};
	bool array;

	f.p = span_skip_ws(f.p, f.end);
	array = span_fast_char(&f, '[');
	if (!span_fast_char(&f, '{'))
		return SPAN_TRY_BAIL;
	if (!span_fast_char(&f, '}')) {
		for (;;) {
			if (span_fast_member(&f, sf))
				return SPAN_TRY_BAIL;
			if (span_fast_char(&f, '}'))
				break;
			if (!span_fast_char(&f, ','))
				return SPAN_TRY_BAIL;
		}
	}
	if (array && !span_fast_char(&f, ']'))
		return SPAN_TRY_BAIL;
	f.p = span_skip_ws(f.p, f.end);
	return f.p == f.end ? SPAN_TRY_OK : SPAN_TRY_BAIL;
}

/* ---- path 2: cJSON -------------------------------------------------------------------- */

static void span_cjson_str(const cJSON *obj, const char *key, struct span_raw *out,
			   struct span_fields *sf)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!item)
		return;
	if (!cJSON_IsString(item) || !item->valuestring) {
		sf->bad_field = true;
		return;
	}
	out->p = item->valuestring;
	out->n = strlen(item->valuestring);
	out->present = true;
}

static void span_cjson_time(const cJSON *obj, const char *key, bool *has, uint64_t *out,
			    struct span_fields *sf)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (!item)
		return;
	*has = true;
	if (!cJSON_IsNumber(item)) {
		sf->bad_time = true;
		return;
	}
	d = item->valuedouble;
	/* Integers only, exactly representable (2^53 µs is 285 years). */
	if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) {
		sf->bad_time = true;
		return;
	}
	*out = (uint64_t)d;
}

/* Fills @sf from @root; strings point into @root, which must outlive the finisher. */
static enum span_reject span_from_cjson(const cJSON *root, struct span_fields *sf)
{
	const cJSON *obj = root, *le, *tags, *t;

	if (cJSON_IsArray(root)) {
		int n = cJSON_GetArraySize(root);

		if (n == 0)
			return SPAN_REJECT_EMPTY;
		if (n != 1)
			return SPAN_REJECT_BAD_FIELD; /* CLN emits one span per payload */
		obj = cJSON_GetArrayItem(root, 0);
	}
	if (!cJSON_IsObject(obj))
		return SPAN_REJECT_BAD_FIELD;
	span_cjson_str(obj, "id", &sf->id, sf);
	span_cjson_str(obj, "name", &sf->name, sf);
	span_cjson_str(obj, "parentId", &sf->parent, sf);
	span_cjson_str(obj, "traceId", &sf->trace, sf);
	span_cjson_time(obj, "timestamp", &sf->has_ts, &sf->ts, sf);
	span_cjson_time(obj, "duration", &sf->has_dur, &sf->dur, sf);
	le = cJSON_GetObjectItemCaseSensitive(obj, "localEndpoint");
	if (le) {
		if (!cJSON_IsObject(le))
			sf->bad_field = true;
		else
			span_cjson_str(le, "serviceName", &sf->service, sf);
	}
	tags = cJSON_GetObjectItemCaseSensitive(obj, "tags");
	if (tags && !cJSON_IsObject(tags)) {
		sf->bad_field = true;
		tags = NULL;
	}
	cJSON_ArrayForEach(t, tags)
	{
		const char *v;

		/* Zipkin tags are strings; a number or bool is written as its JSON text. */
		if (cJSON_IsString(t))
			v = t->valuestring;
		else if (cJSON_IsTrue(t))
			v = "true";
		else if (cJSON_IsFalse(t))
			v = "false";
		else {
			sf->bad_field = true;
			continue;
		}
		span_fields_tag(sf, (struct span_raw){t->string, strlen(t->string), true},
				(struct span_raw){v, strlen(v), true});
	}
	return SPAN_OK;
}

/* ---- path 3: recovery of CLN's unescaped JSON ---------------------------------------- */

/*
 * A matcher for CLN's punctuation with optional whitespace around it: the pattern is
 * literal text where a space means "any whitespace, maybe none".
 */
static const char *span_match(const char *p, const char *end, const char *pat)
{
	for (; *pat; pat++) {
		if (*pat == ' ') {
			p = span_skip_ws(p, end);
			continue;
		}
		if (p >= end || *p != *pat)
			return NULL;
		p++;
	}
	return p;
}

/* First position at or after @p where @pat matches; sets *after to the end of the match. */
static const char *span_find(const char *p, const char *end, const char *pat, const char **after)
{
	for (; p < end; p++) {
		const char *q = span_match(p, end, pat);

		if (q) {
			*after = q;
			return p;
		}
	}
	return NULL;
}

/* A run of [0-9a-fA-F] from @p; returns its end. */
static const char *span_hex_run(const char *p, const char *end)
{
	while (p < end && text_hex_digit(*p) >= 0)
		p++;
	return p;
}

static bool span_is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-' || c == ':' || c == '/';
}

/*
 * Where a tag separator `" , "<ident>" : "` starts at @p (the closing quote of the
 * previous value), return the key's start and length and the next value's start.
 */
static const char *span_tag_sep(const char *p, const char *end, struct span_raw *key)
{
	const char *q = span_match(p, end, "\" , \"");
	const char *k;

	if (!q)
		return NULL;
	k = q;
	while (q < end && span_is_ident(*q))
		q++;
	if (q == k)
		return NULL;
	key->p = k;
	key->n = (size_t)(q - k);
	key->present = true;
	return span_match(q, end, "\" : \"");
}

/*
 * Split the body of "tags":{ ... } (between the braces) into tags. CLN writes at most two
 * tags, the second (when there is one) a short flag such as "error":"false", so the split
 * is at the rightmost `", "<ident>":"`: a value that happens to contain such text stays
 * whole in the first tag. Keys are identifiers (CLN's are static names); values anything.
 * With @cut_short the last value lost its closing quote (and the rest) to CLN's buffer end.
 */
static bool span_recover_tags(const char *p, const char *end, bool cut_short,
			      struct span_fields *sf)
{
	const char *first_key, *first_val, *cut, *q;
	struct span_raw k1 = {0}, v1 = {0};

	p = span_skip_ws(p, end);
	if (!cut_short)
		while (end > p && span_is_ws(end[-1]))
			end--;
	if (p == end)
		return true;
	if (*p != '"')
		return false;
	first_key = q = p + 1;
	while (q < end && span_is_ident(*q))
		q++;
	if (q == first_key)
		return false;
	first_val = span_match(q, end, "\" : \"");
	if (!first_val)
		return false;
	if (cut_short) {
		cut = end;
	} else {
		if (end[-1] != '"' || end - 1 < first_val)
			return false;
		cut = end - 1; /* the last value's closing quote */
	}
	for (const char *s = cut - 1; s >= first_val; s--) {
		const char *v;

		if (*s != '"' || !(v = span_tag_sep(s, cut, &k1)))
			continue;
		v1 = (struct span_raw){v, (size_t)(cut - v), true};
		cut = s;
		break;
	}
	sf->n_tags = 0;
	span_fields_tag(sf, (struct span_raw){first_key, (size_t)(q - first_key), true},
			(struct span_raw){first_val, (size_t)(cut - first_val), true});
	if (v1.present)
		span_fields_tag(sf, k1, v1);
	return true;
}

/*
 * The head, in CLN's order: id, name, timestamp, duration, localEndpoint, [parentId], tags.
 * Returns where the tags object's body starts, or NULL.
 */
static const char *span_recover_head(const char *p, const char *end, struct span_fields *sf)
{
	const char *q, *after, *at;
	bool ovf;

	p = span_skip_ws(p, end);
	if (p < end && *p == '[')
		p++;
	p = span_match(p, end, " { \"id\" : \"");
	if (!p)
		return NULL;
	q = span_hex_run(p, end);
	sf->id = (struct span_raw){p, (size_t)(q - p), true};
	p = span_match(q, end, "\" , \"name\" : \"");
	if (!p)
		return NULL;
	/* The name runs to `","timestamp":` (it may hold quotes). */
	at = span_find(p, end, "\" , \"timestamp\" : ", &after);
	if (!at) {
		/* Cut inside the name: keep what there is. */
		sf->name = (struct span_raw){p, (size_t)(end - p), true};
		sf->truncated = true;
		return NULL;
	}
	sf->name = (struct span_raw){p, (size_t)(at - p), true};
	p = after;
	q = span_parse_uint(p, end, &sf->ts, &ovf);
	if (!q) {
		if (p == end)
			sf->truncated = true;
		return NULL;
	}
	sf->has_ts = true;
	sf->bad_time |= ovf;
	p = span_match(q, end, " , \"duration\" : ");
	if (!p)
		return NULL;
	q = span_parse_uint(p, end, &sf->dur, &ovf);
	if (!q)
		return NULL;
	sf->has_dur = true;
	sf->bad_time |= ovf;
	p = span_match(q, end, " , \"localEndpoint\" : { \"serviceName\" : \"");
	if (!p)
		return NULL;
	at = span_find(p, end, "\" } , \"", &after);
	if (!at)
		return NULL;
	sf->service = (struct span_raw){p, (size_t)(at - p), true};
	p = after - 1; /* back on the quote opening the next key */
	q = span_match(p, end, "\"parentId\" : \"");
	if (q) {
		p = span_hex_run(q, end);
		sf->parent = (struct span_raw){q, (size_t)(p - q), true};
		p = span_match(p, end, "\" , ");
		if (!p)
			return NULL;
	}
	return span_match(p, end, "\"tags\" : {");
}

/* The tail: `} , "traceId" : "<hex>" } ]` at the very end. Returns where `}` starts. */
static const char *span_recover_tail(const char *p, const char *end, struct span_fields *sf)
{
	const char *q = end;
	const char *hex_end, *hex_start;

	while (q > p && span_is_ws(q[-1]))
		q--;
	if (q > p && q[-1] == ']')
		q--;
	while (q > p && span_is_ws(q[-1]))
		q--;
	if (q <= p || q[-1] != '}')
		return NULL;
	q--;
	while (q > p && span_is_ws(q[-1]))
		q--;
	if (q <= p || q[-1] != '"')
		return NULL;
	hex_end = --q;
	while (q > p && text_hex_digit(q[-1]) >= 0)
		q--;
	hex_start = q;
	/* Now `} , "traceId" : "` must end right here. */
	for (const char *s = q; s > p; s--) {
		const char *m;

		if (s[-1] != '}')
			continue;
		m = span_match(s - 1, hex_start, "} , \"traceId\" : \"");
		if (m == hex_start) {
			sf->trace =
				(struct span_raw){hex_start, (size_t)(hex_end - hex_start), true};
			return s - 1;
		}
		break; /* only whitespace may stand between; anything else: not CLN's tail */
	}
	return NULL;
}

static enum span_reject span_parse_recover(const char *json, size_t len, struct span_fields *sf)
{
	const char *end = json + len;
	const char *tags, *tail;

	memset(sf, 0, sizeof(*sf));
	tags = span_recover_head(json, end, sf);
	tail = span_recover_tail(json, end, sf);
	if (tags && tail && tail >= tags) {
		if (!span_recover_tags(tags, tail, false, sf))
			return SPAN_REJECT_INVALID_JSON;
		return SPAN_OK;
	}
	/*
	 * No tail: CLN cut the span at its buffer's end. Keep what precedes the cut: the
	 * head's fields and the tags up to the cut, the last value cut short.
	 */
	if (!tail && (len == SPAN_CLN_BUF - 1 || len == SPAN_CLN_BUF) && sf->id.present) {
		sf->truncated = true;
		if (tags && !span_recover_tags(tags, end, true, sf)) {
			sf->n_tags = 0;
			sf->dup_tags = 0;
		}
		return SPAN_OK;
	}
	return SPAN_REJECT_INVALID_JSON;
}

/* ---- finishing: validate and build -------------------------------------------------- */

static enum span_reject span_finish(struct span_builder *b, const struct span_fields *sf)
{
	struct span *s = &b->span;

	if (sf->bad_field)
		return SPAN_REJECT_BAD_FIELD;
	if (sf->bad_time)
		return SPAN_REJECT_BAD_TIME;
	if (!sf->id.present || !sf->name.present || !sf->has_ts ||
	    (!sf->has_dur && !sf->truncated) || (!sf->trace.present && !sf->truncated))
		return SPAN_REJECT_MISSING_FIELD;
	if (sf->id.n != 16 || !text_hex_decode(sf->id.p, 16, s->span_id) ||
	    span_all_zero(s->span_id, 8))
		return SPAN_REJECT_BAD_ID;
	if (sf->trace.present) {
		if (sf->trace.n == 32) {
			if (!text_hex_decode(sf->trace.p, 32, s->trace_id))
				return SPAN_REJECT_BAD_TRACE_ID;
		} else if (sf->trace.n == 16) {
			memset(s->trace_id, 0, 8);
			if (!text_hex_decode(sf->trace.p, 16, s->trace_id + 8))
				return SPAN_REJECT_BAD_TRACE_ID;
			s->short_trace_id = true;
		} else {
			return SPAN_REJECT_BAD_TRACE_ID;
		}
		if (span_all_zero(s->trace_id, 16))
			return SPAN_REJECT_BAD_TRACE_ID;
		s->has_trace_id = true;
	}
	if (sf->parent.present) {
		if (sf->parent.n != 16 || !text_hex_decode(sf->parent.p, 16, s->parent_id) ||
		    span_all_zero(s->parent_id, 8))
			return SPAN_REJECT_BAD_PARENT_ID;
		/* A span that is its own parent is a root (as the Zipkin translator does). */
		s->has_parent = memcmp(s->parent_id, s->span_id, 8) != 0;
		if (!s->has_parent)
			memset(s->parent_id, 0, 8);
	}
	/* Times go to nanoseconds: both ends must fit in 64 bits. */
	if (sf->ts > UINT64_MAX / 1000 || sf->dur > UINT64_MAX / 1000 - sf->ts)
		return SPAN_REJECT_BAD_TIME;
	if (sf->too_many_tags)
		return SPAN_REJECT_TOO_MANY_TAGS;
	s->timestamp_us = sf->ts;
	s->duration_us = sf->dur;
	s->truncated = sf->truncated;
	s->name = span_arena_put(b, &sf->name);
	if (sf->service.present)
		s->service = span_arena_put(b, &sf->service);
	for (size_t i = 0; i < sf->n_tags; i++) {
		s->tags[i].key = span_arena_put(b, &sf->tag_key[i]);
		s->tags[i].value = span_arena_put(b, &sf->tag_val[i]);
	}
	s->n_tags = (uint32_t)sf->n_tags;
	s->dup_tags = sf->dup_tags;
	return SPAN_OK;
}

static const char *span_rebase(const char *p, const struct span_builder *b, struct span *dst)
{
	return p ? dst->arena + (p - b->arena) : NULL;
}

static int span_build(struct span_builder *b, struct span **out)
{
	struct span *s = malloc(sizeof(*s) + b->used);

	if (!s)
		return -ENOMEM;
	*s = b->span;
	memcpy(s->arena, b->arena, b->used);
	s->arena_len = (uint32_t)b->used;
	s->name.ptr = span_rebase(b->span.name.ptr, b, s);
	s->service.ptr = b->span.service.ptr ? span_rebase(b->span.service.ptr, b, s) : "";
	for (uint32_t i = 0; i < s->n_tags; i++) {
		s->tags[i].key.ptr = span_rebase(b->span.tags[i].key.ptr, b, s);
		s->tags[i].value.ptr = span_rebase(b->span.tags[i].value.ptr, b, s);
	}
	*out = s;
	return 0;
}

static bool span_blank(const char *json, size_t len)
{
	const char *p;

	if (!len)
		return true; /* json may be NULL: no arithmetic on it */
	p = span_skip_ws(json, json + len);

	if (p < json + len && *p == '[') {
		p = span_skip_ws(p + 1, json + len);
		if (p < json + len && *p == ']')
			p = span_skip_ws(p + 1, json + len);
		else
			return false;
	}
	return p == json + len;
}

/*
 * NULs in strings, raw or escaped as \u0000: cJSON would end the string there. Counts them
 * and, with @out (room for len + 5 per NUL + 1), writes a copy of @json with each written
 * \ufffd: NULs become U+FFFD as any invalid character does. Returns how many.
 */
static size_t span_nul_scan(const char *json, size_t len, char *out, size_t *out_len)
{
	bool in_str = false;
	char *o = out;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		size_t skip = 0; /* bytes of @json that stand for one NUL, 0 if none */

		if (!in_str)
			in_str = json[i] == '"';
		else if (json[i] == '"')
			in_str = false;
		else if (json[i] == '\0')
			skip = 1;
		else if (json[i] == '\\' && i + 1 < len) {
			if (i + 6 <= len && !memcmp(json + i + 1, "u0000", 5))
				skip = 6;
			else if (o) /* the escaped character is not the string's end */
				*o++ = json[i++];
			else
				i++;
		}
		if (skip) {
			n++;
			if (o) {
				memcpy(o, "\\ufffd", 6);
				o += 6;
			}
			i += skip - 1;
		} else if (o) {
			*o++ = json[i];
		}
	}
	if (o) {
		*o = '\0';
		*out_len = (size_t)(o - out);
	}
	return n;
}

/* Paths 2 and 3, for what the fast path could not take. */
static enum span_reject span_parse_slow(const char *json, size_t len, struct span_fields *sf,
					cJSON **root, uint8_t *path)
{
	size_t n_nul = 0, fixed_len = len;
	char *fixed = NULL;

	memset(sf, 0, sizeof(*sf));
	/* A quick look first: NULs are rare. */
	if (memchr(json, '\0', len) || memmem(json, len, "\\u0000", 6))
		n_nul = span_nul_scan(json, len, NULL, NULL);
	if (n_nul) {
		fixed = malloc(len + 5 * n_nul + 1);
		if (!fixed)
			return SPAN_REJECT_NOMEM;
		span_nul_scan(json, len, fixed, &fixed_len);
	}
	/* cJSON copies every string out of its input: the rewritten copy may go at once. */
	*root = cJSON_ParseWithLength(fixed ? fixed : json, fixed_len);
	free(fixed);
	if (*root) {
		*path = SPAN_PATH_JSON;
		return span_from_cjson(*root, sf);
	}
	*path = SPAN_PATH_RECOVERED;
	return span_parse_recover(json, len, sf);
}

int span_parse(const char *json, size_t len, struct span **out, enum span_reject *why)
{
	char small[SPAN_ARENA_FOR(SPAN_CLN_BUF)]; /* 6 KiB: CLN's spans, on the stack */
	struct span_builder builder, *b = &builder;
	struct span_fields sf;
	enum span_reject r;
	cJSON *root = NULL;
	uint8_t path = SPAN_PATH_FAST;
	int err;

	*out = NULL;
	if (len > SPAN_MAX_PAYLOAD) {
		*why = SPAN_REJECT_TOO_LONG;
		return -EINVAL;
	}
	if (span_blank(json, len)) {
		*why = SPAN_REJECT_EMPTY;
		return -EINVAL;
	}
	memset(&b->span, 0, sizeof(b->span));
	b->used = 0;
	b->arena = SPAN_ARENA_FOR(len) <= sizeof(small) ? small : malloc(SPAN_ARENA_FOR(len));
	if (!b->arena) {
		*why = SPAN_REJECT_NOMEM;
		return -ENOMEM;
	}
	memset(&sf, 0, sizeof(sf));
	if (span_parse_fast(json, len, &sf) == SPAN_TRY_OK)
		r = SPAN_OK;
	else
		r = span_parse_slow(json, len, &sf, &root, &path);
	if (r == SPAN_OK)
		r = span_finish(b, &sf);
	cJSON_Delete(root); /* after span_finish: cJSON's strings were copied */
	if (r != SPAN_OK) {
		err = r == SPAN_REJECT_NOMEM ? -ENOMEM : -EINVAL;
		goto out;
	}
	b->span.path = path;
	b->span.payload_len = (uint32_t)len;
	err = span_build(b, out);
	if (err)
		r = SPAN_REJECT_NOMEM;
out:
	if (b->arena != small)
		free(b->arena);
	*why = r;
	return err;
}

void span__free(struct span *span)
{
	if (span)
		if (span) {
			exe_path_put(span->exe_path);
			free(span->events);
		}
	free(span);
}

void span_add_event(struct span *span, enum span_event_kind kind, uint64_t time_unix_ns)
{
	if (span->n_events == span->cap_events) {
		uint32_t cap = span->cap_events ? 2 * span->cap_events : 4;
		struct span_event *ev;

		if (cap > SPAN_MAX_EVENTS)
			cap = SPAN_MAX_EVENTS;
		ev = span->n_events < SPAN_MAX_EVENTS ? realloc(span->events, cap * sizeof(*ev))
						      : NULL;
		if (!ev) {
			span->dropped_events++; /* past the limit, or out of memory */
			return;
		}
		span->events = ev;
		span->cap_events = cap;
	}
	span->events[span->n_events].kind = kind;
	span->events[span->n_events].time_unix_ns = time_unix_ns;
	span->n_events++;
}
