// SPDX-License-Identifier: MIT
/*
 * node_info without lightningd: the stream scanner at every split point, getinfo answers
 * good and bad, and the resource attributes merged (configured ones win) and given back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../check.h"

#include "clock.h"
#include "log.h"
#include "loop.h"
#include "node_info.h"

static const char answer[] =
	"{\"jsonrpc\":\"2.0\",\"id\":\"cln-otlp:getinfo#1\",\"result\":{\"id\":"
	"\"02a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\","
	"\"alias\":\"br{ace\\\"s}\",\"color\":\"02a1a1\",\"address\":[{\"type\":\"ipv4\"}],"
	"\"version\":\"v24.11\",\"network\":\"regtest\",\"our_features\":{\"init\":\"08\"}}}";

static void test_scan(void)
{
	size_t full = strlen(answer);
	struct getinfo_scan s = {0};
	char buf[1024];
	int r;

	r = getinfo_scan(&s, answer, full);
	CHECK_MSG(r == 1 && s.pos == full, "whole answer: r=%d pos=%zu of %zu", r, s.pos, full);

	/* Arriving in two pieces, split anywhere: the same end, and never early. */
	for (size_t cut = 0; cut < full; cut++) {
		struct getinfo_scan p = {0};
		int r1 = getinfo_scan(&p, answer, cut);
		int r2 = getinfo_scan(&p, answer, full);

		CHECK_MSG(r1 == 0 && r2 == 1 && p.pos == full, "cut at %zu: %d %d pos %zu", cut, r1,
			  r2, p.pos);
	}
	/* One byte at a time. */
	memset(&s, 0, sizeof(s));
	r = 0;
	for (size_t n = 1; n <= full && r == 0; n++)
		r = getinfo_scan(&s, answer, n);
	CHECK_MSG(r == 1 && s.pos == full, "byte by byte: r=%d pos=%zu", r, s.pos);

	/* Leading whitespace is fine; what follows the object is left alone. */
	snprintf(buf, sizeof(buf), " \n\t%s\n\n{\"next\":1}", answer);
	memset(&s, 0, sizeof(s));
	r = getinfo_scan(&s, buf, strlen(buf));
	CHECK_MSG(r == 1 && s.pos == full + 3, "whitespace around: r=%d pos=%zu", r, s.pos);

	memset(&s, 0, sizeof(s));
	CHECK_MSG(getinfo_scan(&s, "<html>", 6) == -EBADMSG, "not an object");
	memset(&s, 0, sizeof(s));
	CHECK_MSG(getinfo_scan(&s, "[1,2]", 5) == -EBADMSG, "an array is not an answer");
	memset(&s, 0, sizeof(s));
	CHECK_MSG(getinfo_scan(&s, "{\"a\":\"}\\\\\"", 10) == 0,
		  "a brace in a string is not the end");
	memset(&s, 0, sizeof(s));
	CHECK_MSG(getinfo_scan(&s, "", 0) == 0, "nothing yet");
}

static void test_parse(void)
{
	struct getinfo_ident id;
	char err[256], buf[4096];
	int r;

	r = getinfo_parse(answer, strlen(answer), "cln-otlp:getinfo#1", &id, err, sizeof(err));
	CHECK_MSG(r == 0, "good answer: %d %s", r, err);
	CHECK_MSG(!strcmp(id.id,
			  "02a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"),
		  "id %s", id.id);
	CHECK_MSG(!strcmp(id.alias, "br{ace\"s}"), "alias %s", id.alias);
	CHECK_MSG(!strcmp(id.network, "regtest"), "network %s", id.network);
	CHECK_MSG(!strcmp(id.version, "v24.11"), "version %s", id.version);

	r = getinfo_parse(answer, strlen(answer), "cln-otlp:getinfo#2", &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG && strstr(err, "not the answer"), "other id: %d %s", r, err);
	CHECK_MSG(!id.id[0], "nothing filled on error");

	r = getinfo_parse(answer, strlen(answer) - 1, NULL, &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG, "cut answer: %d", r);

	snprintf(buf, sizeof(buf), "%s",
		 "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-32601,"
		 "\"message\":\"Unknown command\\n'getinfo'\"}}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == -EPROTO && strstr(err, "-32601") && strstr(err, "Unknown command?'getinfo'"),
		  "error object: %d %s", r, err);

	snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":\"x\"}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG && strstr(err, "result"), "no result: %d %s", r, err);

	snprintf(buf, sizeof(buf), "{\"id\":\"x\",\"result\":{\"alias\":\"a\"}}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG && strstr(err, "node"), "no node id: %d %s", r, err);

	snprintf(buf, sizeof(buf), "{\"id\":\"x\",\"result\":{\"id\":7}}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG, "node id not a string: %d", r);

	/* Only the id is needed; the rest may be missing or of another type. */
	snprintf(buf, sizeof(buf), "{\"id\":\"x\",\"result\":{\"id\":\"02ab\",\"alias\":5}}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == 0 && !strcmp(id.id, "02ab") && !id.alias[0] && !id.network[0] &&
			  !id.version[0],
		  "minimal: %d %s", r, err);

	/* Invalid UTF-8 and control characters become '?'. */
	snprintf(buf, sizeof(buf),
		 "{\"id\":\"x\",\"result\":{\"id\":\"02ab\",\"alias\":\"ok\xff\xc3\x28\\u0007"
		 "\xe2\x82\xac\xed\xa0\x80"
		 "end\"}}");
	r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
	CHECK_MSG(r == 0 && !strcmp(id.alias, "ok?"
					      "?(?\xe2\x82\xac?"
					      "?"
					      "?end"),
		  "cleaned alias: %d [%s]", r, id.alias);

	/* A long alias is cut at a character boundary, never inside a character. */
	{
		char alias[600] = "";

		for (int i = 0; i < 100; i++)
			strcat(alias, "\xe2\x82\xac"); /* 3 bytes each */
		snprintf(buf, sizeof(buf),
			 "{\"id\":\"x\",\"result\":{\"id\":\"02ab\",\"alias\":\"%s\"}}", alias);
		r = getinfo_parse(buf, strlen(buf), "x", &id, err, sizeof(err));
		CHECK_MSG(r == 0 && strlen(id.alias) == 126 && strlen(id.alias) % 3 == 0,
			  "cut alias: %d len %zu", r, strlen(id.alias));
	}
	r = getinfo_parse("[]", 2, NULL, &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG, "array: %d", r);
	r = getinfo_parse("", 0, NULL, &id, err, sizeof(err));
	CHECK_MSG(r == -EBADMSG, "empty: %d", r);
}

/* ---- the resource, through a real socket this test answers itself ----------------- */

struct wait_ctx {
	struct otlp_resource_cfg *res;
	size_t want;
	uint64_t deadline;
	struct loop_timer *t;
};

static void wait_tick(struct loop *loop, void *ctx)
{
	struct wait_ctx *w = ctx;

	if (w->res->n_attrs == w->want || clock_mono_ms() > w->deadline) {
		loop_stop(loop);
		return;
	}
	loop_timer_arm(w->t, 10);
}

static const char *attr(const struct otlp_resource_cfg *res, const char *key)
{
	for (size_t i = 0; i < res->n_attrs; i++)
		if (!strcmp(res->attrs[i].key, key))
			return res->attrs[i].value;
	return NULL;
}

static void test_resource(void)
{
	const struct otlp_kv base[] = {{"deployment.environment", "test"},
				       {"service.version", "mine"}};
	struct otlp_resource_cfg res = {.attrs = base, .n_attrs = 2};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/nodeinfo-XXXXXX", req[512];
	struct node_info_cfg cfg = {0};
	struct wait_ctx w = {.res = &res};
	struct loop *loop = loop__new();
	struct node_info *ni;
	int lfd, cfd;
	ssize_t n;

	if (!loop || !mkdtemp(dir)) {
		CHECK_FAIL("setup");
		return;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lightning-rpc", dir);
	/* No socket yet: the resource keeps what it had. */
	cfg.rpc_file = sa.sun_path;
	ni = node_info__new(loop, &cfg, &res);
	CHECK_MSG(ni && res.n_attrs == 2 && !strcmp(attr(&res, "service.version"), "mine"),
		  "without a socket: %zu attrs", res.n_attrs);
	node_info__free(ni);
	CHECK_MSG(res.attrs == base && res.n_attrs == 2, "given back");

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_MSG(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
			  listen(lfd, 4) == 0,
		  "listen: %s", strerror(errno));
	/* Connects (queued in the backlog), asks, and waits in vain: we answer only later. */
	cfg.startup_wait_ms = 100;
	ni = node_info__new(loop, &cfg, &res);
	CHECK_MSG(ni != NULL, "new");
	cfd = accept(lfd, NULL, NULL);
	n = read(cfd, req, sizeof(req) - 1);
	req[n > 0 ? n : 0] = '\0';
	CHECK_MSG(!strcmp(req, "{\"jsonrpc\":\"2.0\",\"id\":\"cln-otlp:getinfo#1\",\"method\":"
			       "\"getinfo\",\"params\":{}}"),
		  "request: %s", req);
	CHECK_MSG(write(cfd, answer, strlen(answer)) == (ssize_t)strlen(answer), "write");

	w.want = 5;
	w.deadline = clock_mono_ms() + 5000;
	w.t = loop_timer__new(loop, wait_tick, &w);
	loop_timer_arm(w.t, 0);
	loop_run(loop);
	CHECK_MSG(res.n_attrs == 5, "base + 3 node attributes: %zu", res.n_attrs);
	CHECK_MSG(res.attrs != base, "attributes are node_info's");
	CHECK_MSG(!strcmp(res.attrs[0].key, "deployment.environment"), "configured ones first");
	CHECK_MSG(attr(&res, "service.version") && !strcmp(attr(&res, "service.version"), "mine"),
		  "a configured attribute wins");
	CHECK_MSG(attr(&res, "cln.node.id") && !strncmp(attr(&res, "cln.node.id"), "02a1a1", 6),
		  "node id");
	CHECK_MSG(attr(&res, "cln.alias") && !strcmp(attr(&res, "cln.alias"), "br{ace\"s}"),
		  "alias");
	CHECK_MSG(attr(&res, "cln.network") && !strcmp(attr(&res, "cln.network"), "regtest"),
		  "network");
	node_info__free(ni);
	CHECK_MSG(res.attrs == base && res.n_attrs == 2, "given back after an answer");
	loop_timer__free(w.t);
	close(cfd);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	loop__free(loop);
}

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	alarm(60); /* a hang is a failure */
	test_scan();
	test_parse();
	test_resource();
	return check_summary();
}
