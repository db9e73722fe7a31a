// SPDX-License-Identifier: MIT
/*
 * metrics: /metrics for Prometheus, served by a small HTTP/1.1 server inside the loop: the
 * listening socket and every connection are non-blocking fds of the loop, each connection
 * a state (reading its request head, writing its answer), so a slow or silent client
 * holds nothing but its own slot. Bounds: METRICS_CONN_MAX connections (one more arriving
 * closes the one idle longest: counted "evicted"), a request head of METRICS_HEAD_MAX
 * bytes, and a deadline per connection (METRICS_IO_MS to send a whole request head or to
 * take its answer, and for a kept-alive connection to ask again: counted "timeout").
 * Answers keep the connection open for HTTP/1.1 clients that do not ask to close it.
 * Everything happens in the loop's thread: the answer reads the global counters directly.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "span.h"
#include "spanmetrics.h"
#include "stats.h"
#include "text.h"

/*
 * The text: ~7 KB of counters, plus ~2.3 KB per span metrics series (a node has tens to a
 * few hundred; at their bounds, with the longest label values, ~14 MB): rendered into each
 * answer at its size, refused (500) past this cap.
 */
#define METRICS_BODY_MAX     (32u << 20)
#define METRICS_CONN_MAX     16
#define METRICS_HEAD_MAX     4096
#define METRICS_IO_MS	     10000
#define METRICS_BACKLOG	     64
#define METRICS_ACCEPT_PAUSE 100 /* ms without accepting after running out of fds */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_conn {
	struct metrics *m;
	int fd; /* -1: free slot */
	bool writing;
	bool keep; /* keep the connection after this answer */
	uint64_t deadline_ms;
	uint64_t seq; /* order of acceptance or last answer: the idlest goes first */
	size_t in_len;
	char in[METRICS_HEAD_MAX];
	char *out;
	size_t out_len, out_off;
};

struct metrics {
	struct loop *loop;
	uint64_t seq;
	int fd; /* listening */
	bool accept_paused;
	uint64_t accept_resume_ms;
	struct loop_timer *timer;
	uint64_t start_time_ns;
	struct log_ratelimit rl;
	struct metrics_conn conns[METRICS_CONN_MAX];
};

/* ---- the exposition text ---- */

static void metrics_head(struct text_out *o, const char *name, const char *type, const char *help)
{
	text_out_printf(o, "# HELP cln_otlp_%s %s\n# TYPE cln_otlp_%s %s\n", name, help, name,
			type);
}

static void metrics_u64(struct text_out *o, const char *name, const char *type, const char *help,
			uint64_t v)
{
	metrics_head(o, name, type, help);
	text_out_printf(o, "cln_otlp_%s %llu\n", name, (unsigned long long)v);
}

static void metrics_labelled(struct text_out *o, const char *name, const char *label,
			     const char *value, uint64_t v)
{
	text_out_printf(o, "cln_otlp_%s{%s=\"%s\"} %llu\n", name, label, value,
			(unsigned long long)v);
}

/* Microseconds as seconds, exactly (no floating point rounding). */
static void metrics_seconds(struct text_out *o, const char *name, uint64_t us)
{
	text_out_printf(o, "cln_otlp_%s %llu.%06llu\n", name, (unsigned long long)(us / 1000000),
			(unsigned long long)(us % 1000000));
}

static void metrics_version(struct text_out *o)
{
	text_out_printf(o, "cln_otlp_build_info{version=\"");
	text_out_label(o, CLN_OTLP_VERSION, strlen(CLN_OTLP_VERSION));
	text_out_printf(o, "\"} 1\n");
}

static void metrics_volume(struct text_out *o)
{
	metrics_head(o, "traces_kept_total", "counter",
		     "Traces kept by the volume rules, by reason: sampled (the ratio sampler), "
		     "error (--keep-errors), slow (--keep-slower-than); the first that applies.");
	for (int i = 0; i < STATS_KEEP__MAX; i++)
		metrics_labelled(o, "traces_kept_total", "reason",
				 stats_keep_str((enum stats_keep)i), stats.traces_kept[i]);
	metrics_head(o, "spans_dropped_by_rule_total", "counter",
		     "Spans of kept traces dropped by a --drop-span rule, by rule as given.");
	for (size_t i = 0; i < stats.n_rules && i < STATS_MAX_RULES; i++) {
		text_out_printf(o, "cln_otlp_spans_dropped_by_rule_total{rule=\"");
		text_out_label(o, stats.rule_names[i], strlen(stats.rule_names[i]));
		text_out_printf(o, "\"} %llu\n", (unsigned long long)stats.rule_dropped[i]);
	}
}

/* The plain counters of @part (stats_counters). */
static void metrics_part(struct text_out *o, enum stats_part part)
{
	for (size_t i = 0; i < stats_n_counters; i++) {
		const struct stats_counter *c = &stats_counters[i];

		if (c->part == part)
			metrics_u64(o, c->metric, "counter", c->help, stats_counter_value(c));
	}
}

/* The span metrics (spanmetrics.h): histograms and errors by span name and RPC method. */
static void metrics_span_metrics(struct text_out *o)
{
	size_t room = o->len < o->size ? o->size - o->len : 0;

	o->len += spanmetrics_render(&span_metrics, room ? o->buf + o->len : NULL, room);
}

size_t metrics_render(char *buf, size_t size, uint64_t start_time_ns)
{
	struct text_out o = {.buf = buf, .size = size};

	if (size)
		buf[0] = '\0';
	metrics_head(&o, "build_info", "gauge", "Version of cln-otlp; the value is always 1.");
	metrics_version(&o);
	metrics_head(&o, "start_time_seconds", "gauge",
		     "Start time of the process since the Unix epoch, in seconds.");
	metrics_seconds(&o, "start_time_seconds", start_time_ns / 1000);

	metrics_head(&o, "spans_received_total", "counter",
		     "Span payloads read, accepted or not, by source.");
	for (int i = 0; i < STATS_SRC__MAX; i++)
		metrics_labelled(&o, "spans_received_total", "source",
				 stats_source_str((enum stats_source)i), stats.received[i]);
	metrics_head(&o, "spans_rejected_total", "counter",
		     "Span payloads that could not be parsed, by reason.");
	for (int i = 1; i < SPAN_REJECT__MAX; i++)
		metrics_labelled(&o, "spans_rejected_total", "reason",
				 span_reject_str((enum span_reject)i), stats.rejected[i]);
	metrics_part(&o, STATS_PART_INTAKE);
	metrics_head(&o, "spans_dropped_total", "counter",
		     "Spans accepted but never delivered, by reason.");
	for (int i = 0; i < STATS_DROP__MAX; i++)
		metrics_labelled(&o, "spans_dropped_total", "reason",
				 stats_drop_str((enum stats_drop)i), stats.dropped[i]);
	metrics_volume(&o);
	metrics_part(&o, STATS_PART_EXPORT);

	metrics_head(&o, "export_latency_seconds", "summary",
		     "Time from sending an export request to its answer.");
	metrics_seconds(&o, "export_latency_seconds_sum", stats.export_latency_us_sum);
	text_out_printf(&o, "cln_otlp_export_latency_seconds_count %llu\n",
			(unsigned long long)stats.batches_sent);
	metrics_head(&o, "export_latency_max_seconds", "gauge",
		     "Longest time an export request took to be answered.");
	metrics_seconds(&o, "export_latency_max_seconds", stats.export_latency_us_max);

	metrics_head(&o, "metrics_connections_closed_total", "counter",
		     "Connections to this endpoint closed by it: evicted for a newer one (at the "
		     "connection cap), or timeout (request or answer not through in time).");
	metrics_labelled(&o, "metrics_connections_closed_total", "reason", "evicted",
			 stats.metrics_evicted);
	metrics_labelled(&o, "metrics_connections_closed_total", "reason", "timeout",
			 stats.metrics_timeouts);
	metrics_u64(&o, "queue_spans", "gauge", "Spans queued or in flight.", stats.queue_spans);
	metrics_u64(&o, "queue_bytes", "gauge",
		    "Bytes held for the spans queued or in flight: spans waiting, and the "
		    "encoded bodies of batches waiting or retried.",
		    stats.queue_bytes);
	metrics_span_metrics(&o);
	return o.len;
}

/* ---- HTTP ---- */

int metrics_parse_request(const char *head, size_t len, struct metrics_request *req)
{
	const char *end = head + len, *sp1, *sp2, *eol, *p;
	bool body = false;

	memset(req, 0, sizeof(*req));
	eol = memchr(head, '\n', len);
	if (!eol)
		return -EINVAL;
	sp1 = memchr(head, ' ', (size_t)(eol - head));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == head || sp2 == sp1 + 1)
		return -EINVAL;
	req->method = (size_t)(sp1 - head) == 3 && !memcmp(head, "GET", 3)    ? METRICS_GET
		      : (size_t)(sp1 - head) == 4 && !memcmp(head, "HEAD", 4) ? METRICS_HEAD
									      : METRICS_OTHER;
	/* The path, without a query (as "/metrics?x" asks for /metrics). */
	for (p = sp1 + 1; p < sp2 && *p != '?'; p++)
		;
	req->metrics_path = (size_t)(p - sp1 - 1) == 8 && !memcmp(sp1 + 1, "/metrics", 8);
	p = sp2 + 1;
	if ((size_t)(eol - p) < 8 || memcmp(p, "HTTP/1.", 7))
		return -EINVAL;
	req->keep_alive = p[7] == '1';
	/*
	 * Headers: Connection decides, but a body (not expected), announced on any line, the
	 * last one too even unterminated, ends the connection whatever the order.
	 */
	for (p = eol + 1; p < end; p = eol + 1) {
		size_t n;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		n = (size_t)(eol - p);
		if (n >= 11 && !strncasecmp(p, "connection:", 11)) {
			if (memmem(p, n, "close", 5) || memmem(p, n, "Close", 5))
				req->keep_alive = false;
			else if (memmem(p, n, "eep-alive", 9))
				req->keep_alive = true;
		} else if ((n >= 15 && !strncasecmp(p, "content-length:", 15)) ||
			   (n >= 18 && !strncasecmp(p, "transfer-encoding:", 18))) {
			body = true;
		}
	}
	if (body)
		req->keep_alive = false;
	return 0;
}

/* Where the request head ends (just past its blank line), or 0 when not yet whole. */
static size_t metrics_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void metrics_conn_close(struct metrics_conn *c)
{
	if (c->fd < 0)
		return;
	loop_del(c->m->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->writing = false;
}

/*
 * Queue an answer; the body is left out for HEAD. A NULL @body is the metrics text, @len
 * bytes long, rendered in place. Returns 0 or -ENOMEM.
 */
static int metrics_answer(struct metrics_conn *c, unsigned status, const char *reason,
			  const char *type, const char *allow, const char *body, size_t len,
			  bool with_body)
{
	char head[384];
	int n = snprintf(
		head, sizeof(head),
		"HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s\r\n", status,
		reason, type, len, allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
		c->keep ? "" : "Connection: close\r\n");

	if (n < 0 || (size_t)n >= sizeof(head))
		return -EINVAL;
	c->out_len = (size_t)n + (with_body ? len : 0);
	c->out = malloc(c->out_len + 1); /* + the NUL metrics_render() ends with */
	if (!c->out)
		return -ENOMEM;
	memcpy(c->out, head, (size_t)n);
	if (with_body && body)
		memcpy(c->out + n, body, len);
	else if (with_body)
		metrics_render(c->out + n, len + 1, c->m->start_time_ns);
	c->out_off = 0;
	return 0;
}

static int metrics_respond(struct metrics_conn *c, const struct metrics_request *req)
{
	static const char not_found[] = "not found: the counters are at /metrics\n";
	static const char not_allowed[] = "method not allowed: use GET\n";
	static const char too_big[] = "internal error: the metrics text is over its cap\n";
	static const char plain[] = "text/plain; charset=utf-8";
	struct metrics *m = c->m;
	size_t len;

	if (!req->metrics_path)
		return metrics_answer(c, 404, "Not Found", plain, NULL, not_found,
				      sizeof(not_found) - 1, req->method != METRICS_HEAD);
	if (req->method == METRICS_OTHER)
		return metrics_answer(c, 405, "Method Not Allowed", plain, "GET, HEAD", not_allowed,
				      sizeof(not_allowed) - 1, true);
	len = metrics_render(NULL, 0, m->start_time_ns); /* its size: rendered in the answer */
	if (len >= METRICS_BODY_MAX) {
		log_limited(&m->rl, LOG_LVL_WARN, "metrics: text of %zu bytes over the %u cap", len,
			    METRICS_BODY_MAX);
		return metrics_answer(c, 500, "Internal Server Error", plain, NULL, too_big,
				      sizeof(too_big) - 1, req->method != METRICS_HEAD);
	}
	return metrics_answer(c, 200, "OK", METRICS_CONTENT_TYPE, NULL, NULL, len,
			      req->method != METRICS_HEAD);
}

/* A whole request head is in c->in: answer it and switch to writing. */
static void metrics_conn_request(struct metrics_conn *c, size_t head_len)
{
	static const char bad[] = "bad request\n";
	struct metrics_request req;
	int r;

	if (metrics_parse_request(c->in, head_len, &req) < 0) {
		c->keep = false;
		r = metrics_answer(c, 400, "Bad Request", "text/plain; charset=utf-8", NULL, bad,
				   sizeof(bad) - 1, true);
	} else {
		c->keep = req.keep_alive;
		r = metrics_respond(c, &req);
	}
	/* What follows the head (a pipelined request) waits for the answer to go. */
	memmove(c->in, c->in + head_len, c->in_len - head_len);
	c->in_len -= head_len;
	if (r < 0) {
		metrics_conn_close(c);
		return;
	}
	c->writing = true;
	c->deadline_ms = clock_mono_ms() + METRICS_IO_MS;
	if (loop_mod(c->m->loop, c->fd, EPOLLOUT) < 0)
		metrics_conn_close(c);
}

static void metrics_conn_read(struct metrics_conn *c)
{
	size_t end;
	ssize_t n;

	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		metrics_conn_close(c); /* the client went, or the connection broke */
		return;
	}
	c->in_len += (size_t)n;
	end = metrics_head_end(c->in, c->in_len);
	if (end) {
		metrics_conn_request(c, end);
	} else if (c->in_len == sizeof(c->in)) {
		static const char big[] = "request head too large\n";

		c->keep = false;
		c->in_len = 0;
		if (metrics_answer(c, 431, "Request Header Fields Too Large",
				   "text/plain; charset=utf-8", NULL, big, sizeof(big) - 1,
				   true) < 0 ||
		    loop_mod(c->m->loop, c->fd, EPOLLOUT) < 0) {
			metrics_conn_close(c);
			return;
		}
		c->writing = true;
		c->deadline_ms = clock_mono_ms() + METRICS_IO_MS;
	}
}

static void metrics_conn_write(struct metrics_conn *c)
{
	size_t end;
	ssize_t n;

	n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		metrics_conn_close(c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off < c->out_len)
		return;
	free(c->out);
	c->out = NULL;
	c->writing = false;
	if (!c->keep) {
		metrics_conn_close(c);
		return;
	}
	c->seq = ++c->m->seq;
	c->deadline_ms = clock_mono_ms() + METRICS_IO_MS;
	end = metrics_head_end(c->in, c->in_len);
	if (end)
		metrics_conn_request(c, end); /* a pipelined request */
	else if (loop_mod(c->m->loop, c->fd, EPOLLIN) < 0)
		metrics_conn_close(c);
}

static void metrics_on_conn(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct metrics_conn *c = ctx;

	if (c->writing)
		metrics_conn_write(c);
	else
		metrics_conn_read(c);
}

/* A free slot, or the one idle longest (closed, counted): connections stay bounded. */
static struct metrics_conn *metrics_slot(struct metrics *m)
{
	struct metrics_conn *old = NULL;

	for (size_t i = 0; i < METRICS_CONN_MAX; i++) {
		struct metrics_conn *c = &m->conns[i];

		if (c->fd < 0)
			return c;
		if (!old || c->seq < old->seq)
			old = c;
	}
	stats.metrics_evicted++;
	metrics_conn_close(old);
	return old;
}

static void metrics_on_listen(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct metrics *m = ctx;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct metrics_conn *c;

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Out of fds (or memory): stop accepting for a moment, not spin. */
			log_limited(&m->rl, LOG_LVL_WARN, "metrics: cannot accept: %m");
			loop_mod(loop, fd, 0);
			m->accept_paused = true;
			m->accept_resume_ms = clock_mono_ms() + METRICS_ACCEPT_PAUSE;
			loop_timer_arm(m->timer, METRICS_ACCEPT_PAUSE);
			return;
		}
		c = metrics_slot(m);
		*c = (struct metrics_conn){.m = m, .fd = cfd, .seq = ++m->seq};
		c->deadline_ms = clock_mono_ms() + METRICS_IO_MS;
		if (loop_add(loop, cfd, EPOLLIN, metrics_on_conn, c) < 0) {
			close(cfd);
			c->fd = -1;
			continue;
		}
		if (!loop_timer_armed(m->timer))
			loop_timer_arm(m->timer, METRICS_IO_MS);
	}
}

/* Close the connections past their deadline; re-arm for the next one. */
static void metrics_on_timer(struct loop *loop, void *ctx)
{
	struct metrics *m = ctx;
	uint64_t now = clock_mono_ms(), next = UINT64_MAX;

	if (m->accept_paused) {
		if (now >= m->accept_resume_ms && loop_mod(loop, m->fd, EPOLLIN) == 0)
			m->accept_paused = false;
		else
			next = m->accept_resume_ms > now ? m->accept_resume_ms : now + 1;
	}
	for (size_t i = 0; i < METRICS_CONN_MAX; i++) {
		struct metrics_conn *c = &m->conns[i];

		if (c->fd < 0)
			continue;
		if (c->deadline_ms <= now) {
			stats.metrics_timeouts++;
			metrics_conn_close(c);
		} else if (c->deadline_ms < next) {
			next = c->deadline_ms;
		}
	}
	if (next != UINT64_MAX)
		loop_timer_arm(m->timer, next - now);
}

/* ---- listening ---- */

/* Split "ADDR:PORT" / "[V6]:PORT" into @host and @port. */
static int metrics_split(const char *listen, char *host, size_t host_size, const char **port)
{
	const char *colon = strrchr(listen, ':');
	const char *start = listen;
	size_t len;

	if (!colon || colon == listen)
		return -EINVAL;
	len = (size_t)(colon - listen);
	if (listen[0] == '[') {
		if (len < 3 || colon[-1] != ']')
			return -EINVAL;
		start++;
		len -= 2;
	}
	if (len >= host_size)
		return -EINVAL;
	memcpy(host, start, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

static int metrics_bind_one(const struct addrinfo *ai)
{
	int one = 1;
	int fd, ret;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	/* A restart must not wait for the old connections' TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, METRICS_BACKLOG) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static int metrics_listen(const char *listen, char *err, size_t err_size)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	char host[64];
	const char *port;
	int ret, fd = -EADDRNOTAVAIL;

	if (metrics_split(listen, host, sizeof(host), &port) < 0) {
		snprintf(
			err, err_size,
			"--metrics-listen %.80s: not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)",
			listen);
		return -EINVAL;
	}
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		snprintf(err, err_size,
			 "--metrics-listen %.80s: cannot resolve \"%s\" (%s): give an IP address "
			 "of this machine (127.0.0.1, [::1], 0.0.0.0) or localhost",
			 listen, host, ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret));
		return -EINVAL;
	}
	/* IPv4 first: "localhost" then means 127.0.0.1, which every client tries. */
	for (int pass = 0; pass < 2 && fd < 0; pass++)
		for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
			if ((ai->ai_family == AF_INET) == (pass == 0))
				fd = metrics_bind_one(ai);
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	switch (fd) {
	case -EADDRINUSE:
		snprintf(err, err_size,
			 "--metrics-listen %.80s: the address is already in use: stop what "
			 "listens there or choose another port",
			 listen);
		break;
	case -EACCES:
	case -EPERM:
		snprintf(err, err_size,
			 "--metrics-listen %.80s: permission denied: ports below 1024 need root "
			 "(CAP_NET_BIND_SERVICE); choose a port above 1023",
			 listen);
		break;
	case -EADDRNOTAVAIL:
		snprintf(err, err_size,
			 "--metrics-listen %.80s: no interface of this machine has that address: "
			 "use 127.0.0.1, [::1], 0.0.0.0 or one of its own addresses",
			 listen);
		break;
	default:
		snprintf(err, err_size, "--metrics-listen %.80s: cannot listen: %s", listen,
			 strerror(-fd));
	}
	return fd;
}

struct metrics *metrics__new(struct loop *loop, const char *listen, char *err, size_t err_size)
{
	struct metrics *m;
	int ret;

	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, err_size, "metrics: out of memory");
		return NULL;
	}
	m->loop = loop;
	m->fd = -1;
	for (size_t i = 0; i < METRICS_CONN_MAX; i++)
		m->conns[i].fd = -1;
	m->start_time_ns = clock_real_ns();
	m->timer = loop_timer__new(loop, metrics_on_timer, m);
	if (!m->timer) {
		snprintf(err, err_size, "metrics: cannot create a timer: %s", strerror(errno));
		goto fail;
	}
	ret = metrics_listen(listen, err, err_size);
	if (ret < 0)
		goto fail;
	m->fd = ret;
	ret = loop_add(loop, m->fd, EPOLLIN, metrics_on_listen, m);
	if (ret < 0) {
		snprintf(err, err_size, "metrics: cannot watch the server: %s", strerror(-ret));
		close(m->fd);
		m->fd = -1;
		goto fail;
	}
	log_info("metrics: serving http://%s/metrics", listen);
	return m;
fail:
	metrics__free(m);
	return NULL;
}

void metrics__free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < METRICS_CONN_MAX; i++)
		metrics_conn_close(&m->conns[i]);
	if (m->fd >= 0) {
		loop_del(m->loop, m->fd);
		close(m->fd);
	}
	loop_timer__free(m->timer);
	free(m);
}
