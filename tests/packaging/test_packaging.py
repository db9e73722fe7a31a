#!/usr/bin/python3
"""Checks of what ships around the binary: the man page, the environment file, `cmake
--install`, the systemd unit, the Debian package, and docker/ (compose files, the
collector/Tempo/Grafana configurations, the Dockerfile's package lists, the demo script).

    test_packaging.py CHECK --src DIR --build DIR --cln-otlp BIN [--emitter BIN]

CHECK is one of the tests below. caps and demo load BPF programs: they need root (CTest
label root), and fail without it.
"""
import fnmatch
import os
import re
import shlex
import shutil
import sys
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, Proc, check, clean_env, main, options, otlp_spans,  # noqa: E402
                     read_lines, run, span_payloads, start_emitter, release, test)

(NAME,), A = options("src", "build", "cln-otlp", "emitter")
A.src, A.build = os.path.realpath(A.src), os.path.realpath(A.build)
DOCKER = os.path.join(A.src, "docker")
# What the unit must grant, and why (packaging/README.md explains each).
UNIT_CAPS = {"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE",
             "CAP_DAC_OVERRIDE"}
# Highest `systemd-analyze security` exposure accepted (0 safest .. 10); the unit scores 2.7.
MAX_EXPOSURE = 3.0
# Packages every Debian image has (Priority: required), so a Dockerfile need not list them.
BASE_PACKAGES = {"libc6"}
# The variables a reader of config.c must find; guards against the scan finding none.
OTEL_KNOWN = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
              "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_BSP_MAX_QUEUE_SIZE"}


def read(*path):
    with open(os.path.join(*path)) as f:
        return f.read()


def need_tool(name, package):
    path = shutil.which(name) or (os.path.exists("/usr/sbin/" + name) and "/usr/sbin/" + name)
    return check("%s is installed (Debian package %s)" % (name, package), path)


def otel_vars():
    """Every OTEL_* variable src/config.c reads (checked to hold the usual ones). Literal
    names count as they are; the X of config_env_otlp/_path/_ms(env, "X", ...) stands for
    OTEL_EXPORTER_OTLP_X and OTEL_EXPORTER_OTLP_TRACES_X."""
    text = read(A.src, "src/config.c")
    names = {n for n in re.findall(r'"(OTEL_[A-Z0-9_]*[A-Z0-9])[" =]', text)
             if not n.endswith("_X") and not n.endswith("_TRACES")}
    for x in re.findall(r'config_env_(?:otlp|path|ms)\(env, "([A-Z_]+)"', text):
        if not x.startswith("OTEL_"):
            names |= {"OTEL_EXPORTER_OTLP_" + x, "OTEL_EXPORTER_OTLP_TRACES_" + x}
    check("config.c reads the usual OTEL_* variables (%d found)" % len(names),
          OTEL_KNOWN <= names, sorted(names))
    return names


def help_options(text):
    """Long and short options of the option lines of --help."""
    lines = (re.match(r"^\s+((?:-[A-Za-z], )?--[a-z][a-z0-9-]*)", ln) for ln in text.splitlines())
    return {o for m in lines if m for o in re.findall(r"(?<![\w-])(--?[A-Za-z][a-z0-9-]*)",
                                                      m.group(1))}


def help_examples(text):
    """The example command lines of --help, continuation lines joined."""
    cmds, cur = [], None
    for line in text.split("Examples:", 1)[1].splitlines() if "Examples:" in text else []:
        if re.match(r"^ {4,}\S", line):
            cur = line.strip() if cur is None else cur + " " + line.strip()
            if not cur.endswith("\\"):
                cmds.append(re.sub(r"\s+", " ", re.sub(r"\s*\\\s*", " ", cur).strip()))
                cur = None
            else:
                cur = cur[:-1].rstrip()
    return cmds


def roff_plain(text):
    """Roff source to plain words: escapes and font changes dropped, lines joined."""
    t = re.sub(r"\\f(\[[A-Z]*\]|[A-Z])", "", text.replace("\\-", "-").replace("\\e", "\\"))
    t = re.sub(r"\\[,/&]", "", t)
    t = re.sub(r"^\.(TP|PP|RS|RE|nf|fi|SS|SH|TH|IP|br)\b.*$", " ", t, flags=re.M)
    t = re.sub(r"^\.(B|I|BR|IR|RB|RI)\s+", "", t, flags=re.M).replace('"', "")
    return re.sub(r"\s+", " ", re.sub(r"\\\s*\n", " ", t))


def needed_packages(binary):
    """{library soname: (runtime package, -dev package)} of the binary's DT_NEEDED entries."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        run(["readelf", "-d", binary]).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", binary]).stdout, re.M))
    # Candidates, best first: the library (merged /usr: /lib and /usr/lib, and the file a
    # link points to) for the runtime package; the unversioned libX.so link the linker
    # used, never resolved, for the -dev package.
    cands = {}
    for lib in needed:
        path = paths.get(lib)
        arch = path and os.path.basename(os.path.dirname(path))
        base = re.sub(r"\.so\..*$", ".so", lib)
        cands[lib] = ([path, re.sub(r"^/lib/", "/usr/lib/", path), re.sub(
            r"^/usr/lib/", "/lib/", path), os.path.realpath(path)] if path else [],
            [os.path.join(d, base) for d in ("/usr/lib/" + arch, "/lib/" + arch)] if path else [])
    owner = {}
    allp = sorted({p for rt, dev in cands.values() for p in rt + dev})
    for line in run(["dpkg", "-S"] + allp).stdout.splitlines() if allp else []:
        pkg, _, path = line.partition(": ")
        if path and "," not in pkg:
            owner.setdefault(path.strip(), pkg.split(":")[0].strip())
    return {lib: (next((owner[p] for p in rt if p in owner), None),
                  next((owner[p] for p in dev if p in owner), None))
            for lib, (rt, dev) in cands.items()}


def exec_argv(line, env):
    """ExecStart's command line as systemd expands it: ${VAR} is one word (empty if unset),
    $VAR a word split at whitespace (none if unset or empty)."""
    argv = []
    for word in line.split():
        m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m and m.group(1):
            argv.append(env.get(m.group(1), ""))
        elif m:
            argv += env.get(m.group(2), "").split()
        else:
            argv.append(word)
    return argv


def envfile_examples(name):
    """The commented examples NAME=value of packaging/cln-otlp.default."""
    return re.findall(r"^#%s=(.*)$" % name, read(A.src, "packaging/cln-otlp.default"), re.M)


def staged_install(prefix, destdir):
    return run(["cmake", "--install", A.build, "--prefix", prefix],
               env=dict(os.environ, DESTDIR=destdir))


def parse_unit(path=None, text=None):
    """{key: [values]} of a unit file, sections ignored (the keys used here are unique)."""
    keys = {}
    for line in (text if text is not None else read(path)).splitlines():
        line = line.strip()
        if line and line[0] not in "#;[":
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@test("manpage")
def manpage(tmp):
    """the man page: every option and example of --help, every OTEL_* variable, sections"""
    man = os.path.join(A.build, "cln-otlp.1")
    check("the build made cln-otlp.1 (help2man missing when CMake ran? apt-get install "
          "help2man, then re-run cmake and build)", os.path.exists(man))
    src = read(man)
    plain = roff_plain(src)
    r = run([A.cln_otlp, "--help"])
    text = r.stdout + r.stderr
    opts = help_options(text)
    check("--help lists options (%d)" % len(opts), len(opts) >= 30 and "--lightningd" in opts,
          text[:400])
    missing = sorted(o for o in opts if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o),
                                                       plain))
    check("every option of --help is in the man page", not missing, missing)
    # Options of other commands the page shows (systemctl enable --now) are not ours.
    in_man = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)",
                            re.sub(r"systemctl \S+ --\S+", "", plain)))
    check("every --option the man page names exists", in_man <= opts, sorted(in_man - opts))
    examples = help_examples(text)
    check("--help has examples (%d)" % len(examples), len(examples) >= 3, text[-600:])
    check("every example of --help is in the man page", all(e in plain for e in examples),
          [e for e in examples if e not in plain])
    lost = sorted(n for n in {n.replace("_OTLP_TRACES_", "_OTLP_") for n in otel_vars()} if n not in plain)
    check("every OTEL_* variable is in the man page", not lost, lost)
    ver = run([A.cln_otlp, "--version"]).stdout.split()
    th = re.search(r'^\.TH .*"(cln-otlp [^"]+)"', src, re.M)
    check("the man page's version is the binary's", th and ver and
          th.group(1) == " ".join(ver[:2]), (th and th.group(0), ver))
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXAMPLES",
                    "PRIVILEGES"):
        check("section %s is there" % section, re.search(r'^\.SH "?%s"?$' % section, src, re.M))
    need_tool("groff", "groff-base")
    r = run(["groff", "-man", "-Tutf8", "-ww", "-z", man])
    check("groff renders it without a warning", r.returncode == 0 and not r.stderr.strip(),
          r.stderr)


@test("envfile")
def envfile(tmp):
    """packaging/cln-otlp.default: systemd syntax, every OTEL_* variable, examples accepted"""
    lines, bad = [], []
    for n, s in enumerate(read(A.src, "packaging/cln-otlp.default").splitlines(), 1):
        m = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$", s)
        if m:
            lines.append((m.group(1) == "#", m.group(2), m.group(3)))
        elif s.strip() and not s.startswith("#"):
            bad.append("%d: %s" % (n, s))
    check("only VARIABLE=value and comment lines (systemd EnvironmentFile syntax)", not bad, bad)
    active = {n for c, n, _ in lines if not c}
    check("nothing is set: every variable is a commented example (the unit discovers the node)",
          not active, active)
    check("LIGHTNINGD, which the unit no longer reads, is not among the examples",
          "LIGHTNINGD" not in {n for _, n, _ in lines}, lines)
    names = otel_vars()
    shown = {n for c, n, _ in lines if c and n.startswith("OTEL_")}
    check("every OTEL_* variable cln-otlp reads has an example", names <= shown, names - shown)
    check("every OTEL_* example is a variable cln-otlp reads", shown <= names, shown - names)
    empty = os.path.join(tmp, "empty.trace")
    open(empty, "w").close()

    def accepted(env, args=()):
        r = run([A.cln_otlp, "--file", empty] + list(args), env=clean_env(**env), timeout=30)
        # A variable's bad value is warned about and ignored (the specification's rule):
        # accepted means exit 0 and no such warning.
        return r.returncode == 0 and ": ignored" not in r.stderr, r.stderr.strip()[-300:]

    ok, err = accepted({"OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"})
    check("control: cln-otlp refuses a bad value (so the next checks can fail)", not ok, err)
    for _, n, v in lines:
        if n.startswith("OTEL_"):
            check("example accepted: %s=%s" % (n, v), *accepted({n: v}))
        elif n == "CLN_OTLP_ARGS":
            args = [x for x in shlex.split(v) if x]
            # --lightningd, --pid only make sense with eBPF; the others are checked with --file.
            if {"--lightningd", "--pid", "--no-plugins"} & set(args):
                r = run([A.cln_otlp] + args + ["--help"], env=clean_env())
                check("example parses: CLN_OTLP_ARGS=%s" % v, r.returncode == 0, r.stderr)
            else:
                check("example accepted: CLN_OTLP_ARGS=%s" % v, *accepted({}, args))


@test("install")
def install(tmp):
    """cmake --install: the files, their modes, the unit's paths, an edited file kept"""
    dest = os.path.join(tmp, "root")
    r = staged_install("/usr", dest)
    check("cmake --install --prefix /usr into DESTDIR", r.returncode == 0, r.stdout + r.stderr)
    files = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs}
    want = {"usr/bin/cln-otlp", "usr/share/man/man1/cln-otlp.1.gz",
            "usr/share/doc/cln-otlp/copyright", "usr/share/doc/cln-otlp/changelog.gz",
            "usr/lib/systemd/system/cln-otlp.service", "etc/default/cln-otlp",
            "usr/share/doc/cln-otlp/README.md", "usr/share/doc/cln-otlp/README.packaging.md",
            "usr/share/doc/cln-otlp/examples/cln-otlp.default"}
    check("installed: %s" % ", ".join(sorted(want)), want <= files, sorted(want - files))
    if files - want:
        print("note: also installed: %s" % sorted(files - want))
    check("the binary is executable", os.access(os.path.join(dest, "usr/bin/cln-otlp"), os.X_OK))
    env = os.path.join(dest, "etc/default/cln-otlp")
    mode = os.stat(env).st_mode & 0o777
    check("the environment file is mode 0600 (it may hold an API key)", mode == 0o600, oct(mode))
    unit = parse_unit(os.path.join(dest, "usr/lib/systemd/system/cln-otlp.service"))
    check("ExecStart runs the installed binary: /usr/bin/cln-otlp",
          unit.get("ExecStart", [""])[0].split()[:1] == ["/usr/bin/cln-otlp"], unit)
    check("EnvironmentFile=-/etc/default/cln-otlp",
          unit.get("EnvironmentFile") == ["-/etc/default/cln-otlp"], unit)
    with open(env, "a") as f:
        f.write("OTEL_SERVICE_NAME=edited\n")
    before = read(env)
    r = staged_install("/usr", dest)
    check("installing again keeps an edited environment file",
          r.returncode == 0 and read(env) == before and "Kept:" in r.stdout,
          r.stdout[-500:] + r.stderr)
    r = staged_install("/opt/cln-otlp", os.path.join(tmp, "opt"))
    unit2 = os.path.join(tmp, "opt/opt/cln-otlp/lib/systemd/system/cln-otlp.service")
    check("--prefix /opt/cln-otlp: the unit says ExecStart=/opt/cln-otlp/bin/cln-otlp",
          r.returncode == 0 and os.path.exists(unit2) and parse_unit(unit2).get(
              "ExecStart", [""])[0].split()[:1] == ["/opt/cln-otlp/bin/cln-otlp"], r.stderr)


@test("unit")
def unit(tmp):
    """the systemd unit: verify, security exposure, hardening, capabilities"""
    sa = need_tool("systemd-analyze", "systemd")
    dest = os.path.join(tmp, "root")
    check("staged install", staged_install("/usr", dest).returncode == 0)
    installed = os.path.join(dest, "usr/lib/systemd/system/cln-otlp.service")
    # verify wants ExecStart's binary to exist: point it at the staged one.
    text = read(installed).replace("ExecStart=/usr/bin/cln-otlp ", "ExecStart=%s " %
                                   os.path.join(dest, "usr/bin/cln-otlp"))
    os.mkdir(os.path.join(tmp, "verify"))
    unit, bogus = (os.path.join(tmp, "verify", n) for n in ("cln-otlp.service", "bogus.service"))
    for path, t in ((unit, text), (bogus, text.replace("[Service]\n",
                                                       "[Service]\nNoSuchSetting=1\n"))):
        with open(path, "w") as f:
            f.write(t)
    r = run([sa, "verify", "--man=no", unit])
    check("systemd-analyze verify: no error, no warning",
          r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr)
    r = run([sa, "verify", "--man=no", bogus])
    check("control: verify reports an unknown setting", "NoSuchSetting" in r.stderr, r.stderr)
    r = run([sa, "security", "--offline=true", unit])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    check("systemd-analyze security: exposure <= %.1f" % MAX_EXPOSURE,
          m and float(m.group(1)) <= MAX_EXPOSURE, (r.stdout + r.stderr)[-2000:])
    keys = parse_unit(installed)
    for k, v in {
            "Type": "simple", "Restart": "on-failure", "DynamicUser": "yes",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
            "PrivateTmp": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "SystemCallArchitectures": "native", "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes", "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
            "LimitMEMLOCK": "infinity", "EnvironmentFile": "-/etc/default/cln-otlp",
            "RestartPreventExitStatus": "2", "PrivateMounts": "yes"}.items():
        check("%s=%s" % (k, v), keys.get(k) == [v], keys.get(k))
    exe = keys.get("ExecStart", [""])[0]
    check("ExecStart: no source option (discovery), only $CLN_OTLP_ARGS from the environment "
          "file", exe.split()[1:] == ["$CLN_OTLP_ARGS"], exe)
    check("no default binary: no Environment=LIGHTNINGD", not any(
        "LIGHTNINGD" in e for e in keys.get("Environment", [])), keys.get("Environment"))
    for k in ("CapabilityBoundingSet", "AmbientCapabilities"):
        got = set(" ".join(keys.get(k, [])).split())
        check("%s = %s" % (k, " ".join(sorted(UNIT_CAPS))), got == UNIT_CAPS, sorted(got))
    # Discovery must see every process: no hidepid, no /proc subset.
    check("ProtectProc hides no process (unset or default)",
          keys.get("ProtectProc", ["default"]) == ["default"], keys.get("ProtectProc"))
    check("ProcSubset unset or all", keys.get("ProcSubset", ["all"]) == ["all"])
    denied = set(" ".join(f[1:] for f in keys.get("SystemCallFilter", []) if f.startswith(
        "~")).split())
    check("CAP_SYS_PTRACE reads /proc only: ptrace, process_vm_readv/writev, pidfd_getfd denied",
          {"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd"} <= denied, denied)

    # README's drop-in for socket mode without root, applied to the unit: verify reads it
    # (a bogus key in it is reported, the control) and finds nothing wrong.
    m = re.search(r"```ini\n# /etc/systemd/system/cln-otlp\.service\.d/override\.conf\n(.*?)```",
                  read(A.src, "README.md"), re.S)
    check("README has the socket-mode drop-in", m)
    dropin = m.group(1).replace("ExecStart=/usr/bin/cln-otlp ", "ExecStart=%s " % os.path.join(
        dest, "usr/bin/cln-otlp"))
    os.mkdir(unit + ".d")
    for conf, want in ((dropin.replace("[Service]\n", "[Service]\nNoSuchSetting=1\n"), False),
                       (dropin, True)):
        with open(os.path.join(unit + ".d", "override.conf"), "w") as f:
            f.write(conf)
        r = run([sa, "verify", "--man=no", unit])
        out = (r.stdout + r.stderr).strip()
        check("README's socket drop-in: verify %s" % ("finds nothing" if want else
                                                       "reports a bogus key in it (control)"),
              (r.returncode == 0 and not out) if want else "NoSuchSetting" in out, out)
    dkeys = parse_unit(text=dropin)
    check("... it empties both capability sets and runs --socket",
          dkeys.get("CapabilityBoundingSet") == [""] and dkeys.get("AmbientCapabilities") ==
          [""] and "--socket" in dkeys.get("ExecStart", ["", ""])[-1], dkeys)

    # The unit's command line, expanded as systemd does with the shipped environment file
    # (nothing set) and with each CLN_OTLP_ARGS example, parses: `--check` exits 0 or 1
    # (a check failed: no collector here), never 2 (options refused).
    examples = envfile_examples("CLN_OTLP_ARGS")
    check("the environment file has CLN_OTLP_ARGS examples, one with --lightningd",
          any("--lightningd" in e for e in examples), examples)
    staged = os.path.join(dest, "usr/bin/cln-otlp")
    for args in [None] + examples:
        env = {"CLN_OTLP_ARGS": args} if args is not None else {}
        argv = exec_argv(exe.replace("/usr/bin/cln-otlp", staged, 1), env)
        r = run(argv + ["--check"], env=clean_env(PATH=tmp), timeout=120)
        check("ExecStart with %s, --check: options accepted (exit %d)" % (
            "CLN_OTLP_ARGS=" + args if args is not None else "the shipped environment file",
            r.returncode), r.returncode in (0, 1) and "✓" in r.stdout + r.stderr,
            (argv, r.stdout[-1500:], r.stderr[-1500:]))
        if args is None:
            check("... and it discovers: no binary named, none on PATH",
                  "discovers every binary with the lightningd:span_emit probe" in r.stdout,
                  r.stdout)


def setpriv(capspec):
    """Run as nobody with exactly these capabilities ("+bpf,+perfmon"; "": none) and
    no_new_privs, as the unit does."""
    spec = ",".join(["-all"] + ([capspec] if capspec else []))
    return [shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534",
            "--clear-groups", "--inh-caps=" + spec, "--ambient-caps=" + spec,
            "--bounding-set=" + spec, "--no-new-privs"]


@test("caps")
def caps(tmp):
    """The unit's capabilities, as a non-root user with no_new_privs (what DynamicUser= and
    AmbientCapabilities= give), suffice to capture from a lightningd in a directory that
    user cannot read, named or (the unit's default) discovered as root's process starts."""
    check("running as root (needed to set up the user and capabilities)", os.geteuid() == 0)
    check("cln-emitter was built (install systemtap-sdt-dev and re-run cmake)",
          A.emitter and os.path.exists(A.emitter))
    caps = " ".join(parse_unit(text=read(A.src, "packaging/cln-otlp.service.in")).get(
        "AmbientCapabilities", [])).split()
    check("the unit grants capabilities: %s" % " ".join(caps), set(caps) == UNIT_CAPS)
    spec = ",".join("+" + c.lower()[4:] for c in caps)
    n_emit = len(span_payloads(CAPTURE))
    os.chmod(tmp, 0o755)
    private = os.path.join(tmp, "node")
    os.makedirs(os.path.join(private, "bin"))
    os.chmod(private, 0o700)  # like a node user's home: nobody may not even look inside
    ln = os.path.join(private, "bin/lightningd")
    shutil.copy(A.emitter, ln)
    binary = os.path.join(tmp, "cln-otlp")
    shutil.copy(A.cln_otlp, binary)
    os.chmod(binary, 0o755)
    # LimitMEMLOCK=infinity, where this machine allows raising it (kernels from 5.11 do not
    # charge BPF maps to it anyway).
    memlock = [shutil.which("prlimit") or "prlimit", "--memlock=unlimited:unlimited"]
    if run(memlock + ["true"]).returncode != 0:
        print("note: cannot raise RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE): left as is")
        memlock = []

    def capture_as(capspec, name):
        """(exit status, spans captured) of cln-otlp as nobody with these capabilities."""
        with Proc(memlock + setpriv(capspec) + [binary, "--lightningd", ln, "--no-plugins",
                                                "--exporter", "stdout"],
                  tmp, name, cwd=tmp) as d:
            d.wait(lambda: "attached" in d.err() or not d.running(), 60, "attached or ended")
            if d.running():
                run([ln, CAPTURE, "--quiet"])
                d.wait(lambda: len(d.spans()) >= n_emit, 60, "the spans captured")
            return d.stop(), len(d.spans())

    rc, spans = capture_as(spec, "all")
    check("as nobody with only %s: %d of %d spans captured" % (spec, spans, n_emit),
          rc == 0 and spans == n_emit)
    # CAP_DAC_OVERRIDE would read it too: both go.
    less = ",".join(c for c in spec.split(",") if c not in ("+dac_read_search", "+dac_override"))
    rc, spans = capture_as(less, "less")
    check("without CAP_DAC_READ_SEARCH (and CAP_DAC_OVERRIDE) the unreadable lightningd is "
          "refused", rc != 0 and spans == 0)

    # Discovery, the unit's default: no source option, no lightningd on PATH.
    pub = os.path.join(tmp, "pub")
    os.makedirs(os.path.join(pub, "bin"))
    os.chmod(pub, 0o777)  # nobody's emitter writes its pid file here
    own = os.path.join(pub, "bin/lightningd")
    shutil.copy(A.emitter, own)

    def discover_as(capspec, name):
        """(root's node discovered, its spans captured, nobody's node discovered)."""
        rootld = os.path.join(private, name, "lightningd")  # a binary never seen
        os.makedirs(os.path.dirname(rootld))
        shutil.copy(A.emitter, rootld)
        with Proc(memlock + setpriv(capspec) + [binary, "--exporter", "stdout", "-v"], tmp,
                  "discover-" + name, cwd=tmp, env=clean_env(PATH=pub + "/none")) as d:
            d.wait_err("discovery: /proc scanned", 60)
            # root's node, held, then one of nobody's own: the exec records arrive in order,
            # so once nobody's is discovered root's exec has been looked at.
            node = start_emitter(tmp, rootld, CAPTURE, name=name + "-root")
            mine = Proc(setpriv("") + [own, "--synthetic", "3", "--wait-file",
                                           os.path.join(pub, name + ".go"), "--pid-file",
                                           os.path.join(pub, name + ".pid")], tmp, name + "-own")
            mine.wait(lambda: read_lines(os.path.join(pub, name + ".pid")) == [str(mine.pid)],
                      30, "nobody's node runs")
            d.wait_err("discovered %s (pid %d" % (own, mine.pid), 30)
            found = "discovered %s (pid %d" % (rootld, node.pid) in d.err()
            release(node)
            open(os.path.join(pub, name + ".go"), "w").close()
            mine.stopped(sig=None)
            # Only these binaries' spans: other nodes the host runs meanwhile are found too.
            def of(path):
                return len([1 for r, _ in d.spans() if r.get("process.executable.path") == path])
            d.wait(lambda: of(own) >= 3 and (not found or of(rootld) >= n_emit), 60,
                   "the spans captured")
            d.stopped()
            return found, of(rootld), d.err()

    found, spans, err = discover_as(spec, "disc")
    check("as nobody with only %s, no source option: root's node is discovered on its exec, "
          "%d of %d spans captured" % (spec, spans, n_emit), found and spans == n_emit, err)
    found, spans, err = discover_as(",".join(c for c in spec.split(",") if c != "+sys_ptrace"),
                                    "noptrace")
    check("without CAP_SYS_PTRACE root's node is not found (its /proc/PID/exe is refused)",
          not found and spans == 0 and "needs CAP_SYS_PTRACE" in err, err[-1500:])


@test("deb")
def deb(tmp):
    """cpack -G DEB: the files, conffiles, maintainer scripts, Depends, a binary that runs"""
    need_tool("cpack", "cmake")
    need_tool("dpkg-deb", "dpkg")
    r = run(["cpack", "-G", "DEB", "-B", tmp, "--config",
             os.path.join(A.build, "CPackConfig.cmake")], cwd=A.build)
    debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
    check("cpack -G DEB made one .deb", r.returncode == 0 and len(debs) == 1,
          r.stdout[-1500:] + r.stderr[-1500:])
    deb = os.path.join(tmp, debs[0])
    print("note: %s, %d bytes" % (debs[0], os.path.getsize(deb)))
    listing = run(["dpkg-deb", "-c", deb]).stdout
    paths = {ln.split()[-1].lstrip(".") for ln in listing.splitlines() if ln.strip()}
    for p in ("/usr/bin/cln-otlp", "/usr/share/man/man1/cln-otlp.1.gz",
              "/usr/share/doc/cln-otlp/copyright", "/usr/share/doc/cln-otlp/changelog.gz",
              "/usr/lib/systemd/system/cln-otlp.service", "/etc/default/cln-otlp",
              "/usr/share/doc/cln-otlp/examples/cln-otlp.default"):
        check("dpkg-deb -c lists %s" % p, p in paths, listing)
    check("nothing of the build machine leaks into the paths",
          not any(tmp in p or A.build in p for p in paths), listing)
    conffiles = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout.split()
    check("/etc/default/cln-otlp is a conffile (upgrades keep the admin's edits)",
          conffiles == ["/etc/default/cln-otlp"], conffiles)
    for script in ("postinst", "prerm", "postrm"):
        r = run(["dpkg-deb", "-I", deb, script])
        check("maintainer script %s is in the package" % script,
              r.returncode == 0 and "/run/systemd/system" in r.stdout, r.stderr)
        bare = [ln for ln in r.stdout.splitlines() if re.search(r"\bsystemctl\b", ln)
                and not ln.lstrip().startswith("#") and "daemon-reload" not in ln]
        check("%s starts and stops units through deb-systemd-invoke (policy), systemctl only "
              "for daemon-reload" % script, not bare, bare)
    fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"]).stdout
    depends = re.search(r"^Depends: (.*)$", fields, re.M)
    dep_pkgs = set(re.findall(r"([a-z0-9][a-z0-9+.-]+)(?: \([^)]*\))?(?:,|$)",
                              depends.group(1))) if depends else set()
    print("note: " + fields.strip().replace("\n", "; "))
    need = needed_packages(A.cln_otlp)
    missing = sorted({rt for rt, _ in need.values() if rt} - dep_pkgs)
    check("Depends names the package of every library the binary links (%d)" % len(need),
          need and all(rt for rt, _ in need.values()) and not missing, (missing, need))
    x = os.path.join(tmp, "x")
    run(["dpkg-deb", "-x", deb, x])
    exe = parse_unit(os.path.join(x, "usr/lib/systemd/system/cln-otlp.service")).get(
        "ExecStart", [""])[0]
    check("the packaged unit runs /usr/bin/cln-otlp", exe.startswith("/usr/bin/cln-otlp "), exe)
    r = run([os.path.join(x, "usr/bin/cln-otlp"), "--version"])
    check("the packaged binary runs", r.returncode == 0 and "cln-otlp" in r.stdout, r.stderr)
    with open(os.path.join(x, "usr/share/doc/cln-otlp/copyright")) as f:
        copyright_text = f.read()
    check("the copyright file is machine-readable and says what LICENSE says (MIT/Expat)",
          copyright_text.startswith("Format: https://www.debian.org/doc/packaging-manuals/"
                                    "copyright-format/1.0/") and "License: Expat" in
          copyright_text and "MIT License" in read(A.src, "LICENSE"), copyright_text[:300])
    lintian = need_tool("lintian", "lintian")
    r = run([lintian, "--tag-display-limit", "0", deb])
    tags = [ln for ln in (r.stdout + r.stderr).splitlines() if re.match(r"^[EW]: ", ln)]
    check("lintian: no error and no warning", r.returncode == 0 and not tags,
          r.stdout + r.stderr)
    # Control: lintian must see a broken package, or a clean result proves nothing.
    broken = os.path.join(tmp, "broken")
    run(["dpkg-deb", "-R", deb, broken])
    os.remove(os.path.join(broken, "usr/share/doc/cln-otlp/copyright"))
    r = run(["dpkg-deb", "--root-owner-group", "-b", broken, os.path.join(tmp, "broken.deb")])
    r = run([lintian, os.path.join(tmp, "broken.deb")])
    check("control: lintian reports a package without copyright",
          "no-copyright-file" in r.stdout + r.stderr, r.stdout + r.stderr)


# ---- docker/ ---------------------------------------------------------------------------


def compose_config(files, profile=None, env=None, quiet=False):
    """`docker-compose config` (and `config -q`) of these files: (result, quiet result)."""
    cmd = ["docker-compose"] + [a for f in files for a in ("-f", f)]
    cmd += ["--profile", profile] if profile else []
    e = dict({k: v for k, v in os.environ.items() if k != "LIGHTNINGD_DIR"}, **(env or {}))
    r = run(cmd + ["config"], env=e)
    return r, run(cmd + ["config", "-q"], env=e) if quiet else r


def services(r):
    return (yaml.safe_load(r.stdout) or {}).get("services", {}) if r.returncode == 0 else {}


@test("compose")
def compose(tmp):
    """docker/compose.yaml as docker-compose reads it, and the Honeycomb override"""
    need_tool("docker-compose", "docker-compose")
    base = os.path.join(DOCKER, "compose.yaml")
    for profile in (None, "demo"):
        r, q = compose_config([base], profile, quiet=True)
        check("docker-compose config -q%s" % (" --profile " + profile if profile else ""),
              q.returncode == 0 and r.returncode == 0, q.stderr + r.stderr)
    svc = services(r)
    want = {"otel-collector", "tempo", "prometheus", "grafana", "cln-otlp", "demo"}
    check("services %s" % ", ".join(sorted(want)), want <= set(svc), sorted(svc))
    c = svc.get("cln-otlp", {})
    check("cln-otlp: privileged", c.get("privileged") is True)
    check("cln-otlp: pid: host", c.get("pid") == "host")
    check("cln-otlp: sends to http://otel-collector:4318", (c.get("environment") or {}).get(
        "OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4318", c.get("environment"))
    # Discovery: no source option, so nodes on the host and in other containers are found
    # through /proc/PID/root (pid: host); nothing of theirs is mounted.
    cmd = c.get("command") or []
    check("cln-otlp: no source option (it discovers the nodes)", not {
        "--lightningd", "--pid", "--file", "--socket"} & set(cmd), cmd)
    check("cln-otlp: no volume (the nodes' files are reached through /proc/PID/root)",
          not c.get("volumes"), c.get("volumes"))
    runtime_cmd = re.search(r"^FROM \S+ AS runtime$.*?^CMD (.*?)$", read(DOCKER, "Dockerfile"),
                            re.M | re.S)
    check("the runtime image's CMD is empty (discovery) when compose gives none",
          runtime_cmd and runtime_cmd.group(1).strip() == "[]",
          runtime_cmd and runtime_cmd.group(0)[-200:])
    dm = svc.get("demo", {})
    check("demo: only in profile demo", dm.get("profiles") == ["demo"], dm.get("profiles"))
    check("demo: privileged, built from the Dockerfile's demo stage",
          dm.get("privileged") is True and (dm.get("build") or {}).get("target") == "demo", dm)
    check("demo: starting it alone starts the collector and Grafana",
          {"otel-collector", "grafana"} <= set(dm.get("depends_on") or {}), dm)
    g = svc.get("grafana", {})
    check("grafana: port 3000", any("3000" in str(p.get("published") if isinstance(p, dict)
                                                  else p) for p in g.get("ports", [])), g)
    genv = g.get("environment") or {}
    check("grafana: anonymous admin", (genv.get("GF_AUTH_ANONYMOUS_ENABLED"), genv.get(
        "GF_AUTH_ANONYMOUS_ORG_ROLE")) == ("true", "Admin"), genv)
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", read(DOCKER, "Dockerfile"), re.M | re.I))
    for name, s in svc.items():
        b = s.get("build")
        if b:
            check("%s: builds %s target %s (a stage of it)" % (name, b.get("dockerfile"),
                                                             b.get("target")),
                  os.path.realpath(b.get("context", "")) == A.src and os.path.exists(
                      os.path.join(b["context"], b.get("dockerfile", ""))) and
                  b.get("target") in stages, b)
        for v in s.get("volumes", []):
            src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            if src and src.startswith(DOCKER):
                check("%s: mounts %s, which exists" % (name, os.path.relpath(src, A.src)),
                      os.path.exists(src))

    # The Honeycomb override, with an env file made from the example, in a copy of docker/.
    shutil.copytree(DOCKER, os.path.join(tmp, "docker"))
    shutil.copy(os.path.join(DOCKER, "honeycomb.env.example"), os.path.join(
        tmp, "docker/honeycomb.env"))
    r, q = compose_config([os.path.join(tmp, "docker", f) for f in (
        "compose.yaml", "compose.honeycomb.yaml")], "demo", quiet=True)
    check("with compose.honeycomb.yaml: config -q", q.returncode == 0, q.stderr)
    hc = services(r)
    for name in ("cln-otlp", "demo"):
        env = hc.get(name, {}).get("environment") or {}
        check("%s: Honeycomb's API key header" % name,
              env.get("OTEL_EXPORTER_OTLP_HEADERS") == "x-honeycomb-team=YOUR_API_KEY", env)
    # Which endpoint cln-otlp really picks from that environment.
    env = {k: str(v) for k, v in (hc.get("cln-otlp", {}).get("environment") or {}).items()}
    empty = os.path.join(tmp, "empty.trace")
    open(empty, "w").close()
    r = run([A.cln_otlp, "--file", empty, "-v"], env=clean_env(**env), timeout=30)
    check("cln-otlp given that environment exports to https://api.honeycomb.io",
          r.returncode == 0 and "to https://api.honeycomb.io" in r.stderr and
          "otel-collector" not in r.stderr, r.stderr[-800:])
    check("docker/honeycomb.env is ignored by git",
          "honeycomb.env" in read(DOCKER, ".gitignore").split())


def get(d, *keys):
    """d[k1][k2]..., {} for what is missing."""
    for k in keys:
        d = (d or {}).get(k) or {}
    return d


@test("configs")
def configs(tmp):
    """the collector, Tempo and Grafana configurations fit together"""
    col = yaml.safe_load(read(DOCKER, "otel-collector.yaml"))
    proto = get(col, "receivers", "otlp", "protocols")
    check("collector: OTLP gRPC on 0.0.0.0:4317", get(proto, "grpc").get("endpoint") ==
          "0.0.0.0:4317", proto)
    check("collector: OTLP HTTP on 0.0.0.0:4318", get(proto, "http").get("endpoint") ==
          "0.0.0.0:4318", proto)
    exps = col.get("exporters") or {}
    tempo_exp = [k for k, v in exps.items() if k.split("/")[0] == "otlp_grpc" and
                 (v or {}).get("endpoint") == "tempo:4317"]
    check("collector: an otlp_grpc exporter to tempo:4317", len(tempo_exp) == 1, exps)
    check("collector: ... with tls.insecure (plain gRPC inside the network)",
          get(exps, tempo_exp[0], "tls").get("insecure") is True)
    check("collector: a debug exporter", "debug" in exps)
    pipe = get(col, "service", "pipelines", "traces")
    check("collector: traces pipeline otlp -> %s, debug" % tempo_exp[0],
          "otlp" in pipe.get("receivers", []) and "debug" in pipe.get("exporters", []) and
          tempo_exp[0] in pipe.get("exporters", []), pipe)
    for p in pipe.get("processors", []):
        check("collector: processor %s is defined" % p, p in (col.get("processors") or {}))

    tempo = yaml.safe_load(read(DOCKER, "tempo.yaml"))
    st = get(tempo, "storage", "trace")
    check("tempo: local storage", st.get("backend") == "local" and get(st, "local").get("path")
          and get(st, "wal").get("path"), st)
    tproto = get(tempo, "distributor", "receivers", "otlp", "protocols")
    check("tempo: receives OTLP gRPC on 0.0.0.0:4317 (where the collector sends)",
          get(tproto, "grpc").get("endpoint") == "0.0.0.0:4317", tproto)
    port = get(tempo, "server").get("http_listen_port")
    check("tempo: HTTP API on 3200", port == 3200, port)
    check("tempo: its data under /var/tempo, the volume compose mounts",
          str(get(st, "local").get("path", "")).startswith("/var/tempo/") and
          str(get(st, "wal").get("path", "")).startswith("/var/tempo/"))

    ds = yaml.safe_load(read(DOCKER, "grafana/provisioning/datasources/datasources.yaml"))
    check("grafana: provisioning apiVersion 1", ds.get("apiVersion") == 1)
    defaults = [s for s in ds.get("datasources") or [] if s.get("isDefault") is True]
    check("grafana: exactly one default data source", len(defaults) == 1, ds)
    check("grafana: the default is Tempo at http://tempo:%s" % port, (defaults[0].get(
        "type"), defaults[0].get("url")) == ("tempo", "http://tempo:%s" % port), defaults)


@test("dockerfile")
def dockerfile(tmp):
    """the Dockerfile's stages and package lists, .dockerignore"""
    text = read(DOCKER, "Dockerfile")
    pk, stages, cur = {}, {}, None  # {stage: [apt packages]}, {stage: text}
    for line in text.replace("\\\n", " ").splitlines():
        m = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            cur = m.group(1) or "_%d" % len(stages)
            stages[cur], pk[cur] = "", []
        if cur is not None:
            stages[cur] += line + "\n"
            for m2 in re.finditer(r"apt-get install ([^&;]*)", line):
                pk[cur] += [w for w in m2.group(1).split() if not w.startswith("-")]
    check("stages build, runtime, demo", {"build", "runtime", "demo"} <= set(stages), stages)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    arg = re.search(r"^ARG DEBIAN_IMAGE=(\S+)", text, re.M)
    check("based on debian:bookworm-slim", arg and arg.group(1) == "debian:bookworm-slim" and
          all(f in ("${DEBIAN_IMAGE}", "runtime") for f in froms), froms)
    # A sanitizer build links the sanitizer runtimes; the image builds without them.
    need = {lib: v for lib, v in needed_packages(A.cln_otlp).items()
            if not re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib)}
    check("readelf/ldd/dpkg -S: a package for every library cln-otlp links (%d)" % len(need),
          need and all(rt for rt, _ in need.values()), need)
    runtime, build = set(pk.get("runtime", [])), set(pk.get("build", []))
    for lib, (rt, dev) in sorted(need.items()):
        if rt in BASE_PACKAGES:
            print("note: %s comes from %s, in every Debian image" % (lib, rt))
        else:
            check("runtime stage installs %s (for %s)" % (rt, lib), rt in runtime, runtime)
        check("build stage installs %s (to link %s)" % (dev, lib), dev in build, sorted(build))
    check("runtime stage installs ca-certificates (https collectors)",
          "ca-certificates" in runtime)
    lists = "/var/lib/apt/lists"
    if any("_Packages" in f for f in (os.listdir(lists) if os.path.isdir(lists) else [])):
        named = sorted(set(sum(pk.values(), [])))
        known = set(re.findall(r"^Package: (\S+)$", run(["apt-cache", "show",
                                                         "--no-all-versions"] + named).stdout,
                               re.M))
        check("the %d packages named exist in this machine's Debian archive" % len(named),
              named and set(named) <= known, sorted(set(named) - known))
    else:
        print("note: no apt package lists here: package names not looked up")
    demo = stages.get("demo", "")
    for p in re.findall(r"^COPY\s+(?!--from)(\S+)", demo, re.M):
        check("demo stage copies %s, which exists" % p, os.path.exists(os.path.join(A.src, p)))
    check("demo stage has the emitter as lightningd",
          "/out/cln-emitter /opt/cln-demo/bin/lightningd" in demo)
    check("build stage builds cln-otlp and cln-emitter",
          re.search(r"--target cln-otlp cln-emitter", stages.get("build", "")))
    # .dockerignore must not hide what the build needs, and must hide build trees and secrets.
    ign = [ln.strip().rstrip("/") for ln in read(A.src, ".dockerignore").splitlines()
           if ln.strip() and not ln.startswith("#")]

    def ignored(p):
        return any(fnmatch.fnmatch(p, g) or fnmatch.fnmatch(p, g + "/*") or p.startswith(g + "/")
                   for g in ign)
    for p in ("CMakeLists.txt", "src/main.c", "bpf/source_usdt.bpf.c", "proto",
              "tests/emitter/cln_emitter.c", "tests/data/cln-v26-startup/lightningd-trace.32274",
              "docker/demo.sh", "cmake/install.cmake"):
        check(".dockerignore keeps %s" % p, not ignored(p))
    for p in ("build/cln-otlp", "build-pkg/CMakeCache.txt", ".git", "docker/honeycomb.env"):
        check(".dockerignore drops %s" % p, ignored(p))


@test("demo")
def demo(tmp):
    """docker/demo.sh run here as the demo container runs it (root: eBPF), two rounds."""
    check("running as root (the demo captures with eBPF)", os.geteuid() == 0)
    check("cln-emitter was built (install systemtap-sdt-dev and re-run cmake)",
          A.emitter and os.path.exists(A.emitter))
    capture = os.path.dirname(CAPTURE)
    emits = [ln for f in os.listdir(capture) for ln in read(capture, f).splitlines()
             if ln.startswith("span_emit ")]
    orig_tids = {t for ln in emits for t in re.findall(r'"traceId":"([0-9a-f]+)"', ln)}
    os.makedirs(os.path.join(tmp, "bin"))
    ln = os.path.join(tmp, "bin/lightningd")
    shutil.copy(A.emitter, ln)
    t0 = time.time()
    r = run([os.path.join(DOCKER, "demo.sh"), "--exporter", "stdout", "--batch-delay", "200"],
            env=clean_env(CLN_OTLP=A.cln_otlp, DEMO_EMITTER=ln, DEMO_CAPTURE=capture,
                          DEMO_ROUNDS="2", DEMO_INTERVAL="1", DEMO_RATE="20000"), timeout=120)
    t1 = time.time()
    check("demo.sh, 2 rounds: exit 0", r.returncode == 0, r.stderr[-1500:])
    check("it says each round", r.stderr.count("demo: round ") == 2, r.stderr[-800:])
    spans = [sp for _, sp in otlp_spans(r.stdout)]
    check("every span of the capture, twice: %d = 2 x %d" % (len(spans), len(emits)),
          len(spans) == 2 * len(emits), r.stderr[-800:])
    starts = [int(s["startTimeUnixNano"]) // 1000 for s in spans]
    check("timestamps moved to the present (earliest within the run)",
          starts and t0 * 1e6 - 2e6 <= min(starts) <= t1 * 1e6, (min(starts), t0, t1))
    tids = [s["traceId"] for s in spans]
    check("no trace id of the capture is reused", not (set(tids) & orig_tids))
    check("each round has its own trace ids: %d = 2 x %d" % (len(set(tids)), len(orig_tids)),
          len(set(tids)) == 2 * len(orig_tids))


main([NAME])
