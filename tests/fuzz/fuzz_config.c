// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the configuration parsers.
 *
 * Input: byte 0, then elements separated by NUL bytes. The low 4 bits of byte 0 say how
 * many leading elements are environment entries (NAME=VALUE); the rest are argv[1..].
 * The high 4 bits give the entry limit (1-16) for config_parse_kv_list.
 *
 * Invariants checked:
 *   - config_load: returns 0, -EINVAL or -ENOMEM; a failure has a message, NUL-terminated
 *     inside the buffer (also for tiny buffers); a success is valid: header names are
 *     tokens and distinct, header values hold no CR/LF or other controls, resource
 *     attributes are UTF-8 with distinct keys, the endpoint is an http(s) URL without
 *     blanks, numbers are in range, the batch fits the queue; header values and endpoint
 *     URLs never appear in a message; loading twice gives the same result (getopt state
 *     is reset); config_free is always safe, twice too; no leaks (LeakSanitizer);
 *   - config_parse_header_lines keeps its contract on the whole input (trimmed names
 *     without ':', no line ends, nothing left on error); config_wipe_argv only turns bytes
 *     into '*', never changes a length;
 *   - config_parse_kv_list and config_percent_decode agree with a reference written here
 *     from their documented contract (config.h), on every element and on the whole input
 *     (which holds NUL bytes).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "volume.h"
#include "fuzz_util.h"

#define MAX_ELEMS 64
#define CANARY	  "S3CR3T"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The environment of the input running now, for the getenv callback (first match wins). */
static char **env_entries;
static size_t n_env_entries;

static const char *fuzz_getenv(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n_env_entries; i++) {
		const char *e = env_entries[i];

		if (!strncmp(e, name, len) && e[len] == '=')
			return e + len + 1;
	}
	return NULL;
}

/* ---- reference percent-decoding and k=v lists, from config.h's contract ---------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decoded length, or -1 when malformed ('%' without two hex digits, "%00", a NUL byte). */
static long ref_decode(const char *s, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '\0')
			return -1;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (len - i < 3)
			return -1;
		hi = hexval(s[i + 1]);
		lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi | lo) == 0)
			return -1;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return (long)o;
}

static void check_decode(const char *s, size_t len)
{
	char *ref = malloc(len + 1);
	char *got = config_percent_decode(s, len);
	long n = ref ? ref_decode(s, len, ref) : -2;

	if (n == -2) {
		free(got);
		return;
	}
	if (n < 0)
		FUZZ_CHECK(got == NULL, "decoded a malformed string into \"%s\"", got);
	else
		FUZZ_CHECK(got && strlen(got) == (size_t)n && !memcmp(got, ref, (size_t)n),
			   "decoding differs from the reference");
	free(got);
	free(ref);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **b, const char **e)
{
	while (*b < *e && blank(**b))
		(*b)++;
	while (*e > *b && blank((*e)[-1]))
		(*e)--;
}

struct ref_kv {
	char *name, *value;
};

/*
 * "k=v,k2=v2": entries split on ',', trimmed; blank ones skipped; the first '=' splits;
 * key and value trimmed, then percent-decoded; an empty key, an entry without '=' or a bad
 * escape is -EINVAL; more than @max entries is -E2BIG; the first problem in order wins.
 */
static int ref_kv_list(const char *s, struct ref_kv *out, size_t max, size_t *n)
{
	const char *p = s;

	*n = 0;
	while (*p) {
		const char *end = strchr(p, ',') ? strchr(p, ',') : p + strlen(p);
		const char *kb = p, *ke, *vb, *ve = end, *eq;

		trim(&kb, &ve);
		if (kb != ve) {
			eq = memchr(kb, '=', (size_t)(ve - kb));
			if (!eq)
				return -EINVAL;
			ke = eq;
			vb = eq + 1;
			trim(&kb, &ke);
			trim(&vb, &ve);
			if (kb == ke)
				return -EINVAL;
			if (*n == max)
				return -E2BIG;
			out[*n].name = malloc((size_t)(ke - kb) + 1);
			out[*n].value = malloc((size_t)(ve - vb) + 1);
			(*n)++;
			if (!out[*n - 1].name || !out[*n - 1].value)
				return -ENOMEM;
			if (ref_decode(kb, (size_t)(ke - kb), out[*n - 1].name) < 0 ||
			    ref_decode(vb, (size_t)(ve - vb), out[*n - 1].value) < 0)
				return -EINVAL;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

static void check_kv(const char *s, size_t max)
{
	struct config_kv got[16];
	struct ref_kv ref[16];
	size_t n = 99, nref = 0;
	int r, rref;

	memset(ref, 0, sizeof(ref));
	r = config_parse_kv_list(s, got, max, &n);
	rref = ref_kv_list(s, ref, max, &nref);
	if (rref == -ENOMEM) {
		if (!r)
			for (size_t i = 0; i < n; i++)
				free(got[i].key), free(got[i].value);
		goto cleanup;
	}
	FUZZ_CHECK(r == rref, "config_parse_kv_list returned %d, the reference %d", r, rref);
	if (r) {
		FUZZ_CHECK(n == 0, "%zu entries left after an error", n);
		goto cleanup;
	}
	FUZZ_CHECK(n == nref && n <= max, "%zu entries, the reference %zu", n, nref);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(got[i].key[0] != '\0', "empty key");
		FUZZ_CHECK(!strcmp(got[i].key, ref[i].name) && !strcmp(got[i].value, ref[i].value),
			   "entry %zu differs from the reference", i);
		free(got[i].key);
		free(got[i].value);
	}
cleanup:
	for (size_t i = 0; i < nref; i++) {
		free(ref[i].name);
		free(ref[i].value);
	}
}

/* ---- config_load ------------------------------------------------------------------------ */

static bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* An http(s) URL; for gRPC also host:port (no scheme, a colon). */
static bool url_ok(const char *url, bool grpc)
{
	size_t skip;

	if (!strncasecmp(url, "http://", 7))
		skip = 7;
	else if (!strncasecmp(url, "https://", 8))
		skip = 8;
	else if (grpc && !strstr(url, "://") && strchr(url, ':'))
		skip = 0;
	else
		return false;
	if (!url[skip] || url[skip] == '/')
		return false;
	for (const unsigned char *c = (const unsigned char *)url; *c; c++)
		if (*c <= 0x20 || *c == 0x7f)
			return false;
	return true;
}

static bool cstr_utf8(const char *s)
{
	return fuzz_utf8_ok(s, strlen(s));
}

static void check_valid(const struct config *c)
{
	FUZZ_CHECK(c->n_files <= CONFIG_MAX_LIST && c->n_lightningd <= CONFIG_MAX_LIST &&
			   c->n_pids <= CONFIG_MAX_LIST && c->n_headers <= CONFIG_MAX_LIST &&
			   c->n_resource_attrs <= CONFIG_MAX_LIST,
		   "a list past its cap");
	for (size_t i = 0; i < c->n_files; i++)
		FUZZ_CHECK(c->files[i] && c->files[i][0], "empty file name");
	for (size_t i = 0; i < c->n_lightningd; i++)
		FUZZ_CHECK(c->lightningd[i] && c->lightningd[i][0], "empty lightningd path");
	for (size_t i = 0; i < c->n_pids; i++)
		FUZZ_CHECK(c->pids[i] >= 1 && c->pids[i] <= 4194304, "pid %u", c->pids[i]);
	FUZZ_CHECK(!c->follow || c->n_files, "--follow without a file");
	FUZZ_CHECK(c->usdt == (c->n_lightningd || c->n_pids || (!c->n_files && !c->socket_path)),
		   "usdt rule");
	FUZZ_CHECK(c->ringbuf_size >= 4096 && c->ringbuf_size <= (1ULL << 30) &&
			   !(c->ringbuf_size & (c->ringbuf_size - 1)),
		   "ring buffer size %llu", (unsigned long long)c->ringbuf_size);
	FUZZ_CHECK(c->exporter <= CONFIG_EXPORTER_NONE && c->protocol <= CONFIG_PROTO_GRPC,
		   "enum out of range");
	FUZZ_CHECK(c->endpoint && url_ok(c->endpoint, c->protocol == CONFIG_PROTO_GRPC),
		   "endpoint is not an http(s) URL (or host:port for grpc)");
	FUZZ_CHECK(c->n_warnings <= CONFIG_MAX_WARNINGS, "warnings past the table");
	for (size_t i = 0; i < c->n_warnings; i++)
		FUZZ_CHECK(memchr(c->warnings[i], 0, CONFIG_WARNING_LEN), "warning not terminated");
	FUZZ_CHECK(c->log_level >= CONFIG_LOG_UNSET && c->log_level <= 3, "log level");
	for (size_t i = 0; i < c->n_headers; i++) {
		const struct config_kv *h = &c->headers[i];

		FUZZ_CHECK(h->key && h->key[0] && h->value, "header %zu empty", i);
		for (const unsigned char *p = (const unsigned char *)h->key; *p; p++)
			FUZZ_CHECK(tchar(*p), "header name byte 0x%02x is not a token character",
				   *p);
		for (const unsigned char *p = (const unsigned char *)h->value; *p; p++)
			FUZZ_CHECK((*p >= 0x20 || *p == '\t') && *p != 0x7f,
				   "header value holds control byte 0x%02x", *p);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcasecmp(c->headers[j].key, h->key), "header %s twice",
				   h->key);
	}
	for (size_t i = 0; i < c->n_resource_attrs; i++) {
		const struct config_kv *a = &c->resource_attrs[i];

		FUZZ_CHECK(a->key && a->key[0] && a->value, "resource attribute %zu empty", i);
		FUZZ_CHECK(cstr_utf8(a->key) && cstr_utf8(a->value),
			   "resource attribute not UTF-8");
		FUZZ_CHECK(strcmp(a->key, "service.name"), "service.name left in the attributes");
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->resource_attrs[j].key, a->key), "attribute %s twice",
				   a->key);
	}
	FUZZ_CHECK(!c->service_name || cstr_utf8(c->service_name), "service name not UTF-8");
	FUZZ_CHECK(c->timeout_ms <= 0x7fffffff, "timeout (0: no limit)");
	FUZZ_CHECK(c->max_inflight >= 1 && c->max_inflight <= 64, "max_inflight");
	FUZZ_CHECK(c->retry_max_elapsed_ms <= 0x7fffffff, "retry budget");
	FUZZ_CHECK(c->max_queue_spans >= 1 && c->max_queue_spans <= 16u * 1024 * 1024,
		   "queue size");
	FUZZ_CHECK(c->max_queue_bytes >= 65536 && c->max_queue_bytes <= (16ULL << 30),
		   "queue bytes");
	FUZZ_CHECK(c->batch_size >= 1 && c->batch_size <= c->max_queue_spans, "batch size");
	FUZZ_CHECK(c->schedule_delay_ms <= 0x7fffffff && c->export_timeout_ms >= 1 &&
			   c->export_timeout_ms <= 0x7fffffff &&
			   c->shutdown_timeout_ms <= 0x7fffffff && c->suspend_ttl_ms <= 0x7fffffff,
		   "milliseconds out of range");
	FUZZ_CHECK(!c->socket_path || (c->socket_path[0] && strlen(c->socket_path) <= 107),
		   "socket path");
	/* Volume: what config accepted, volume__new accepts too. */
	FUZZ_CHECK(c->sample_ratio >= 0.0 && c->sample_ratio <= 1.0, "sample ratio");
	FUZZ_CHECK(c->keep_slow == (c->keep_slower_arg != NULL), "keep_slow");
	FUZZ_CHECK(c->hold_spans >= 1 && c->hold_ms >= 1 && c->hold_bytes >= 65536, "hold bounds");
	for (size_t i = 0; i < c->n_drop_spans; i++) {
		struct volume_rule r;

		FUZZ_CHECK(volume_rule_parse(c->drop_spans[i], &r) == 0 && r.glob[0],
			   "an accepted --drop-span parses");
	}
}

/* Everything config_load decides, as text, to compare two loads. */
static char *render(int ret, const char *err, const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "ret=%d err=%s help=%d version=%d\n", ret, err, c->help, c->version);
	for (size_t i = 0; i < c->n_files; i++)
		fprintf(f, "file=%s\n", c->files[i]);
	for (size_t i = 0; i < c->n_lightningd; i++)
		fprintf(f, "lightningd=%s\n", c->lightningd[i]);
	for (size_t i = 0; i < c->n_pids; i++)
		fprintf(f, "pid=%u\n", c->pids[i]);
	for (size_t i = 0; i < c->n_headers; i++)
		fprintf(f, "header=%s=%s\n", c->headers[i].key, c->headers[i].value);
	for (size_t i = 0; i < c->n_resource_attrs; i++)
		fprintf(f, "attr=%s=%s\n", c->resource_attrs[i].key, c->resource_attrs[i].value);
	fprintf(f, "%d %d %s %d %d %d %llu %d %d %s %d %llu %s %s %s %d %u %llu\n", c->follow,
		c->usdt, c->socket_path ? c->socket_path : "-", c->no_plugins, c->all_probes,
		c->exporter, (unsigned long long)c->ringbuf_size, c->protocol, c->gzip,
		c->endpoint ? c->endpoint : "-", c->insecure, (unsigned long long)c->timeout_ms,
		c->ca_cert ? c->ca_cert : "-", c->client_cert ? c->client_cert : "-",
		c->client_key ? c->client_key : "-", c->verbosity, c->max_inflight,
		(unsigned long long)c->retry_max_elapsed_ms);
	fprintf(f, "%zu %zu %zu %llu %llu %llu %s %llu %s %s %s %llu\n", c->max_queue_spans,
		c->max_queue_bytes, c->batch_size, (unsigned long long)c->schedule_delay_ms,
		(unsigned long long)c->export_timeout_ms,
		(unsigned long long)c->shutdown_timeout_ms, c->service_name ? c->service_name : "-",
		(unsigned long long)c->stats_interval_s,
		c->metrics_listen ? c->metrics_listen : "-", c->user ? c->user : "-",
		c->rpc_file ? c->rpc_file : "-", (unsigned long long)c->suspend_ttl_ms);
	fclose(f);
	return buf;
}

/* ---- secrets never quoted ----------------------------------------------------------------- */

static bool is_headers_var(const char *name, size_t len)
{
	return (len == 26 && !strncmp(name, "OTEL_EXPORTER_OTLP_HEADERS", len)) ||
	       (len == 33 && !strncmp(name, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", len));
}

static bool is_endpoint_var(const char *name, size_t len)
{
	return (len == 27 && !strncmp(name, "OTEL_EXPORTER_OTLP_ENDPOINT", len)) ||
	       (len == 34 && !strncmp(name, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", len));
}

/* A part that may be quoted: it must hold neither the canary nor (decoded names) a '%'. */
static bool public_ok(const char *s, size_t n, bool decoded)
{
	if (memmem(s, n, CANARY, sizeof(CANARY) - 1))
		return false;
	return !decoded || !memchr(s, '%', n);
}

/* "k=v,...": keys are public (and decoded), values and entries without '=' secret. */
static bool header_list_ok(const char *v, char sep)
{
	while (*v) {
		const char *end = sep ? strchr(v, sep) : NULL;
		const char *eq;

		if (!end)
			end = v + strlen(v);
		eq = memchr(v, '=', (size_t)(end - v));
		if (eq && !public_ok(v, (size_t)(eq - v), true))
			return false;
		v = *end ? end + 1 : end;
	}
	return true;
}

static const char *const arg_longopts[] = {
	"file",		  "socket",
	"lightningd",	  "pid",
	"ringbuf-size",	  "exporter",
	"endpoint",	  "protocol",
	"header",	  "compression",
	"timeout",	  "ca-cert",
	"client-cert",	  "client-key",
	"max-inflight",	  "retry-max-elapsed",
	"queue-size",	  "queue-bytes",
	"batch-size",	  "batch-delay",
	"export-timeout", "shutdown-timeout",
	"service-name",	  "resource-attr",
	"stats-interval", "metrics-listen",
	"user",		  "rpc-file",
	"suspend-ttl",	  NULL,
};
static const char *const noarg_longopts[] = {
	"follow", "no-plugins", "all-probes", "insecure", "verbose",
	"quiet",  "help",	"version",    NULL,
};

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

/*
 * Whether the canary check applies: the canary may only sit where a secret is (header
 * values, endpoint URLs), at places where the parser surely sees it as one. Anything
 * less certain skips the check rather than raise a false alarm.
 */
static bool canary_check_applies(char **env, size_t n_env, int argc, char **argv)
{
	bool seen_headers[2] = {false, false};
	bool next_free = true; /* argv[i] starts a new option (not the value of another) */
	int secret_next = 0;   /* 1: the next element is a header, 2: an endpoint */

	for (size_t i = 0; i < n_env; i++) {
		const char *e = env[i], *eq = strchr(e, '=');
		size_t nlen = eq ? (size_t)(eq - e) : strlen(e);

		if (!public_ok(e, nlen, false))
			return false;
		if (!eq)
			continue;
		if (is_headers_var(e, nlen)) {
			bool *seen = &seen_headers[nlen == 33];

			if (!*seen && !header_list_ok(eq + 1, ','))
				return false;
			*seen = true;
		} else if (!is_endpoint_var(e, nlen) && !public_ok(eq + 1, strlen(eq + 1), true)) {
			return false;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (secret_next == 1) {
			if (!header_list_ok(a, 0))
				return false;
			secret_next = 0;
			next_free = true;
			continue;
		}
		if (secret_next == 2) {
			secret_next = 0;
			next_free = true;
			continue;
		}
		if (next_free && !strncmp(a, "--header=", 9)) {
			if (!header_list_ok(a + 9, 0))
				return false;
			continue;
		}
		if (next_free && !strncmp(a, "--endpoint=", 11))
			continue;
		if (!public_ok(a, strlen(a), false))
			return false;
		if (next_free && !strcmp(a, "--header")) {
			secret_next = 1;
			continue;
		}
		if (next_free && !strcmp(a, "--endpoint")) {
			secret_next = 2;
			continue;
		}
		/* Does the element after this one start an option of its own? */
		if (!next_free)
			next_free = true; /* this one was a value */
		else if (a[0] == '-' && a[1] == '-' && a[2] && strchr(a, '='))
			next_free = true;
		else if (a[0] == '-' && a[1] == '-' && in_list(noarg_longopts, a + 2))
			next_free = true;
		else if (a[0] == '-' && a[1] == '-' && in_list(arg_longopts, a + 2))
			next_free = false; /* the next element is its value: public */
		else if (a[0] == '-' && a[1] != '-' && a[1] &&
			 strspn(a + 1, "vqhV") == strlen(a + 1))
			next_free = true;
		else
			return false; /* a positional or an abbreviation: stop judging */
	}
	return true;
}

static void check_load(char **env, size_t n_env, int argc, char **argv, uint8_t small)
{
	struct config cfg, again;
	char err[512], err2[512], *tiny;
	char *r1, *r2;
	size_t tiny_size = 1 + small % 24;
	int ret, ret2, ret3;

	env_entries = env;
	n_env_entries = n_env;
	memset(err, 'x', sizeof(err));
	ret = config_load(&cfg, argc, argv, fuzz_getenv, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM, "returned %d", ret);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)), "message not NUL-terminated");
	if (ret)
		FUZZ_CHECK(err[0], "failure without a message");
	else if (!cfg.help && !cfg.version)
		check_valid(&cfg);
	if (ret && strstr(err, CANARY) && canary_check_applies(env, n_env, argc, argv))
		FUZZ_CHECK(false, "a secret in a message: %s", err);

	/* Again: same result (getopt's state is reset by config_load). */
	ret2 = config_load(&again, argc, argv, fuzz_getenv, err2, sizeof(err2));
	r1 = render(ret, err, &cfg);
	r2 = render(ret2, err2, &again);
	if (r1 && r2)
		FUZZ_CHECK(!strcmp(r1, r2), "second load differs:\n%s---\n%s", r1, r2);
	free(r1);
	free(r2);
	config_free(&again);
	config_free(&again); /* every _free is idempotent on a freed config */

	/* A tiny message buffer: truncated, never overrun (ASan sees the exact size). */
	tiny = malloc(tiny_size);
	if (tiny) {
		ret3 = config_load(&again, argc, argv, fuzz_getenv, tiny, tiny_size);
		FUZZ_CHECK(ret3 == ret, "result depends on the message buffer size");
		FUZZ_CHECK(memchr(tiny, '\0', tiny_size), "tiny message not terminated");
		config_free(&again);
		free(tiny);
	}
	/* No message buffer at all. */
	FUZZ_CHECK(config_load(&again, argc, argv, fuzz_getenv, NULL, 0) == ret,
		   "result depends on the message buffer");
	config_free(&again);
	config_free(&cfg);
	env_entries = NULL;
	n_env_entries = 0;
}

/* ---- --header-file text and argv wiping ----------------------------------------------- */

/* config_parse_header_lines on @text: its documented contract (config.h). */
static void check_header_lines(const char *text, size_t len, size_t max)
{
	struct config_kv out[16];
	size_t n = 99, bad = 99;
	int ret = config_parse_header_lines(text, len, out, max, &n, &bad);

	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -E2BIG || ret == -ENOMEM,
		   "header lines: returned %d", ret);
	FUZZ_CHECK(ret ? n == 0 && bad >= 1 : bad == 0 && n <= max,
		   "header lines: ret %d with n %zu, bad line %zu", ret, n, bad);
	for (size_t i = 0; i < n; i++) {
		const char *k = out[i].key, *v = out[i].value;
		size_t kl = strlen(k), vl = strlen(v);

		FUZZ_CHECK(kl && !strchr(k, ':') && !strchr(k, '\n') && !strchr(v, '\n'),
			   "header lines: entry %zu malformed", i);
		FUZZ_CHECK(!blank(k[0]) && !blank(k[kl - 1]) && k[0] != '#' &&
				   !(vl && (blank(v[0]) || blank(v[vl - 1]))),
			   "header lines: entry %zu not trimmed", i);
		free(out[i].key);
		free(out[i].value);
	}
}

/* config_wipe_argv on a copy: only bytes turned into '*', lengths kept, at most one a value. */
static void check_wipe(int argc, char **argv)
{
	char *copy[MAX_ELEMS + 2] = {NULL};
	size_t n;

	for (int i = 0; i < argc; i++)
		copy[i] = strdup(argv[i]);
	for (int i = 0; i < argc; i++)
		if (!copy[i])
			goto cleanup;
	n = config_wipe_argv(argc, copy);
	FUZZ_CHECK(n <= (size_t)argc, "wiped %zu values of %d arguments", n, argc);
	for (int i = 0; i < argc; i++) {
		FUZZ_CHECK(strlen(copy[i]) == strlen(argv[i]), "argument %d changed length", i);
		for (size_t b = 0; copy[i][b]; b++)
			FUZZ_CHECK(copy[i][b] == argv[i][b] || copy[i][b] == '*',
				   "argument %d byte %zu not wiped with '*'", i, b);
	}
cleanup:
	for (int i = 0; i < argc; i++)
		free(copy[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *elems[MAX_ELEMS + 1], *argv[MAX_ELEMS + 2];
	size_t n = 0, n_env, at = 1, kv_max;
	char *whole;

	if (size < 1)
		return 0;
	n_env = data[0] & 0x0f;
	kv_max = (size_t)(data[0] >> 4) + 1;
	while (at <= size && n < MAX_ELEMS) {
		const uint8_t *nul = memchr(data + at, 0, size - at);
		size_t len = nul ? (size_t)(nul - (data + at)) : size - at;

		elems[n] = malloc(len + 1);
		if (!elems[n])
			break;
		memcpy(elems[n], data + at, len);
		elems[n][len] = '\0';
		n++;
		at += len + 1;
	}
	if (n_env > n)
		n_env = n;

	for (size_t i = 0; i < n; i++) {
		check_decode(elems[i], strlen(elems[i]));
		check_kv(elems[i], kv_max);
	}
	/* The whole input, NUL bytes and all. */
	whole = fuzz_dup(data + 1, size - 1);
	if (whole || size == 1) {
		check_decode(whole, size - 1);
		check_header_lines(whole ? whole : "", size - 1, kv_max);
		free(whole);
	}

	argv[0] = "cln-otlp";
	for (size_t i = n_env; i < n; i++)
		argv[1 + i - n_env] = elems[i];
	argv[1 + n - n_env] = NULL;
	check_load(elems, n_env, (int)(1 + n - n_env), argv, data[size - 1]);
	check_wipe((int)(1 + n - n_env), argv);

	for (size_t i = 0; i < n; i++)
		free(elems[i]);
	return 0;
}
