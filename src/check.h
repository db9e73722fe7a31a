/* SPDX-License-Identifier: MIT */
/*
 * check: --check, the preflight. Runs the checks the given options make relevant and prints
 * one line each on @out: "✓ what", "✗ what: why — what to do", or "! what" for a warning
 * that does not fail the run. Each check reuses what the daemon itself does at start:
 *   - eBPF (cfg->usdt): the binaries targets would trace and their lightningd:span_emit
 *     probes, the running processes whose executable carries the probe (traced by these
 *     options or not), the privileges, then the real thing: source_usdt loads the skeleton,
 *     attaches and detaches (kernel uprobes, ring buffer, privileges in one go);
 *   - --socket: the path free (no other receiver) in a writable directory, and
 *     net.unix.max_dgram_qlen (a warning when cln-otlp may raise it at start, a failure
 *     when it cannot);
 *   - the node's RPC (with a live source or --rpc-file): node_info finds the socket and
 *     asks getinfo, waiting a few seconds;
 *   - the collector (otlp exporter): one empty ExportTraceServiceRequest sent with the
 *     configured URL, protocol, headers and TLS settings (export_http_check).
 * It changes nothing (a stale socket file stays; the datagram queue length is not raised),
 * exports no span and never stays running. No secret is printed: URLs are shown as
 * scheme://host:port and header values never.
 */
#ifndef CLN_OTLP_CHECK_H
#define CLN_OTLP_CHECK_H

#include <stdio.h>

#include "config.h"

/* Run the checks for @cfg, print them on @out. Returns 0 when every needed one passed, else 1. */
int check_run(const struct config *cfg, FILE *out);

#endif
