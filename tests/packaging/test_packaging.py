#!/usr/bin/python3
"""Checks of what ships around the binary: the man page, the environment file, `cmake
--install`, the systemd unit, the Debian package, and docker/ (compose files, the
collector/Tempo/Grafana configurations, the Dockerfile's package lists, the demo script).

    test_packaging.py CHECK --src DIR --build DIR --cln-otlp BIN [--emitter BIN]

CHECK is one of the names in CHECKS below. Each prints what it verified and ends with
"N passed, M failed"; the exit status is 1 when anything failed. caps and demo load BPF
programs: they need root (CTest label root).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

PASS = 0
FAIL = 0

# What the unit must grant, and why (packaging/README.md explains each).
UNIT_CAPS = {"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"}
# Highest `systemd-analyze security` exposure accepted (0 safest .. 10); the unit scores 2.6.
MAX_EXPOSURE = 3.0
# Packages every Debian image has (Priority: required), so a Dockerfile need not list them.
BASE_PACKAGES = {"libc6"}


def check(what, ok, detail=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print("ok: " + what)
    else:
        FAIL += 1
        print("FAIL: " + what + (("\n  " + detail.replace("\n", "\n  ")) if detail else ""))
    return ok


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def need_tool(name, package):
    path = shutil.which(name) or (os.path.exists("/usr/sbin/" + name) and "/usr/sbin/" + name)
    check("%s is installed" % name, bool(path), "install the Debian package %s" % package)
    return path


# ---- shared facts ----------------------------------------------------------------------


def otel_vars(src):
    """Every OTEL_* variable src/config.c reads. Literal names count as they are; the X of
    config_env_otlp/_path/_ms(env, "X", ...) stands for OTEL_EXPORTER_OTLP_X and
    OTEL_EXPORTER_OTLP_TRACES_X."""
    text = open(os.path.join(src, "src/config.c")).read()
    names = set()
    for m in re.finditer(r'"(OTEL_[A-Z0-9_]*[A-Z0-9])[" =]', text):
        name = m.group(1)
        if not name.endswith("_X") and not name.endswith("_TRACES"):
            names.add(name)
    for m in re.finditer(r'config_env_(?:otlp|path|ms)\(env, "([A-Z_]+)"', text):
        x = m.group(1)
        if not x.startswith("OTEL_"):
            names.add("OTEL_EXPORTER_OTLP_" + x)
            names.add("OTEL_EXPORTER_OTLP_TRACES_" + x)
    return names


# The variables a reader of config.c must find; guards against the scan above finding none.
OTEL_KNOWN = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
              "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_BSP_MAX_QUEUE_SIZE"}


def help_text(binary):
    r = run([binary, "--help"])
    return r.stdout + r.stderr


def help_options(text):
    """Long and short options of the option lines of --help."""
    opts = set()
    for line in text.splitlines():
        m = re.match(r"^\s+((?:-[A-Za-z], )?--[a-z][a-z0-9-]*)", line)
        if m:
            for o in re.findall(r"(?<![\w-])(--?[A-Za-z][a-z0-9-]*)", m.group(1)):
                opts.add(o)
    return opts


def help_examples(text):
    """The example command lines of --help, continuation lines joined."""
    if "Examples:" not in text:
        return []
    cmds, cur = [], None
    for line in text.split("Examples:", 1)[1].splitlines():
        if re.match(r"^ {4,}\S", line):
            part = line.strip()
            cur = part if cur is None else cur + " " + part
            if not cur.endswith("\\"):
                cmds.append(re.sub(r"\s*\\\s*", " ", cur).strip())
                cur = None
            else:
                cur = cur[:-1].rstrip()
    return [re.sub(r"\s+", " ", c) for c in cmds]


def roff_plain(text):
    """Roff source to plain words: escapes and font changes dropped, lines joined."""
    t = text.replace("\\-", "-").replace("\\e", "\\")
    t = re.sub(r"\\f(\[[A-Z]*\]|[A-Z])", "", t)
    t = re.sub(r"\\[,/&]", "", t)
    t = re.sub(r"^\.(TP|PP|RS|RE|nf|fi|SS|SH|TH|IP|br)\b.*$", " ", t, flags=re.M)
    t = re.sub(r"^\.(B|I|BR|IR|RB|RI)\s+", "", t, flags=re.M)
    t = t.replace('"', "")
    t = re.sub(r"\\\s*\n", " ", t)
    return re.sub(r"\s+", " ", t)


def needed_packages(binary):
    """{library soname: (runtime package, -dev package)} of the binary's DT_NEEDED entries."""
    r = run(["readelf", "-d", binary])
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    paths = {}
    for line in run(["ldd", binary]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            paths[m.group(1)] = m.group(2)
    # Candidates, best first: the library (merged /usr: /lib and /usr/lib, and the file a
    # link points to) for the runtime package; the unversioned libX.so link the linker
    # used, never resolved, for the -dev package.
    cands = {}
    for lib in needed:
        path = paths.get(lib)
        if not path:
            cands[lib] = ([], [])
            continue
        arch = os.path.basename(os.path.dirname(path))
        rt = [path, re.sub(r"^/lib/", "/usr/lib/", path), re.sub(r"^/usr/lib/", "/lib/", path),
              os.path.realpath(path)]
        base = re.sub(r"\.so\..*$", ".so", lib)
        dev = [os.path.join(d, base) for d in ("/usr/lib/" + arch, "/lib/" + arch)]
        cands[lib] = (rt, dev)
    owner = {}
    allp = sorted({p for rt, dev in cands.values() for p in rt + dev})
    if allp:
        for line in run(["dpkg", "-S"] + allp).stdout.splitlines():
            pkg, _, path = line.partition(": ")
            if path and "," not in pkg:
                owner.setdefault(path.strip(), pkg.split(":")[0].strip())
    out = {}
    for lib in needed:
        rt, dev = cands[lib]
        out[lib] = (next((owner[p] for p in rt if p in owner), None),
                    next((owner[p] for p in dev if p in owner), None))
    return out


def staged_install(build, prefix, destdir):
    env = dict(os.environ, DESTDIR=destdir)
    return run(["cmake", "--install", build, "--prefix", prefix], env=env)


def parse_unit(path):
    """{key: [values]} of a unit file, sections ignored (the keys used here are unique)."""
    keys = {}
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        keys.setdefault(k.strip(), []).append(v.strip())
    return keys


# ---- checks ----------------------------------------------------------------------------


def check_manpage(a):
    man = os.path.join(a.build, "cln-otlp.1")
    if not check("the build made cln-otlp.1", os.path.exists(man),
                 "help2man was missing when CMake ran: apt-get install help2man, then "
                 "re-run cmake and build"):
        return
    src = open(man).read()
    plain = roff_plain(src)
    text = help_text(a.cln_otlp)
    opts = help_options(text)
    check("--help lists options (%d)" % len(opts), len(opts) >= 30 and "--lightningd" in opts,
          text[:400])
    missing = sorted(o for o in opts if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o),
                                                       plain))
    check("every option of --help is in the man page", not missing, "missing: %s" % missing)
    # Options of other commands the page shows (systemctl enable --now) are not ours.
    ours = re.sub(r"systemctl \S+ --\S+", "", plain)
    in_man = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", ours))
    unknown = sorted(o for o in in_man if o not in opts)
    check("every --option the man page names exists", not unknown, "unknown: %s" % unknown)
    examples = help_examples(text)
    check("--help has examples (%d)" % len(examples), len(examples) >= 3, text[-600:])
    gone = [e for e in examples if e not in plain]
    check("every example of --help is in the man page", not gone, "missing: %s" % gone)
    names = otel_vars(a.src)
    check("config.c reads the usual OTEL_* variables (%d found)" % len(names),
          OTEL_KNOWN <= names, "found only: %s" % sorted(names))
    base = {n.replace("_TRACES_", "_") for n in names}
    lost = sorted(n for n in base if n not in plain)
    check("every OTEL_* variable is in the man page", not lost, "missing: %s" % lost)
    ver = run([a.cln_otlp, "--version"]).stdout.split()
    th = re.search(r'^\.TH .*"(cln-otlp [^"]+)"', src, re.M)
    check("the man page's version is the binary's",
          th and ver and th.group(1) == " ".join(ver[:2]), "%s vs %s" % (th and th.group(0), ver))
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXAMPLES",
                    "PRIVILEGES"):
        check("section %s is there" % section,
              re.search(r'^\.SH "?%s"?$' % section, src, re.M) is not None)
    if need_tool("groff", "groff-base"):
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", man])
        check("groff renders it without a warning", r.returncode == 0 and not r.stderr.strip(),
              r.stderr)


def env_lines(path):
    """(commented?, name, value) of every VARIABLE=value line, commented or not."""
    out, bad = [], []
    for n, line in enumerate(open(path), 1):
        s = line.rstrip("\n")
        if not s.strip():
            continue
        m = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$", s)
        if m:
            out.append((m.group(1) == "#", m.group(2), m.group(3)))
        elif not s.startswith("#"):
            bad.append("%d: %s" % (n, s))
    return out, bad


def check_envfile(a):
    path = os.path.join(a.src, "packaging/cln-otlp.default")
    lines, bad = env_lines(path)
    check("only VARIABLE=value and comment lines (systemd EnvironmentFile syntax)", not bad,
          "\n".join(bad))
    active = {n for c, n, _ in lines if not c}
    check("LIGHTNINGD is set, the one thing to check", "LIGHTNINGD" in active, str(active))
    check("no OTEL_* variable is set: every one is commented",
          not any(n.startswith("OTEL_") for n in active), str(active))
    names = otel_vars(a.src)
    check("config.c reads the usual OTEL_* variables (%d found)" % len(names), OTEL_KNOWN <= names)
    shown = {n for c, n, _ in lines if c and n.startswith("OTEL_")}
    check("every OTEL_* variable cln-otlp reads has an example",
          names <= shown, "missing: %s" % sorted(names - shown))
    check("every OTEL_* example is a variable cln-otlp reads",
          shown <= names, "unknown: %s" % sorted(shown - names))
    # Commented lines explain: every example is preceded by a comment.
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.trace")
        open(empty, "w").close()
        env0 = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

        def accepted(extra_env, args=()):
            r = run([a.cln_otlp, "--file", empty] + list(args), env=dict(env0, **extra_env),
                    timeout=30)
            return r.returncode == 0, r.stderr.strip()[-300:]

        ok, err = accepted({"OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"})
        check("control: cln-otlp refuses a bad value (so the next checks can fail)", not ok, err)
        for c, n, v in lines:
            if n.startswith("OTEL_"):
                ok, err = accepted({n: v})
                check("example accepted: %s=%s" % (n, v), ok, err)
            elif n == "CLN_OTLP_ARGS":
                args = [x for x in shlex.split(v) if x]
                # --pid only makes sense with eBPF; the others are checked with --file.
                if "--pid" in args or "--no-plugins" in args:
                    r = run([a.cln_otlp] + args + ["--help"], env=env0)
                    check("example parses: CLN_OTLP_ARGS=%s" % v, r.returncode == 0, r.stderr)
                else:
                    ok, err = accepted({}, args)
                    check("example accepted: CLN_OTLP_ARGS=%s" % v, ok, err)


def check_install(a):
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "root")
        r = staged_install(a.build, "/usr", dest)
        if not check("cmake --install --prefix /usr into DESTDIR", r.returncode == 0,
                     r.stdout + r.stderr):
            return
        files = set()
        for d, _, fs in os.walk(dest):
            for f in fs:
                files.add(os.path.relpath(os.path.join(d, f), dest))
        want = {
            "usr/bin/cln-otlp", "usr/share/man/man1/cln-otlp.1",
            "usr/lib/systemd/system/cln-otlp.service", "etc/default/cln-otlp",
            "usr/share/doc/cln-otlp/README.md", "usr/share/doc/cln-otlp/README.packaging.md",
            "usr/share/doc/cln-otlp/examples/cln-otlp.default",
        }
        check("installed: %s" % ", ".join(sorted(want)), want <= files,
              "missing: %s" % sorted(want - files))
        extra = files - want
        if extra:
            print("note: also installed: %s" % sorted(extra))
        check("the binary is executable", os.access(os.path.join(dest, "usr/bin/cln-otlp"),
                                                   os.X_OK))
        env = os.path.join(dest, "etc/default/cln-otlp")
        mode = os.stat(env).st_mode & 0o777 if os.path.exists(env) else None
        check("the environment file is mode 0600 (it may hold an API key)", mode == 0o600,
              "mode %s" % (oct(mode) if mode is not None else None))
        unit = parse_unit(os.path.join(dest, "usr/lib/systemd/system/cln-otlp.service"))
        exe = unit.get("ExecStart", [""])[0].split()
        check("ExecStart runs the installed binary: /usr/bin/cln-otlp",
              exe[:1] == ["/usr/bin/cln-otlp"], str(exe))
        check("EnvironmentFile=-/etc/default/cln-otlp",
              unit.get("EnvironmentFile") == ["-/etc/default/cln-otlp"],
              str(unit.get("EnvironmentFile")))
        with open(env, "a") as f:
            f.write("OTEL_SERVICE_NAME=edited\n")
        before = open(env).read()
        r = staged_install(a.build, "/usr", dest)
        check("installing again keeps an edited environment file",
              r.returncode == 0 and open(env).read() == before and "Kept:" in r.stdout,
              r.stdout[-500:] + r.stderr)
        dest2 = os.path.join(tmp, "opt")
        r = staged_install(a.build, "/opt/cln-otlp", dest2)
        unit2 = os.path.join(dest2, "opt/cln-otlp/lib/systemd/system/cln-otlp.service")
        ok = r.returncode == 0 and os.path.exists(unit2)
        exe2 = parse_unit(unit2).get("ExecStart", [""])[0].split()[:1] if ok else None
        check("--prefix /opt/cln-otlp: the unit says ExecStart=/opt/cln-otlp/bin/cln-otlp",
              ok and exe2 == ["/opt/cln-otlp/bin/cln-otlp"], "%s %s" % (exe2, r.stderr))


def check_unit(a):
    sa = need_tool("systemd-analyze", "systemd")
    if not sa:
        return
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "root")
        r = staged_install(a.build, "/usr", dest)
        if not check("staged install", r.returncode == 0, r.stderr):
            return
        installed = os.path.join(dest, "usr/lib/systemd/system/cln-otlp.service")
        text = open(installed).read()
        # verify wants ExecStart's binary to exist: point it at the staged one.
        vdir = os.path.join(tmp, "verify")
        os.mkdir(vdir)
        unit = os.path.join(vdir, "cln-otlp.service")
        staged_bin = os.path.join(dest, "usr/bin/cln-otlp")
        with open(unit, "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/cln-otlp ", "ExecStart=%s " % staged_bin))
        r = run([sa, "verify", "--man=no", unit])
        out = (r.stdout + r.stderr).strip()
        check("systemd-analyze verify: no error, no warning", r.returncode == 0 and not out, out)
        bogus = os.path.join(vdir, "bogus.service")
        with open(bogus, "w") as f:
            f.write(text.replace("[Service]\n", "[Service]\nNoSuchSetting=1\n")
                    .replace("ExecStart=/usr/bin/cln-otlp ", "ExecStart=%s " % staged_bin))
        r = run([sa, "verify", "--man=no", bogus])
        check("control: verify reports an unknown setting", "NoSuchSetting" in r.stderr,
              r.stderr)
        r = run([sa, "security", "--offline=true", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        level = float(m.group(1)) if m else None
        check("systemd-analyze security: exposure %s <= %.1f" % (level, MAX_EXPOSURE),
              level is not None and level <= MAX_EXPOSURE, (r.stdout + r.stderr)[-2000:])

        keys = parse_unit(installed)
        want = {
            "Type": "simple", "Restart": "on-failure", "DynamicUser": "yes",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
            "PrivateTmp": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "SystemCallArchitectures": "native", "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes", "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
            "LimitMEMLOCK": "infinity", "EnvironmentFile": "-/etc/default/cln-otlp",
        }
        for k, v in want.items():
            check("%s=%s" % (k, v), keys.get(k) == [v], "got %s" % keys.get(k))
        exe = keys.get("ExecStart", [""])[0]
        check("ExecStart passes --lightningd ${LIGHTNINGD} from the environment file",
              "--lightningd ${LIGHTNINGD}" in exe and "$CLN_OTLP_ARGS" in exe, exe)
        for k in ("CapabilityBoundingSet", "AmbientCapabilities"):
            got = set(" ".join(keys.get(k, [])).split())
            check("%s = %s" % (k, " ".join(sorted(UNIT_CAPS))), got == UNIT_CAPS,
                  "got %s" % sorted(got))


def check_caps(a):
    """The unit's capabilities, as a non-root user with no_new_privs (what DynamicUser= and
    AmbientCapabilities= give), suffice to capture from a lightningd in a directory that
    user cannot read."""
    if not check("running as root (needed to set up the user and capabilities)",
                 os.geteuid() == 0):
        return
    if not check("cln-emitter was built", a.emitter and os.path.exists(a.emitter),
                 "install systemtap-sdt-dev and re-run cmake"):
        return
    keys = parse_unit_text(open(os.path.join(a.src, "packaging/cln-otlp.service.in")).read())
    caps = " ".join(keys.get("AmbientCapabilities", [])).split()
    check("the unit grants capabilities: %s" % " ".join(caps), set(caps) == UNIT_CAPS)
    spec = ",".join("+" + c.lower()[4:] for c in caps)
    capture = os.path.join(a.src, "tests/data/cln-v26-startup/lightningd-trace.32274")
    n_emit = sum(1 for l in open(capture) if l.startswith("span_emit "))
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        private = os.path.join(tmp, "node")
        os.makedirs(os.path.join(private, "bin"))
        os.chmod(private, 0o700)  # like a node user's home: nobody may not even look inside
        ln = os.path.join(private, "bin/lightningd")
        shutil.copy(a.emitter, ln)
        binary = os.path.join(tmp, "cln-otlp")
        shutil.copy(a.cln_otlp, binary)
        os.chmod(binary, 0o755)

        # LimitMEMLOCK=infinity, where this machine allows raising it (kernels from 5.11
        # do not charge BPF maps to it anyway).
        memlock = ["prlimit", "--memlock=unlimited:unlimited"]
        if run(memlock + ["true"]).returncode != 0:
            print("note: cannot raise RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE): left as is")
            memlock = []

        def capture_as(capspec):
            cmd = memlock + ["setpriv",
                   "--reuid=65534", "--regid=65534", "--clear-groups",
                   "--inh-caps=-all," + capspec, "--ambient-caps=-all," + capspec,
                   "--bounding-set=-all," + capspec, "--no-new-privs",
                   binary, "--lightningd", ln, "--no-plugins", "--exporter", "stdout"]
            out = open(os.path.join(tmp, "out"), "w+")
            err = open(os.path.join(tmp, "err"), "w+")
            p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=tmp)
            deadline = time.time() + 30
            while time.time() < deadline and p.poll() is None:
                # A fresh open: seeking `err`, whose offset the child shares, would move
                # where the child writes.
                if "attached" in open(err.name).read():
                    break
                time.sleep(0.1)
            if p.poll() is None:
                run([ln, capture, "--quiet"])
                time.sleep(0.5)
                p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            out.seek(0)
            err.seek(0)
            spans = len(re.findall(r'"spanId"', out.read()))
            return p.returncode, spans, err.read()

        rc, spans, err = capture_as(spec)
        check("as nobody with only %s: %d of %d spans captured" % (spec, spans, n_emit),
              rc == 0 and spans == n_emit, err[-1500:])
        less = ",".join(c for c in spec.split(",") if c != "+dac_read_search")
        rc, spans, err = capture_as(less)
        check("without CAP_DAC_READ_SEARCH the unreadable lightningd is refused",
              rc != 0 and spans == 0, err[-800:])


def parse_unit_text(text):
    with tempfile.NamedTemporaryFile("w", suffix=".service", delete=False) as f:
        f.write(text)
    try:
        return parse_unit(f.name)
    finally:
        os.unlink(f.name)


def check_deb(a):
    for tool, pkg in (("cpack", "cmake"), ("dpkg-deb", "dpkg")):
        if not need_tool(tool, pkg):
            return
    with tempfile.TemporaryDirectory() as tmp:
        r = run(["cpack", "-G", "DEB", "-B", tmp, "--config",
                 os.path.join(a.build, "CPackConfig.cmake")], cwd=a.build)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if not check("cpack -G DEB made one .deb", r.returncode == 0 and len(debs) == 1,
                     r.stdout[-1500:] + r.stderr[-1500:]):
            return
        deb = os.path.join(tmp, debs[0])
        print("note: %s, %d bytes" % (debs[0], os.path.getsize(deb)))
        listing = run(["dpkg-deb", "-c", deb]).stdout
        paths = {l.split()[-1].lstrip(".") for l in listing.splitlines() if l.strip()}
        for p in ("/usr/bin/cln-otlp", "/usr/share/man/man1/cln-otlp.1",
                  "/usr/lib/systemd/system/cln-otlp.service", "/etc/default/cln-otlp",
                  "/usr/share/doc/cln-otlp/examples/cln-otlp.default"):
            check("dpkg-deb -c lists %s" % p, p in paths, listing)
        check("nothing of the build machine leaks into the paths",
              not any(tmp in p or a.build in p for p in paths), listing)
        conffiles = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout.split()
        check("/etc/default/cln-otlp is a conffile (upgrades keep the admin's edits)",
              conffiles == ["/etc/default/cln-otlp"], str(conffiles))
        for script in ("postinst", "prerm", "postrm"):
            r = run(["dpkg-deb", "-I", deb, script])
            check("maintainer script %s is in the package" % script,
                  r.returncode == 0 and "systemctl" in r.stdout, r.stderr)
        fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture",
                      "Depends"]).stdout
        depends = re.search(r"^Depends: (.*)$", fields, re.M)
        dep_pkgs = set(re.findall(r"([a-z0-9][a-z0-9+.-]+)(?: \([^)]*\))?(?:,|$)",
                                  depends.group(1))) if depends else set()
        print("note: " + fields.strip().replace("\n", "; "))
        need = needed_packages(a.cln_otlp)
        missing = sorted({rt for rt, _ in need.values() if rt} - dep_pkgs)
        check("Depends names the package of every library the binary links (%d)" % len(need),
              need and all(rt for rt, _ in need.values()) and not missing,
              "missing %s; libraries %s" % (missing, need))
        x = os.path.join(tmp, "x")
        run(["dpkg-deb", "-x", deb, x])
        unit = parse_unit(os.path.join(x, "usr/lib/systemd/system/cln-otlp.service"))
        check("the packaged unit runs /usr/bin/cln-otlp",
              unit.get("ExecStart", [""])[0].startswith("/usr/bin/cln-otlp "),
              str(unit.get("ExecStart")))
        r = run([os.path.join(x, "usr/bin/cln-otlp"), "--version"])
        check("the packaged binary runs", r.returncode == 0 and "cln-otlp" in r.stdout, r.stderr)


# ---- docker/ ---------------------------------------------------------------------------


def compose_config(a, files, profile=None, env=None, cwd=None, quiet=False):
    cmd = ["docker-compose"]
    for f in files:
        cmd += ["-f", f]
    if profile:
        cmd += ["--profile", profile]
    e = {k: v for k, v in os.environ.items() if k != "LIGHTNINGD_DIR"}
    e.update(env or {})
    r = run(cmd + ["config"], env=e, cwd=cwd)
    q = run(cmd + ["config", "-q"], env=e, cwd=cwd) if quiet else r
    return r, q


def check_compose(a):
    if not need_tool("docker-compose", "docker-compose"):
        return
    d = os.path.join(a.src, "docker")
    base = os.path.join(d, "compose.yaml")
    for profile in (None, "demo"):
        r, q = compose_config(a, [base], profile, quiet=True)
        label = "docker-compose config -q%s" % (" --profile " + profile if profile else "")
        check(label, q.returncode == 0 and r.returncode == 0, q.stderr + r.stderr)
    cfg = yaml.safe_load(r.stdout) if r.returncode == 0 else {}
    svc = cfg.get("services", {})
    want = {"otel-collector", "tempo", "grafana", "cln-otlp", "demo"}
    check("services %s" % ", ".join(sorted(want)), want <= set(svc), str(sorted(svc)))
    c = svc.get("cln-otlp", {})
    check("cln-otlp: privileged", c.get("privileged") is True)
    check("cln-otlp: pid: host", c.get("pid") == "host")
    check("cln-otlp: sends to http://otel-collector:4318",
          (c.get("environment") or {}).get("OTEL_EXPORTER_OTLP_ENDPOINT")
          == "http://otel-collector:4318", str(c.get("environment")))
    cmd = c.get("command") or []
    check("cln-otlp: --lightningd /host/bin/lightningd", cmd[:2] == ["--lightningd",
                                                                      "/host/bin/lightningd"],
          str(cmd))
    vols = [str(v) for v in c.get("volumes", [])]
    check("cln-otlp: the host's CLN install, read-only at /host (default /usr/local)",
          "/usr/local:/host:ro" in vols, str(vols))
    r2, _ = compose_config(a, [base], None, env={"LIGHTNINGD_DIR": "/opt/cln"})
    vols2 = [str(v) for v in (yaml.safe_load(r2.stdout) or {}).get("services", {})
             .get("cln-otlp", {}).get("volumes", [])] if r2.returncode == 0 else []
    check("LIGHTNINGD_DIR=/opt/cln mounts /opt/cln", "/opt/cln:/host:ro" in vols2, str(vols2))
    dm = svc.get("demo", {})
    check("demo: only in profile demo", dm.get("profiles") == ["demo"], str(dm.get("profiles")))
    check("demo: privileged, built from the Dockerfile's demo stage",
          dm.get("privileged") is True and (dm.get("build") or {}).get("target") == "demo",
          str(dm.get("build")))
    deps = set(dm.get("depends_on") or {})
    check("demo: starting it alone starts the collector and Grafana",
          {"otel-collector", "grafana"} <= deps, str(deps))
    g = svc.get("grafana", {})
    check("grafana: port 3000", any(str(p.get("published") if isinstance(p, dict) else p)
                                    .find("3000") >= 0 for p in g.get("ports", [])),
          str(g.get("ports")))
    genv = g.get("environment") or {}
    check("grafana: anonymous admin", genv.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
          and genv.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Admin", str(genv))
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", open(os.path.join(d, "Dockerfile"))
                            .read(), re.M | re.I))
    for name, s in svc.items():
        b = s.get("build")
        if b:
            ok = (os.path.realpath(b.get("context", "")) == os.path.realpath(a.src)
                  and os.path.exists(os.path.join(b["context"], b.get("dockerfile", "")))
                  and b.get("target") in stages)
            check("%s: builds %s target %s (a stage of it)" % (name, b.get("dockerfile"),
                                                             b.get("target")), ok, str(b))
        for v in s.get("volumes", []):
            src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            if src and src.startswith(d):
                check("%s: mounts %s, which exists" % (name, os.path.relpath(src, a.src)),
                      os.path.exists(src))

    # The Honeycomb override, with an env file made from the example, in a copy of docker/.
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(d, os.path.join(tmp, "docker"))
        shutil.copy(os.path.join(d, "honeycomb.env.example"),
                    os.path.join(tmp, "docker/honeycomb.env"))
        files = [os.path.join(tmp, "docker/compose.yaml"),
                 os.path.join(tmp, "docker/compose.honeycomb.yaml")]
        r, q = compose_config(a, files, "demo", quiet=True)
        check("with compose.honeycomb.yaml: config -q", q.returncode == 0, q.stderr)
        hc = (yaml.safe_load(r.stdout) or {}).get("services", {}) if r.returncode == 0 else {}
        for name in ("cln-otlp", "demo"):
            env = hc.get(name, {}).get("environment") or {}
            check("%s: Honeycomb's API key header" % name,
                  env.get("OTEL_EXPORTER_OTLP_HEADERS") == "x-honeycomb-team=YOUR_API_KEY",
                  str(env))
        # Which endpoint cln-otlp really picks from that environment.
        env = {k: str(v) for k, v in (hc.get("cln-otlp", {}).get("environment") or {}).items()}
        empty = os.path.join(tmp, "empty.trace")
        open(empty, "w").close()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        r = run([a.cln_otlp, "--file", empty, "-v"], env=dict(base_env, **env), timeout=30)
        check("cln-otlp given that environment exports to https://api.honeycomb.io",
              r.returncode == 0 and "to https://api.honeycomb.io" in r.stderr
              and "otel-collector" not in r.stderr, r.stderr[-800:])
    ign = open(os.path.join(d, ".gitignore")).read().split()
    check("docker/honeycomb.env is ignored by git", "honeycomb.env" in ign)


def check_configs(a):
    d = os.path.join(a.src, "docker")
    col = yaml.safe_load(open(os.path.join(d, "otel-collector.yaml")))
    proto = (((col.get("receivers") or {}).get("otlp") or {}).get("protocols") or {})
    check("collector: OTLP gRPC on 0.0.0.0:4317",
          (proto.get("grpc") or {}).get("endpoint") == "0.0.0.0:4317", str(proto))
    check("collector: OTLP HTTP on 0.0.0.0:4318",
          (proto.get("http") or {}).get("endpoint") == "0.0.0.0:4318", str(proto))
    exps = col.get("exporters") or {}
    tempo_exp = [k for k, v in exps.items() if k.split("/")[0] == "otlp"
                 and (v or {}).get("endpoint") == "tempo:4317"]
    check("collector: an otlp exporter to tempo:4317", len(tempo_exp) == 1, str(exps))
    check("collector: ... with tls.insecure (plain gRPC inside the network)",
          tempo_exp and ((exps[tempo_exp[0]].get("tls") or {}).get("insecure") is True))
    check("collector: a debug exporter", "debug" in exps)
    pipe = (((col.get("service") or {}).get("pipelines") or {}).get("traces") or {})
    check("collector: traces pipeline otlp -> %s, debug" % (tempo_exp[:1] or ["?"])[0],
          "otlp" in pipe.get("receivers", []) and "debug" in pipe.get("exporters", [])
          and bool(tempo_exp) and tempo_exp[0] in pipe.get("exporters", []), str(pipe))
    for p in pipe.get("processors", []):
        check("collector: processor %s is defined" % p, p in (col.get("processors") or {}))

    tempo = yaml.safe_load(open(os.path.join(d, "tempo.yaml")))
    st = ((tempo.get("storage") or {}).get("trace") or {})
    check("tempo: local storage", st.get("backend") == "local" and (st.get("local") or {})
          .get("path") and (st.get("wal") or {}).get("path"), str(st))
    tproto = (((tempo.get("distributor") or {}).get("receivers") or {}).get("otlp") or {}) \
        .get("protocols") or {}
    check("tempo: receives OTLP gRPC on 0.0.0.0:4317 (where the collector sends)",
          (tproto.get("grpc") or {}).get("endpoint") == "0.0.0.0:4317", str(tproto))
    port = (tempo.get("server") or {}).get("http_listen_port")
    check("tempo: HTTP API on 3200", port == 3200, str(port))
    check("tempo: its data under /var/tempo, the volume compose mounts",
          str((st.get("local") or {}).get("path", "")).startswith("/var/tempo/")
          and str((st.get("wal") or {}).get("path", "")).startswith("/var/tempo/"))

    ds = yaml.safe_load(open(os.path.join(d, "grafana/datasources/tempo.yaml")))
    check("grafana: provisioning apiVersion 1", ds.get("apiVersion") == 1)
    sources = ds.get("datasources") or []
    defaults = [s for s in sources if s.get("isDefault") is True]
    check("grafana: exactly one default data source", len(defaults) == 1, str(sources))
    t = defaults[0] if defaults else {}
    check("grafana: the default is Tempo at http://tempo:%s" % port,
          t.get("type") == "tempo" and t.get("url") == "http://tempo:%s" % port, str(t))


def dockerfile_stages(path):
    """{stage: [apt packages]} and {stage: text} of a Dockerfile."""
    text = open(path).read().replace("\\\n", " ")
    stages, pk, cur = {}, {}, None
    for line in text.splitlines():
        m = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            cur = m.group(1) or "_%d" % len(stages)
            stages[cur] = ""
            pk[cur] = []
        if cur is None:
            continue
        stages[cur] += line + "\n"
        for m2 in re.finditer(r"apt-get install ([^&;]*)", line):
            pk[cur] += [w for w in m2.group(1).split() if not w.startswith("-")]
    return pk, stages


def check_dockerfile(a):
    path = os.path.join(a.src, "docker/Dockerfile")
    pk, stages = dockerfile_stages(path)
    check("stages build, runtime, demo", {"build", "runtime", "demo"} <= set(stages),
          str(list(stages)))
    froms = re.findall(r"^FROM\s+(\S+)", open(path).read(), re.M)
    arg = re.search(r"^ARG DEBIAN_IMAGE=(\S+)", open(path).read(), re.M)
    check("based on debian:bookworm-slim", arg and arg.group(1) == "debian:bookworm-slim"
          and all(f in ("${DEBIAN_IMAGE}", "runtime") for f in froms), str(froms))
    need = needed_packages(a.cln_otlp)
    # A sanitizer build links the sanitizer runtimes; the image builds without them.
    need = {lib: v for lib, v in need.items()
            if not re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib)}
    check("readelf/ldd/dpkg -S: a package for every library cln-otlp links (%d)" % len(need),
          need and all(rt for rt, _ in need.values()), str(need))
    runtime = set(pk.get("runtime", []))
    for lib, (rt, dev) in sorted(need.items()):
        if rt in BASE_PACKAGES:
            print("note: %s comes from %s, in every Debian image" % (lib, rt))
            continue
        check("runtime stage installs %s (for %s)" % (rt, lib), rt in runtime, str(runtime))
    build = set(pk.get("build", []))
    for lib, (rt, dev) in sorted(need.items()):
        check("build stage installs %s (to link %s)" % (dev, lib), dev in build,
              "%s; build stage: %s" % (dev, sorted(build)))
    check("runtime stage installs ca-certificates (https collectors)", "ca-certificates"
          in runtime)
    lists = [f for f in os.listdir("/var/lib/apt/lists") if "_Packages" in f] \
        if os.path.isdir("/var/lib/apt/lists") else []
    if lists:
        named = sorted(set(sum(pk.values(), [])))
        r = run(["apt-cache", "show", "--no-all-versions"] + named)
        known = set(re.findall(r"^Package: (\S+)$", r.stdout, re.M))
        check("the %d packages named exist in this machine's Debian archive" % len(named),
              named and set(named) <= known, "unknown: %s" % sorted(set(named) - known))
    else:
        print("note: no apt package lists here: package names not looked up")
    demo = stages.get("demo", "")
    for p in re.findall(r"^COPY\s+(?!--from)(\S+)", demo, re.M):
        check("demo stage copies %s, which exists" % p, os.path.exists(os.path.join(a.src, p)))
    check("demo stage has the emitter as lightningd",
          "/out/cln-emitter /opt/cln-demo/bin/lightningd" in demo)
    check("build stage builds cln-otlp and cln-emitter",
          re.search(r"--target cln-otlp cln-emitter", stages.get("build", "")) is not None)
    # .dockerignore must not hide what the build needs, and must hide build trees and secrets.
    ign = [l.strip() for l in open(os.path.join(a.src, ".dockerignore"))
           if l.strip() and not l.startswith("#")]
    import fnmatch

    def ignored(p):
        return any(fnmatch.fnmatch(p, g.rstrip("/")) or fnmatch.fnmatch(p, g.rstrip("/") + "/*")
                   or p.startswith(g.rstrip("/") + "/") for g in ign)
    for p in ("CMakeLists.txt", "src/main.c", "bpf/source_usdt.bpf.c", "proto",
              "tests/emitter/cln_emitter.c", "tests/data/cln-v26-startup/lightningd-trace.32274",
              "docker/demo.sh", "cmake/install.cmake"):
        check(".dockerignore keeps %s" % p, not ignored(p))
    for p in ("build/cln-otlp", "build-pkg/CMakeCache.txt", ".git", "docker/honeycomb.env"):
        check(".dockerignore drops %s" % p, ignored(p))


def check_demo(a):
    """docker/demo.sh run here as the demo container runs it (root: eBPF), two rounds."""
    if not check("running as root (the demo captures with eBPF)", os.geteuid() == 0):
        return
    if not check("cln-emitter was built", a.emitter and os.path.exists(a.emitter),
                 "install systemtap-sdt-dev and re-run cmake"):
        return
    capture = os.path.join(a.src, "tests/data/cln-v26-startup")
    orig_tids, n_emit, first = set(), 0, None
    for f in os.listdir(capture):
        for line in open(os.path.join(capture, f)):
            if line.startswith("span_emit "):
                n_emit += 1
                orig_tids.update(re.findall(r'"traceId":"([0-9a-f]+)"', line))
                for ts in re.findall(r'"timestamp":(\d+)', line):
                    first = int(ts) if first is None else min(first, int(ts))
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "bin"))
        ln = os.path.join(tmp, "bin/lightningd")
        shutil.copy(a.emitter, ln)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(CLN_OTLP=a.cln_otlp, DEMO_EMITTER=ln, DEMO_CAPTURE=capture, DEMO_ROUNDS="2",
                   DEMO_INTERVAL="1", DEMO_RATE="20000")
        t0 = time.time()
        r = run([os.path.join(a.src, "docker/demo.sh"), "--exporter", "stdout",
                 "--batch-delay", "200"], env=env, timeout=120)
        t1 = time.time()
        check("demo.sh, 2 rounds: exit 0", r.returncode == 0, r.stderr[-1500:])
        check("it says each round", r.stderr.count("demo: round ") == 2, r.stderr[-800:])
        spans = []
        for line in r.stdout.splitlines():
            try:
                req = json.loads(line)
            except ValueError:
                continue
            for rs in req.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    spans += ss.get("spans", [])
        check("every span of the capture, twice: %d = 2 x %d" % (len(spans), n_emit),
              len(spans) == 2 * n_emit, r.stderr[-800:])
        starts = [int(s["startTimeUnixNano"]) // 1000 for s in spans]
        check("timestamps moved to the present (earliest within the run)",
              starts and t0 * 1e6 - 2e6 <= min(starts) <= t1 * 1e6,
              "earliest %s, run %d..%d" % (min(starts) if starts else None, t0 * 1e6, t1 * 1e6))
        tids = [s["traceId"] for s in spans]
        check("no trace id of the capture is reused", not (set(tids) & orig_tids))
        check("each round has its own trace ids: %d = 2 x %d" % (len(set(tids)), len(orig_tids)),
              len(set(tids)) == 2 * len(orig_tids))


CHECKS = {
    "manpage": check_manpage, "envfile": check_envfile, "install": check_install,
    "unit": check_unit, "caps": check_caps, "deb": check_deb, "compose": check_compose,
    "configs": check_configs, "dockerfile": check_dockerfile, "demo": check_demo,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("check", choices=sorted(CHECKS))
    p.add_argument("--src", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--cln-otlp", required=True)
    p.add_argument("--emitter", default="")
    a = p.parse_args()
    a.src = os.path.realpath(a.src)
    a.build = os.path.realpath(a.build)
    try:
        CHECKS[a.check](a)
    except Exception as e:  # a crash is a failure with its reason, not a silent pass
        import traceback
        traceback.print_exc()
        check("%s ran to the end" % a.check, False, repr(e))
    print("%d passed, %d failed" % (PASS, FAIL))
    sys.exit(1 if FAIL or not PASS else 0)


if __name__ == "__main__":
    main()
