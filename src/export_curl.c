// SPDX-License-Identifier: MIT
/*
 * The glue between curl's multi socket API and the loop (see export_curl.h): a watch per
 * socket curl names, one timer for curl's timeouts (armed at 0 it fires at the loop's next
 * turn, never from inside curl), and after every action the finished transfers.
 */
#include "export_curl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A socket curl asked us to watch. */
struct export_curl_sock {
	struct export_curl_sock *next;
	int fd;
	uint32_t events;
};

struct export_curl {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer *timer;
	struct export_curl_sock *socks;
	void (*done)(void *ctx, CURL *easy, CURLcode result);
	void *ctx;
	bool closing;
	struct log_ratelimit rl;
};

/* Hand every finished transfer to the owner. */
static void check_done(struct export_curl *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left))) {
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_multi_remove_handle(c->multi, easy);
		c->done(c->ctx, easy, result);
	}
}

static void on_sock_event(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct export_curl *c = ctx;
	int mask = 0, running;

	if (events & EPOLLIN)
		mask |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, mask, &running);
	check_done(c);
}

static void on_timer(struct loop *loop, void *ctx)
{
	struct export_curl *c = ctx;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static void sock_forget(struct export_curl *c, struct export_curl_sock *s)
{
	for (struct export_curl_sock **pp = &c->socks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	loop_del(c->loop, s->fd);
	free(s);
}

static int sock_watch(struct export_curl *c, curl_socket_t fd, uint32_t events)
{
	struct export_curl_sock *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -1;
	s->fd = fd;
	s->events = events;
	rc = loop_add(c->loop, fd, events, on_sock_event, c);
	if (rc == -EEXIST) {
		/* a stale watch for a number curl closed and reused: replace it */
		loop_del(c->loop, fd);
		rc = loop_add(c->loop, fd, events, on_sock_event, c);
	}
	if (rc < 0) {
		log_limited(&c->rl, LOG_LVL_ERROR, "export: cannot watch a connection socket: %s",
			    strerror(-rc));
		free(s);
		return -1;
	}
	s->next = c->socks;
	c->socks = s;
	curl_multi_assign(c->multi, fd, s);
	return 0;
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct export_curl *c = userp;
	struct export_curl_sock *s = socketp;
	uint32_t events = 0;
	int rc;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_forget(c, s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (!s)
		return sock_watch(c, fd, events);
	if (events != s->events) {
		rc = loop_mod(c->loop, fd, events);
		if (rc < 0) {
			log_limited(&c->rl, LOG_LVL_ERROR,
				    "export: cannot watch a connection socket: %s", strerror(-rc));
			return -1;
		}
		s->events = events;
	}
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct export_curl *c = userp;

	if (c->closing)
		return 0;
	if (timeout_ms < 0)
		return loop_timer_disarm(c->timer) < 0 ? -1 : 0;
	return loop_timer_arm(c->timer, (uint64_t)timeout_ms) < 0 ? -1 : 0;
}

struct export_curl *export_curl__new(struct loop *loop, unsigned max_connections, bool multiplex,
				     void (*done)(void *ctx, CURL *easy, CURLcode result),
				     void *ctx)
{
	struct export_curl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->loop = loop;
	c->done = done;
	c->ctx = ctx;
	c->multi = curl_multi_init();
	c->timer = loop_timer__new(loop, on_timer, c);
	if (!c->multi || !c->timer) {
		export_curl__free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING,
			  multiplex ? (long)CURLPIPE_MULTIPLEX : (long)CURLPIPE_NOTHING);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_connections);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
	return c;
}

void export_curl__free(struct export_curl *c)
{
	if (!c)
		return;
	c->closing = true;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	while (c->socks)
		sock_forget(c, c->socks);
	loop_timer__free(c->timer);
	free(c);
}

int export_curl_add(struct export_curl *c, CURL *easy, const char **why)
{
	CURLMcode mc = curl_multi_add_handle(c->multi, easy);

	if (mc != CURLM_OK) {
		*why = curl_multi_strerror(mc);
		return -EIO;
	}
	return 0;
}

void export_curl_remove(struct export_curl *c, CURL *easy)
{
	curl_multi_remove_handle(c->multi, easy);
}
