/* SPDX-License-Identifier: MIT */
/*
 * source_usdt: capture lightningd:span_emit (and span_start/end/suspend/resume) with eBPF.
 * Opens, configures and loads the BPF skeleton (bpf/source_usdt.bpf.c), attaches it to the
 * binaries targets finds (lightningd and its C plugins), consumes the ring buffer from the
 * loop and feeds the pipeline. Only this module includes libbpf.
 */
#ifndef CLN_OTLP_SOURCE_USDT_H
#define CLN_OTLP_SOURCE_USDT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loop.h"
#include "pipeline.h"

struct source_usdt;

/*
 * Find the binaries (cfg->lightningd, else the cfg->pids processes', else lightningd on PATH
 * if any, and discovery of every binary with the probe as its processes start; plugins unless
 * cfg->no_plugins), load and attach. Returns NULL with a message in @err that
 * says what to do (binary not found, no probes, not root, kernel lacks uprobes or ring
 * buffers).
 */
struct source_usdt *source_usdt__new(struct loop *loop, const struct config *cfg,
				     struct pipeline *p, char *err, size_t err_size);
/*
 * Drain what the ring buffer holds now (at shutdown, before flushing the pipeline). This
 * also detaches the probes and stops reading: every span fired before the call reaches the
 * pipeline, none after, so the flush that follows can finish.
 */
void source_usdt_drain(struct source_usdt *src);
/*
 * Call @fn(@ctx) once when no further attach can happen: with --pid, once every one of those
 * processes has exited (what keeps capabilities for attaching can then drop them). At once
 * if that is already so. From then on the binaries are no longer watched.
 */
void source_usdt_on_no_reattach(struct source_usdt *src, void (*fn)(void *ctx), void *ctx);
/*
 * Discovering (no source option given): processes are found as they start, and their
 * binaries attached; this needs to open other users' /proc/PID/exe and /proc/PID/root.
 */
bool source_usdt_discovering(const struct source_usdt *src);
/* Detach and free; NULL is fine. */
void source_usdt__free(struct source_usdt *src);

#endif
