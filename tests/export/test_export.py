#!/usr/bin/python3
"""Integration tests of the OTLP exporter: the real cln-otlp binary against the mock collector.

Each group is one CTest (export_<group>): `test_export.py -v GROUP`. Environment (set by
tests/export/CMakeLists.txt): CLN_OTLP (the binary), MOCK_COLLECTOR, MOCK_PROTO_PY, MOCK_PYTHON,
MOCK_CERTS_SH.
"""
import glob
import json
import math
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE_DIR, Collector, Proc, cases, certs, check, clean_env,  # noqa
                     cln_spans, expected_otlp, free_port, give_to_daemon, log, main,
                     read_jsonl, run, span_fields, test)

CLN_OTLP = os.environ.get("CLN_OTLP", "cln-otlp")
FILES = sorted(glob.glob(os.path.join(CAPTURE_DIR, "lightningd-trace.*")))
EXPECTED = {s["id"]: s for f in FILES for s in cln_spans(f)}  # 610 spans, 20 processes
SECRET = "s3cr3t-T0ken-value-4711"  # a header value: must never reach stderr
GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# "Gives up soon": far above what a run takes here, far below the 300 s default retry budget
# a refusal retried or a budget ignored would spend (no check on how fast a machine is).
GIVES_UP = 60


def argv(endpoint, protocol="http/protobuf", args=()):
    return [CLN_OTLP, "--exporter", "otlp", "--endpoint", endpoint, "--protocol", protocol,
            *args] + [a for f in FILES for a in ("--file", f)]


def export(endpoint, protocol="http/protobuf", args=(), env=None):
    """Run cln-otlp on the capture: (exit status, stderr, seconds)."""
    t0 = time.time()
    p = run(argv(endpoint, protocol, args), env=clean_env(**(env or {})), timeout=120)
    return p.returncode, p.stderr, time.time() - t0


def check_all_spans(recs):
    """Every span of the capture arrived once, intact."""
    got = {}
    for r in recs:
        check("span %s delivered once" % r["span"]["spanId"], r["span"]["spanId"] not in got)
        got[r["span"]["spanId"]] = r
    check("no span missing, none unexpected", sorted(got) == sorted(EXPECTED),
          set(got) ^ set(EXPECTED))
    for sid, s in EXPECTED.items():
        r, want = got[sid], expected_otlp(s)
        check("span %s: ids, name, times, attributes, status" % sid,
              span_fields(r["span"]) == want, (r["span"], want))
        check("span %s: service.name lightningd, scope cln-otlp" % sid, (r["resource"].get(
            "service.name"), r["scope"]["name"]) == ("lightningd", "cln-otlp"), r)


def daemon_reads(tmp, d):
    """Started as root, cln-otlp runs as cln-otlp or nobody once set up, and libcurl reads
    the TLS files at each connection: give them (and tmp, their directory's) to that user."""
    give_to_daemon(tmp, d, *[os.path.join(d, f) for f in os.listdir(d)])
def case(tmp, proto="http/protobuf", script=None, args=("--batch-size", "1000"), rc=0,
         statuses=None, says=(), spans=True, gap=None, tls=False, mtls=False, http=None,
         grpc=None, path="", host="127.0.0.1", within=None, requests=None, env=None):
    """Export the capture to a mock collector (answering from script; TLS with a test CA;
    args may name the certificates as {certs}/...) and check what the case says: the exit
    status (None: not 0, "any": unchecked), the statuses answered in order, texts on stderr,
    the spans (True: every one intact, False: none recorded), the time between attempts
    (gap: (lo, hi)), that it ended within `within` s, how many requests came. Returns
    (requests, stderr)."""
    grpc = proto == "grpc" if grpc is None else grpc
    d = certs(tmp) if tls else None
    if d:
        daemon_reads(tmp, d)
    with Collector(tmp, http=proto != "grpc" if http is None else http, grpc=grpc,
                   script=script, tls=d, mtls=mtls) as mc:
        got_rc, err, dt = export(mc.url(path, host, grpc=proto == "grpc" and grpc), proto,
                                 [a.format(certs=d) for a in args], env)
        if rc != "any":
            check("exit %s" % ("not 0" if rc is None else rc),
                  got_rc != 0 if rc is None else got_rc == rc, got_rc)
        reqs = sorted(mc.requests(), key=lambda q: q["req"])
        if statuses is not None:
            check("answered %s" % statuses, [q["status"] for q in reqs] == statuses, reqs)
        for text in says:
            check("stderr says %r" % text, text in err, err)
        if spans:
            check_all_spans(mc.records())
        elif spans is not None:
            check("no span recorded", mc.records() == [])
        for a, b in zip(reqs, reqs[1:]) if gap else ():
            check("%g s to %g s between attempts" % gap, gap[0] <= b["t"] - a["t"] < gap[1],
                  b["t"] - a["t"])
        if within:
            check("ended within %g s" % within, dt < within, dt)
        if requests is not None:
            check("%d requests" % requests, len(reqs) == requests, reqs)
    return reqs, err


# ---------------------------------------------------------------------------------------------


def deliver(tmp, proto, gzip):
    """The whole capture over each protocol, gzip on and off, with a configured header."""
    reqs, err = case(tmp, proto, args=["--header", "x-test-token=" + SECRET, "--compression",
                                       "gzip" if gzip else "none", "--batch-size", "128"])
    check("5 requests or more (610 spans in batches of at most 128)", len(reqs) >= 5, len(reqs))
    for q in reqs:
        check("status OK", q["status"] == (0 if proto == "grpc" else 200), q)
        check("the configured header", q["headers"].get("x-test-token") == SECRET, q)
        check("user-agent cln-otlp/", q["headers"].get("user-agent", "").startswith("cln-otlp/"))
        check("at most 128 spans a request", q["spans"] <= 128, q)
        check("content encoding", q["content_encoding"] == ("gzip" if gzip else "identity"), q)
        if proto == "grpc":
            check("gRPC path", q["path"] == GRPC_PATH, q)
            check("gRPC content type", q["content_type"].startswith("application/grpc"), q)
            check("te: trailers", q["headers"].get("te") == "trailers", q)
            check("grpc-timeout", re.match(r"^\d+[mS]$", q["headers"].get("grpc-timeout", "")), q)
        else:
            check("path /v1/traces", q["path"] == "/v1/traces", q)
            check("content type", q["content_type"] == ("application/json" if proto ==
                                                        "http/json" else "application/x-protobuf"))
            if gzip:
                check("gzip makes it smaller", q["bytes"] < q["decoded_bytes"], q)
    check("every span counted", sum(q["spans"] for q in reqs) == len(EXPECTED))
    check("exported=%d" % len(EXPECTED), "exported=%d" % len(EXPECTED) in err, err)


cases("protocols", deliver, [("%s%s" % (p, " gzip" * g), dict(proto=p, gzip=g))
                             for p in ("http/protobuf", "http/json", "grpc") for g in (0, 1)])


@test("protocols")
def http_keepalive(tmp):
    """One request at a time: every request goes over the same kept-alive connection."""
    reqs, _ = case(tmp, args=["--batch-size", "64", "--max-inflight", "1"])
    check("10 requests or more", len(reqs) >= 10, len(reqs))
    check("one connection", len({q["peer"] for q in reqs}) == 1, [q["peer"] for q in reqs])


@test("protocols")
def headers_from_environment(tmp):
    """OTEL_EXPORTER_OTLP_HEADERS"""
    reqs, _ = case(tmp, args=(), spans=None,
                   env={"OTEL_EXPORTER_OTLP_HEADERS": "x-env-token=" + SECRET + ",x-second=two"})
    check("a request came", reqs)
    for q in reqs:
        check("x-env-token", q["headers"].get("x-env-token") == SECRET, q)
        check("x-second", q["headers"].get("x-second") == "two", q)


cases("retry", case, [  # what is retried, when, and what is not
    # The wait is the server's 2 s, as announced, not the first backoff (1 s); the upper
    # bounds only catch a hint misread (in the wrong unit), not a slow machine.
    ("503_retry_after_seconds", dict(script="503/ra=2", statuses=[503, 200],
                                     says=["retries=1", "retrying in 2.0 s"], gap=(2.0, 10.0))),
    ("503_retry_after_date", dict(script="503/ra-date=2", statuses=[503, 200],
                                  gap=(1.9, 10.0))),  # an HTTP date has whole seconds
    # backoff: at least the initial second between attempts
    ("retryable_statuses", dict(script="429,502,504", statuses=[429, 502, 504, 200],
                                args=["--batch-size", "1000", "--max-inflight", "1"],
                                gap=(0.95, math.inf))),
    ("400_not_retried", dict(script="400", rc=None, statuses=[400], spans=False, says=[
        "HTTP 400", "mock collector: scripted 400", "not retried"])),  # google.rpc.Status
    ("json_error_message", dict(proto="http/json", script="403", rc=None, spans=None,
                                says=["HTTP 403: mock collector: scripted 403"])),
    ("drop_retried", dict(script="drop", statuses=[None, 200])),
    ("grpc_drop_retried", dict(proto="grpc", script="drop", statuses=[None, 0]))] + [
    ("%d_not_retried" % s, dict(script=str(s), rc=None, statuses=[s], spans=None,
                                says=["HTTP %d" % s])) for s in (401, 403, 404, 413, 500)])


# A server's hint shorter than the backoff (Retry-After: 0, a date in the past, RetryInfo 0 s)
# does not shorten the wait: at least the initial 1 s between attempts (lower bound only: the
# machine may be slow, never fast).
ONE_BATCH = ["--batch-size", "1000", "--max-inflight", "1"]
cases("retry", case, [
    ("503_retry_after_0_backs_off", dict(script="503/ra=0,503/ra=0,503/ra=0", args=ONE_BATCH,
                                         statuses=[503, 503, 503, 200], gap=(0.95, math.inf),
                                         says=["retrying in 1.0 s"])),
    ("429_past_date_backs_off", dict(script="429/ra-date=-5,429/ra-date=-5", args=ONE_BATCH,
                                     statuses=[429, 429, 200], gap=(0.95, math.inf))),
    ("grpc_retry_info_0_backs_off", dict(proto="grpc", script="grpc=14/ra=0,grpc=14/ra=0",
                                         args=ONE_BATCH, statuses=[14, 14, 0],
                                         gap=(0.95, math.inf)))])


@test("retry")
def retry_after_0_storm_bounded(tmp):
    """A collector answering 503 + Retry-After: 0 to everything, with --export-timeout 3000:
    the requests are bounded by the backoff (waits of at least 1 s in 3 s: at most 4 and a
    last one at the deadline), not by how fast the collector answers (thousands), and the
    batch is given up when the export timeout is spent."""
    reqs, err = case(tmp, script=",".join(["503/ra=0"] * 300), rc=None, spans=False,
                     args=ONE_BATCH + ["--export-timeout", "3000"], within=GIVES_UP,
                     says=["giving up on a batch of 610 spans"])
    check("at most 5 requests", 2 <= len(reqs) <= 5, len(reqs))
    for a, b in zip(reqs, reqs[1:-1]):  # the last wait may be cut to what remains
        check(">= 0.95 s between attempts", b["t"] - a["t"] >= 0.95, b["t"] - a["t"])


@test("retry")
def export_timeout_bounds_retries(tmp):
    """--export-timeout is the longest one export may take, retries included (as the packaged
    environment file says of OTEL_BSP_EXPORT_TIMEOUT): with nothing listening and the
    default 300 s --retry-max-elapsed, the batch is given up after 2.5 s of retries."""
    with Proc(argv("http://127.0.0.1:%d" % free_port(), args=["--batch-size", "1000",
                                                             "--export-timeout", "2500"]),
              tmp, "cln-otlp") as d:
        d.wait_err("giving up", GIVES_UP)
        check("exit 1: spans lost", d.stop(sig=None) == 1)
    m = re.search(r"after (\d+) attempts in ([\d.]+) s", d.err())
    check("says how long it tried", m, d.err())
    check("within the 2.5 s export timeout", float(m.group(2)) <= 2.6, m.group(0))
    check("drop_retry_expired=610", "drop_retry_expired=610" in d.err(), d.err())


@test("retry")
def redirect_says_where(tmp):
    """A 301 is not followed (the headers would go along) and not retried; the message says
    where it points, without the credentials or query its Location carries."""
    loc = "http://user:s3cret@new.example:4318/v1/traces?api_key=s3cret"
    reqs, err = case(tmp, script="301/loc=" + loc, rc=None, statuses=[301], spans=False,
                     says=["HTTP 301 redirect, not followed",
                           "set the endpoint to where it points: "
                           "http://user:***@new.example:4318/v1/traces?***", "(not retried)",
                           "retries=0"])
    check("no credential on stderr", "s3cret" not in err, err)


@test("retry")
def connection_refused_then_up(tmp):
    """Nothing listens at first: connection failures are retried until it comes up."""
    port = free_port()
    with Proc(argv("http://127.0.0.1:%d" % port, args=["--batch-size", "1000"]), tmp,
              "cln-otlp") as d:
        d.wait_err("Couldn't connect", 60)  # curl's text for a refused connection
        with Collector(tmp, http_port=port) as mc:
            check("exit 0", d.stop(sig=None) == 0)
            check_all_spans(mc.records())


@test("retry")
def timeout_retried(tmp):
    """A request that times out is retried."""
    with Collector(tmp, script="delay=3") as mc:
        rc, err, _ = export(mc.url(), args=["--batch-size", "1000", "--timeout", "1000"])
        check("exit 0", rc == 0, rc)
        check("stderr says the timeout", "Timeout was reached" in err, err)
        mc.wait_requests(2)  # the delayed one is logged when its delay ends
        reqs = sorted(mc.requests(), key=lambda q: q["req"])
        check("answered [None, 200]", [q["status"] for q in reqs] == [None, 200], reqs)
        check("the first one's client gone", reqs[0].get("client_gone"), reqs)
        check("1 s timeout + 1 s backoff", reqs[1]["t"] - reqs[0]["t"] >= 1.9, reqs)
        check_all_spans(mc.records())


@test("retry")
def budget_expires(tmp):
    """Retries stop when --retry-max-elapsed is spent."""
    reqs, _ = case(tmp, script=",".join(["503"] * 20), rc=None, says=["giving up"], spans=False,
                   args=["--batch-size", "1000", "--retry-max-elapsed", "2500"], within=GIVES_UP)
    check("2 to 4 attempts (waits of >= 1 s in a 2.5 s budget)", 2 <= len(reqs) <= 4, len(reqs))


def partial(tmp, proto):
    """The collector kept all but 3: counted, not retried, reported (exit 1)."""
    case(tmp, proto, script="partial=3", rc=1, spans=None, requests=1, says=[
        "rejected 3 of 610 spans", "mock collector: 3 spans rejected", "exported=607",
        "3 refused by the collector"])


cases("partial", partial, [(p, dict(proto=p)) for p in ("http/protobuf", "http/json", "grpc")])


def partial_count_clamped(tmp, proto):
    """A collector claiming 2^62 rejected spans in every answer: each claim is clamped to its
    batch (the counter summed them: four batches wrapped it to 0, and the run exited 0 with
    exported=0), and the lies are counted and said."""
    reqs, err = case(tmp, proto, script=",".join(["partial=%d" % (1 << 62)] * 50), rc=1,
                     spans=None, args=["--batch-size", "160", "--max-inflight", "1"], says=[
                         "exported=0 ", "partial_rejected=%d" % len(EXPECTED),
                         "claims it rejected %d spans of a batch of 160" % (1 << 62),
                         "%d refused by the collector" % len(EXPECTED)])
    check("4 batches or more", 4 <= len(reqs) <= 50, len(reqs))
    check("every answer's lie counted", "partial_bad_count=%d" % len(reqs) in err, err)


cases("partial", partial_count_clamped, [("clamped " + p, dict(proto=p))
                                         for p in ("http/protobuf", "http/json", "grpc")])


def unconfirmed(tmp, proto, script, says):
    """A success (HTTP 200, gRPC OK) whose body is no ExportTraceServiceResponse: whether the
    spans reached a collector is unknown. Said (once: rate-limited), counted as unconfirmed,
    not as exported, not retried; the run says they were not delivered and exits 1."""
    reqs, err = case(tmp, proto, script=script, rc=1, spans=None, requests=1,
                     args=["--batch-size", "1000"],
                     says=["counted as unconfirmed, not exported", says,
                           "%d answered with something that is not an OTLP response" %
                           len(EXPECTED),
                           "unconfirmed=%d" % len(EXPECTED), "exported=0 ", "retries=0"])
    check("one warning", err.count("counted as unconfirmed") == 1, err)


cases("partial", unconfirmed, [
    ("html http/protobuf", dict(proto="http/protobuf", script="html",
                                says="HTTP 200, but the answer is an HTML page")),
    ("html http/json", dict(proto="http/json", script="html",
                            says="Content-Type text/html; charset=utf-8")),
    ("garbage http/protobuf", dict(proto="http/protobuf", script="garbage",
                                   says="no ExportTraceServiceResponse in protobuf")),
    ("garbage grpc", dict(proto="grpc", script="garbage",
                          says="gRPC OK with a message that is no ExportTraceServiceResponse"))])

cases("grpc_status", case, [(n, dict(proto="grpc", **kw)) for n, kw in (
    ("unavailable_retried", dict(script="grpc=14", statuses=[14, 0], gap=(0.95, math.inf),
                                 says=["UNAVAILABLE"])),
    ("retryable_codes", dict(script="grpc=1,grpc=4,grpc=10,grpc=11,grpc=15",
                             statuses=[1, 4, 10, 11, 15, 0],
                             args=["--batch-size", "1000", "--retry-max-elapsed", "120000"])),
    ("invalid_argument_not_retried", dict(script="grpc=3", rc=None, statuses=[3], spans=False,
                                          says=["INVALID_ARGUMENT",
                                                "mock collector: scripted grpc=3"])),
    ("resource_exhausted_with_retry_info", dict(script="grpc=8/ra=2", statuses=[8, 0],
                                                says=["retrying in 2.0 s"], gap=(2.0, math.inf))),
    ("resource_exhausted_without_retry_info", dict(script="grpc=8", rc=None, statuses=[8],
                                                   spans=None, says=["RESOURCE_EXHAUSTED"])),
    # gRPC: a path in the endpoint means nothing: ignored, with a warning, every span sent.
    ("path_ignored", dict(path="/prefix", says=["is ignored"])))])

CA = ("--ca-cert", "{certs}/ca.crt")
CLIENT = ("--client-cert", "{certs}/client.crt", "--client-key", "{certs}/client.key")
cases("tls", case, [(n, dict(tls=True, host="localhost", **kw)) for n, kw in (
    ("https_with_ca", dict(args=CA)),
    # Verification is on by default: the system store does not know the test CA.
    ("no_ca_refused", dict(args=(), rc=None, spans=None, says=["not trusted"], requests=0)),
    # --tls-skip-verify, only it, turns verification off, and says so loudly.
    ("tls_skip_verify_skips_verification", dict(args=["--tls-skip-verify"],
                                                says=["verification is OFF"])),
    # OTEL_EXPORTER_OTLP_INSECURE (and --insecure) is about scheme-less gRPC: https verifies.
    ("insecure_env_still_verifies", dict(env={"OTEL_EXPORTER_OTLP_INSECURE": "true"}, rc=None,
                                         spans=None, says=["not trusted"], requests=0)),
    ("insecure_flag_still_verifies grpc", dict(proto="grpc", args=["--insecure"], rc=None,
                                               spans=None, says=["not trusted"],
                                               requests=0)),
    ("mtls_without_client_cert_fails", dict(mtls=True, args=CA + ("--retry-max-elapsed", "3000"),
                                            rc=None, spans=False, within=GIVES_UP)),
    ("mtls_wrong_client_cert_fails", dict(mtls=True, rc=None, spans=False, args=CA + (
        "--client-cert", "{certs}/other-client.crt", "--client-key",
        "{certs}/other-client.key", "--retry-max-elapsed", "3000"))),
    # A TLS server that only speaks HTTP/1.1 (ALPN): gRPC says so, no retry.
    ("grpc_needs_h2", dict(proto="grpc", grpc=False, http=True, rc=None, spans=None,
                           says=["HTTP/2", "not retried", "retries=0"], within=GIVES_UP,
                           requests=1,
                           args=CA + ("--batch-size", "1000"))))] + [
    ("wrong_ca_refused " + p, dict(proto=p, tls=True, host="localhost", http=True, grpc=True,
                                   args=("--ca-cert", "{certs}/other-ca.crt"), rc=None,
                                   spans=None, says=["not trusted", "--ca-cert", "retries=0"],
                                   within=GIVES_UP, requests=0))
    for p in ("http/protobuf", "grpc")] + [
    ("mtls " + p, dict(proto=p, tls=True, mtls=True, host="localhost", http=True, grpc=True,
                       args=CA + CLIENT)) for p in ("http/protobuf", "grpc")])


@test("tls")
def grpc_tls_with_ca(tmp):
    """gRPC over TLS with the CA: every span; HTTP/2 multiplexes the requests on one
    connection."""
    reqs, _ = case(tmp, "grpc", tls=True, host="localhost",
                   args=CA + ("--batch-size", "100", "--compression", "gzip"))
    check("one connection", len({q["peer"] for q in reqs}) == 1, reqs)


@test("tls")
def unreadable_files_at_start(tmp):
    """A missing certificate file stops start-up, naming the file and the option: the run
    never starts (no exit stats line)."""
    d = certs(tmp)
    missing = os.path.join(d, "nope.crt")
    for flag in ("--ca-cert", "--client-cert", "--client-key"):
        args = [flag, missing] + (["--client-cert", d + "/client.crt"] if flag ==
                                  "--client-key" else [])
        rc, err, _ = export("https://localhost:1", "http/protobuf", args)
        check("%s missing: exit 2" % flag, rc == 2, rc)
        check("the message names the file and %s" % flag, missing in err and flag in err, err)
        check("stopped at start-up: no exit stats line", "info: done: " not in err, err)


@test("outage")
def outage_60s(tmp):
    """Down for 60 s, then up: every span arrives, with a bounded number of attempts, and no
    wait between attempts longer than the 5 s cap (so the first attempt after the collector
    is back comes at most 5 s after it)."""
    port = free_port()
    # The retry budget is the smaller of --retry-max-elapsed and --export-timeout: both above
    # the outage here.
    with Proc(argv("http://127.0.0.1:%d" % port, args=["--batch-size", "100", "-v",
                                                       "--export-timeout", "300000",
                                                       "--stats-interval", "10"]),
              tmp, "cln-otlp") as d:
        time.sleep(60)  # the outage
        check("cln-otlp did not give up during the outage", d.running())
        with Collector(tmp, http_port=port) as mc:
            check("exit 0", d.stop(sig=None, timeout=120) == 0)
            check_all_spans(mc.records())
    # the exit line's count: a periodic stats line may come first while the collector is down
    m = re.search(r"info: done: .*?retries=(\d+)", d.err())
    check("a retries count on the exit line", m, d.err())
    retries = int(m.group(1))
    # 7 batches (4 at a time), exponential backoff: a few attempts each, not hundreds
    check("more than 7 retries, fewer than 105", 7 < retries < 7 * 15, m.group(0))
    # -v: every wait chosen, as "attempt N in W ms"; the cap is the daemon's own account of
    # it, not a wall-clock measure
    waits = [int(w) for w in re.findall(r"attempt \d+ in (\d+) ms", d.err())]
    check("one announced wait per retry", len(waits) == retries, (len(waits), retries))
    check("no wait over the 5 s cap", max(waits) <= 5000, sorted(waits)[-5:])
    # rate-limited: far fewer warning lines than attempts
    check("fewer than 20 warning lines", d.err().count("retrying in") < 20)


@test("outage")
def sigterm_during_outage(tmp):
    """Stopped while the collector is down: gives up after the shutdown timeout, and says so."""
    port = free_port()
    with Proc(argv("http://127.0.0.1:%d" % port, args=["--batch-size", "100", "--follow",
                                                       "--shutdown-timeout", "2000"]),
              tmp, "cln-otlp") as d:
        d.wait_err("retrying in")
        check("still running", d.running())
        t0 = time.time()
        check("exit 1", d.stop() == 1)
        dt = time.time() - t0
    # Not before the shutdown timeout; the upper bound only tells it from retrying out the
    # 300 s default budget.
    check("it tried for the shutdown timeout (2 s), then stopped", 1.9 <= dt < GIVES_UP, dt)
    check("the shutdown timeout said", "shutdown timeout (2000 ms) reached" in d.err(), d.err())
    check("610 spans were not delivered", "610 spans were not delivered" in d.err())
    check("drop_shutdown counted", re.search(r"drop_shutdown=\d+", d.err()))


# ---- a backlog: what a queued span costs, and memory given back --------------------------

BACKLOG_COPIES = 52  # 52 x 585 = 30,420 spans


def relabelled(path, k):
    """The lines of the trace file @path with every span and trace id made unique to copy
    @k (XOR with a per-copy constant): the same spans, as a new set."""
    def sid(h):
        return "%016x" % (int(h, 16) ^ ((k + 1) << 44))

    def tid(h):
        return "%032x" % (int(h, 16) ^ ((k + 1) << 100))
    out = []
    with open(path, encoding="utf-8") as f:
        for ln in f:
            ln = re.sub(r"^(span_\w+) ([0-9a-f]{16})", lambda m: m.group(1) + " " + sid(
                m.group(2)), ln)
            ln = re.sub(r'"(id|parentId)":"([0-9a-f]{16})"', lambda m: '"%s":"%s"' % (
                m.group(1), sid(m.group(2))), ln)
            ln = re.sub(r'"traceId":"([0-9a-f]{32})"', lambda m: '"traceId":"%s"' % tid(
                m.group(1)), ln)
            out.append(ln)
    return "".join(out)


def vm_rss(pid):
    """VmRSS of @pid, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def scrape(port):
    """Every unlabelled sample of /metrics, or {} while it cannot be read."""
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^cln_otlp_(\w+) (\d+)$", body.decode(), re.M)}


def sanitized(binary):
    """Built with AddressSanitizer? (its allocator keeps freed memory: RSS tells nothing)"""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def backlog_daemon(tmp, port, mport, trace, *args):
    return Proc([CLN_OTLP, "--user", "root", "--exporter", "otlp", "--endpoint",
                 "http://127.0.0.1:%d" % port, "--file", trace, "--follow", "--metrics-listen",
                 "127.0.0.1:%d" % mport, "--stats-interval", "0", *args], tmp, "cln-otlp")


@test("backlog")
def backlog_footprint(tmp):
    """Spans delivered, then the collector down while 30,420 real spans queue: the daemon's
    own account of what it holds is at most 200 bytes a span, and so is the growth of its
    RSS (plus a small constant); collector up again: every span delivered once, and the RSS
    back within 5 MB of what it was before the outage."""
    capture = os.path.join(CAPTURE_DIR, "lightningd-trace.32274")
    copies = [relabelled(capture, k) for k in range(BACKLOG_COPIES + 1)]
    want = {json.loads(ln.split(" ", 2)[2])[0]["id"] for c in copies for ln in c.splitlines()
            if ln.startswith("span_emit ")}
    check("31,005 distinct spans", len(want) == 585 * (BACKLOG_COPIES + 1), len(want))
    trace = os.path.join(tmp, "trace")
    open(trace, "w").close()
    port, mport = free_port(), free_port()
    with backlog_daemon(tmp, port, mport, trace) as d:
        with Collector(tmp, http_port=port) as mc:  # before the outage: 585 spans delivered
            with open(trace, "a") as f:
                f.write(copies[0])
            d.wait(lambda: len(mc.records()) == 585 and scrape(mport).get("queue_spans") == 0,
                   60, "the first 585 spans delivered")
            rss0 = vm_rss(d.proc.pid)
        with open(trace, "a") as f:  # the outage
            f.write("".join(copies[1:]))
        d.wait(lambda: scrape(mport).get("spans_queued_total") == len(want), 120,
               "every span queued")
        d.wait_err("retrying in")
        m = scrape(mport)
        held, nbytes = m["queue_spans"], m["queue_bytes"]
        rss1 = vm_rss(d.proc.pid)
        log("held %d spans in %d bytes (%.0f a span); RSS %.1f MB before, %.1f MB during" % (
            held, nbytes, nbytes / held, rss0 / 2**20, rss1 / 2**20))
        check("every span of the outage held", held == 585 * BACKLOG_COPIES, m)
        check("at most 200 bytes held a span (%.0f)" % (nbytes / held), nbytes <= 200 * held,
              m)
        asan = sanitized(CLN_OTLP)
        check("RSS grew by less than 200 bytes a span + 4 MB (%.1f MB)" % (
            (rss1 - rss0) / 2**20), asan or rss1 - rss0 < 200 * held + (4 << 20), (rss0, rss1))
        with Collector(tmp, http_port=port) as mc:
            d.wait(lambda: scrape(mport).get("queue_spans") == 0 and len(mc.records()) >= len(
                want) - 585, 180, "every span delivered, nothing held")
            rss2 = vm_rss(d.proc.pid)
            ids = [r["span"]["spanId"] for r in mc.records()]
            m = scrape(mport)
        ids += [r["span"]["spanId"] for r in read_jsonl(
            os.path.join(tmp, "mock0-spans.jsonl"))]
        log("RSS %.1f MB after the outage" % (rss2 / 2**20))
        check("every span delivered once", len(ids) == len(set(ids)) and set(ids) == want,
              (len(ids), len(set(ids)), len(set(ids) ^ want)))
        check("exported = every span, nothing held", (m.get("spans_exported_total"),
              m.get("queue_bytes")) == (len(want), 0), m)
        check("RSS back within 5 MB of before the outage (%.1f MB -> %.1f MB)" % (
            rss0 / 2**20, rss2 / 2**20), asan or rss2 - rss0 < 5 << 20, (rss0, rss1, rss2))
        if asan:
            log("AddressSanitizer build: RSS figures not checked")
        check("exit 0", d.stop() == 0, d.err()[-2000:])


@test("backlog")
def backlog_in_slots(tmp):
    """Collector down, every batch in an export slot waiting for its retry: what a slot
    keeps is the request body (gzip), not the spans: at most 200 bytes held a span."""
    spans = len(cln_spans(os.path.join(CAPTURE_DIR, "lightningd-trace.32274")))
    trace = os.path.join(tmp, "trace")
    with open(trace, "w") as f:
        f.write(relabelled(os.path.join(CAPTURE_DIR, "lightningd-trace.32274"), 0))
    port, mport = free_port(), free_port()
    with backlog_daemon(tmp, port, mport, trace, "--batch-size", "100", "--max-inflight", "8",
                        "--batch-delay", "100", "--compression", "gzip") as d:
        d.wait(lambda: scrape(mport).get("spans_queued_total") == spans, 60,
               "every span queued")
        d.wait_err("retrying in")
        d.wait(lambda: scrape(mport).get("queue_bytes", 1 << 30) <= 200 * spans, 30,
               "at most 200 bytes held a span")
        m = scrape(mport)
        check("every span still held", m["queue_spans"] == spans, m)
        d.stop()


def secrets(tmp, proto, script):
    """Header values never reach the logs, whatever happens and however verbose."""
    reqs, err = case(tmp, proto, script, rc="any", spans=None,
                     args=["-v", "--header", "authorization=Bearer " + SECRET, "--header",
                           "x-api-key=" + SECRET, "--batch-size", "1000"],
                     env={"OTEL_EXPORTER_OTLP_HEADERS": "x-env-key=" + SECRET})
    check("no secret on stderr", SECRET not in err and SECRET[:12] not in err, err)
    check("header names are shown with -v", "x-api-key" in err, err)
    check("a request came", reqs)
    check("x-api-key sent", reqs[0]["headers"].get("x-api-key") == SECRET, reqs[0])
    check("authorization sent", reqs[0]["headers"].get("authorization") == "Bearer " + SECRET)


cases("secrets", secrets, [("secret_not_logged %s %s" % pc, dict(proto=pc[0], script=pc[1]))
                           for pc in (("http/protobuf", "200"), ("http/protobuf", "400"),
                                      ("http/json", "503/ra=1"), ("http/protobuf", "drop"),
                                      ("grpc", "grpc=14"), ("grpc", "grpc=16"))])


@test("secrets")
def secret_not_logged_on_tls_failure(tmp):
    """https to a plain-http port: a TLS error, logged with curl's error text."""
    with Collector(tmp) as mc:
        rc, err, _ = export("https://127.0.0.1:%d" % mc.http_port, "http/protobuf", [
            "-v", "--header", "x-api-key=" + SECRET, "--retry-max-elapsed", "1500"])
    check("exit not 0", rc != 0, rc)
    check("curl's error text logged", "SSL connect error" in err, err)
    check("no secret on stderr", SECRET not in err and SECRET[:12] not in err, err)


@test("secrets")
def endpoint_password_not_logged(tmp):
    """A password in the endpoint's userinfo never reaches stderr, however verbose: not when
    the connection is refused (retried, then given up), not when curl cannot read the URL."""
    port = free_port()
    rc, err, _ = export("http://user:s3cret@127.0.0.1:%d" % port, args=[
        "-vv", "--retry-max-elapsed", "1500", "--batch-size", "1000"])
    check("exit 1", rc == 1, rc)
    check("the refusal is said", "Couldn't connect" in err and "giving up" in err, err)
    check("no password on stderr", "s3cret" not in err, err)
    rc, err, _ = export("http://user:s3cret@127.0.0.1:99999", args=["-vv"])
    check("a port out of range: exit 2", rc == 2, rc)
    check("the endpoint quoted, redacted", "http://user:***@127.0.0.1:99999" in err, err)
    check("no password on stderr", "s3cret" not in err, err)


# ---- OpenTelemetry conformance: endpoints, variables, messages for common mistakes ----------


def grpc_paths_only(tmp, reqs):
    check("every request to the Export method", reqs and all(q["path"] == GRPC_PATH
                                                              for q in reqs), reqs)


@test("conform")
def grpc_host_port_insecure_is_plaintext(tmp):
    """A gRPC endpoint as host:port (no scheme) with OTEL_EXPORTER_OTLP_INSECURE=true (any
    case: the specification's only true value): plaintext h2c; the path of a TRACES endpoint
    is ignored."""
    for value in ("true", "TRUE"):
        with Collector(tmp, http=False, grpc=True) as mc:
            rc, err, _ = export("127.0.0.1:%d" % mc.grpc_port, "grpc",
                                env={"OTEL_EXPORTER_OTLP_INSECURE": value})
            check("INSECURE=%s: exit 0" % value, rc == 0, err)
            check_all_spans(mc.records())
            grpc_paths_only(tmp, mc.requests())
    with Collector(tmp, http=False, grpc=True) as mc:
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:%d/v1/traces" % mc.grpc_port,
               "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
               "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        p = run([CLN_OTLP, "--exporter", "otlp"] + [a for f in FILES for a in ("--file", f)],
                env=clean_env(**env), timeout=120)
        check("TRACES endpoint with a path: exit 0", p.returncode == 0, p.stderr)
        check("the path is said to be ignored", "is ignored" in p.stderr, p.stderr)
        check_all_spans(mc.records())
        grpc_paths_only(tmp, mc.requests())


@test("conform")
def grpc_host_port_default_is_tls(tmp):
    """host:port without INSECURE: TLS, verified (with the test CA: every span)."""
    d = certs(tmp)
    daemon_reads(tmp, d)
    with Collector(tmp, http=False, grpc=True, tls=d) as mc:
        rc, err, _ = export("localhost:%d" % mc.grpc_port, "grpc", ["--ca-cert", d + "/ca.crt"])
        check("exit 0", rc == 0, err)
        check_all_spans(mc.records())
    with Collector(tmp, http=False, grpc=True, tls=d) as mc:
        rc, err, _ = export("localhost:%d" % mc.grpc_port, "grpc", ["--retry-max-elapsed", "0"])
        check("without the CA: refused as untrusted", rc != 0 and "not trusted" in err, err)


@test("conform")
def http_query_kept(tmp):
    """A query in a base endpoint stays the query, after /v1/traces."""
    with Collector(tmp) as mc:
        rc, err, _ = export("http://127.0.0.1:%d?a=b" % mc.http_port)
        check("exit 0", rc == 0, err)
        reqs = mc.requests()
        check("path /v1/traces?a=b", reqs and all(q["path"] == "/v1/traces?a=b" for q in reqs),
              reqs)


@test("conform")
def env_enum_unknown_warned(tmp):
    """Unknown enum values in variables: warned (variable, value, what is used), not fatal."""
    with Collector(tmp) as mc:
        args = [a for a in argv(mc.url()) if a not in ("--protocol", "http/protobuf")]
        p = run(args, env=clean_env(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="bogus",
                                    OTEL_EXPORTER_OTLP_COMPRESSION="zstd"), timeout=120)
        check("exit 0", p.returncode == 0, p.stderr)
        for text in ('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "bogus" is not known',
                     "using http/protobuf", 'OTEL_EXPORTER_OTLP_COMPRESSION: "zstd"',
                     "using none"):
            check("warns %r" % text, text in p.stderr, p.stderr)
        check("every request sent as http/protobuf, uncompressed",
              all(q["content_type"] == "application/x-protobuf" and
                  q["content_encoding"] == "identity" for q in mc.requests()), mc.requests())


@test("conform")
def traces_exporter_none_and_sdk_disabled(tmp):
    """OTEL_TRACES_EXPORTER=none: captured and counted, nothing sent; OTEL_SDK_DISABLED=true:
    exits 0 at once, saying why; an unknown exporter falls back to otlp."""
    with Collector(tmp) as mc:
        p = run(argv(mc.url())[:1] + [a for f in FILES for a in ("--file", f)],
                env=clean_env(OTEL_TRACES_EXPORTER="zipkin, none"), timeout=120)
        check("none: exit 0", p.returncode == 0, p.stderr)
        check("none: zipkin warned", '"zipkin" is not known' in p.stderr, p.stderr)
        check("none: counted", "exported=%d" % len(EXPECTED) in p.stderr, p.stderr)
        check("none: nothing sent", mc.requests() == [], mc.requests())
        p = run(argv(mc.url()), env=clean_env(OTEL_SDK_DISABLED="true"), timeout=120)
        check("disabled: exit 0", p.returncode == 0, p.stderr)
        check("disabled: says why", "OTEL_SDK_DISABLED" in p.stderr, p.stderr)
        check("disabled: no capture", "received=" not in p.stderr, p.stderr)
        check("disabled: nothing sent", mc.requests() == [], mc.requests())
        p = run([CLN_OTLP, "--endpoint", mc.url()] + [a for f in FILES for a in ("--file", f)],
                env=clean_env(OTEL_TRACES_EXPORTER="bogus"), timeout=120)
        check("unknown exporter: otlp used", p.returncode == 0 and mc.records(), p.stderr)


@test("conform")
def log_level_from_environment(tmp):
    """OTEL_LOG_LEVEL=warn silences info lines; -v wins over it."""
    f = FILES[0]
    p = run([CLN_OTLP, "--file", f, "--exporter", "none"],
            env=clean_env(OTEL_LOG_LEVEL="warn"), timeout=60)
    check("warn: exit 0", p.returncode == 0, p.stderr)
    check("warn: no info line", "info:" not in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--file", f, "--exporter", "none"],
            env=clean_env(OTEL_LOG_LEVEL="error"), timeout=60)
    check("error: no warning or info line", "info:" not in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--file", f, "--exporter", "none", "-v"],
            env=clean_env(OTEL_LOG_LEVEL="error"), timeout=60)
    check("-v wins: info lines", "info: done:" in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--file", f, "--exporter", "none"],
            env=clean_env(OTEL_LOG_LEVEL="verbose"), timeout=60)
    check("unknown level warned", 'OTEL_LOG_LEVEL: "verbose"' in p.stderr, p.stderr)


@test("conform")
def wrong_port_messages(tmp):
    """OTLP/HTTP to a gRPC port, gRPC to an HTTP/1.1 port: the message says what to change."""
    with Collector(tmp, http=True, grpc=True) as mc:
        rc, err, _ = export("http://127.0.0.1:%d" % mc.grpc_port, "http/protobuf",
                            ["--retry-max-elapsed", "0"])
        check("http to grpc: fails", rc != 0, rc)
        check("http to grpc: says so", "this looks like a gRPC endpoint (port 4317?): use "
              "--protocol grpc or the HTTP port 4318" in err, err)
        rc, err, _ = export("http://127.0.0.1:%d" % mc.http_port, "grpc",
                            ["--retry-max-elapsed", "0"])
        check("grpc to http: fails", rc != 0, rc)
        check("grpc to http: says so", "is this an OTLP/HTTP port, 4318? then use --protocol "
              "http/protobuf" in err, err)


@test("conform")
def base_url_with_signal_path(tmp):
    """A base endpoint already ending in /v1/traces: warned at start; the 404 says why."""
    with Collector(tmp, args=("--http-path", "/v1/traces")) as mc:
        rc, err, _ = export(mc.url("/v1/traces"))
        check("fails", rc != 0, rc)
        check("warned at start", "--endpoint: its path already ends in /v1/traces" in err, err)
        check("the 404 says why", "HTTP 404" in err and "/v1/traces/v1/traces: the endpoint "
              "given as a base URL" in err, err)


@test("conform")
def mistyped_option(tmp):
    """A mistyped option: the nearest one suggested; unknown values list the valid ones."""
    for typed, meant in (("--endpoit", "--endpoint"), ("--protcol=grpc", "--protocol"),
                         ("--tls-skip-verfy", "--tls-skip-verify")):
        p = run([CLN_OTLP, typed, "x"], env=clean_env(), timeout=30)
        check("%s: exit 2" % typed, p.returncode == 2, p.returncode)
        check("%s: did you mean %s?" % (typed, meant),
              "did you mean %s?" % meant in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--zzzzzz"], env=clean_env(), timeout=30)
    check("nothing close: no suggestion", "did you mean" not in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--exporter", "zipkin"], env=clean_env(), timeout=30)
    check("--exporter zipkin: exit 2, lists them", p.returncode == 2 and
          "(otlp, stdout, console or none)" in p.stderr, p.stderr)
    p = run([CLN_OTLP, "--protocol", "bogus"], env=clean_env(), timeout=30)
    check("--protocol bogus: exit 2, lists them", p.returncode == 2 and
          "(http/protobuf, http/json or grpc)" in p.stderr, p.stderr)


main([a for a in sys.argv[1:] if not a.startswith("-")])
