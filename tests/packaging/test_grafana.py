#!/usr/bin/python3
"""Checks of docker/'s Grafana, Prometheus and Tempo stack without a Docker engine: the Tempo
and collector configurations use only keys their current versions accept, the stack is wired
together, and the dashboard asks only for metrics cln-otlp serves.

    test_grafana.py CHECK --src DIR [--cln-otlp BIN]

CHECK: tempo, collector, wiring, dashboard, served. `served` runs cln-otlp on the bundled
capture with --metrics-listen and needs the span metric families in the binary (CTest:
packaging_grafana_served, disabled unless CLN_OTLP_SPAN_METRICS_SERVED=ON).
"""
import glob
import json
import os
import re
import subprocess
import sys
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import CAPTURE_DIR, Proc, check, free_port, main, options, test  # noqa: E402

(NAME,), A = options("src", "cln-otlp")
A.src = os.path.realpath(A.src)
DOCKER = os.path.join(A.src, "docker")
HERE = os.path.dirname(os.path.abspath(__file__))

# ---- allow-lists -----------------------------------------------------------------------
# A dict lists the keys a block accepts; LEAF is a value; ANY a block whose content is
# free-form (a map of names, or a block this stack does not go into). A block listed as {}
# exists but none of its keys has been listed yet: copy them from the source when needed.
LEAF, ANY = "leaf", "any"


class Components(dict):
    """A collector section: keys are component ids `type[/name]`, looked up by type."""


# Tempo 3.0: grafana/tempo tag v3.0.3, docs/sources/tempo/configuration/manifest.md (every
# option with its default, generated from the code), plus the `omitempty` keys the manifest
# leaves out, from the code at that tag: stream_over_http_enabled (cmd/tempo/app/config.go),
# metrics_generator.registry.external_labels (modules/generator/registry/config.go),
# metrics_generator.storage.remote_write (modules/generator/storage/config.go: Prometheus'
# RemoteWriteConfig), overrides.defaults.metrics_generator.processors
# (modules/overrides/config.go). The distributor's receivers are OpenTelemetry Collector
# receiver configurations (docs/sources/tempo/configuration/_index.md, Distributor).
COMPACTION = dict.fromkeys(["compaction_window", "max_compaction_objects", "max_block_bytes",
                            "block_retention", "compacted_block_retention",
                            "retention_concurrency", "max_time_per_tenant",
                            "compaction_cycle"], LEAF)
WAL = dict.fromkeys(["path", "ingestion_time_range_slack"], LEAF)
OTLP_RECEIVER = {"protocols": {"grpc": {"endpoint": LEAF, "tls": ANY,
                                        "max_recv_msg_size_mib": LEAF},
                               "http": {"endpoint": LEAF, "tls": ANY, "cors": ANY}}}
TEMPO_ALLOWED = {
    "target": LEAF, "http_api_prefix": LEAF, "stream_over_http_enabled": LEAF,
    "memory": dict.fromkeys(["automemlimit_enabled", "automemlimit_ratio"], LEAF),
    "server": dict.fromkeys(["http_listen_network", "http_listen_address", "http_listen_port",
                             "grpc_listen_network", "grpc_listen_address", "grpc_listen_port",
                             "log_format", "log_level", "graceful_shutdown_timeout",
                             "http_server_read_timeout", "http_server_write_timeout",
                             "http_server_idle_timeout", "grpc_server_max_recv_msg_size",
                             "grpc_server_max_send_msg_size"], LEAF),
    "internal_server": {},
    "distributor": {"ring": ANY, "receivers": {"otlp": OTLP_RECEIVER, "jaeger": ANY,
                                               "zipkin": ANY},
                    "override_ring_key": LEAF, "forwarders": ANY, "usage": ANY,
                    "retry_after_on_resource_exhausted": LEAF, "max_attribute_bytes": LEAF},
    "live_store_client": {},
    "querier": {},
    "query_frontend": {},
    "metrics_generator": {
        "ring": ANY,
        "processor": {"service_graphs": dict.fromkeys([
            "wait", "max_items", "workers", "histogram_buckets", "dimensions",
            "enable_client_server_prefix", "enable_messaging_system_latency_histogram",
            "peer_attributes", "span_multiplier_key", "enable_virtual_node_label",
            "database_name_attributes", "filter_policies"], LEAF),
            "span_metrics": dict.fromkeys([
                "histogram_buckets", "intrinsic_dimensions", "dimensions",
                "dimension_mappings", "enable_target_info", "span_multiplier_key",
                "subprocessors", "filter_policies", "target_info_excluded_dimensions",
                "enable_instance_label"], LEAF),
            "host_info": ANY},
        "registry": {"collection_interval": LEAF, "stale_duration": LEAF,
                     "max_label_name_length": LEAF, "max_label_value_length": LEAF,
                     "external_labels": ANY},
        "storage": {"path": LEAF, "wal": ANY, "remote_write_flush_deadline": LEAF,
                    "remote_write_add_org_id_header": LEAF,
                    "remote_write": {"url": LEAF, "name": LEAF, "remote_timeout": LEAF,
                                     "headers": ANY, "send_exemplars": LEAF}},
        "metrics_ingestion_time_range_slack": LEAF},
    "ingest": {},
    "block_builder": {},
    "storage": {"trace": {"pool": ANY, "wal": WAL, "block": ANY, "search": ANY,
                          "blocklist_poll": LEAF, "backend": LEAF, "local": {"path": LEAF},
                          "gcs": ANY, "s3": ANY, "azure": ANY, "cache": LEAF,
                          "background_cache": ANY, "memcached": ANY, "redis": ANY}},
    "overrides": {"defaults": {"ingestion": ANY, "read": ANY, "global": ANY,
                               "metrics_generator": {"processors": LEAF,
                                                     "generate_native_histograms": LEAF},
                               "compaction": dict.fromkeys(["block_retention",
                                                            "compaction_window",
                                                            "compaction_disabled"], LEAF)},
                  "per_tenant_override_config": LEAF, "per_tenant_override_period": LEAF,
                  "user_configurable_overrides": {}, "enable_legacy_overrides": LEAF},
    "memberlist": {},
    "usage_report": {"reporting_enabled": LEAF, "backoff": ANY},
    "cache": {},
    "backend_scheduler": {"work": ANY, "maintenance_interval": LEAF,
                          "backend_flush_interval": LEAF,
                          "provider": {"retention": {"interval": LEAF},
                                       "compaction": {"measure_interval": LEAF,
                                                      "compaction": COMPACTION}},
                          "job_timeout": LEAF, "local_work_path": LEAF},
    "backend_scheduler_client": {},
    "backend_worker": {"backend_scheduler_addr": LEAF, "backoff": ANY,
                       "compaction": COMPACTION, "override_ring_key": LEAF, "ring": ANY,
                       "finish_on_shutdown_timeout": LEAF},
    "live_store": {"max_block_duration": LEAF, "max_block_bytes": LEAF,
                   "max_trace_live": LEAF, "max_trace_idle": LEAF,
                   "complete_block_timeout": LEAF, "wal": WAL},
}
# Removed in 3.0 (docs/sources/tempo/set-up-for-tracing/setup-tempo/migrate-to-3.md, "Migrate
# a monolithic deployment"): Tempo 3.x refuses to start with them.
TEMPO_REMOVED = {"ingester", "ingester_client", "compactor", "metrics_generator_client"}
# modules/generator/processor/processor_names.go; local-blocks is gone in 3.0 (same guide).
TEMPO_PROCESSORS = {"service-graphs", "span-metrics", "host-info"}

# OpenTelemetry Collector (core components, also in contrib): open-telemetry/
# opentelemetry-collector, receiver/otlpreceiver/README.md (protocols grpc/http, endpoint),
# exporter/otlpexporter and otlphttpexporter README.md and metadata.yaml (types otlp_grpc and
# otlp_http since 0.144.0; otlp and otlphttp are deprecated aliases), config/configtls
# (client tls), exporter/exporterhelper/README.md (retry_on_failure, sending_queue and its
# batch), exporter/debugexporter/README.md, and the service section (pipelines).
TLS_CLIENT = dict.fromkeys(["insecure", "insecure_skip_verify", "ca_file", "cert_file",
                            "key_file", "server_name_override", "min_version", "max_version"],
                           LEAF)
RETRY = dict.fromkeys(["enabled", "initial_interval", "max_interval", "max_elapsed_time",
                       "multiplier"], LEAF)
QUEUE = dict(dict.fromkeys(["enabled", "num_consumers", "wait_for_result",
                            "block_on_overflow", "sizer", "queue_size", "storage"], LEAF),
             batch=dict.fromkeys(["flush_timeout", "min_size", "max_size", "sizer",
                                  "partition"], LEAF))
EXPORTER_COMMON = {"endpoint": LEAF, "tls": TLS_CLIENT, "compression": LEAF, "timeout": LEAF,
                   "headers": ANY, "retry_on_failure": RETRY, "sending_queue": QUEUE}
PIPELINE = dict.fromkeys(["receivers", "processors", "exporters"], LEAF)
COLLECTOR_ALLOWED = {
    "receivers": Components(otlp=OTLP_RECEIVER),
    "processors": Components(),
    "connectors": Components(),
    "extensions": Components(),
    "exporters": Components(
        otlp_grpc=EXPORTER_COMMON,
        otlp_http=dict(EXPORTER_COMMON, traces_endpoint=LEAF, encoding=LEAF),
        debug=dict.fromkeys(["verbosity", "sampling_initial", "sampling_thereafter",
                             "use_internal_logger"], LEAF)),
    "service": {"pipelines": Components(traces=PIPELINE, metrics=PIPELINE, logs=PIPELINE),
                "telemetry": ANY, "extensions": LEAF},
}
# Exporter types renamed (the receiver `otlp` keeps its name: it serves both protocols).
COLLECTOR_DEPRECATED = {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "logging": "debug"}


def unknown_keys(doc, allowed, path=""):
    """The paths in doc that allowed does not list (a list's items checked each)."""
    if allowed == ANY or doc is None:
        return []
    if isinstance(doc, list):
        return [p for item in doc for p in unknown_keys(item, allowed, path + "[]")]
    if allowed == LEAF:
        return [path + " (a value here, not a block)"] if isinstance(doc, dict) else []
    if not isinstance(doc, dict):
        return [path + " (a block here, not a value)"] if doc != {} else []
    bad = []
    for k, v in doc.items():
        key = str(k).split("/")[0] if isinstance(allowed, Components) else k
        where = "%s.%s" % (path, k) if path else str(k)
        if key not in allowed:
            bad.append(where)
        else:
            bad += unknown_keys(v, allowed[key], where)
    return bad


def load(*path):
    with open(os.path.join(DOCKER, *path)) as f:
        return yaml.safe_load(f)


def tempo_problems(doc):
    bad = ["%s: removed in Tempo 3.0" % k for k in doc if k in TEMPO_REMOVED]
    bad += ["%s: not a Tempo 3.0.3 key" % p for p in unknown_keys(doc, TEMPO_ALLOWED)
            if p.split(".")[0] not in TEMPO_REMOVED]
    return bad


def collector_problems(doc):
    bad = ["%s: not a key of the current collector" % p
           for p in unknown_keys(doc, COLLECTOR_ALLOWED)]
    for cid in doc.get("exporters") or {}:
        new = COLLECTOR_DEPRECATED.get(cid.split("/")[0])
        if new:
            bad.append("exporters.%s: deprecated name, now %s" % (cid, new))
    for name, pipe in ((doc.get("service") or {}).get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters"):
            for cid in (pipe or {}).get(kind) or []:
                if cid not in (doc.get(kind) or {}):
                    bad.append("pipeline %s: %s %s is not defined" % (name, kind, cid))
    return bad


@test("tempo")
def tempo(tmp):
    """docker/tempo.yaml: only Tempo 3.0.3 keys, no removed block, metrics-generator on"""
    doc = load("tempo.yaml")
    bad = tempo_problems(doc)
    check("every key is one Tempo 3.0.3 reads, none of those 3.0 removed", not bad, bad)
    # Controls: the same check refuses the 2.x configuration and a misspelt nested key.
    old = {"server": {"http_listen_port": 3200}, "ingester": {"max_block_duration": "5m"},
           "compactor": {"compaction": {"block_retention": "48h"}}}
    check("control: a 2.x configuration (ingester, compactor) is refused",
          len(tempo_problems(old)) == 2, tempo_problems(old))
    typo = {"storage": {"trace": {"backend": "local", "wal": {"pth": "/var/tempo/wal"}}}}
    check("control: a misspelt nested key is refused",
          tempo_problems(typo) == ["storage.trace.wal.pth: not a Tempo 3.0.3 key"],
          tempo_problems(typo))
    procs = ((doc.get("overrides") or {}).get("defaults") or {}).get("metrics_generator", {})
    procs = set(procs.get("processors") or [])
    check("metrics-generator processors service-graphs and span-metrics, all known",
          {"service-graphs", "span-metrics"} <= procs <= TEMPO_PROCESSORS, procs)
    rw = ((doc.get("metrics_generator") or {}).get("storage") or {}).get("remote_write") or []
    check("metrics-generator remote-writes to Prometheus",
          [w.get("url") for w in rw] == ["http://prometheus:9090/api/v1/write"], rw)
    paths = [doc["storage"]["trace"]["wal"]["path"], doc["storage"]["trace"]["local"]["path"],
             doc["metrics_generator"]["storage"]["path"]]
    check("everything Tempo writes is under /var/tempo, the volume",
          all(str(p).startswith("/var/tempo/") for p in paths), paths)
    ret = doc["backend_worker"]["compaction"]["block_retention"]
    check("retention 48h (the backend worker applies it in 3.0)", ret == "48h", ret)


@test("collector")
def collector(tmp):
    """docker/otel-collector.yaml: current component names and keys, pipeline defined"""
    doc = load("otel-collector.yaml")
    bad = collector_problems(doc)
    check("every key and component name is current", not bad, bad)
    old = {"exporters": {"otlp/tempo": {"endpoint": "tempo:4317", "tls": {"insecure": True}}},
           "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                                "exporters": ["otlp/tempo"]}}}}
    got = collector_problems(old)
    check("control: the deprecated exporter name `otlp` and an undefined receiver are refused",
          "exporters.otlp/tempo: deprecated name, now otlp_grpc" in got and
          "pipeline traces: receivers otlp is not defined" in got, got)
    check("control: a misspelt exporter key is refused", collector_problems(
        {"exporters": {"debug": {"verbosty": "basic"}}}) ==
        ["exporters.debug.verbosty: not a key of the current collector"])
    exps = doc.get("exporters") or {}
    tempo_exp = [k for k, v in exps.items() if k.split("/")[0] == "otlp_grpc" and
                 (v or {}).get("endpoint") == "tempo:4317"]
    check("an otlp_grpc exporter to tempo:4317, batching in its sending queue",
          len(tempo_exp) == 1 and "batch" in (exps[tempo_exp[0]].get("sending_queue") or {}),
          exps)


def compose():
    r = subprocess.run(["docker-compose", "-f", os.path.join(DOCKER, "compose.yaml"),
                        "--profile", "demo", "config"], capture_output=True, text=True)
    check("docker-compose config (profile demo)", r.returncode == 0, r.stderr)
    return yaml.safe_load(r.stdout)["services"]


def listen_port(cmd):
    cmd = [str(c) for c in cmd or []]
    i = cmd.index("--metrics-listen") if "--metrics-listen" in cmd else -1
    return cmd[i + 1].rsplit(":", 1)[1] if 0 <= i < len(cmd) - 1 else None


@test("wiring")
def wiring(tmp):
    """compose: Prometheus scrapes cln-otlp and the demo, receives Tempo, Grafana provisioned"""
    svc = compose()
    prom = svc.get("prometheus", {})
    pcmd = [str(c) for c in prom.get("command") or []]
    check("prometheus: --web.enable-remote-write-receiver (Tempo's metrics-generator)",
          "--web.enable-remote-write-receiver" in pcmd, pcmd)
    cfg = load("prometheus.yml")
    targets = {t for sc in cfg.get("scrape_configs") or []
               for s in sc.get("static_configs") or [] for t in s.get("targets") or []}
    for name in ("cln-otlp", "demo"):
        port = listen_port(svc.get(name, {}).get("command"))
        check("%s: --metrics-listen 0.0.0.0:PORT, and Prometheus scrapes %s:PORT" % (name, name),
              port and "%s:%s" % (name, port) in targets, (svc.get(name, {}).get("command"),
                                                           targets))
    g = svc.get("grafana", {})
    mounts = {(v.get("source") if isinstance(v, dict) else v.split(":")[0]):
              (v.get("target") if isinstance(v, dict) else v.split(":")[1])
              for v in g.get("volumes") or []}
    want = {os.path.join(DOCKER, "grafana/provisioning"): "/etc/grafana/provisioning",
            os.path.join(DOCKER, "grafana/dashboards"): "/var/lib/grafana/dashboards"}
    check("grafana: provisioning and dashboards mounted", all(mounts.get(k) == v
                                                             for k, v in want.items()), mounts)
    prov = load("grafana/provisioning/dashboards/cln.yaml")
    check("grafana: the dashboard provider reads /var/lib/grafana/dashboards", [
        p.get("options", {}).get("path") for p in prov.get("providers", [])] ==
        ["/var/lib/grafana/dashboards"], prov)
    ds = {d["uid"]: d for d in load("grafana/provisioning/datasources/datasources.yaml")[
        "datasources"]}
    check("grafana: data sources tempo (default) and prometheus at their services",
          (ds.get("tempo", {}).get("url"), ds.get("tempo", {}).get("isDefault"),
           ds.get("prometheus", {}).get("url")) ==
          ("http://tempo:3200", True, "http://prometheus:9090"), ds)
    for name in ("otel-collector", "tempo", "prometheus", "grafana"):
        image = svc.get(name, {}).get("image", "")
        check("%s: image pinned to a version (%s)" % (name, image),
              re.search(r":v?\d+\.\d+\.\d+$", image), image)


# ---- the dashboard -----------------------------------------------------------------------
# PromQL words that are not metric names (prometheus/promql/parser: functions, aggregations,
# keywords).
PROMQL_FUNCS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta",
    "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_sum", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log2", "log10", "max_over_time",
    "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets", "round",
    "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time",
    "timestamp", "vector", "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "and", "or", "unless", "inf", "nan"}


def promql_metrics(expr):
    """(metric names, unknown function names) of a PromQL expression."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    funcs = set()
    for m in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\s*(\()?", e):
        word = m.group(1)
        if m.group(2):
            funcs.add(word)
        elif word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names, funcs - PROMQL_FUNCS


def kept_labels(expr):
    """The labels the outermost `by (...)` keeps (None: no aggregation)."""
    m = re.search(r"\bby\s*\(([^)]*)\)", expr)
    return {x.strip() for x in m.group(1).split(",")} if m else None


def traceql_ok(q):
    """Rough TraceQL shape: a { } spanset, braces and quotes balanced."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', q)
    return bare.count("{") == bare.count("}") > 0 and '"' not in bare.replace('""', "")


def dashboards():
    paths = sorted(glob.glob(os.path.join(DOCKER, "grafana/dashboards/*.json")))
    check("dashboards in docker/grafana/dashboards (%d)" % len(paths), paths)
    out = []
    for p in paths:
        with open(p) as f:
            out.append((os.path.basename(p), json.load(f)))
    return out


def panels_of(dash):
    for p in dash.get("panels") or []:
        yield p
        yield from p.get("panels") or []  # rows


def contract():
    with open(os.path.join(HERE, "span-metrics.txt")) as f:
        return {ln.strip() for ln in f if ln.strip() and not ln.startswith("#")}


def prom_exprs(dash):
    """[(panel title, expr)] of every Prometheus query of the dashboard."""
    return [(p.get("title"), t["expr"]) for p in panels_of(dash)
            for t in p.get("targets") or []
            if ((t.get("datasource") or p.get("datasource") or {}).get("uid")) == "prometheus"]


def metric_problems(dash, known):
    bad = []
    for title, expr in prom_exprs(dash):
        names, funcs = promql_metrics(expr)
        bad += ["%s: %s: no such metric" % (title, n) for n in sorted(names - known)]
        bad += ["%s: %s(): no such PromQL function" % (title, f) for f in sorted(funcs)]
        if not names:
            bad.append("%s: no metric found in %s" % (title, expr))
    return bad


def link_problems(p):
    """A Prometheus panel's links to Tempo: present, a TraceQL query, labels it keeps."""
    links = (p.get("fieldConfig") or {}).get("defaults", {}).get("links") or []
    tempo = [ln for ln in links if ln.get("url", "").startswith("/explore?")]
    if not tempo:
        return ["%s: no link to the traces in Tempo" % p.get("title")]
    bad = []
    for ln in tempo:
        pane = json.loads(ln["url"].split("panes=", 1)[1])
        for q in (v for pn in pane.values() for v in pn.get("queries", [])):
            if (q.get("datasource") or {}).get("uid") != "tempo" or not traceql_ok(
                    q.get("query", "")):
                bad.append("%s: link query %r is no TraceQL for Tempo" % (p.get("title"), q))
            for lab in re.findall(r"\$\{__field\.labels\.(\w+)\}", ln["url"]):
                for t in p.get("targets") or []:
                    kept = kept_labels(t.get("expr", ""))
                    if kept is not None and lab not in kept:
                        bad.append("%s: link uses label %s, which %s drops" % (
                            p.get("title"), lab, t["expr"]))
    return bad


@test("dashboard")
def dashboard(tmp):
    """the dashboard: every PromQL metric in cln-otlp's contract, panels link to Tempo"""
    known = contract()
    check("the contract lists the span metrics (%d)" % len(known),
          "cln_otlp_span_duration_seconds_bucket" in known and len(known) >= 5, known)
    ds = {d["uid"] for d in load("grafana/provisioning/datasources/datasources.yaml")[
        "datasources"]}
    for name, dash in dashboards():
        exprs = prom_exprs(dash)
        check("%s: Prometheus queries (%d)" % (name, len(exprs)), len(exprs) >= 5)
        bad = metric_problems(dash, known)
        check("%s: every metric a panel asks for is one cln-otlp serves" % name, not bad, bad)
        for p in panels_of(dash):
            uids = {(t.get("datasource") or p.get("datasource") or {}).get("uid")
                    for t in p.get("targets") or []}
            check("%s / %s: its data sources are provisioned" % (name, p.get("title")),
                  uids and uids <= ds, uids)
            if uids == {"prometheus"}:
                bad = link_problems(p)
                check("%s / %s: links to its traces in Tempo" % (name, p.get("title")),
                      not bad, bad)
            elif uids == {"tempo"}:
                qs = [t.get("query", "") for t in p["targets"]]
                check("%s / %s: TraceQL" % (name, p.get("title")), all(
                    t.get("queryType") == "traceql" for t in p["targets"]) and all(
                    map(traceql_ok, qs)), qs)
        text = json.dumps([e for _, e in exprs])
        for what, pat in (("RPC p50/p99 by method", r'histogram_quantile\(0\.5, sum by '
                           r'\(rpc_method, le\).*span_name=\\"lightningd/jsonrpc\\"'),
                          ("RPC p99", r"histogram_quantile\(0\.99"),
                          ("RPC errors", r"cln_otlp_span_errors_total"),
                          ("plugin call latency", r'span_name=~\\"plugin/\.\*\\"')):
            check("%s: a panel for %s" % (name, what), re.search(pat, text), text)
        check("%s: slowest database queries from Tempo" % name, any(
            "db.query.text" in t.get("query", "") for p in panels_of(dash)
            for t in p.get("targets") or []))
        # Controls: a misspelt metric, an unknown function and a missing link are caught.
        typo = json.loads(json.dumps(dash).replace("cln_otlp_span_errors_total",
                                                   "cln_otlp_span_error_total", 1))
        check("control: a misspelt metric is refused", metric_problems(typo, known))
        fn = {"panels": [{"title": "t", "datasource": {"uid": "prometheus"}, "targets": [
            {"expr": "histogram_quantil(0.5, rate(cln_otlp_span_duration_seconds_bucket"
                     "[5m]))"}]}]}
        check("control: an unknown function is refused",
              metric_problems(fn, known) == ["t: histogram_quantil(): no such PromQL function"],
              metric_problems(fn, known))
        check("control: a panel without a link is refused",
              link_problems({"title": "t", "fieldConfig": {"defaults": {}}}))


def scrape(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def served_names(text):
    from prometheus_client.parser import text_string_to_metric_families
    names = set()
    for fam in text_string_to_metric_families(text):
        names |= {s.name for s in fam.samples}
        # A family declared (# TYPE) with no sample yet counts as served.
        names |= {fam.name + x for x in {"counter": ["_total"], "histogram": [
            "_bucket", "_sum", "_count"]}.get(fam.type, [""])}
    return names


@test("served")
def served(tmp):
    """every metric the dashboard asks for is served by cln-otlp at --metrics-listen"""
    check("--cln-otlp given", A.cln_otlp and os.path.exists(A.cln_otlp), A.cln_otlp)
    files = sorted(glob.glob(os.path.join(CAPTURE_DIR, "lightningd-trace.*")))
    port = free_port()
    argv = [A.cln_otlp, "--exporter", "none", "--follow",
            "--metrics-listen", "127.0.0.1:%d" % port]
    for f in files:
        argv += ["--file", f]
    want = {n for _, d in dashboards() for _, e in prom_exprs(d) for n in promql_metrics(e)[0]}
    check("the dashboard asks for metrics (%d)" % len(want), want)
    with Proc(argv, tmp, "cln-otlp") as p:
        # The span metrics appear once spans have been read; histograms are per span name.
        text = p.wait(lambda: (lambda t: t if t and "cln_otlp_span_duration_seconds" in t
                               else None)(scrape(port)), 60,
                      "/metrics serves cln_otlp_span_duration_seconds")
        names = served_names(text)
        missing = sorted(want - names)
        check("every dashboard metric is served (%d)" % len(want), not missing,
              (missing, sorted(n for n in names if n.startswith("cln_otlp_span"))))
        check("control: the served names do not hold a misspelt one",
              "cln_otlp_span_error_total" not in names)
        p.stopped()


main([NAME])
