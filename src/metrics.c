// SPDX-License-Identifier: MIT
/*
 * metrics: /metrics for Prometheus, served by libmicrohttpd in "external polling" mode with
 * its own epoll set: that epoll fd is readable whenever one of its sockets (the listening
 * one, each connection) has something to do, so it is the one fd we give the loop. After
 * every MHD_run() the timer is armed to MHD_get_timeout(): MHD wants to run again at once
 * when it still has ready connections (it uses edge-triggered events inside), and later to
 * close idle connections. Everything happens in the loop's thread: the handler reads the
 * global counters directly, no snapshot or lock is needed.
 *
 * We create, bind and listen on the socket ourselves and hand it over
 * (MHD_OPTION_LISTEN_SOCKET): start-up errors then say exactly what went wrong.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "clock.h"
#include "log.h"
#include "span.h"
#include "stats.h"

#define METRICS_BODY_MAX     32768 /* the text is ~7 KB */
#define METRICS_CONN_MAX     16
#define METRICS_CONN_TIMEOUT 10 /* seconds an idle connection stays open */
#define METRICS_CONN_MEM     (32 * 1024)
#define METRICS_BACKLOG	     16
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	int epfd; /* MHD's, watched by the loop */
	struct loop_timer *timer;
	uint64_t start_time_ns;
	char addr[80]; /* for messages */
	struct log_ratelimit rl;
	char body[METRICS_BODY_MAX];
};

/* ---- the exposition text ---- */

struct metrics_out {
	char *buf;
	size_t size;
	size_t len; /* needed, may exceed size */
};

static void metrics_put(struct metrics_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void metrics_put(struct metrics_out *o, const char *fmt, ...)
{
	size_t room = o->len < o->size ? o->size - o->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

static void metrics_head(struct metrics_out *o, const char *name, const char *type,
			 const char *help)
{
	metrics_put(o, "# HELP cln_otlp_%s %s\n# TYPE cln_otlp_%s %s\n", name, help, name, type);
}

static void metrics_u64(struct metrics_out *o, const char *name, const char *type, const char *help,
			uint64_t v)
{
	metrics_head(o, name, type, help);
	metrics_put(o, "cln_otlp_%s %llu\n", name, (unsigned long long)v);
}

static void metrics_labelled(struct metrics_out *o, const char *name, const char *label,
			     const char *value, uint64_t v)
{
	metrics_put(o, "cln_otlp_%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

/* Microseconds as seconds, exactly (no floating point rounding). */
static void metrics_seconds(struct metrics_out *o, const char *name, uint64_t us)
{
	metrics_put(o, "cln_otlp_%s %llu.%06llu\n", name, (unsigned long long)(us / 1000000),
		    (unsigned long long)(us % 1000000));
}

/* A label value: escape \, " and newline as the format asks. */
static void metrics_version(struct metrics_out *o)
{
	metrics_put(o, "cln_otlp_build_info{version=\"");
	for (const char *p = CLN_OTLP_VERSION; *p; p++) {
		if (*p == '\\' || *p == '"')
			metrics_put(o, "\\%c", *p);
		else if (*p == '\n')
			metrics_put(o, "\\n");
		else
			metrics_put(o, "%c", *p);
	}
	metrics_put(o, "\"} 1\n");
}

size_t metrics_render(char *buf, size_t size, uint64_t start_time_ns)
{
	struct metrics_out o = {.buf = buf, .size = size};

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
	metrics_u64(&o, "spans_recovered_total", "counter",
		    "Span payloads with invalid JSON (unescaped tag values) repaired and kept.",
		    stats.recovered);
	metrics_u64(&o, "spans_truncated_total", "counter",
		    "Spans cut by CLN at 2048 bytes and kept.", stats.truncated);
	metrics_u64(&o, "ringbuf_lost_total", "counter",
		    "Span records the kernel could not put in the eBPF ring buffer (it was full).",
		    stats.ringbuf_lost);
	metrics_u64(&o, "span_events_total", "counter",
		    "Suspend/resume span events attached to spans.", stats.events);
	metrics_u64(&o, "spans_queued_total", "counter", "Spans accepted into the export queue.",
		    stats.queued);
	metrics_head(&o, "spans_dropped_total", "counter",
		     "Spans accepted but never delivered, by reason.");
	for (int i = 0; i < STATS_DROP__MAX; i++)
		metrics_labelled(&o, "spans_dropped_total", "reason",
				 stats_drop_str((enum stats_drop)i), stats.dropped[i]);
	metrics_u64(&o, "spans_exported_total", "counter", "Spans the collector accepted.",
		    stats.exported);
	metrics_u64(&o, "spans_partial_rejected_total", "counter",
		    "Spans the collector refused in a partial success answer.",
		    stats.partial_rejected);
	metrics_u64(&o, "partial_bad_count_total", "counter",
		    "Partial success answers whose rejected count was impossible (negative, or "
		    "more than the batch held); counted as the batch's size, or 0.",
		    stats.partial_bad_count);
	metrics_u64(&o, "spans_unconfirmed_total", "counter",
		    "Spans answered with a success whose body is no OTLP answer (an HTML page, a "
		    "broken message): maybe delivered, not counted as exported.",
		    stats.unconfirmed);
	metrics_u64(&o, "batches_sent_total", "counter", "Export requests that got an answer.",
		    stats.batches_sent);
	metrics_u64(&o, "export_retries_total", "counter", "Export requests retried.",
		    stats.retries);
	metrics_u64(&o, "batches_failed_total", "counter",
		    "Batches given up (not retryable, or out of retries).", stats.failed_batches);

	metrics_head(&o, "export_latency_seconds", "summary",
		     "Time from sending an export request to its answer.");
	metrics_seconds(&o, "export_latency_seconds_sum", stats.export_latency_us_sum);
	metrics_put(&o, "cln_otlp_export_latency_seconds_count %llu\n",
		    (unsigned long long)stats.batches_sent);
	metrics_head(&o, "export_latency_max_seconds", "gauge",
		     "Longest time an export request took to be answered.");
	metrics_seconds(&o, "export_latency_max_seconds", stats.export_latency_us_max);

	metrics_u64(&o, "queue_spans", "gauge", "Spans queued or in flight.", stats.queue_spans);
	metrics_u64(&o, "queue_bytes", "gauge", "Payload bytes of the spans queued or in flight.",
		    stats.queue_bytes);
	return o.len;
}

/* ---- HTTP ---- */

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status, const char *body,
				     size_t len, const char *type, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version,
				       const char *upload_data, size_t *upload_data_size,
				       void **con_cls)
{
	static const char not_found[] = "not found: the counters are at /metrics\n";
	static const char not_allowed[] = "method not allowed: use GET\n";
	static const char too_big[] = "internal error: the metrics text is over its cap\n";
	struct metrics *m = cls;
	size_t len;

	if (strcmp(url, "/metrics") != 0)
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1,
				     "text/plain; charset=utf-8", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
				     sizeof(not_allowed) - 1, "text/plain; charset=utf-8",
				     "GET, HEAD");
	len = metrics_render(m->body, sizeof(m->body), m->start_time_ns);
	if (len >= sizeof(m->body)) {
		log_limited(&m->rl, LOG_LVL_WARN, "metrics: text of %zu bytes over the %d cap", len,
			    METRICS_BODY_MAX);
		return metrics_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, too_big,
				     sizeof(too_big) - 1, "text/plain; charset=utf-8", NULL);
	}
	return metrics_reply(conn, MHD_HTTP_OK, m->body, len, METRICS_CONTENT_TYPE, NULL);
}

__attribute__((format(printf, 2, 0))) static void metrics_mhd_log(void *cls, const char *fmt,
								  va_list ap)
{
	struct metrics *m = cls;
	char msg[256];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_limited(&m->rl, LOG_LVL_WARN, "metrics: %s", msg);
}

/* ---- the loop ---- */

static void metrics_run(struct metrics *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(m->mhd);
	if (MHD_get_timeout(m->mhd, &ms) == MHD_YES)
		loop_timer_arm(m->timer, ms);
	else
		loop_timer_disarm(m->timer);
}

static void metrics_on_fd(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	metrics_run(ctx);
}

static void metrics_on_timer(struct loop *loop, void *ctx)
{
	metrics_run(ctx);
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
	const union MHD_DaemonInfo *info;
	struct metrics *m;
	int fd = -1, ret;

	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, err_size, "metrics: out of memory");
		return NULL;
	}
	m->loop = loop;
	m->epfd = -1;
	m->start_time_ns = clock_real_ns();
	snprintf(m->addr, sizeof(m->addr), "%s", listen);
	m->timer = loop_timer__new(loop, metrics_on_timer, m);
	if (!m->timer) {
		snprintf(err, err_size, "metrics: cannot create a timer: %s", strerror(errno));
		goto fail;
	}
	fd = metrics_listen(listen, err, err_size);
	if (fd < 0)
		goto fail;
	m->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, metrics_handler, m,
		MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, m, MHD_OPTION_LISTEN_SOCKET,
		(MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONN_MAX,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONN_TIMEOUT,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_CONN_MEM, MHD_OPTION_END);
	if (!m->mhd) {
		snprintf(err, err_size,
			 "--metrics-listen %.80s: cannot start the HTTP server (libmicrohttpd "
			 "without epoll support?)",
			 listen);
		goto fail;
	}
	fd = -1; /* MHD's now: MHD_stop_daemon closes it */
	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		snprintf(err, err_size, "metrics: libmicrohttpd gave no epoll fd");
		goto fail;
	}
	ret = loop_add(loop, info->epoll_fd, EPOLLIN, metrics_on_fd, m);
	if (ret < 0) {
		snprintf(err, err_size, "metrics: cannot watch the server: %s", strerror(-ret));
		goto fail;
	}
	m->epfd = info->epoll_fd;
	metrics_run(m);
	log_info("metrics: serving http://%s/metrics", listen);
	return m;
fail:
	/* Ours until MHD started; whether a failed start closed it is not documented. */
	if (fd >= 0 && fcntl(fd, F_GETFD) >= 0)
		close(fd);
	metrics__free(m);
	return NULL;
}

void metrics__free(struct metrics *m)
{
	if (!m)
		return;
	if (m->epfd >= 0)
		loop_del(m->loop, m->epfd);
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	loop_timer__free(m->timer);
	free(m);
}
