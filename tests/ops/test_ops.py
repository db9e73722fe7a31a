#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Operations tests through the real binary: the /metrics endpoint, the stats line, and the
privileges left once start-up is over.

    test_ops.py TEST --cln-otlp PATH --data DIR [--emitter PATH] [--mock-dir DIR]

Tests named caps_*, user_* need root (they read capabilities, switch user, load BPF
programs). Without root they skip (exit 77), except with CI=true, where they fail.
/metrics is parsed twice: by prometheus_client's parser (Debian python3-prometheus-client),
an independent reading of the format, and by the strict line checks below.
"""
import argparse
import grp
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REAL_TRACE = "cln-v26-startup/lightningd-trace.32274"
N_REAL = 585  # spans in REAL_TRACE
N_EVENTS = 6  # suspend/resume events in REAL_TRACE

# Capability numbers (linux/capability.h).
CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 2, 21, 38, 39
# What privs may keep with the eBPF source: the kernel decides which (see src/privs.c).
USDT_KEEP = ({CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH}, {CAP_PERFMON, CAP_BPF, CAP_DAC_READ_SEARCH})
CAP_NAMES = {CAP_DAC_READ_SEARCH: "cap_dac_read_search", CAP_SYS_ADMIN: "cap_sys_admin",
             CAP_PERFMON: "cap_perfmon", CAP_BPF: "cap_bpf"}

# Every family /metrics serves, with its type.
FAMILIES = {
    "cln_otlp_build_info": "gauge",
    "cln_otlp_start_time_seconds": "gauge",
    "cln_otlp_spans_received_total": "counter",
    "cln_otlp_spans_rejected_total": "counter",
    "cln_otlp_spans_recovered_total": "counter",
    "cln_otlp_spans_truncated_total": "counter",
    "cln_otlp_ringbuf_lost_total": "counter",
    "cln_otlp_span_events_total": "counter",
    "cln_otlp_spans_queued_total": "counter",
    "cln_otlp_spans_dropped_total": "counter",
    "cln_otlp_spans_exported_total": "counter",
    "cln_otlp_spans_partial_rejected_total": "counter",
    "cln_otlp_batches_sent_total": "counter",
    "cln_otlp_export_retries_total": "counter",
    "cln_otlp_batches_failed_total": "counter",
    "cln_otlp_export_latency_seconds": "summary",
    "cln_otlp_export_latency_max_seconds": "gauge",
    "cln_otlp_queue_spans": "gauge",
    "cln_otlp_queue_bytes": "gauge",
}
REJECT_REASONS = ("too_long", "empty", "invalid_json", "missing_field", "bad_id", "bad_parent_id",
                  "bad_trace_id", "bad_time", "bad_field", "too_many_tags", "nomem")
DROP_REASONS = ("queue_full", "retry_expired", "not_retryable", "shutdown", "encode",
                "truncated_orphan")
LINE_KEYS = ("received", "rejected", "recovered", "ringbuf_lost", "queued", "exported", "dropped",
             "batches", "retries", "failed_batches", "latency_avg_ms", "latency_max_ms",
             "in_queue")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def log(msg):
    print(msg, flush=True)


# ---- processes -------------------------------------------------------------------------


class Daemon:
    """cln-otlp in the background, its stdout and stderr in files."""

    def __init__(self, argv, tmp, name="cln-otlp", user=None):
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        log("$ " + " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL, user=user)
        self.pid = self.proc.pid

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def wait_for(self, needle, timeout=30, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            if sum(needle in line for line in text.splitlines()) >= count:
                return text
            if self.proc.poll() is not None:
                raise Fail("cln-otlp exited (%d) before '%s':\n%s"
                           % (self.proc.returncode, needle, text))
            time.sleep(0.05)
        raise Fail("no '%s' from cln-otlp within %d s:\n%s" % (needle, timeout, self.stderr()))

    def stop(self, want_rc=0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("cln-otlp did not stop within 60 s of SIGTERM")
        self.out.close()
        self.err.close()
        err = self.stderr()
        sys.stdout.write("".join("  | " + l + "\n" for l in err.splitlines()[-6:]))
        check(rc == want_rc, "cln-otlp exited with %d, want %d:\n%s" % (rc, want_rc, err))
        return err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(argv, user=None, timeout=60):
    log("$ " + " ".join(argv))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, user=user, stdin=subprocess.DEVNULL)
    sys.stdout.write("".join("  | " + l + "\n" for l in p.stderr.splitlines()[-6:]))
    return p


def expect_start_error(argv, needles, user=None):
    """cln-otlp refuses to start: exit 2, a message with every needle, nothing exported."""
    t0 = time.monotonic()
    p = run(argv, user=user)
    check(p.returncode == 2, "want exit 2, got %d:\n%s" % (p.returncode, p.stderr))
    for n in needles:
        check(n in p.stderr, "the message does not say %r:\n%s" % (n, p.stderr))
    check(p.stdout == "", "something was exported before failing: %.200r" % p.stdout)
    check(time.monotonic() - t0 < 20, "took %.1f s to fail" % (time.monotonic() - t0))


def free_port(host="127.0.0.1", family=socket.AF_INET, below=None):
    if below:
        for port in range(below - 1, 512, -1):
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
            finally:
                s.close()
        raise Fail("no free port below %d" % below)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def otlp_spans(text):
    """Span ids in OTLP/JSON lines (the stdout exporter)."""
    import json
    ids = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                ids += [sp["spanId"] for sp in ss.get("spans", [])]
    return ids


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
    check(text.endswith("\n"), "the text does not end with a newline")
    family, ftype, seen, series = None, None, set(), set()
    lines = text.split("\n")[:-1]
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(name not in seen, "family %s twice" % name)
            check(len(line.split(" ", 3)) == 4 and line.split(" ", 3)[3].strip(),
                  "HELP without text: %s" % line)
            check(i + 1 < len(lines) and lines[i + 1].startswith("# TYPE %s " % name),
                  "HELP %s not followed by its TYPE" % name)
            seen.add(name)
            family = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, ftype = line.split(" ")
            check(name == family, "TYPE %s without HELP" % name)
            check(ftype in ("counter", "gauge", "summary"), "type %s" % ftype)
            check(ftype != "counter" or name.endswith("_total"),
                  "counter %s does not end in _total" % name)
            continue
        check(not line.startswith("#"), "unexpected comment %r" % line)
        check(family is not None, "sample before any family: %s" % line)
        key, _, value = line.rpartition(" ")
        float(value)
        base = key.split("{")[0]
        ok = base == family or (ftype == "summary" and base in (family + "_sum",
                                                                  family + "_count"))
        check(ok, "sample %s outside its family %s" % (line, family))
        check(base.startswith("cln_otlp_"), "not prefixed: %s" % line)
        check(key not in series, "series twice: %s" % key)
        series.add(key)
    return seen


def parse_metrics(text):
    """{(sample name, ((label, value), ...)): value} and {family: type}, read by
    prometheus_client (which drops _total from counter family names)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise Fail("python3-prometheus-client is needed (apt-get install "
                   "python3-prometheus-client)")
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        types[name] = fam.type
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    families = strict_lines(text)
    check(set(types) == families, "parsers disagree on the families: %r vs %r"
          % (sorted(types), sorted(families)))
    return samples, types


def sample(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    check(key in samples, "no sample %s%r" % (name, labels or ""))
    return samples[key]


def scrape(port, host="127.0.0.1"):
    status, headers, body = http_get(port, host=host)
    check(status == 200, "GET /metrics: %d %s" % (status, body[:200]))
    ctype = headers.get("content-type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "Content-Type %r" % ctype)
    return parse_metrics(body)


def wait_metric(port, name, want, timeout=15, host="127.0.0.1", **labels):
    deadline = time.monotonic() + timeout
    while True:
        samples, types = scrape(port, host)
        got = sample(samples, name, **labels)
        if got == want:
            return samples, types
        check(time.monotonic() < deadline, "%s%r is %r after %d s, want %r"
              % (name, labels or "", got, timeout, want))
        time.sleep(0.1)


def version_of(args):
    p = run([args.cln_otlp, "--version"])
    return p.stdout.split()[-1]


def t_metrics(args, tmp):
    """/metrics while a file is followed: names, types and values; 404/405; keep-alive; a
    stalled client does not hold the others."""
    port = free_port()
    trace = os.path.join(args.data, REAL_TRACE)
    t0 = time.time()
    d = Daemon([args.cln_otlp, "--file", trace, "--follow", "--exporter", "stdout",
                "--metrics-listen", "127.0.0.1:%d" % port, "--batch-delay", "300",
                "--stats-interval", "0"], tmp)
    try:
        d.wait_for("serving http://127.0.0.1:%d/metrics" % port)
        samples, types = wait_metric(port, "cln_otlp_spans_exported_total", N_REAL)
        t1 = time.time()
        check(types == FAMILIES, "families and types:\n got  %r\n want %r"
              % (sorted(types.items()), sorted(FAMILIES.items())))
        want = {
            ("cln_otlp_spans_received_total", ("source", "file")): N_REAL,
            ("cln_otlp_spans_received_total", ("source", "usdt")): 0,
            ("cln_otlp_spans_received_total", ("source", "socket")): 0,
            ("cln_otlp_spans_queued_total", ()): N_REAL,
            ("cln_otlp_spans_exported_total", ()): N_REAL,
            ("cln_otlp_span_events_total", ()): N_EVENTS,
            ("cln_otlp_spans_recovered_total", ()): 0,
            ("cln_otlp_spans_truncated_total", ()): 0,
            ("cln_otlp_ringbuf_lost_total", ()): 0,
            ("cln_otlp_spans_partial_rejected_total", ()): 0,
            ("cln_otlp_export_retries_total", ()): 0,
            ("cln_otlp_batches_failed_total", ()): 0,
            ("cln_otlp_queue_spans", ()): 0,
            ("cln_otlp_queue_bytes", ()): 0,
            ("cln_otlp_build_info", ("version", version_of(args))): 1,
        }
        for r in REJECT_REASONS:
            want[("cln_otlp_spans_rejected_total", ("reason", r))] = 0
        for r in DROP_REASONS:
            want[("cln_otlp_spans_dropped_total", ("reason", r))] = 0
        for (name, label), value in want.items():
            labels = dict([label]) if label else {}
            got = sample(samples, name, **labels)
            check(got == value, "%s%r = %r, want %r" % (name, labels, got, value))
        batches = sample(samples, "cln_otlp_batches_sent_total")
        # 585 spans, batches of 512 at most: 2 or more (the batch delay may cut earlier).
        check(batches >= 2, "batches_sent %r" % batches)
        check(sample(samples, "cln_otlp_export_latency_seconds_count") == batches,
              "the latency count is the batches answered")
        start = sample(samples, "cln_otlp_start_time_seconds")
        check(t0 - 1 <= start <= t1, "start time %r not in [%r, %r]" % (start, t0, t1))
        n_series = len(samples)
        check(n_series == len(want) + 5, "%d series, want %d" % (n_series, len(want) + 5))
        log("ok: %d families, %d series; received file=%d exported=%d in %d batches"
            % (len(types), n_series, N_REAL, N_REAL, batches))

        for path in ("/", "/metricsx", "/metrics/", "/favicon.ico"):
            status, _, body = http_get(port, path)
            check(status == 404 and "/metrics" in body, "GET %s: %d %r" % (path, status, body))
        status, headers, _ = http_get(port, method="POST")
        check(status == 405 and "GET" in headers.get("allow", ""),
              "POST /metrics: %d, Allow %r" % (status, headers.get("allow")))
        status, headers, body = http_get(port, method="HEAD")
        check(status == 200 and body == "", "HEAD /metrics: %d %r" % (status, body[:50]))
        log("ok: 404 elsewhere, 405 for POST, HEAD answered")

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        socks = set()
        for _ in range(3):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            check(r.status == 200 and b"cln_otlp_spans_exported_total" in r.read(),
                  "keep-alive request failed")
            socks.add(id(conn.sock))
        conn.close()
        check(len(socks) == 1, "the connection was not kept alive")
        log("ok: three requests on one kept-alive connection")

        # A client that sends half a request and stalls; another one is answered at once.
        stall = socket.create_connection(("127.0.0.1", port))
        stall.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        idle = socket.create_connection(("127.0.0.1", port))
        t = time.monotonic()
        for _ in range(20):
            scrape(port)
        took = time.monotonic() - t
        check(took < 3, "20 scrapes next to a stalled client took %.2f s" % took)
        stall.close()
        idle.close()
        log("ok: 20 scrapes in %.0f ms beside a stalled and an idle client" % (took * 1000))
        check(len(otlp_spans(d.stdout())) == N_REAL, "stdout does not hold the %d spans" % N_REAL)
    finally:
        err = d.stop()
    done = [l for l in err.splitlines() if "done:" in l]
    check(done and "exported=%d" % N_REAL in done[-1].split(), "exit line: %r" % done)


def t_metrics_addrs(args, tmp):
    """localhost, 0.0.0.0 and [::1] listen where they say."""
    trace = os.path.join(args.data, REAL_TRACE)
    cases = [("localhost", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "127.0.0.1")]
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        cases.append(("[::1]", "::1"))
    except OSError:
        log("note: no IPv6 loopback here: [::1] not tried")
    for listen, connect in cases:
        port = free_port()
        d = Daemon([args.cln_otlp, "--file", trace, "--follow", "--exporter", "stdout",
                    "--metrics-listen", "%s:%d" % (listen, port), "--batch-delay", "100"], tmp,
                   name="addr-%s" % listen.strip("[]").replace(":", "_"))
        try:
            d.wait_for("serving http://")
            wait_metric(port, "cln_otlp_spans_received_total", N_REAL, host=connect,
                        source="file")
            status, _, _ = http_get(port, host=connect)
            check(status == 200, "%s:%d via %s: %d" % (listen, port, connect, status))
        finally:
            d.stop()
        log("ok: --metrics-listen %s:%d answers on %s" % (listen, port, connect))


def t_metrics_export(args, tmp):
    """Batches, retries and export latency as the mock collector makes them."""
    if not args.mock_dir:
        raise Fail("the mock collector (tests/collector) is not available")
    sys.path.insert(0, args.mock_dir)
    from mockcoll import MockCollector

    trace = os.path.join(args.data, REAL_TRACE)
    port = free_port()
    # Batch 1 (300 spans, sent when full) waits 0.4 s for its answer; batch 2 (the other 285,
    # sent after the batch delay, long enough that a slow read cannot cut a third) gets a 503,
    # then a 200 on its retry.
    with MockCollector(os.path.join(tmp, "mock"), http=True,
                       script="delay=0.4,503,200") as mc:
        d = Daemon([args.cln_otlp, "--file", trace, "--follow", "--endpoint", mc.http_url(""),
                    "--batch-size", "300", "--batch-delay", "1000", "--max-inflight", "1",
                    "--metrics-listen", "127.0.0.1:%d" % port], tmp)
        try:
            d.wait_for("serving http://")
            samples, _ = wait_metric(port, "cln_otlp_spans_exported_total", N_REAL, timeout=30)
        finally:
            err = d.stop()
        check(len(mc.records()) == N_REAL, "the collector got %d spans" % len(mc.records()))
    got = {k: sample(samples, k) for k in (
        "cln_otlp_batches_sent_total", "cln_otlp_export_retries_total",
        "cln_otlp_batches_failed_total", "cln_otlp_export_latency_seconds_count",
        "cln_otlp_export_latency_seconds_sum", "cln_otlp_export_latency_max_seconds")}
    log("  metrics: %r" % got)
    check(got["cln_otlp_batches_sent_total"] == 3, "3 answers (200 after 0.4 s, 503, 200)")
    check(got["cln_otlp_export_retries_total"] == 1, "1 retry")
    check(got["cln_otlp_batches_failed_total"] == 0, "no batch given up")
    check(got["cln_otlp_export_latency_seconds_count"] == 3, "latency count = answers")
    s, mx = got["cln_otlp_export_latency_seconds_sum"], got["cln_otlp_export_latency_max_seconds"]
    check(0.4 <= mx < 5 and mx <= s < 10, "latency sum %r, max %r (one answer took 0.4 s)"
          % (s, mx))
    line = [l for l in err.splitlines() if "done:" in l][-1].split()
    for tok in ("batches=3", "retries=1", "failed_batches=0", "exported=%d" % N_REAL):
        check(tok in line, "exit line lacks %s: %r" % (tok, line))
    avg = [t for t in line if t.startswith("latency_avg_ms=")]
    mxl = [t for t in line if t.startswith("latency_max_ms=")]
    check(avg and mxl and float(mxl[0].split("=")[1]) >= 400
          and float(avg[0].split("=")[1]) >= 400 / 3, "latency in the line: %r %r" % (avg, mxl))
    log("ok: batches, retries and latency (sum %.3f s, max %.3f s) as the collector answered"
        % (s, mx))


def t_listen_errors(args, tmp):
    """A bad --metrics-listen stops start-up with exit 2 and says what to do."""
    trace = os.path.join(args.data, REAL_TRACE)
    base = [args.cln_otlp, "--file", trace, "--exporter", "stdout"]
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    try:
        expect_start_error(base + ["--metrics-listen", "127.0.0.1:%d" % busy],
                           ["127.0.0.1:%d" % busy, "already in use", "another port"])
    finally:
        holder.close()
    expect_start_error(base + ["--metrics-listen", "192.0.2.1:9464"],
                       ["192.0.2.1:9464", "no interface of this machine has that address"])
    expect_start_error(base + ["--metrics-listen", "no-such-host.invalid:9464"],
                       ["no-such-host.invalid", "cannot resolve"])
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:9464", ":9464"):
        expect_start_error(base + ["--metrics-listen", bad], ["--metrics-listen", "ADDR:PORT"])
    log("ok: address in use, foreign address, unknown host and malformed values refused")


def stats_lines(text, when="stats"):
    return [l.split("%s: " % when, 1)[1].split() for l in text.splitlines()
            if "info: %s: " % when in l]


def t_sigusr1(args, tmp):
    """SIGUSR1 prints the stats line at once, and the process goes on."""
    trace = os.path.join(args.data, REAL_TRACE)
    d = Daemon([args.cln_otlp, "--file", trace, "--follow", "--exporter", "stdout",
                "--batch-delay", "100", "--stats-interval", "0"], tmp)
    try:
        deadline = time.monotonic() + 15
        while len(otlp_spans(d.stdout())) < N_REAL:
            check(time.monotonic() < deadline, "the %d spans were not exported" % N_REAL)
            time.sleep(0.05)
        time.sleep(0.2)
        check(not stats_lines(d.stderr()), "a stats line before SIGUSR1")
        for k in (1, 2):
            t = time.monotonic()
            d.proc.send_signal(signal.SIGUSR1)
            d.wait_for("info: stats: ", timeout=5, count=k)
            took = time.monotonic() - t
            check(took < 1, "stats line %.2f s after SIGUSR1" % took)
        check(d.proc.poll() is None, "SIGUSR1 stopped the process")
        line = stats_lines(d.stderr())[-1]
        for tok in ("received=%d" % N_REAL, "file=%d" % N_REAL, "queued=%d" % N_REAL,
                    "exported=%d" % N_REAL, "rejected=0", "dropped=0", "in_queue=0"):
            check(tok in line, "stats line lacks %s: %r" % (tok, line))
        for key in LINE_KEYS:
            check(any(t.startswith(key + "=") for t in line), "no %s in %r" % (key, line))
    finally:
        d.stop()
    log("ok: two SIGUSR1, two stats lines, each within a second; still running")


def t_exit_line(args, tmp):
    """The line at exit has every counter, rejects and drops by reason included."""
    trace = os.path.join(tmp, "trace")
    shutil.copy(os.path.join(args.data, REAL_TRACE), trace)
    with open(trace, "a") as f:
        f.write('span_emit 1111111111111111 [{"id":"zz","name":"x","timestamp":1,"duration":1,'
                '"localEndpoint":{"serviceName":"lightningd"},"tags":{},'
                '"traceId":"0123456789abcdef0123456789abcdef"}]\n')
        f.write("span_emit 2222222222222222 []\n")
    p = run([args.cln_otlp, "--file", trace, "--exporter", "stdout"])
    check(p.returncode == 0, "exit %d" % p.returncode)
    line = stats_lines(p.stderr, "done")
    check(len(line) == 1, "want one done line:\n%s" % p.stderr)
    line = line[0]
    for tok in ("received=%d" % (N_REAL + 2), "file=%d" % (N_REAL + 2), "rejected=2",
                "rej_bad_id=1", "rej_empty=1", "queued=%d" % N_REAL, "exported=%d" % N_REAL,
                "dropped=0", "retries=0", "failed_batches=0", "ringbuf_lost=0", "in_queue=0",
                "latency_avg_ms=0.0"):
        check(tok in line, "done line lacks %s: %r" % (tok, line))
    for key in LINE_KEYS:
        check(any(t.startswith(key + "=") for t in line), "no %s in %r" % (key, line))
    log("ok: %s" % " ".join(line))

    # Nothing listens: both batches are retried until the budget runs out, then dropped.
    port = free_port()
    p = run([args.cln_otlp, "--file", trace, "--endpoint", "http://127.0.0.1:%d" % port,
             "--retry-max-elapsed", "800"])
    check(p.returncode == 1, "spans lost: want exit 1, got %d" % p.returncode)
    line = stats_lines(p.stderr, "done")[-1]
    for tok in ("exported=0", "dropped=%d" % N_REAL, "drop_retry_expired=%d" % N_REAL,
                "failed_batches=2", "batches=0", "in_queue=0"):
        check(tok in line, "done line lacks %s: %r" % (tok, line))
    retries = [int(t.split("=")[1]) for t in line if t.startswith("retries=")]
    check(retries and retries[0] >= 2, "each batch retried at least once: %r" % line)
    log("ok: %s" % " ".join(line))


# ---- privileges -------------------------------------------------------------------------


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def caps(st, key):
    v = int(st[key], 16)
    return {b for b in range(64) if v >> b & 1}


def names(capset):
    return sorted(CAP_NAMES.get(c, str(c)) for c in capset)


def need_root():
    if os.geteuid() != 0:
        if CI:
            raise Fail("needs root, and CI must not skip it")
        raise Skip("needs root")


def check_status(d, want_caps, user=None):
    """Capabilities and user of the running daemon, once it says privileges were dropped."""
    d.wait_for("privileges:")
    st = proc_status(d.pid)
    for key in ("CapEff", "CapPrm", "CapBnd"):
        got = caps(st, key)
        if isinstance(want_caps, tuple):
            check(got in want_caps, "%s %s, want one of %s"
                  % (key, names(got), " or ".join(str(names(w)) for w in want_caps)))
        else:
            check(got == want_caps, "%s %s, want %s" % (key, names(got), names(want_caps)))
    check(caps(st, "CapEff") == caps(st, "CapPrm") == caps(st, "CapBnd"),
          "effective, permitted and bounding differ: %r" % st)
    check(caps(st, "CapInh") == set() and caps(st, "CapAmb") == set(),
          "inheritable/ambient not empty: %s %s" % (st["CapInh"], st["CapAmb"]))
    check(st["NoNewPrivs"] == "1", "NoNewPrivs %s" % st["NoNewPrivs"])
    if user:
        pw = pwd.getpwnam(user)
        ids = "%d\t%d\t%d\t%d"
        check(st["Uid"] == ids % ((pw.pw_uid,) * 4), "Uid %r, want %d" % (st["Uid"], pw.pw_uid))
        check(st["Gid"] == ids % ((pw.pw_gid,) * 4), "Gid %r, want %d" % (st["Gid"], pw.pw_gid))
        groups = sorted(int(g) for g in st["Groups"].split())
        check(groups == sorted(set(os.getgrouplist(user, pw.pw_gid))),
              "Groups %r, want %s's" % (st["Groups"], user))
    else:
        check(st["Uid"].split()[0] == "0", "uid changed without --user: %r" % st["Uid"])
    kept = caps(st, "CapEff")
    err = d.stderr()
    for c in kept:
        check(CAP_NAMES[c] in err, "the log does not say %s was kept:\n%s" % (CAP_NAMES[c], err))
    return kept


def t_caps_file(args, tmp):
    """With files only, every capability is gone (bounding set included), no_new_privs."""
    need_root()
    d = Daemon([args.cln_otlp, "--file", os.path.join(args.data, REAL_TRACE), "--follow",
                "--exporter", "stdout", "--batch-delay", "100"], tmp)
    try:
        check_status(d, set())
        check("no capability kept" in d.stderr(), "no info line about it")
    finally:
        d.stop()
    log("ok: CapEff, CapPrm, CapBnd, CapInh, CapAmb all 0; NoNewPrivs 1; still uid 0")


def install(src, dst):
    """A new inode at @dst, as an upgrade does (copy to a temporary name, rename)."""
    tmp = dst + ".new"
    shutil.copy2(src, tmp)
    os.chmod(tmp, 0o755)
    os.utime(tmp, None)
    os.rename(tmp, dst)


def fire(binary, n, seed, tmp, tag):
    path = os.path.join(tmp, "fired-%s.log" % tag)
    p = run([binary, "--synthetic", str(n), "--seed", str(seed), "--log", path])
    check(p.returncode == 0, "emitter exited with %d" % p.returncode)
    with open(path) as f:
        return [l.split(" ", 1)[0] for l in f if l.strip() and not l.startswith("span_")]


def usdt_run(args, tmp, user=None):
    """Attach to a lightningd, check what is left, then capture before and after an upgrade
    (a new inode: attached again with only the kept capabilities)."""
    need_root()
    if not args.emitter:
        raise Fail("cln-emitter was not built (needs <sys/sdt.h>: systemtap-sdt-dev)")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    # Unreadable to anyone but root: after --user, only CAP_DAC_READ_SEARCH reads it.
    os.chmod(tmp, 0o700)
    os.chmod(bindir, 0o700)
    lightningd = os.path.join(bindir, "lightningd")
    install(args.emitter, lightningd)
    argv = [args.cln_otlp, "--lightningd", lightningd, "--no-plugins", "--exporter", "stdout",
            "--batch-delay", "100", "-v"]
    if user:
        argv += ["--user", user]
    d = Daemon(argv, tmp)
    fired = []
    try:
        kept = check_status(d, USDT_KEEP, user)
        log("ok: kept %s; NoNewPrivs 1%s" % (names(kept), "; running as " + user if user else ""))
        fired += fire(lightningd, 20, 1, tmp, "before")
        before = os.stat(lightningd).st_ino
        install(args.emitter, lightningd)
        check(os.stat(lightningd).st_ino != before, "no new inode")
        d.wait_for("was replaced", timeout=20)
        check("attaching to it failed" not in d.stderr(), "re-attach failed:\n" + d.stderr())
        fired += fire(lightningd, 30, 2, tmp, "after")
        st = proc_status(d.pid)
        check(caps(st, "CapEff") == kept, "capabilities changed while running")
    finally:
        d.stop()
    got = otlp_spans(d.stdout())
    check(sorted(got) == sorted(fired), "fired %d spans (20 before, 30 after the upgrade), "
          "%d arrived" % (len(fired), len(got)))
    log("ok: 20 spans before and 30 after the upgrade captured with only %s" % names(kept))


def t_caps_usdt(args, tmp):
    usdt_run(args, tmp)


def t_user_usdt(args, tmp):
    usdt_run(args, tmp, user="nobody")


def t_user_file(args, tmp):
    """--user nobody with files: uid/gid/groups changed, no capability, /metrics bound as
    root on a port below 1024 and served as nobody; every span exported."""
    need_root()
    port = free_port(below=1024)
    d = Daemon([args.cln_otlp, "--file", os.path.join(args.data, REAL_TRACE), "--follow",
                "--exporter", "stdout", "--batch-delay", "100", "--user", "nobody",
                "--metrics-listen", "127.0.0.1:%d" % port], tmp)
    try:
        check_status(d, set(), user="nobody")
        wait_metric(port, "cln_otlp_spans_exported_total", N_REAL)
    finally:
        d.stop()
    check(len(otlp_spans(d.stdout())) == N_REAL, "stdout lacks the %d spans" % N_REAL)
    log("ok: uid/gid nobody, no capability, /metrics on port %d, %d spans" % (port, N_REAL))


def t_user_errors(args, tmp):
    """--user mistakes and a low port without root stop start-up with exit 2."""
    need_root()
    trace = os.path.join(tmp, "trace")
    shutil.copy(os.path.join(args.data, REAL_TRACE), trace)
    os.chmod(tmp, 0o755)
    os.chmod(trace, 0o644)
    base = [args.cln_otlp, "--file", trace, "--exporter", "stdout"]
    expect_start_error(base + ["--user", "no-such-user-here"],
                       ["--user", "no user named \"no-such-user-here\""])
    expect_start_error(base + ["--user", "root"], ["--user root", "cannot switch user",
                                                    "run cln-otlp as root"], user="nobody")
    port = free_port(below=1024)
    expect_start_error(base + ["--metrics-listen", "127.0.0.1:%d" % port],
                       ["permission denied", "below 1024", "above 1023"], user="nobody")
    log("ok: unknown user, --user without root, low port without root: exit 2 with a reason")


TESTS = {
    "metrics": t_metrics,
    "metrics_addrs": t_metrics_addrs,
    "metrics_export": t_metrics_export,
    "listen_errors": t_listen_errors,
    "sigusr1": t_sigusr1,
    "exit_line": t_exit_line,
    "caps_file": t_caps_file,
    "caps_usdt": t_caps_usdt,
    "user_file": t_user_file,
    "user_usdt": t_user_usdt,
    "user_errors": t_user_errors,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test", choices=sorted(TESTS) + ["all"])
    ap.add_argument("--cln-otlp", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--emitter")
    ap.add_argument("--mock-dir")
    args = ap.parse_args()
    names_ = sorted(TESTS) if args.test == "all" else [args.test]
    passed = failed = skipped = 0
    for name in names_:
        tmp = tempfile.mkdtemp(prefix="ops-%s-" % name)
        log("== %s" % name)
        try:
            TESTS[name](args, tmp)
            passed += 1
            shutil.rmtree(tmp, ignore_errors=True)
        except Skip as e:
            log("skip: %s" % e)
            skipped += 1
            shutil.rmtree(tmp, ignore_errors=True)
        except Exception as e:  # a crash of the test is a failure too
            if not isinstance(e, Fail):
                import traceback
                traceback.print_exc()
            log("FAIL %s: %s\n(files kept in %s)" % (name, e, tmp))
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    if failed:
        return 1
    return SKIP if skipped and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
