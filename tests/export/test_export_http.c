// SPDX-License-Identifier: MIT
/*
 * The exporter's contract, driven directly through the loop (no collector needed): a
 * "black hole" socket accepts connections and never answers, so requests stay in flight
 * for as long as the test wants.
 *   - busy() at max_inflight, submit() then -EBUSY, pending() counts;
 *   - abort() finishes every batch exactly once with EXPORT_FAIL_SHUTDOWN;
 *   - request timeouts are retried within the budget, then EXPORT_FAIL_EXPIRED, once;
 *   - construction errors say what is wrong (a header line too long among them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check.h"
#include "clock.h"
#include "config.h"
#include "export_http.h"
#include "log.h"
#include "loop.h"
#include "span.h"
#include "stats.h"

#define MAX_BATCHES 8

struct outcome {
	struct queue_batch *batch[MAX_BATCHES];
	enum export_result res[MAX_BATCHES];
	unsigned n;
};

static void on_done(void *ctx, struct queue_batch *batch, enum export_result res)
{
	struct outcome *o = ctx;

	if (o->n < MAX_BATCHES) {
		o->batch[o->n] = batch;
		o->res[o->n] = res;
	}
	o->n++;
}

static unsigned times_done(const struct outcome *o, const struct queue_batch *b)
{
	unsigned k = 0;

	for (unsigned i = 0; i < o->n && i < MAX_BATCHES; i++)
		k += o->batch[i] == b;
	return k;
}

static void stop_loop(struct loop *loop, void *ctx)
{
	loop_stop(loop);
}

static void run_for(struct loop *loop, uint64_t ms)
{
	struct loop_timer *t = loop_timer__new(loop, stop_loop, NULL);

	loop_timer_arm(t, ms);
	loop_run(loop);
	loop_timer__free(t);
}

/* A listening socket that never accepts: connections complete, nothing answers. */
static int black_hole(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		perror("black hole");
		exit(2);
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static struct span *one_span(void)
{
	static const char json[] =
		"[{\"id\":\"0ff6b0fc1df3f024\",\"name\":\"plugins/init\",\"timestamp\":1795660314601294,"
		"\"duration\":24470,\"localEndpoint\":{\"serviceName\":\"lightningd\"},"
		"\"parentId\":\"0f346be4b171a29b\",\"tags\":{},"
		"\"traceId\":\"074c67a29952a72ce3a9ce4137f3d273\"}]";
	enum span_reject why;
	struct span *s = NULL;

	if (span_parse(json, sizeof(json) - 1, &s, &why) < 0) {
		fprintf(stderr, "cannot parse the test span (%d)\n", why);
		exit(2);
	}
	return s;
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? strdup(v) : NULL;
}

/* @n copies of @c, malloc'd. */
static char *filled(char c, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		exit(2);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void base_cfg(struct config *cfg, const char *url, enum config_protocol proto)
{
	config_init(cfg);
	cfg->exporter = CONFIG_EXPORTER_OTLP;
	cfg->protocol = proto;
	set_str(&cfg->endpoint, url);
	cfg->max_inflight = 2;
	cfg->timeout_ms = 10000;
	cfg->retry_max_elapsed_ms = 60000;
}

static struct span *spans[MAX_BATCHES];
static struct queue_batch batches[MAX_BATCHES];

static void init_batches(void)
{
	for (int i = 0; i < MAX_BATCHES; i++) {
		memset(&batches[i], 0, sizeof(batches[i]));
		batches[i].spans = &spans[i];
		batches[i].n = 1;
		batches[i].bytes = 280;
	}
}

static void test_cap_and_abort(struct loop *loop, const char *url, enum config_protocol proto)
{
	struct otlp_resource_cfg res = {0};
	struct outcome o = {0};
	struct exporter *ex;
	struct config cfg;
	char err[512];

	base_cfg(&cfg, url, proto);
	ex = export_http__new(loop, &cfg, &res, err, sizeof(err));
	CHECK(ex != NULL);
	if (!ex) {
		fprintf(stderr, "export_http__new: %s\n", err);
		config_free(&cfg);
		return;
	}
	exporter_set_done(ex, on_done, &o);
	init_batches();

	CHECK(!ex->ops->busy(ex));
	CHECK_EQ(ex->ops->pending(ex), 0);
	CHECK_EQ(ex->ops->submit(ex, &batches[0]), 0);
	CHECK(!ex->ops->busy(ex));
	CHECK_EQ(ex->ops->submit(ex, &batches[1]), 0);
	CHECK(ex->ops->busy(ex));
	CHECK_EQ(ex->ops->pending(ex), 2);
	CHECK_EQ(ex->ops->submit(ex, &batches[2]), -EBUSY);
	CHECK_EQ(ex->ops->pending(ex), 2);

	/* In flight against a server that never answers: nothing finishes. */
	run_for(loop, 300);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(ex->ops->pending(ex), 2);

	ex->ops->abort(ex);
	CHECK_EQ(o.n, 2);
	CHECK_EQ(times_done(&o, &batches[0]), 1);
	CHECK_EQ(times_done(&o, &batches[1]), 1);
	CHECK_EQ(times_done(&o, &batches[2]), 0);
	for (unsigned i = 0; i < o.n && i < MAX_BATCHES; i++)
		CHECK_EQ(o.res[i], EXPORT_FAIL_SHUTDOWN);
	CHECK_EQ(ex->ops->pending(ex), 0);
	CHECK(!ex->ops->busy(ex));

	/* Usable again after an abort, and nothing fires late. */
	CHECK_EQ(ex->ops->submit(ex, &batches[3]), 0);
	run_for(loop, 100);
	CHECK_EQ(o.n, 2);
	ex->ops->abort(ex);
	CHECK_EQ(o.n, 3);
	CHECK_EQ(times_done(&o, &batches[3]), 1);
	exporter__free(ex);
	config_free(&cfg);
}

static void test_timeouts_expire(struct loop *loop, const char *url, enum config_protocol proto,
				 uint64_t budget_ms)
{
	struct otlp_resource_cfg res = {0};
	uint64_t retries0 = stats.retries, failed0 = stats.failed_batches, t0;
	struct outcome o = {0};
	struct exporter *ex;
	struct config cfg;
	char err[512];

	base_cfg(&cfg, url, proto);
	cfg.timeout_ms = 200;
	cfg.retry_max_elapsed_ms = budget_ms;
	ex = export_http__new(loop, &cfg, &res, err, sizeof(err));
	CHECK(ex != NULL);
	if (!ex) {
		config_free(&cfg);
		return;
	}
	exporter_set_done(ex, on_done, &o);
	init_batches();
	CHECK_EQ(ex->ops->submit(ex, &batches[0]), 0);
	CHECK_EQ(ex->ops->submit(ex, &batches[1]), 0);
	t0 = clock_mono_ms();
	while (o.n < 2 && clock_mono_ms() - t0 < budget_ms + 5000)
		run_for(loop, 50);
	CHECK_EQ(o.n, 2);
	CHECK_EQ(times_done(&o, &batches[0]), 1);
	CHECK_EQ(times_done(&o, &batches[1]), 1);
	for (unsigned i = 0; i < o.n && i < MAX_BATCHES; i++)
		CHECK_EQ(o.res[i], EXPORT_FAIL_EXPIRED);
	CHECK_EQ(stats.failed_batches - failed0, 2);
	if (budget_ms == 0) {
		CHECK_EQ(stats.retries, retries0); /* no budget: never retried */
	} else {
		/* 200 ms timeouts and >= 1 s waits within the budget: one or two retries each */
		CHECK(stats.retries - retries0 >= 2);
		CHECK(stats.retries - retries0 <= 2 * (budget_ms / 1000 + 1));
		CHECK(clock_mono_ms() - t0 >= budget_ms);
	}
	CHECK_EQ(ex->ops->pending(ex), 0);
	run_for(loop, 100);
	CHECK_EQ(o.n, 2); /* exactly once */
	exporter__free(ex);
	config_free(&cfg);
}

static void expect_error(struct loop *loop, struct config *cfg, const char *needle)
{
	struct otlp_resource_cfg res = {0};
	char err[512] = "";
	struct exporter *ex = export_http__new(loop, cfg, &res, err, sizeof(err));

	CHECK(ex == NULL);
	exporter__free(ex);
	CHECK_MSG(strstr(err, needle), "error \"%s\" does not mention \"%s\"", err, needle);
	config_free(cfg);
}

static void test_construction_errors(struct loop *loop)
{
	struct config cfg;

	base_cfg(&cfg, "ftp://127.0.0.1:21/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	expect_error(loop, &cfg, "http://");
	base_cfg(&cfg, "not a url", CONFIG_PROTO_HTTP_PROTOBUF);
	expect_error(loop, &cfg, "not a URL");
	base_cfg(&cfg, "https://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	set_str(&cfg.ca_cert, "/nonexistent/ca.crt");
	expect_error(loop, &cfg, "--ca-cert");
	base_cfg(&cfg, "https://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	set_str(&cfg.client_cert, "/nonexistent/client.crt");
	expect_error(loop, &cfg, "/nonexistent/client.crt");
	base_cfg(&cfg, "https://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	set_str(&cfg.client_key, "/dev/null");
	expect_error(loop, &cfg, "--client-cert");
	base_cfg(&cfg, "http://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	cfg.headers[0].key = strdup("x-bad");
	cfg.headers[0].value = strdup("a\r\nInjected: yes");
	cfg.n_headers = 1;
	expect_error(loop, &cfg, "line break");
	base_cfg(&cfg, "http://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	cfg.headers[0].key = strdup("bad name");
	cfg.headers[0].value = strdup("v");
	cfg.n_headers = 1;
	expect_error(loop, &cfg, "header name");
	/* A header line holds 1024 bytes: ": " and the NUL leave 1021 for name and value. */
	base_cfg(&cfg, "http://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	cfg.headers[0].key = strdup("x-key");
	cfg.headers[0].value = filled('v', 1021 - 5 + 1);
	cfg.n_headers = 1;
	expect_error(loop, &cfg, "x-key: its name and value are too long (at most 1021 bytes");
	base_cfg(&cfg, "http://127.0.0.1:4318/v1/traces", CONFIG_PROTO_HTTP_PROTOBUF);
	cfg.headers[0].key = filled('x', 1100);
	cfg.headers[0].value = strdup("v");
	cfg.n_headers = 1;
	expect_error(loop, &cfg, "too long (at most 1021 bytes together)");
}

int main(void)
{
	struct loop *loop = loop__new();
	char http_url[64], grpc_url[64];
	int port, fd;

	log_set_level(LOG_LVL_ERROR);
	if (!loop)
		return 2;
	for (int i = 0; i < MAX_BATCHES; i++)
		spans[i] = one_span();
	fd = black_hole(&port);
	snprintf(http_url, sizeof(http_url), "http://127.0.0.1:%d/v1/traces", port);
	snprintf(grpc_url, sizeof(grpc_url), "http://127.0.0.1:%d", port);

	test_cap_and_abort(loop, http_url, CONFIG_PROTO_HTTP_PROTOBUF);
	test_cap_and_abort(loop, grpc_url, CONFIG_PROTO_GRPC);
	test_timeouts_expire(loop, http_url, CONFIG_PROTO_HTTP_JSON, 0);
	test_timeouts_expire(loop, grpc_url, CONFIG_PROTO_GRPC, 1500);
	test_construction_errors(loop);

	close(fd);
	for (int i = 0; i < MAX_BATCHES; i++)
		span__free(spans[i]);
	loop__free(loop);
	return check_summary();
}
