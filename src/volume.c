// SPDX-License-Identifier: MIT
#include "volume.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"
#include "stats.h"

_Static_assert((int)VOLUME_KEEP__MAX == (int)STATS_KEEP__MAX, "one counter per reason");
_Static_assert(VOLUME_MAX_RULES <= STATS_MAX_RULES, "every rule is counted");

#define VOLUME_BUCKETS_MAX 65536 /* hash buckets of a table, at most */

/* ---- parsing --------------------------------------------------------------------------- */

int volume_parse_duration(const char *s, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = {
		{"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"ms", 1000000}, {"s", 1000000000}};
	uint64_t v = 0;
	size_t i = 0;

	if (!s || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strcmp(s + i, units[u].unit))
			continue;
		if (v > UINT64_MAX / units[u].ns)
			return -ERANGE;
		*ns = v * units[u].ns;
		return 0;
	}
	return -EINVAL;
}

int volume_rule_parse(const char *text, struct volume_rule *rule)
{
	const char *lt = strchr(text, '<');
	size_t len = lt ? (size_t)(lt - text) : strlen(text);

	memset(rule, 0, sizeof(*rule));
	if (!len || len >= sizeof(rule->glob))
		return -EINVAL;
	memcpy(rule->glob, text, len);
	rule->glob[len] = '\0';
	if (!lt)
		return 0;
	rule->has_bound = true;
	return volume_parse_duration(lt + 1, &rule->shorter_than_ns) ? -EINVAL : 0;
}

int volume_parse_ratio(const char *s, double *ratio)
{
	char *end;
	double r;

	/* strtod also takes spaces, signs, hex, inf and nan: none is a ratio. */
	if (!s || !*s || strspn(s, "0123456789.eE-+") != strlen(s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	r = strtod(s, &end);
	if (errno || *end || end == s || !(r >= 0.0 && r <= 1.0))
		return -EINVAL;
	*ratio = r;
	return 0;
}

/* ---- the sampler ----------------------------------------------------------------------- */

uint64_t volume_ratio_threshold(double ratio)
{
	if (!(ratio > 0.0))
		return VOLUME_RANDOM_RANGE;
	if (ratio >= 1.0)
		return 0;
	/* ratio * 2^56 is exact (a power of two); round() halves away from zero. */
	return VOLUME_RANDOM_RANGE - (uint64_t)round(ratio * (double)VOLUME_RANDOM_RANGE);
}

bool volume_ratio_sampled(const uint8_t trace_id[16], uint64_t threshold)
{
	uint64_t r = 0;

	for (int i = 9; i < 16; i++)
		r = r << 8 | trace_id[i];
	return r >= threshold;
}

bool volume_cfg_active(const struct volume_cfg *cfg)
{
	return (cfg->sample && cfg->ratio < 1.0) || cfg->keep_errors || cfg->keep_slow ||
	       cfg->n_rules;
}

/* ---- a bounded LRU map: 24-byte key -> u64 ------------------------------------------------ */

struct vlru_ent {
	struct vlru_ent *hnext;	      /* bucket chain */
	struct vlru_ent *prev, *next; /* recency: head newest */
	uint8_t key[24];
	uint64_t val;
};

struct vlru {
	struct vlru_ent **buckets;
	size_t mask;
	size_t n, max;
	struct vlru_ent *head, *tail;
};

static uint64_t volume_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t volume_hash(const uint8_t *key, size_t len)
{
	uint64_t h = 0, w;

	for (size_t i = 0; i < len; i += 8) {
		memcpy(&w, key + i, 8);
		h = volume_mix(h ^ w);
	}
	return h;
}

static size_t volume_buckets(size_t max)
{
	size_t n = 1;

	while (n < max && n < VOLUME_BUCKETS_MAX)
		n <<= 1;
	return n;
}

static int vlru_init(struct vlru *l, size_t max)
{
	size_t n = volume_buckets(max);

	memset(l, 0, sizeof(*l));
	l->buckets = calloc(n, sizeof(*l->buckets));
	l->mask = n - 1;
	l->max = max;
	return l->buckets ? 0 : -ENOMEM;
}

static void vlru_unlink(struct vlru *l, struct vlru_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void vlru_push_front(struct vlru *l, struct vlru_ent *e)
{
	e->next = l->head;
	e->prev = NULL;
	if (l->head)
		l->head->prev = e;
	l->head = e;
	if (!l->tail)
		l->tail = e;
}

static struct vlru_ent **vlru_slot(struct vlru *l, const uint8_t key[24])
{
	struct vlru_ent **pp = &l->buckets[volume_hash(key, 24) & l->mask];

	while (*pp && memcmp((*pp)->key, key, 24))
		pp = &(*pp)->hnext;
	return pp;
}

static bool vlru_get(struct vlru *l, const uint8_t key[24], uint64_t *val)
{
	struct vlru_ent *e = *vlru_slot(l, key);

	if (!e)
		return false;
	vlru_unlink(l, e);
	vlru_push_front(l, e);
	*val = e->val;
	return true;
}

/* Insert or update; the least recently used entry goes when full. Out of memory: forgotten. */
static void vlru_put(struct vlru *l, const uint8_t key[24], uint64_t val)
{
	struct vlru_ent **pp = vlru_slot(l, key), *e = *pp;

	if (e) {
		e->val = val;
		vlru_unlink(l, e);
		vlru_push_front(l, e);
		return;
	}
	if (l->n >= l->max && l->tail) {
		e = l->tail;
		vlru_unlink(l, e);
		*vlru_slot(l, e->key) = e->hnext;
		l->n--;
		pp = vlru_slot(l, key); /* the chain may have changed */
	} else {
		e = malloc(sizeof(*e));
		if (!e)
			return;
	}
	memcpy(e->key, key, 24);
	e->val = val;
	e->hnext = NULL;
	*pp = e;
	vlru_push_front(l, e);
	l->n++;
}

static void vlru_free(struct vlru *l)
{
	for (struct vlru_ent *e = l->head, *next; e; e = next) {
		next = e->next;
		free(e);
	}
	free(l->buckets);
	memset(l, 0, sizeof(*l));
}

static void volume_key(uint8_t key[24], const uint8_t trace_id[16], const uint8_t *span_id)
{
	memcpy(key, trace_id, 16);
	if (span_id)
		memcpy(key + 16, span_id, 8);
	else
		memset(key + 16, 0, 8);
}

static uint64_t volume_id64(const uint8_t id[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | id[i];
	return v;
}

static void volume_id_put(uint8_t id[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		id[i] = (uint8_t)v;
}

/* ---- held traces ----------------------------------------------------------------------- */

struct vtrace {
	struct vtrace *hnext;
	struct vtrace *older, *newer; /* by first span's arrival */
	uint8_t trace_id[16];
	uint64_t first_ms;
	struct span **spans; /* in arrival order */
	size_t n, cap;
	size_t bytes;
};

struct volume {
	struct volume_cfg cfg;
	struct volume_rule rules[VOLUME_MAX_RULES];
	size_t n_rules;
	char *rule_text[VOLUME_MAX_RULES];
	uint64_t threshold;
	bool hold; /* rules or keeps: traces wait for their root */
	volume_out_fn out;
	void *ctx;
	struct vtrace **buckets;
	size_t mask;
	struct vtrace *oldest, *newest;
	size_t held_spans, held_bytes;
	struct vlru decided;  /* traceId -> 1 kept, 0 not */
	struct vlru reparent; /* traceId, dropped spanId -> its nearest kept ancestor */
};

static struct vtrace **volume_slot(struct volume *v, const uint8_t trace_id[16])
{
	struct vtrace **pp = &v->buckets[volume_hash(trace_id, 16) & v->mask];

	while (*pp && memcmp((*pp)->trace_id, trace_id, 16))
		pp = &(*pp)->hnext;
	return pp;
}

/* Take @t out of the table and the age list (its spans stay with it). */
static void volume_unhold(struct volume *v, struct vtrace *t)
{
	*volume_slot(v, t->trace_id) = t->hnext;
	if (t->older)
		t->older->newer = t->newer;
	else
		v->oldest = t->newer;
	if (t->newer)
		t->newer->older = t->older;
	else
		v->newest = t->older;
	v->held_spans -= t->n;
	v->held_bytes -= t->bytes;
}

static void vtrace_free(struct vtrace *t)
{
	for (size_t i = 0; i < t->n; i++)
		span__free(t->spans[i]);
	free(t->spans);
	free(t);
}

struct volume *volume__new(const struct volume_cfg *cfg, volume_out_fn out, void *ctx)
{
	struct volume *v = calloc(1, sizeof(*v));
	size_t nb;

	if (!v)
		return NULL;
	v->cfg = *cfg;
	v->cfg.rules = NULL;
	v->out = out;
	v->ctx = ctx;
	v->threshold = volume_ratio_threshold(cfg->sample ? cfg->ratio : 1.0);
	v->hold = cfg->keep_errors || cfg->keep_slow || cfg->n_rules;
	if (!v->cfg.hold_spans)
		v->cfg.hold_spans = 1;
	for (size_t i = 0; i < cfg->n_rules && i < VOLUME_MAX_RULES; i++) {
		v->rule_text[i] = strdup(cfg->rules[i]);
		if (!v->rule_text[i] || volume_rule_parse(cfg->rules[i], &v->rules[i]) < 0) {
			free(v->rule_text[i]);
			goto fail;
		}
		v->n_rules++;
	}
	nb = volume_buckets(v->cfg.hold_spans);
	v->buckets = calloc(nb, sizeof(*v->buckets));
	v->mask = nb - 1;
	if (!v->buckets || vlru_init(&v->decided, VOLUME_DECIDED_MAX) < 0 ||
	    vlru_init(&v->reparent, VOLUME_REPARENT_MAX) < 0)
		goto fail;
	memset(stats.rule_dropped, 0, sizeof(stats.rule_dropped));
	for (size_t i = 0; i < v->n_rules; i++)
		stats.rule_names[i] = v->rule_text[i];
	stats.n_rules = v->n_rules;
	return v;
fail:
	volume__free(v);
	return NULL;
}

void volume__free(struct volume *v)
{
	if (!v)
		return;
	volume_abort(v);
	if (stats.n_rules && stats.rule_names[0] == v->rule_text[0])
		stats.n_rules = 0;
	for (size_t i = 0; i < v->n_rules; i++)
		free(v->rule_text[i]);
	free(v->buckets);
	vlru_free(&v->decided);
	vlru_free(&v->reparent);
	free(v);
}

/* ---- decisions ------------------------------------------------------------------------- */

/* The first rule that drops @s, or -1. A local root is never dropped. */
static int volume_rule_of(const struct volume *v, const struct span *s)
{
	if (!s->has_parent)
		return -1;
	for (size_t i = 0; i < v->n_rules; i++) {
		const struct volume_rule *r = &v->rules[i];

		if (r->has_bound && (s->duration_us > r->shorter_than_ns / 1000 ||
				     s->duration_us * 1000 >= r->shorter_than_ns))
			continue;
		if (!fnmatch(r->glob, s->name.ptr, 0))
			return (int)i;
	}
	return -1;
}

static bool volume_span_error(const struct span *s)
{
	struct otlp_status st;

	otlp_status_of(s, &st);
	return st.code == OTLP_STATUS_ERROR;
}

static bool volume_span_slow(const struct volume *v, const struct span *s)
{
	uint64_t ns = v->cfg.keep_slower_ns;

	/* duration_us * 1000 >= ns, without overflow. */
	return s->duration_us >= ns / 1000 + (ns % 1000 != 0);
}

static enum volume_keep volume_judge(const struct volume *v, const uint8_t trace_id[16],
				     struct span *const *spans, size_t n)
{
	bool error = false, slow = false;

	if (volume_ratio_sampled(trace_id, v->threshold))
		return VOLUME_KEEP_SAMPLED;
	for (size_t i = 0; i < n; i++) {
		error = error || (v->cfg.keep_errors && volume_span_error(spans[i]));
		slow = slow || (v->cfg.keep_slow && volume_span_slow(v, spans[i]));
	}
	return error ? VOLUME_KEEP_ERROR : slow ? VOLUME_KEEP_SLOW : VOLUME_KEEP_NONE;
}

struct volume_idx {
	uint64_t id;
	size_t i;
};

static int volume_idx_cmp(const void *a, const void *b)
{
	const struct volume_idx *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Index in the trace of span @id, or -1. */
static long volume_find(const struct volume_idx *idx, size_t n, uint64_t id)
{
	struct volume_idx key = {id, 0};
	const struct volume_idx *hit = bsearch(&key, idx, n, sizeof(*idx), volume_idx_cmp);

	return hit ? (long)hit->i : -1;
}

/*
 * The nearest ancestor of a span whose parent is @parent that is not dropped: up through
 * the dropped spans of the trace (at most @n steps, whatever loops the ids make), then,
 * once outside it, through what earlier decisions of the trace remembered.
 */
static uint64_t volume_ancestor(struct volume *v, const uint8_t trace_id[16],
				struct span *const *spans, const struct volume_idx *idx,
				const int *rule, size_t n, uint64_t parent)
{
	uint8_t key[24], id[8];
	uint64_t mapped;
	long at;

	for (size_t steps = 0; steps <= n; steps++) {
		at = volume_find(idx, n, parent);
		if (at >= 0 && rule[at] < 0)
			return parent; /* kept */
		if (at < 0)
			break;
		parent = volume_id64(spans[at]->parent_id); /* dropped: never a root */
	}
	volume_id_put(id, parent);
	volume_key(key, trace_id, id);
	return vlru_get(&v->reparent, key, &mapped) ? mapped : parent;
}

/* Drop by rule what the rules drop, re-parent the rest, pass it on (arrival order). */
static void volume_pass_kept(struct volume *v, const uint8_t trace_id[16], struct span **spans,
			     size_t n)
{
	struct volume_idx *idx = calloc(n, sizeof(*idx));
	int *rule = calloc(n, sizeof(*rule));
	uint8_t key[24];

	if (!idx || !rule) {
		/* Out of memory: rather every span, connected, than a trace in pieces. */
		free(idx);
		free(rule);
		for (size_t i = 0; i < n; i++)
			v->out(v->ctx, spans[i]);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		idx[i] = (struct volume_idx){volume_id64(spans[i]->span_id), i};
		rule[i] = volume_rule_of(v, spans[i]);
	}
	qsort(idx, n, sizeof(*idx), volume_idx_cmp);
	/* Every ancestor first, while the dropped spans are all still there to walk through. */
	for (size_t i = 0; i < n; i++) {
		uint64_t up;

		if (!spans[i]->has_parent)
			continue;
		up = volume_ancestor(v, trace_id, spans, idx, rule, n,
				     volume_id64(spans[i]->parent_id));
		if (rule[i] >= 0) {
			volume_key(key, trace_id, spans[i]->span_id);
			vlru_put(&v->reparent, key, up);
		} else {
			volume_id_put(spans[i]->parent_id, up);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (rule[i] >= 0) {
			stats.rule_dropped[rule[i]]++;
			span__free(spans[i]);
		} else {
			v->out(v->ctx, spans[i]);
		}
	}
	free(idx);
	free(rule);
}

/* Decide a trace of @n spans (taken), remember the decision. */
static void volume_decide(struct volume *v, const uint8_t trace_id[16], struct span **spans,
			  size_t n)
{
	enum volume_keep why = volume_judge(v, trace_id, spans, n);
	uint8_t key[24];

	volume_key(key, trace_id, NULL);
	vlru_put(&v->decided, key, why != VOLUME_KEEP_NONE);
	if (why == VOLUME_KEEP_NONE) {
		stats.sampled_out += n;
		for (size_t i = 0; i < n; i++)
			span__free(spans[i]);
		return;
	}
	stats.traces_kept[why]++;
	volume_pass_kept(v, trace_id, spans, n);
}

static void volume_decide_held(struct volume *v, struct vtrace *t, bool cut_short)
{
	volume_unhold(v, t);
	if (cut_short)
		stats.traces_cut_short++;
	volume_decide(v, t->trace_id, t->spans, t->n);
	free(t->spans);
	free(t);
}

/* A span of a trace decided before: follows the decision and the re-parenting. */
static void volume_late(struct volume *v, struct span *span, bool kept)
{
	if (!kept) {
		stats.sampled_out++;
		span__free(span);
		return;
	}
	volume_pass_kept(v, span->trace_id, &span, 1);
}

/* Room for @bytes more: the oldest traces are decided on what has arrived. */
static void volume_make_room(struct volume *v, size_t bytes)
{
	while (v->oldest &&
	       (v->held_spans + 1 > v->cfg.hold_spans || v->held_bytes + bytes > v->cfg.hold_bytes))
		volume_decide_held(v, v->oldest, true);
}

/* Hold @span with its trace; false when out of memory (the caller decides it alone). */
static bool volume_hold(struct volume *v, struct span *span, uint64_t now_ms)
{
	struct vtrace **pp = volume_slot(v, span->trace_id), *t = *pp;
	size_t bytes = span_mem_size(span);

	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return false;
		memcpy(t->trace_id, span->trace_id, 16);
		t->first_ms = now_ms;
		*pp = t;
		t->older = v->newest;
		if (v->newest)
			v->newest->newer = t;
		else
			v->oldest = t;
		v->newest = t;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 8;
		struct span **grown = realloc(t->spans, cap * sizeof(*grown));

		if (!grown) {
			if (!t->n) {
				volume_unhold(v, t);
				free(t);
			}
			return false;
		}
		t->spans = grown;
		t->cap = cap;
	}
	t->spans[t->n++] = span;
	t->bytes += bytes;
	v->held_spans++;
	v->held_bytes += bytes;
	return true;
}

void volume_add(struct volume *v, struct span *span, uint64_t now_ms)
{
	uint8_t key[24];
	uint64_t kept;
	struct vtrace *t;

	volume_key(key, span->trace_id, NULL);
	if (!v->hold) {
		/* The ratio alone: each span decided from its traceId, nothing held. */
		if (!volume_ratio_sampled(span->trace_id, v->threshold)) {
			stats.sampled_out++;
			span__free(span);
			return;
		}
		if (!span->has_parent)
			stats.traces_kept[VOLUME_KEEP_SAMPLED]++;
		v->out(v->ctx, span);
		return;
	}
	t = *volume_slot(v, span->trace_id);
	if (!t && vlru_get(&v->decided, key, &kept)) {
		volume_late(v, span, kept);
		return;
	}
	volume_make_room(v, span_mem_size(span));
	/* Making room may have decided this very trace: the span is then a late one. */
	if (!*volume_slot(v, span->trace_id) && vlru_get(&v->decided, key, &kept)) {
		volume_late(v, span, kept);
		return;
	}
	if (!volume_hold(v, span, now_ms)) {
		volume_decide(v, span->trace_id, &span, 1); /* out of memory: alone */
		return;
	}
	if (!span->has_parent)
		volume_decide_held(v, *volume_slot(v, span->trace_id), false);
}

size_t volume_expire(struct volume *v, uint64_t now_ms)
{
	size_t n = 0;

	while (v->oldest && now_ms - v->oldest->first_ms >= v->cfg.hold_ms) {
		volume_decide_held(v, v->oldest, true);
		n++;
	}
	return n;
}

size_t volume_flush(struct volume *v)
{
	size_t n = 0;

	for (; v->oldest; n++)
		volume_decide_held(v, v->oldest, true);
	return n;
}

size_t volume_abort(struct volume *v)
{
	size_t n = v->held_spans;

	while (v->oldest) {
		struct vtrace *t = v->oldest;

		volume_unhold(v, t);
		vtrace_free(t);
	}
	return n;
}

uint64_t volume_next_due_ms(const struct volume *v)
{
	return v->oldest ? v->oldest->first_ms + v->cfg.hold_ms : 0;
}

size_t volume_held(const struct volume *v)
{
	return v->held_spans;
}
