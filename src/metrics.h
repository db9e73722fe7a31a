/* SPDX-License-Identifier: MIT */
/*
 * metrics: the counters of stats.h for Prometheus, in the text exposition format, at
 * GET /metrics on --metrics-listen, served from our loop (every connection one more fd of
 * it, non-blocking, bounded in number and time): no thread, no lock.
 */
#ifndef CLN_OTLP_METRICS_H
#define CLN_OTLP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct metrics;

/*
 * Listen on @listen ("ADDR:PORT": 127.0.0.1:9464, [::1]:9464, localhost:9464, 0.0.0.0:9464)
 * and serve from @loop. Returns NULL with a message in @err that says what to do (address
 * in use, port needing root, no such address on this machine).
 */
struct metrics *metrics__new(struct loop *loop, const char *listen, char *err, size_t err_size);
void metrics__free(struct metrics *m);

/*
 * The exposition text of the current counters into @buf (NUL-terminated, cut at @size).
 * @start_time_ns: wall-clock start of the process. Returns the length the whole text
 * needs, without the NUL (as snprintf does).
 */
size_t metrics_render(char *buf, size_t size, uint64_t start_time_ns);

enum metrics_method { METRICS_GET, METRICS_HEAD, METRICS_OTHER };

struct metrics_request {
	enum metrics_method method;
	bool metrics_path; /* the path (query left out) is /metrics */
	bool keep_alive;   /* HTTP/1.1 without "Connection: close", nor a body */
};

/*
 * Parse a request head (@len bytes: request line, header lines, blank line). Returns 0,
 * or -EINVAL for a request line that is not "METHOD PATH HTTP/1.x".
 */
int metrics_parse_request(const char *head, size_t len, struct metrics_request *req);

#endif
