// SPDX-License-Identifier: MIT
/*
 * usdt-dump: the eBPF source alone, without the pipeline. Attaches like cln-otlp does and
 * prints every record the source hands on, one line each:
 *   emit <pid> <exe_path|-> <len> <json>
 *   event <pid> <span id hex> suspend|resume <time_unix_ns>
 * On SIGTERM/SIGINT it drains the ring buffer and prints "stats ringbuf_lost=<n>".
 * Used by the usdt tests to check the source byte for byte, independently of the parser.
 *
 * usage: usdt-dump [-v] [--no-plugins] [--all-probes] [--ringbuf-size N] [--pid PID]...
 *                  [--lightningd PATH]...
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "pipeline.h"
#include "source_usdt.h"
#include "stats.h"

/* The pipeline, as far as the source sees it: print. */
enum span_reject pipeline_ingest(struct pipeline *p, const struct pipeline_origin *origin,
				 const char *json, size_t len)
{
	stats.received[origin->source]++;
	printf("emit %" PRIu32 " %s %zu %.*s\n", origin->pid,
	       origin->exe_path ? origin->exe_path : "-", len, (int)len, json);
	return SPAN_OK;
}

void pipeline_span_event(struct pipeline *p, uint32_t pid, uint64_t span_id,
			 enum span_event_kind kind, uint64_t time_unix_ns)
{
	printf("event %" PRIu32 " %016" PRIx64 " %s %" PRIu64 "\n", pid, span_id,
	       kind == SPAN_EVENT_SUSPEND ? "suspend" : "resume", time_unix_ns);
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == sizeof(si))
		loop_stop(loop);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct loop *loop = NULL;
	struct source_usdt *src = NULL;
	char err[1024];
	sigset_t mask;
	int sfd = -1, ret = 1;

	memset(&cfg, 0, sizeof(cfg));
	cfg.ringbuf_size = 2u << 20;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v")) {
			log_set_level(LOG_LVL_DEBUG);
		} else if (!strcmp(a, "--no-plugins")) {
			cfg.no_plugins = true;
		} else if (!strcmp(a, "--all-probes")) {
			cfg.all_probes = true;
		} else if (i + 1 < argc && !strcmp(a, "--ringbuf-size")) {
			cfg.ringbuf_size = strtoull(argv[++i], NULL, 0);
		} else if (i + 1 < argc && !strcmp(a, "--pid") && cfg.n_pids < CONFIG_MAX_LIST) {
			cfg.pids[cfg.n_pids++] = strtoul(argv[++i], NULL, 10);
		} else if (i + 1 < argc && !strcmp(a, "--lightningd") &&
			   cfg.n_lightningd < CONFIG_MAX_LIST) {
			cfg.lightningd[cfg.n_lightningd++] = argv[++i];
		} else {
			fprintf(stderr, "usdt-dump: bad argument %s\n", a);
			return 2;
		}
	}
	cfg.usdt = true;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	loop = loop__new();
	if (!loop)
		goto cleanup;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || loop_add(loop, sfd, EPOLLIN, on_signal, NULL))
		goto cleanup;
	src = source_usdt__new(loop, &cfg, NULL, err, sizeof(err));
	if (!src) {
		log_error("%s", err);
		goto cleanup;
	}
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (loop_run(loop))
		goto cleanup;
	source_usdt_drain(src);
	printf("stats ringbuf_lost=%" PRIu64 "\n", stats.ringbuf_lost);
	ret = 0;
cleanup:
	fflush(stdout);
	source_usdt__free(src);
	if (sfd >= 0) {
		if (loop)
			loop_del(loop, sfd);
		close(sfd);
	}
	loop__free(loop);
	return ret;
}
