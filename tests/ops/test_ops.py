#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Operations tests through the real binary: the /metrics endpoint, the stats line, and the
privileges left once start-up is over.

    test_ops.py TEST --cln-otlp PATH [--emitter PATH]

Tests named caps_*, user_* need root (they read capabilities, switch user, load BPF
programs). Without root they skip (exit 77), except with CI=true, where they fail.
/metrics is parsed twice: by prometheus_client's parser (Debian python3-prometheus-client),
an independent reading of the format, and by the strict line checks below.
"""
import http.client
import os
import pwd
import select
import shutil
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, Collector, Proc, check, daemon_user, free_port, install,  # noqa
                     main, need_root, options, release, run, start_emitter, test, wait_for)

(NAME,), A = options("cln-otlp", "emitter")
N_REAL, N_EVENTS = 585, 6  # spans and suspend/resume lines in CAPTURE (no times: not attached)

# Capability numbers (linux/capability.h).
CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 2, 21, 38, 39
# What privs may keep with the eBPF source: the kernel decides which (see src/privs.c).
USDT_KEEP = ({CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH}, {CAP_PERFMON, CAP_BPF, CAP_DAC_READ_SEARCH})
CAP_NAMES = {CAP_DAC_READ_SEARCH: "cap_dac_read_search", CAP_SYS_ADMIN: "cap_sys_admin",
             CAP_PERFMON: "cap_perfmon", CAP_BPF: "cap_bpf"}

# Every family /metrics serves, with its type.
FAMILIES = dict.fromkeys(["cln_otlp_" + n for n in (
    "build_info", "start_time_seconds", "export_latency_max_seconds", "queue_spans",
    "queue_bytes")], "gauge")
FAMILIES.update(dict.fromkeys(["cln_otlp_%s_total" % n for n in (
    "spans_received", "spans_rejected", "spans_recovered", "spans_truncated", "ringbuf_lost",
    "span_events", "span_events_evicted", "span_events_untimed", "spans_queued", "spans_dropped",
    "spans_exported", "spans_partial_rejected", "batches_sent", "export_retries",
    "batches_failed", "metrics_connections_closed", "exe_path_lost", "follow_truncated",
    "follow_lost_bytes", "spans_trace_id_derived", "span_tags_duplicate",
    "span_events_dropped", "partial_bad_count", "spans_unconfirmed", "socket_refused",
    "files_refused", "nodes_identified", "node_untrusted", "node_table_full", "span_errors",
    "span_metrics_folded", "spans_sampled_out", "traces_cut_short", "traces_kept",
    "spans_dropped_by_rule", "spans_spooled", "spool_batches_written", "spool_bytes_written",
    "spans_replayed", "spool_batches_replayed", "spool_corrupt", "spool_evicted",
    "spool_duplicates", "spool_failed")], "counter"),
    cln_otlp_export_latency_seconds="summary", cln_otlp_span_duration_seconds="histogram")
REJECT_REASONS = ("too_long", "empty", "invalid_json", "missing_field", "bad_id", "bad_parent_id",
                  "bad_trace_id", "bad_time", "bad_field", "too_many_tags", "nomem")
DROP_REASONS = ("queue_full", "retry_expired", "not_retryable", "shutdown", "encode",
                "truncated_orphan", "output")
LINE_KEYS = ("received", "rejected", "recovered", "ringbuf_lost", "queued", "exported", "dropped",
             "batches", "retries", "failed_batches", "latency_avg_ms", "latency_max_ms",
             "in_queue")


def follow(tmp, *args, name="cln-otlp"):
    """cln-otlp following the real capture, spans on stdout."""
    return Proc([A.cln_otlp, "--file", CAPTURE, "--follow", "--exporter", "stdout", *args], tmp,
                name)


def expect_start_error(argv, needles, user=None):
    """cln-otlp refuses to start: exit 2, a message with every needle, nothing exported, and
    the run never began (no exit stats line)."""
    p = run(argv, user=user, timeout=60)
    check("%s: exit 2" % argv[-1], p.returncode == 2, p.returncode)
    for n in needles:
        check("the message says %r" % n, n in p.stderr, p.stderr)
    check("nothing was exported before failing", p.stdout == "", p.stdout[:200])
    check("failed at start-up: no exit stats line", "info: done: " not in p.stderr, p.stderr)


# ---- /metrics ---------------------------------------------------------------------------


def http_get(port, path="/metrics", method="GET", host="127.0.0.1", timeout=5):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def strict_lines(text):
    """The format rules prometheus_client's parser forgives: HELP then TYPE before the
    samples of a family, prefixed names, counters ending in _total, one line per series."""
    check("the text ends with a newline", text.endswith("\n"))
    family, ftype, seen, series = None, None, set(), set()
    lines = text.split("\n")[:-1]
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check("family %s once" % name, name not in seen)
            check("HELP with a text: %s" % line,
                  len(line.split(" ", 3)) == 4 and line.split(" ", 3)[3].strip())
            check("HELP %s followed by its TYPE" % name,
                  i + 1 < len(lines) and lines[i + 1].startswith("# TYPE %s " % name))
            seen.add(name)
            family = name
        elif line.startswith("# TYPE "):
            _, _, name, ftype = line.split(" ")
            check("TYPE %s after its HELP" % name, name == family)
            check("type %s known" % ftype, ftype in ("counter", "gauge", "summary", "histogram"))
            check("counter %s ends in _total" % name, ftype != "counter" or name.endswith("_total"))
        else:
            check("no other comment: %r" % line, not line.startswith("#"))
            check("a family before the sample %s" % line, family is not None)
            key, _, value = line.rpartition(" ")
            float(value)
            base = key.split("{")[0]
            check("sample %s in its family %s" % (line, family), base == family or (
                ftype == "summary" and base in (family + "_sum", family + "_count")) or (
                ftype == "histogram" and base in (family + "_bucket", family + "_sum",
                                                  family + "_count")))
            check("prefixed: %s" % line, base.startswith("cln_otlp_"))
            check("series once: %s" % key, key not in series)
            series.add(key)
    return seen


def parse_metrics(text):
    """{(sample name, ((label, value), ...)): value} and {family: type}, read by
    prometheus_client (which drops _total from counter family names)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families as families
    except ImportError:
        families = None
    check("python3-prometheus-client is installed (apt-get install python3-prometheus-client)",
          families)
    samples, types = {}, {}
    for fam in families(text):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        types[name] = fam.type
        for s in fam.samples:
            if not s.name.endswith("_created"):
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    families = strict_lines(text)
    check("parsers agree on the families", set(types) == families,
          "%r vs %r" % (sorted(types), sorted(families)))
    return samples, types


def sample(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    check("a sample %s%r" % (name, labels or ""), key in samples)
    return samples[key]


def scrape(port, host="127.0.0.1"):
    status, headers, body = http_get(port, host=host)
    check("GET /metrics: 200", status == 200, body[:200])
    ctype = headers.get("content-type", "")
    check("Content-Type text/plain; version=0.0.4",
          ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype)
    return parse_metrics(body)


def wait_metric(port, name, want, timeout=30, host="127.0.0.1", **labels):
    def scraped():
        samples, types = scrape(port, host)
        return sample(samples, name, **labels) == want and (samples, types)
    return wait_for(scraped, timeout, "%s%r == %r" % (name, labels or "", want))


def done_line(err, when="done"):
    """The tokens of the last "<when>: ..." stats line."""
    lines = [ln.split("%s: " % when, 1)[1].split() for ln in err.splitlines()
             if "info: %s: " % when in ln]
    check("a %s line" % when, lines, err)
    return lines[-1]


def check_tokens(line, *tokens):
    for tok in tokens:
        check("the stats line has %s" % tok, tok in line, line)
    for key in LINE_KEYS:
        check("the stats line has %s=" % key, any(t.startswith(key + "=") for t in line), line)


@test("metrics")
def metrics(tmp):
    """/metrics while a file is followed: names, types and values; 404/405; requests in a
    row on one client connection; a stalled client does not hold the others, and is answered
    once it completes its request."""
    port = free_port()
    t0 = time.time()
    d = follow(tmp, "--metrics-listen", "127.0.0.1:%d" % port, "--batch-delay", "300",
               "--stats-interval", "0")
    d.wait_err("serving http://127.0.0.1:%d/metrics" % port)
    samples, types = wait_metric(port, "cln_otlp_spans_exported_total", N_REAL)
    t1 = time.time()
    check("families and types", types == FAMILIES,
          "got  %r\n want %r" % (sorted(types.items()), sorted(FAMILIES.items())))
    version = run([A.cln_otlp, "--version"]).stdout.split()[-1]
    want = {("cln_otlp_spans_received_total", ("source", s)): n
            for s, n in (("file", N_REAL), ("usdt", 0), ("socket", 0))}
    want.update({(n, ()): v for n, v in (
        ("cln_otlp_spans_queued_total", N_REAL), ("cln_otlp_spans_exported_total", N_REAL),
        ("cln_otlp_span_events_total", 0), ("cln_otlp_span_events_evicted_total", 0),
        ("cln_otlp_span_events_untimed_total", N_EVENTS),
        ("cln_otlp_spans_recovered_total", 0),
        ("cln_otlp_spans_truncated_total", 0), ("cln_otlp_ringbuf_lost_total", 0),
        ("cln_otlp_spans_trace_id_derived_total", 0), ("cln_otlp_span_tags_duplicate_total", 0),
        ("cln_otlp_span_events_dropped_total", 0),
        ("cln_otlp_spans_partial_rejected_total", 0), ("cln_otlp_export_retries_total", 0),
        ("cln_otlp_partial_bad_count_total", 0), ("cln_otlp_spans_unconfirmed_total", 0),
        ("cln_otlp_batches_failed_total", 0), ("cln_otlp_queue_spans", 0),
        ("cln_otlp_queue_bytes", 0), ("cln_otlp_exe_path_lost_total", 0),
        ("cln_otlp_follow_truncated_total", 0), ("cln_otlp_follow_lost_bytes_total", 0),
        ("cln_otlp_socket_refused_total", 0), ("cln_otlp_files_refused_total", 0),
        ("cln_otlp_nodes_identified_total", 0), ("cln_otlp_node_untrusted_total", 0),
        ("cln_otlp_node_table_full_total", 0), ("cln_otlp_spans_sampled_out_total", 0),
        ("cln_otlp_traces_cut_short_total", 0))})
    # No --spool: its counters are there, at 0.
    want.update({("cln_otlp_%s_total" % n, ()): 0 for n in (
        "spans_spooled", "spool_batches_written", "spool_bytes_written", "spans_replayed",
        "spool_batches_replayed", "spool_corrupt", "spool_evicted", "spool_duplicates",
        "spool_failed")})
    want[("cln_otlp_build_info", ("version", version))] = 1
    # No volume option: no rule series, no trace kept by the volume rules.
    want.update({("cln_otlp_traces_kept_total", ("reason", r)): 0
                 for r in ("sampled", "error", "slow")})
    want.update({("cln_otlp_spans_rejected_total", ("reason", r)): 0 for r in REJECT_REASONS})
    want.update({("cln_otlp_spans_dropped_total", ("reason", r)): 0 for r in DROP_REASONS})
    want.update({("cln_otlp_metrics_connections_closed_total", ("reason", r)): 0
                 for r in ("evicted", "timeout")})
    for (name, label), value in want.items():
        labels = dict([label]) if label else {}
        got = sample(samples, name, **labels)
        check("%s%r = %r" % (name, labels, value), got == value, got)
    batches = sample(samples, "cln_otlp_batches_sent_total")
    # 585 spans, batches of 512 at most: 2 or more (the batch delay may cut earlier).
    check("2 batches or more", batches >= 2, batches)
    check("the latency count is the batches answered",
          sample(samples, "cln_otlp_export_latency_seconds_count") == batches)
    start = sample(samples, "cln_otlp_start_time_seconds")
    check("start time in [%r, %r]" % (t0 - 1, t1), t0 - 1 <= start <= t1, start)
    span_metrics = ("cln_otlp_span_duration_seconds", "cln_otlp_span_errors_total",
                    "cln_otlp_span_metrics_folded_total")
    plain = [k for k in samples if not k[0].startswith(span_metrics)]
    check("%d series" % (len(want) + 5), len(plain) == len(want) + 5, len(plain))
    # The span metrics (tests/spanmetrics checks their values): every span counted once.
    check("the span histograms count the %d spans" % N_REAL,
          sum(v for (n, _), v in samples.items()
              if n == "cln_otlp_span_duration_seconds_count") == N_REAL)
    for label in ("span_name", "rpc_method"):
        check("nothing folded by %s" % label,
              sample(samples, "cln_otlp_span_metrics_folded_total", label=label) == 0)

    for path in ("/", "/metricsx", "/metrics/", "/favicon.ico"):
        status, _, body = http_get(port, path)
        check("GET %s: 404" % path, status == 404 and "/metrics" in body, (status, body))
    status, headers, _ = http_get(port, method="POST")
    check("POST /metrics: 405, Allow GET", status == 405 and "GET" in headers.get("allow", ""),
          (status, headers.get("allow")))
    status, headers, body = http_get(port, method="HEAD")
    check("HEAD /metrics: 200, no body", status == 200 and body == "", (status, body[:50]))

    # Requests in a row from one client: each answered, on the one connection (kept alive).
    # A connection the server does not keep must be announced (Connection: close, and
    # http.client opens a new one): one dropped unsaid fails the next request.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    socks = set()
    for _ in range(3):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        check("a request in a row answered", r.status == 200 and
              b"cln_otlp_spans_exported_total" in r.read())
        check("kept alive", r.getheader("connection") is None, r.getheaders())
        socks.add(id(conn.sock))
    check("one connection for the 3 requests", len(socks) == 1, socks)
    conn.close()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        check("Connection: close asked: answered, said, and closed",
              got.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close\r\n" in got,
              got[:300])

    # A client that sends half a request and stalls, and one that sends nothing: the others
    # are answered while they wait (the stalled request is still open, unanswered, after
    # the scrapes), and the stalled one is answered once it ends its request.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stall, \
            socket.create_connection(("127.0.0.1", port)):
        stall.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        for _ in range(20):
            scrape(port)
        check("20 scrapes answered while a client stalls mid-request",
              not select.select([stall], [], [], 0)[0])
        stall.sendall(b"\r\n")
        first = stall.recv(4096)
        check("the stalled client answered once its request is whole",
              first.startswith(b"HTTP/1.1 200"), first[:100])
    check("stdout holds the %d spans" % N_REAL, len(d.spans()) == N_REAL)
    check("exit line: exported=%d" % N_REAL,
          "exported=%d" % N_REAL in done_line(d.stopped().err()))


@test("metrics_slow_clients")
def metrics_slow_clients(tmp):
    """More half-open connections than the server keeps (16): a scrape is still answered
    while they are open, the idlest are closed for it and counted; a silent connection is
    closed at its deadline and counted."""
    port = free_port()
    d = follow(tmp, "--metrics-listen", "127.0.0.1:%d" % port, "--stats-interval", "0")
    d.wait_err("serving http://127.0.0.1:%d/metrics" % port)
    n_slow, cap = 20, 16
    slow = []
    try:
        for i in range(n_slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # half a request
            slow.append(s)
        samples, _ = scrape(port)  # http.client's timeout (5 s) bounds the wait
        newest = slow[-(cap - 1):]
        check("the %d newest half-open connections still open after the scrape" % len(newest),
              not select.select(newest, [], [], 0)[0])
        evicted = sample(samples, "cln_otlp_metrics_connections_closed_total", reason="evicted")
        check("the idlest closed for the newcomers, counted", evicted == n_slow + 1 - cap,
              evicted)
        oldest = slow[0]
        check("the oldest was closed for room", oldest.recv(1) == b"")
    finally:
        for s in slow:
            s.close()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        check("a silent connection is closed at its deadline", s.recv(1) == b"")
    samples, _ = scrape(port)
    check("the deadline counted", sample(samples, "cln_otlp_metrics_connections_closed_total",
                                         reason="timeout") >= 1)
    line = done_line(d.stopped().err())
    check("the stats line has the closes", "metrics_evicted=%d" % (n_slow + 1 - cap) in line,
          line)


@test("metrics_addrs")
def metrics_addrs(tmp):
    """localhost, 0.0.0.0 and [::1] listen where they say."""
    cases = [("localhost", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "127.0.0.1")]
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        cases.append(("[::1]", "::1"))
    except OSError:
        print("note: no IPv6 loopback here: [::1] not tried")
    for listen, connect in cases:
        port = free_port()
        d = follow(tmp, "--metrics-listen", "%s:%d" % (listen, port), "--batch-delay", "100",
                   name="addr-%s" % listen.strip("[]").replace(":", "_"))
        d.wait_err("serving http://")
        wait_metric(port, "cln_otlp_spans_received_total", N_REAL, host=connect, source="file")
        check("%s:%d answers on %s" % (listen, port, connect),
              http_get(port, host=connect)[0] == 200)
        d.stopped()


@test("metrics_export")
def metrics_export(tmp):
    """Batches, retries and export latency as the mock collector makes them."""
    port = free_port()
    # Batch 1 (300 spans, sent when full) waits 0.4 s for its answer; batch 2 (the other 285,
    # sent after the batch delay, long enough that a slow read cannot cut a third) gets a 503,
    # then a 200 on its retry.
    with Collector(tmp, script="delay=0.4,503,200") as mc:
        d = Proc([A.cln_otlp, "--file", CAPTURE, "--follow", "--endpoint", mc.url(), "--batch-size",
                  "300", "--batch-delay", "1000", "--max-inflight", "1", "--metrics-listen",
                  "127.0.0.1:%d" % port], tmp, "cln-otlp")
        d.wait_err("serving http://")
        samples, _ = wait_metric(port, "cln_otlp_spans_exported_total", N_REAL)
        line = done_line(d.stopped().err())
        check("the collector got %d spans" % N_REAL, len(mc.records()) == N_REAL)
    got = {k: sample(samples, "cln_otlp_" + k) for k in (
        "batches_sent_total", "export_retries_total", "batches_failed_total",
        "export_latency_seconds_count", "export_latency_seconds_sum",
        "export_latency_max_seconds")}
    check("3 answers (200 after 0.4 s, 503, 200)", got["batches_sent_total"] == 3, got)
    check("1 retry", got["export_retries_total"] == 1, got)
    check("no batch given up", got["batches_failed_total"] == 0, got)
    check("latency count = answers", got["export_latency_seconds_count"] == 3, got)
    s, mx = got["export_latency_seconds_sum"], got["export_latency_max_seconds"]
    # the upper bounds only tell seconds from milliseconds, not a slow machine
    check("latency sum and max: one answer took 0.4 s (in seconds)",
          0.4 <= mx < 60 and mx <= s < 3 * 60, got)
    check_tokens(line, "batches=3", "retries=1", "failed_batches=0", "exported=%d" % N_REAL)
    lat = {t.split("=")[0]: float(t.split("=")[1]) for t in line if t.startswith("latency_")}
    check("latency in the line", lat.get("latency_max_ms", 0) >= 400 and
          lat.get("latency_avg_ms", 0) >= 400 / 3, line)


@test("listen_errors")
def listen_errors(tmp):
    """A bad --metrics-listen stops start-up with exit 2 and says what to do."""
    base = [A.cln_otlp, "--file", CAPTURE, "--exporter", "stdout", "--metrics-listen"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = "127.0.0.1:%d" % holder.getsockname()[1]
        expect_start_error(base + [busy], [busy, "already in use", "another port"])
    expect_start_error(base + ["192.0.2.1:9464"],
                       ["192.0.2.1:9464", "no interface of this machine has that address"])
    expect_start_error(base + ["no-such-host.invalid:9464"],
                       ["no-such-host.invalid", "cannot resolve"])
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:9464", ":9464"):
        expect_start_error(base + [bad], ["--metrics-listen", "ADDR:PORT"])


@test("sigusr1")
def sigusr1(tmp):
    """SIGUSR1 prints the stats line while running (no periodic line: each comes from its
    signal), and the process goes on."""
    d = follow(tmp, "--batch-delay", "100", "--stats-interval", "0")
    d.wait(lambda: len(d.spans()) >= N_REAL, 30, "the %d spans exported" % N_REAL)
    for k in (1, 2):
        n = d.err().count("info: stats: ")
        check("%d stats lines before SIGUSR1 number %d" % (k - 1, k), n == k - 1, n)
        d.proc.send_signal(signal.SIGUSR1)
        d.wait_err("info: stats: ", timeout=30, count=k)
    check("SIGUSR1 did not stop the process", d.running())
    check_tokens(done_line(d.err(), "stats"), "received=%d" % N_REAL, "file=%d" % N_REAL,
                 "queued=%d" % N_REAL, "exported=%d" % N_REAL, "rejected=0", "dropped=0",
                 "in_queue=0")
    d.stopped()


@test("exit_line")
def exit_line(tmp):
    """The line at exit has every counter, rejects and drops by reason included."""
    trace = os.path.join(tmp, "trace")
    shutil.copy(CAPTURE, trace)
    with open(trace, "a") as f:
        f.write('span_emit 1111111111111111 [{"id":"zz","name":"x","timestamp":1,"duration":1,'
                '"localEndpoint":{"serviceName":"lightningd"},"tags":{},'
                '"traceId":"0123456789abcdef0123456789abcdef"}]\n')
        f.write("span_emit 2222222222222222 []\n")
    p = run([A.cln_otlp, "--file", trace, "--exporter", "stdout"])
    check("exit 0", p.returncode == 0, p.returncode)
    check("one done line", len([ln for ln in p.stderr.splitlines() if "info: done: " in ln]) == 1)
    check_tokens(done_line(p.stderr), "received=%d" % (N_REAL + 2), "file=%d" % (N_REAL + 2),
                 "rejected=2", "rej_bad_id=1", "rej_empty=1", "queued=%d" % N_REAL,
                 "exported=%d" % N_REAL, "dropped=0", "retries=0", "failed_batches=0",
                 "ringbuf_lost=0", "in_queue=0", "latency_avg_ms=0.0")

    # Nothing listens: both batches are retried until the budget runs out, then dropped.
    p = run([A.cln_otlp, "--file", trace, "--endpoint", "http://127.0.0.1:%d" % free_port(),
             "--retry-max-elapsed", "800"])
    check("spans lost: exit 1", p.returncode == 1, p.returncode)
    line = done_line(p.stderr)
    check_tokens(line, "exported=0", "dropped=%d" % N_REAL, "drop_retry_expired=%d" % N_REAL,
                 "failed_batches=2", "batches=0", "in_queue=0")
    retries = [int(t.split("=")[1]) for t in line if t.startswith("retries=")]
    check("each batch retried at least once", retries and retries[0] >= 2, line)


# ---- privileges -------------------------------------------------------------------------


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def caps(st, key):
    return {b for b in range(64) if int(st[key], 16) >> b & 1}


def names(capset):
    return sorted(CAP_NAMES.get(c, str(c)) for c in capset)


def default_user():
    """Whom cln-otlp runs as when started as root without --user (src/privs.h)."""
    return daemon_user().pw_name
def as_daemon(pid, argv):
    """Run argv with the user, groups and (empty) capabilities of the running process pid:
    what that process may do to files."""
    st = proc_status(pid)
    check("the daemon holds no capability", caps(st, "CapEff") == set() == caps(st, "CapPrm"),
          st)
    groups = ",".join(st["Groups"].split())
    return run(["setpriv", "--reuid", st["Uid"].split()[0], "--regid", st["Gid"].split()[0],
                *(["--groups", groups] if groups else ["--clear-groups"]),
                "--inh-caps=-all", "--bounding-set=-all", "--", *argv])


def check_status(d, want_caps, user=None):
    """Capabilities and user of the running daemon, once it says privileges were dropped."""
    d.wait_err("privileges:")
    st = proc_status(d.pid)
    for key in ("CapEff", "CapPrm", "CapBnd"):
        got = caps(st, key)
        check("%s %s, want %s" % (key, names(got), " or ".join(map(str, map(names, want_caps)))),
              got in want_caps)
    check("effective, permitted and bounding agree",
          caps(st, "CapEff") == caps(st, "CapPrm") == caps(st, "CapBnd"), st)
    check("inheritable and ambient empty", caps(st, "CapInh") == set() == caps(st, "CapAmb"), st)
    check("NoNewPrivs 1", st["NoNewPrivs"] == "1", st["NoNewPrivs"])
    user = user or default_user()
    if user != "root":
        pw = pwd.getpwnam(user)
        check("Uid %d" % pw.pw_uid, st["Uid"] == "\t".join([str(pw.pw_uid)] * 4), st["Uid"])
        check("Gid %d" % pw.pw_gid, st["Gid"] == "\t".join([str(pw.pw_gid)] * 4), st["Gid"])
        check("%s's groups" % user, sorted(int(g) for g in st["Groups"].split()) ==
              sorted(set(os.getgrouplist(user, pw.pw_gid))), st["Groups"])
    else:
        check("--user root: uid 0", st["Uid"] == "0\t0\t0\t0", st["Uid"])
    kept = caps(st, "CapEff")
    for c in kept:
        check("the log says %s was kept" % CAP_NAMES[c], CAP_NAMES[c] in d.err())
    return kept


@test("caps_file")
def caps_file(tmp):
    """With files only, every capability is gone (bounding set included), no_new_privs."""
    need_root()
    d = follow(tmp, "--batch-delay", "100")
    check_status(d, [set()])
    check("an info line says no capability is kept", "no capability kept" in d.err())
    d.stopped()


def fire(binary, n, seed, tmp, tag):
    path = os.path.join(tmp, "fired-%s.log" % tag)
    check("emitter exited 0", run([binary, "--synthetic", str(n), "--seed", str(seed), "--log",
                                   path]).returncode == 0)
    with open(path) as f:
        return [ln.split(" ", 1)[0] for ln in f if ln.strip() and not ln.startswith("span_")]


def usdt_run(tmp, user=None):
    """Attach to a lightningd, check what is left, then capture before and after an upgrade
    (a new inode: attached again with only the kept capabilities)."""
    need_root()
    check("cln-emitter was built (needs <sys/sdt.h>: systemtap-sdt-dev)", A.emitter)
    # Unreadable to anyone but root: after --user, only CAP_DAC_READ_SEARCH reads it.
    os.chmod(tmp, 0o700)
    ld = os.path.join(tmp, "bin", "lightningd")
    install(A.emitter, ld)
    os.chmod(os.path.dirname(ld), 0o700)
    d = Proc([A.cln_otlp, "--lightningd", ld, "--no-plugins", "--exporter", "stdout",
              "--batch-delay", "100", "-v", *(["--user", user] if user else [])], tmp, "cln-otlp")
    kept = check_status(d, USDT_KEEP, user)
    fired = fire(ld, 20, 1, tmp, "before")
    before = os.stat(ld).st_ino
    install(A.emitter, ld)
    check("a new inode", os.stat(ld).st_ino != before)
    d.wait_err("was replaced", timeout=20)
    check("re-attached", "attaching to it failed" not in d.err())
    fired += fire(ld, 30, 2, tmp, "after")
    check("capabilities unchanged while running", caps(proc_status(d.pid), "CapEff") == kept)
    d.stopped()
    got = [sp["spanId"] for _, sp in d.spans()]
    check("20 spans before and 30 after the upgrade captured with only %s" % names(kept),
          sorted(got) == sorted(fired), "fired %d, %d arrived" % (len(fired), len(got)))


@test("caps_usdt")
def caps_usdt(tmp):
    """With the eBPF source, only what re-attaching needs is kept."""
    usdt_run(tmp)


@test("user_usdt")
def user_usdt(tmp):
    """The same as --user nobody."""
    usdt_run(tmp, user="nobody")


@test("user_file")
def user_file(tmp):
    """--user nobody with files: uid/gid/groups changed, no capability, /metrics bound as
    root on a port below 1024 and served as nobody; every span exported."""
    need_root()
    port = free_port(below=1024)
    d = follow(tmp, "--batch-delay", "100", "--user", "nobody", "--metrics-listen",
               "127.0.0.1:%d" % port)
    check_status(d, [set()], user="nobody")
    wait_metric(port, "cln_otlp_spans_exported_total", N_REAL)
    d.stopped()
    check("stdout has the %d spans" % N_REAL, len(d.spans()) == N_REAL)


@test("user_errors")
def user_errors(tmp):
    """--user mistakes and a low port without root stop start-up with exit 2."""
    need_root()
    trace = os.path.join(tmp, "trace")
    shutil.copy(CAPTURE, trace)
    os.chmod(tmp, 0o755)
    os.chmod(trace, 0o644)
    base = [A.cln_otlp, "--file", trace, "--exporter", "stdout"]
    expect_start_error(base + ["--user", "no-such-user-here"],
                       ["--user", "no user named \"no-such-user-here\""])
    expect_start_error(base + ["--user", "root"], ["--user root", "cannot switch user",
                                                    "run cln-otlp as root"], user="nobody")
    expect_start_error(base + ["--metrics-listen", "127.0.0.1:%d" % free_port(below=1024)],
                       ["permission denied", "below 1024", "above 1023"], user="nobody")


@test("default_user")
def default_user_test(tmp):
    """Started as root without --user: runs as cln-otlp or nobody, and cannot write where
    only root may (a root-owned 0755 directory); --user root stays root and can."""
    need_root()
    guarded = os.path.join(tmp, "root-only")
    os.mkdir(guarded, 0o755)
    os.chmod(tmp, 0o755)
    touch = ["/usr/bin/python3", "-c", "import sys; open(sys.argv[1], 'x').close()"]
    d = follow(tmp, "--batch-delay", "100")
    check_status(d, [set()])
    st = proc_status(d.pid)
    check("a non-zero uid", st["Uid"].split()[0] != "0", st["Uid"])
    check("the log names the default user", "running as %s" % default_user() in d.err() and
          "the default when started as root" in d.err(), d.err())
    p = as_daemon(d.pid, touch + [os.path.join(guarded, "by-default")])
    check("as the daemon: cannot create a file in a root-owned 0755 directory",
          p.returncode != 0 and "Permission denied" in p.stderr, p.stderr)
    d.stopped()
    check("every span exported", len(d.spans()) == N_REAL, len(d.spans()))

    d = follow(tmp, "--batch-delay", "100", "--user", "root", name="as-root")
    check_status(d, [set()], user="root")
    check("a warning says it stays root", "warning: privileges: staying root (--user root)"
          in d.err(), d.err())
    p = as_daemon(d.pid, touch + [os.path.join(guarded, "as-root")])
    check("--user root: it can (what the default prevents)", p.returncode == 0 and
          os.path.exists(os.path.join(guarded, "as-root")), p.stderr)
    d.stopped()


@test("unreadable_after_switch")
def unreadable_after_switch(tmp):
    """A TLS file the default user cannot read (libcurl reads it at each connection) stops
    start-up with exit 2, saying what to do, rather than every export failing later."""
    need_root()
    ca = os.path.join(tmp, "ca.pem")  # tmp is root's, mode 0700
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
    os.chmod(ca, 0o600)
    base = [A.cln_otlp, "--file", CAPTURE, "--endpoint", "https://127.0.0.1:1"]
    for flag in ("--ca-cert", "--client-cert", "--client-key"):
        argv = base + [flag, ca] + (["--client-cert", ca] if flag == "--client-key" else [])
        expect_start_error(argv, ["%s %s: cannot be read as %s" % (
            "--client-cert" if flag == "--client-key" else flag, ca, default_user()),
            "Permission denied", "chown or chmod", "--user"])
    p = run([A.cln_otlp, "--file", CAPTURE, "--endpoint", "http://127.0.0.1:1", "--ca-cert", ca,
             "--retry-max-elapsed", "0"], timeout=60)
    check("plain http uses no TLS file: the run starts", "info: done: " in p.stderr and
          "cannot be read as" not in p.stderr, p.stderr)
    os.chmod(tmp, 0o755)
    os.chmod(ca, 0o644)
    p = run(base + ["--ca-cert", ca, "--retry-max-elapsed", "0"], timeout=60)
    check("readable by that user: the run starts", "info: done: " in p.stderr, p.stderr)


@test("no_reattach")
def no_reattach(tmp):
    """With --pid, once the process has exited nothing can be attached again: every
    capability is dropped, the user stays the default one, what was fired is exported."""
    need_root()
    check("cln-emitter was built (needs <sys/sdt.h>: systemtap-sdt-dev)", A.emitter)
    ld = os.path.join(tmp, "bin", "lightningd")
    install(A.emitter, ld)
    log_path = os.path.join(tmp, "fired.log")
    e = start_emitter(tmp, ld, "--synthetic", "25", "--seed", "7", "--log", log_path)
    d = Proc([A.cln_otlp, "--lightningd", ld, "--pid", str(e.pid), "--no-plugins",
              "--exporter", "stdout", "--batch-delay", "100"], tmp, "cln-otlp")
    kept = check_status(d, USDT_KEEP)
    check("capabilities kept while the process runs", CAP_SYS_ADMIN in kept or CAP_BPF in kept)
    release(e)
    d.wait_err("nothing will be attached again: dropped every capability")
    st = proc_status(d.pid)
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        check("%s empty after the --pid process exited" % key, caps(st, key) == set(), st[key])
    check("still the default user", st["Uid"].split()[0] == str(pwd.getpwnam(
        default_user()).pw_uid), st["Uid"])
    d.stopped()
    with open(log_path) as f:
        fired = [ln.split(" ", 1)[0] for ln in f if ln.strip() and not ln.startswith("span_")]
    got = [sp["spanId"] for _, sp in d.spans()]
    check("the 25 spans fired were exported", sorted(got) == sorted(fired),
          "fired %d, %d arrived" % (len(fired), len(got)))


main([NAME])
