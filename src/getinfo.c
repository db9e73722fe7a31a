// SPDX-License-Identifier: MIT
#include "getinfo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "text.h"

#define GI_REQUEST_ID_FMT "cln-otlp:getinfo#%u"

enum gi_state {
	GI_CONNECTING, /* connect() in progress */
	GI_SENDING,    /* writing the request */
	GI_READING,    /* waiting for the answer */
	GI_ANSWERED,   /* answered; the connection stays open to hear lightningd go away */
};

struct getinfo {
	struct loop *loop;
	const struct getinfo_ops *ops;
	void *ctx;
	enum gi_state state;
	int fd;
	char req[96];
	size_t req_len, req_off;
	char want_id[32];
	char *buf;
	size_t len, cap;
	struct getinfo_scan scan;
	uint64_t deadline_ms;
	bool *gone; /* getinfo_wait's: set when the owner frees us from a callback */
};

/* ---- pure parts: where a JSON object ends, what a getinfo answer says --------------- */

int getinfo_scan(struct getinfo_scan *s, const char *buf, size_t len)
{
	for (; s->pos < len; s->pos++) {
		char c = buf[s->pos];

		if (!s->started) {
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
				continue;
			if (c != '{')
				return -EBADMSG;
			s->started = true;
			s->depth = 1;
			continue;
		}
		if (s->in_string) {
			if (s->escaped)
				s->escaped = false;
			else if (c == '\\')
				s->escaped = true;
			else if (c == '"')
				s->in_string = false;
			continue;
		}
		if (c == '"') {
			s->in_string = true;
		} else if (c == '{' || c == '[') {
			s->depth++;
		} else if (c == '}' || c == ']') {
			if (--s->depth == 0) {
				s->pos++;
				return 1;
			}
		}
	}
	return 0;
}

/* Copy @src into @dst, cut at a character boundary; bad bytes and controls become '?'. */
static void gi_copy_clean(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t avail = strlen(src), o = 0;

	while (avail) {
		size_t n = text_utf8_len(s, avail);
		bool bad = !n || s[0] < 0x20 || s[0] == 0x7f;

		if (bad)
			n = 1;
		if (o + (bad ? 1 : n) >= size)
			break;
		if (bad) {
			dst[o++] = '?';
		} else {
			memcpy(dst + o, s, n);
			o += n;
		}
		s += n;
		avail -= n;
	}
	dst[o] = '\0';
}

static void gi_copy_field(char *dst, size_t size, const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	dst[0] = '\0';
	if (cJSON_IsString(v) && v->valuestring)
		gi_copy_clean(dst, size, v->valuestring);
}

int getinfo_parse(const char *json, size_t len, const char *want_id, struct getinfo_ident *out,
		  char *err, size_t err_size)
{
	const cJSON *id, *error, *result;
	cJSON *root;
	int ret = -EBADMSG;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	root = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(root)) {
		snprintf(err, err_size, "not a JSON object");
		goto cleanup;
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (want_id && (!cJSON_IsString(id) || strcmp(id->valuestring, want_id))) {
		snprintf(err, err_size, "not the answer to our request (id is not \"%s\")",
			 want_id);
		goto cleanup;
	}
	error = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (error && !cJSON_IsNull(error)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
		char msg[256] = "";

		gi_copy_field(msg, sizeof(msg), error, "message");
		if (cJSON_IsNumber(code))
			snprintf(err, err_size, "error %d: %s", (int)code->valuedouble,
				 msg[0] ? msg : "(no message)");
		else
			snprintf(err, err_size, "error: %s", msg[0] ? msg : "(no message)");
		ret = -EPROTO;
		goto cleanup;
	}
	result = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!cJSON_IsObject(result)) {
		snprintf(err, err_size, "no \"result\" object");
		goto cleanup;
	}
	gi_copy_field(out->id, sizeof(out->id), result, "id");
	if (!out->id[0]) {
		snprintf(err, err_size, "the result has no node \"id\"");
		goto cleanup;
	}
	gi_copy_field(out->alias, sizeof(out->alias), result, "alias");
	gi_copy_field(out->network, sizeof(out->network), result, "network");
	gi_copy_field(out->version, sizeof(out->version), result, "version");
	ret = 0;
cleanup:
	cJSON_Delete(root);
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---- the conversation ------------------------------------------------------------- */

static void gi_fail(struct getinfo *g, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Stop watching and tell the owner (the last thing done: it may free @g). */
static void gi_fail(struct getinfo *g, int err, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	loop_del(g->loop, g->fd);
	g->ops->failed(g->ctx, err, why);
}

/* The answer is complete in buf[0, scan.pos). */
static void gi_answer(struct getinfo *g)
{
	struct getinfo_ident ident;
	char err[320];
	int ret;

	ret = getinfo_parse(g->buf, g->scan.pos, g->want_id, &ident, err, sizeof(err));
	if (ret == -EPROTO) {
		gi_fail(g, 0, "getinfo failed (%s)", err);
		return;
	}
	if (ret < 0) {
		gi_fail(g, 0, "unexpected answer to getinfo (%s)", err);
		return;
	}
	g->state = GI_ANSWERED;
	free(g->buf); /* the answer is all we wanted: keep nothing for an idle connection */
	g->buf = NULL;
	g->len = g->cap = 0;
	g->ops->answered(g->ctx, &ident);
}

/* Room for more of the answer; false (failed) when it is too big or memory is short. */
static bool gi_grow(struct getinfo *g)
{
	size_t cap = g->cap ? g->cap * 2 : 4096;
	char *buf;

	if (g->cap >= GETINFO_MAX_ANSWER) {
		gi_fail(g, 0, "answer larger than %u bytes", GETINFO_MAX_ANSWER);
		return false;
	}
	if (cap > GETINFO_MAX_ANSWER)
		cap = GETINFO_MAX_ANSWER;
	buf = realloc(g->buf, cap);
	if (!buf) {
		gi_fail(g, ENOMEM, "out of memory");
		return false;
	}
	g->buf = buf;
	g->cap = cap;
	return true;
}

/* Read what is there: the answer while READING, anything later is drained and ignored. */
static void gi_read(struct getinfo *g)
{
	char sink[4096];

	for (;;) {
		bool answered = g->state == GI_ANSWERED;
		ssize_t n;
		int ret;

		if (!answered && g->len == g->cap && !gi_grow(g))
			return;
		if (answered)
			n = read(g->fd, sink, sizeof(sink));
		else
			n = read(g->fd, g->buf + g->len, g->cap - g->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 && answered) {
			loop_del(g->loop, g->fd);
			g->ops->closed(g->ctx, n ? errno : 0);
			return;
		}
		if (n < 0 && errno != ECONNRESET) {
			gi_fail(g, errno, "reading the answer: %s", strerror(errno));
			return;
		}
		if (n <= 0) {
			gi_fail(g, 0, "closed the connection before answering getinfo");
			return;
		}
		if (answered)
			continue;
		g->len += (size_t)n;
		ret = getinfo_scan(&g->scan, g->buf, g->len);
		if (ret < 0) {
			gi_fail(g, 0, "unexpected answer to getinfo (not a JSON object)");
			return;
		}
		if (ret > 0) {
			gi_answer(g);
			return;
		}
	}
}

/* Write the request; false when the turn ended (would block, or failed). */
static bool gi_send(struct getinfo *g)
{
	while (g->req_off < g->req_len) {
		ssize_t n = send(g->fd, g->req + g->req_off, g->req_len - g->req_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			gi_fail(g, 0, "closed the connection before answering getinfo");
			return false;
		}
		if (n < 0) {
			gi_fail(g, errno, "sending getinfo: %s", strerror(errno));
			return false;
		}
		g->req_off += (size_t)n;
	}
	g->state = GI_READING;
	if (loop_mod(g->loop, g->fd, EPOLLIN) < 0) {
		gi_fail(g, errno, "cannot watch the connection");
		return false;
	}
	return true;
}

static void gi_on_fd(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct getinfo *g = ctx;

	(void)loop;
	(void)events;
	if (g->state == GI_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			gi_fail(g, err, "connect: %s", strerror(err));
			return;
		}
		g->state = GI_SENDING;
	}
	if (g->state == GI_SENDING && !gi_send(g))
		return;
	gi_read(g);
}

struct getinfo *getinfo__new(struct loop *loop, int fd, bool connecting, unsigned seq,
			     const struct getinfo_ops *ops, void *ctx)
{
	struct getinfo *g = calloc(1, sizeof(*g));

	if (!g) {
		close(fd);
		return NULL;
	}
	g->loop = loop;
	g->ops = ops;
	g->ctx = ctx;
	g->fd = fd;
	g->state = connecting ? GI_CONNECTING : GI_SENDING;
	snprintf(g->want_id, sizeof(g->want_id), GI_REQUEST_ID_FMT, seq);
	g->req_len = (size_t)snprintf(g->req, sizeof(g->req),
				      "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"getinfo\","
				      "\"params\":{}}",
				      g->want_id);
	g->deadline_ms = clock_mono_ms() + GETINFO_TIMEOUT_MS;
	if (loop_add(loop, fd, EPOLLOUT, gi_on_fd, g) < 0) {
		close(fd);
		free(g);
		return NULL;
	}
	return g;
}

void getinfo__free(struct getinfo *g)
{
	if (!g)
		return;
	if (g->gone)
		*g->gone = true;
	loop_del(g->loop, g->fd); /* fine when already removed */
	close(g->fd);
	free(g->buf);
	free(g);
}

bool getinfo_waiting(const struct getinfo *g, uint64_t *deadline_ms)
{
	if (deadline_ms)
		*deadline_ms = g->deadline_ms;
	return g->state != GI_ANSWERED;
}

bool getinfo_wait(struct getinfo *g, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;
	bool gone = false;

	g->gone = &gone;
	while (g->state != GI_ANSWERED) {
		uint64_t now = clock_mono_ms();
		struct pollfd pfd = {.fd = g->fd,
				     .events = g->state == GI_READING ? POLLIN : POLLOUT};
		int n;

		if (now >= end)
			break;
		n = poll(&pfd, 1, (int)(end - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		gi_on_fd(g->loop, g->fd, (uint32_t)pfd.revents, g);
		if (gone)
			return false; /* failed: the owner freed it */
	}
	g->gone = NULL;
	return g->state == GI_ANSWERED;
}
