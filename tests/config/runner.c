// SPDX-License-Identifier: MIT
/*
 * Data-driven tests for src/config.c. Usage:
 *   config_runner CASES [NAME]     run every case, or only case NAME
 *   config_runner --all-fail CASES every case must FAIL (checks the runner itself)
 *
 * A case file is a list of directives, one a line ('#' starts a comment line):
 *   case: NAME          starts a case
 *   env: NAME=VALUE     an environment variable (the getenv callback's table)
 *   arg: VALUE          the next argv element (argv[0] is supplied)
 *   decode: TEXT        test config_percent_decode(TEXT) instead of config_load()
 *   kv: TEXT            test config_parse_kv_list(TEXT) (max 4 entries)
 *   usage               test config_usage()
 *   expect: FIELD=VALUE a line FIELD=VALUE of the rendered result must exist exactly
 *   contains: TEXT      the rendered result contains TEXT
 *   error: TEXT         config_load must fail with -EINVAL and a message containing TEXT
 *   absent: TEXT        neither the message nor the rendered result contains TEXT
 * Values take C escapes: \\ \n \r \t \s (space) \xHH.
 * In every case, an error message must never contain "SECRET": test header values use it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MAX_ITEMS 64
#define CANARY	  "SECRET"

struct tcase {
	char name[128];
	int line;
	char *env[MAX_ITEMS];
	size_t n_env;
	char *args[MAX_ITEMS];
	size_t n_args;
	char *decode;
	char *kv;
	bool usage;
	char *expect[MAX_ITEMS];
	size_t n_expect;
	char *contains[MAX_ITEMS];
	size_t n_contains;
	char *errors[MAX_ITEMS];
	size_t n_errors;
	char *absent[MAX_ITEMS];
	size_t n_absent;
};

/* The environment of the case running now, for the getenv callback. */
static const struct tcase *cur_case;

static const char *table_getenv(const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; cur_case && i < cur_case->n_env; i++) {
		if (!strncmp(cur_case->env[i], name, len) && cur_case->env[i][len] == '=')
			return cur_case->env[i] + len + 1;
	}
	return NULL;
}

/* Growable text buffer for the rendered result. */
struct text {
	char *s;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if (t->len + (size_t)n + 1 > t->cap) {
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		if (!t->s)
			abort();
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static const char *str_or_none(const char *s)
{
	return s ? s : "(none)";
}

static const char *tf(bool b)
{
	return b ? "true" : "false";
}

static void render_config(const struct config *c, struct text *t)
{
	static const char *const exporters[] = {"otlp", "stdout", "console"};
	static const char *const protocols[] = {"http/protobuf", "http/json", "grpc"};
	size_t i;

	text_add(t, "files=");
	for (i = 0; i < c->n_files; i++)
		text_add(t, "%s%s", i ? "|" : "", c->files[i]);
	text_add(t, "\nfollow=%s\nsocket=%s\nlightningd=", tf(c->follow),
		 str_or_none(c->socket_path));
	for (i = 0; i < c->n_lightningd; i++)
		text_add(t, "%s%s", i ? "|" : "", c->lightningd[i]);
	text_add(t, "\nusdt=%s\nno_plugins=%s\nall_probes=%s\npids=", tf(c->usdt),
		 tf(c->no_plugins), tf(c->all_probes));
	for (i = 0; i < c->n_pids; i++)
		text_add(t, "%s%u", i ? "|" : "", c->pids[i]);
	text_add(t, "\nringbuf_size=%llu\n", (unsigned long long)c->ringbuf_size);
	text_add(t, "exporter=%s\nprotocol=%s\nendpoint=%s\nendpoint_append=%s\nheaders=",
		 exporters[c->exporter], protocols[c->protocol], str_or_none(c->endpoint),
		 tf(c->endpoint_append));
	for (i = 0; i < c->n_headers; i++)
		text_add(t, "%s%s=%s", i ? "|" : "", c->headers[i].key, c->headers[i].value);
	text_add(t, "\nn_headers=%zu\ngzip=%s\ntimeout_ms=%llu\n", c->n_headers, tf(c->gzip),
		 (unsigned long long)c->timeout_ms);
	text_add(t, "ca_cert=%s\nclient_cert=%s\nclient_key=%s\ninsecure=%s\n",
		 str_or_none(c->ca_cert), str_or_none(c->client_cert), str_or_none(c->client_key),
		 tf(c->insecure));
	text_add(t, "max_inflight=%u\nretry_max_elapsed_ms=%llu\n", c->max_inflight,
		 (unsigned long long)c->retry_max_elapsed_ms);
	text_add(t, "max_queue_spans=%zu\nmax_queue_bytes=%zu\nbatch_size=%zu\n",
		 c->max_queue_spans, c->max_queue_bytes, c->batch_size);
	text_add(t, "schedule_delay_ms=%llu\nexport_timeout_ms=%llu\nshutdown_timeout_ms=%llu\n",
		 (unsigned long long)c->schedule_delay_ms, (unsigned long long)c->export_timeout_ms,
		 (unsigned long long)c->shutdown_timeout_ms);
	text_add(t, "service_name=%s\nresource=", str_or_none(c->service_name));
	for (i = 0; i < c->n_resource_attrs; i++)
		text_add(t, "%s%s=%s", i ? "|" : "", c->resource_attrs[i].key,
			 c->resource_attrs[i].value);
	text_add(t, "\nn_resource=%zu\nverbosity=%d\nstats_interval_s=%llu\n", c->n_resource_attrs,
		 c->verbosity, (unsigned long long)c->stats_interval_s);
	text_add(t, "metrics_listen=%s\nuser=%s\nrpc_file=%s\nsuspend_ttl_ms=%llu\n",
		 str_or_none(c->metrics_listen), str_or_none(c->user), str_or_none(c->rpc_file),
		 (unsigned long long)c->suspend_ttl_ms);
	text_add(t, "help=%s\nversion=%s\n", tf(c->help), tf(c->version));
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

static int fails;

__attribute__((format(printf, 2, 3))) static void fail(const struct tcase *tc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s (line %d): ", tc->name, tc->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fails++;
}

/* Does @text hold the exact line @line? */
static bool has_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && (p[len] == '\n' || p[len] == '\0'))
			return true;
		p++;
	}
	return false;
}

/* Is FIELD (the part of @expect before '=') a field that @text renders? */
static bool has_field(const char *text, const char *expect)
{
	size_t len = strcspn(expect, "=");
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, expect, len) && p[len] == '=')
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static void run_case(const struct tcase *tc)
{
	struct text out = {0};
	char err[512];
	char *argv[MAX_ITEMS + 2];
	struct config cfg, again;
	int ret = 0, ret2, argc = 0;
	size_t i, n = 0;
	bool loaded = false;

	memset(err, 0, sizeof(err));
	cur_case = tc;
	if (tc->decode) {
		char *d = config_percent_decode(tc->decode, strlen(tc->decode));

		text_add(&out, "decoded=%s\n", d ? d : "(null)");
		free(d);
	} else if (tc->kv) {
		struct config_kv h[4];

		memset(h, 0xa5, sizeof(h)); /* entries past n must not be touched or freed */
		ret = config_parse_kv_list(tc->kv, h, 4, &n);
		text_add(&out, "ret=%s\nn=%zu\nkv=", errno_name(ret), n);
		for (i = 0; i < n; i++) {
			text_add(&out, "%s%s=%s", i ? "|" : "", h[i].key, h[i].value);
			free(h[i].key);
			free(h[i].value);
		}
		text_add(&out, "\n");
	} else if (tc->usage) {
		char *buf = NULL;
		size_t len = 0, col = 0;
		FILE *f = open_memstream(&buf, &len);

		if (!f)
			abort();
		config_usage(f);
		fclose(f);
		text_add(&out, "%s", buf);
		for (i = 0; i < len; i++) {
			col = buf[i] == '\n' ? 0 : col + 1;
			if (col > 80)
				fail(tc, "usage line longer than 80 columns near \"%.20s\"",
				     buf + i - 20);
		}
		free(buf);
	} else {
		argv[argc++] = "cln-otlp";
		for (i = 0; i < tc->n_args; i++)
			argv[argc++] = tc->args[i];
		argv[argc] = NULL;
		ret = config_load(&cfg, argc, argv, table_getenv, err, sizeof(err));
		loaded = true;
		if (!ret) {
			render_config(&cfg, &out);
			if (err[0])
				fail(tc, "success but a message: %s", err);
		} else if (!err[0]) {
			fail(tc, "failed (%d) without a message", ret);
		}
	}

	if (tc->n_errors) {
		if (ret != -EINVAL)
			fail(tc, "expected -EINVAL, got %s%s%s", errno_name(ret),
			     err[0] ? ": " : "", err);
		for (i = 0; i < tc->n_errors; i++) {
			if (!strstr(err, tc->errors[i]))
				fail(tc, "message \"%s\" lacks \"%s\"", err, tc->errors[i]);
		}
	} else if (loaded && ret) {
		fail(tc, "unexpected error %s: %s", errno_name(ret), err);
	}
	if (strstr(err, CANARY))
		fail(tc, "a secret header value leaked into the message: %s", err);
	for (i = 0; i < tc->n_expect; i++) {
		if (!out.s || !has_field(out.s, tc->expect[i]))
			fail(tc, "no field for \"%s\" in the result", tc->expect[i]);
		else if (!has_line(out.s, tc->expect[i]))
			fail(tc, "expected \"%s\", got:\n%s", tc->expect[i], out.s);
	}
	for (i = 0; i < tc->n_contains; i++) {
		if (!out.s || !strstr(out.s, tc->contains[i]))
			fail(tc, "result lacks \"%s\"", tc->contains[i]);
	}
	for (i = 0; i < tc->n_absent; i++) {
		if (strstr(err, tc->absent[i]) || (out.s && strstr(out.s, tc->absent[i])))
			fail(tc, "\"%s\" should not appear (message: %s)", tc->absent[i], err);
	}

	if (loaded) {
		/* Safe after failure, and idempotent; a second load gives the same answer. */
		config_free(&cfg);
		config_free(&cfg);
		ret2 = config_load(&again, argc, argv, table_getenv, err, sizeof(err));
		if (ret2 != ret)
			fail(tc, "second config_load() returned %d, first %d", ret2, ret);
		config_free(&again);
		config_free(NULL);
	}
	free(out.s);
	cur_case = NULL;
}

/* In place: \\ \n \r \t \s \xHH. */
static int unescape(char *s)
{
	char *o = s, hex[3] = {0};

	for (; *s; s++) {
		if (*s != '\\') {
			*o++ = *s;
			continue;
		}
		s++;
		switch (*s) {
		case '\\':
			*o++ = '\\';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 's':
			*o++ = ' ';
			break;
		case 'x':
			if (!s[1] || !s[2])
				return -1;
			hex[0] = s[1];
			hex[1] = s[2];
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
			break;
		default:
			return -1;
		}
	}
	*o = '\0';
	return 0;
}

static void free_case(struct tcase *tc)
{
	size_t i;

	for (i = 0; i < tc->n_env; i++)
		free(tc->env[i]);
	for (i = 0; i < tc->n_args; i++)
		free(tc->args[i]);
	for (i = 0; i < tc->n_expect; i++)
		free(tc->expect[i]);
	for (i = 0; i < tc->n_contains; i++)
		free(tc->contains[i]);
	for (i = 0; i < tc->n_errors; i++)
		free(tc->errors[i]);
	for (i = 0; i < tc->n_absent; i++)
		free(tc->absent[i]);
	free(tc->decode);
	free(tc->kv);
	memset(tc, 0, sizeof(*tc));
}

static int push(char **list, size_t *n, const char *v)
{
	if (*n == MAX_ITEMS)
		return -1;
	list[*n] = strdup(v);
	if (!list[*n])
		abort();
	(*n)++;
	return 0;
}

int main(int argc, char **argv)
{
	const char *path, *only = NULL;
	bool all_fail = false, have = false, found = false;
	struct tcase tc = {0};
	char line[4096], *v;
	int lineno = 0, ran = 0, fails_before, case_fails = 0, ret;
	size_t len;
	FILE *f;

	if (argc > 1 && !strcmp(argv[1], "--all-fail")) {
		all_fail = true;
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s [--all-fail] CASES [NAME]\n", argv[0]);
		return 2;
	}
	path = argv[1];
	if (argc == 3)
		only = argv[2];
	f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 2;
	}
	for (;;) {
		bool eof = !fgets(line, sizeof(line), f);

		if (!eof) {
			lineno++;
			len = strlen(line);
			if (len && line[len - 1] == '\n')
				line[--len] = '\0';
			if (!len || line[0] == '#')
				continue;
		}
		if (eof || !strncmp(line, "case: ", 6)) {
			if (have && (!only || !strcmp(only, tc.name))) {
				fails_before = fails;
				run_case(&tc);
				ran++;
				found = true;
				if (fails != fails_before)
					case_fails++;
				else if (all_fail)
					fprintf(stderr, "case %s passed but should fail\n",
						tc.name);
			}
			free_case(&tc);
			have = false;
			if (eof)
				break;
			snprintf(tc.name, sizeof(tc.name), "%.120s", line + 6);
			tc.line = lineno;
			have = true;
			continue;
		}
		if (!have) {
			fprintf(stderr, "%s:%d: directive outside a case\n", path, lineno);
			return 2;
		}
		v = strchr(line, ':');
		if (!strcmp(line, "usage")) {
			tc.usage = true;
			continue;
		}
		if (!v || (v[1] != ' ' && v[1] != '\0')) {
			fprintf(stderr, "%s:%d: expected 'directive: value'\n", path, lineno);
			return 2;
		}
		*v = '\0';
		v += v[1] ? 2 : 1;
		if (unescape(v)) {
			fprintf(stderr, "%s:%d: bad escape\n", path, lineno);
			return 2;
		}
		if (!strcmp(line, "env"))
			ret = push(tc.env, &tc.n_env, v);
		else if (!strcmp(line, "arg"))
			ret = push(tc.args, &tc.n_args, v);
		else if (!strcmp(line, "expect"))
			ret = push(tc.expect, &tc.n_expect, v);
		else if (!strcmp(line, "contains"))
			ret = push(tc.contains, &tc.n_contains, v);
		else if (!strcmp(line, "error"))
			ret = push(tc.errors, &tc.n_errors, v);
		else if (!strcmp(line, "absent"))
			ret = push(tc.absent, &tc.n_absent, v);
		else if (!strcmp(line, "decode") && !tc.decode)
			ret = (tc.decode = strdup(v)) ? 0 : -1;
		else if (!strcmp(line, "kv") && !tc.kv)
			ret = (tc.kv = strdup(v)) ? 0 : -1;
		else
			ret = -1;
		if (ret) {
			fprintf(stderr, "%s:%d: unknown, repeated or too many '%s'\n", path, lineno,
				line);
			return 2;
		}
	}
	fclose(f);
	if (only && !found) {
		fprintf(stderr, "no case named %s in %s\n", only, path);
		return 2;
	}
	if (all_fail) {
		printf("%d of %d cases failed as they should\n", case_fails, ran);
		return case_fails == ran && ran > 0 ? 0 : 1;
	}
	printf("%d cases, %d failed checks\n", ran, fails);
	return fails ? 1 : 0;
}
