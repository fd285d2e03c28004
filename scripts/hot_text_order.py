#!/usr/bin/env python3
"""Regenerates cmake/hot-text.order: the functions an idle pgwarden member runs, hottest first.

The linker (gold, --section-ordering-file) places these functions next to each other, so an
idle member keeps a few hundred KiB of pgwarden's code resident instead of megabytes: the
kernel maps code back in 64 KiB windows (or whole large folios), and the code of one HA cycle
is otherwise scattered over the whole 4 MiB text. See bench/README.md, "Idle memory".

How: a three-member cluster (etcd, PostgreSQL 15, the demo configuration) runs with every
member under valgrind's callgrind, instrumentation off while it bootstraps. Once the cluster
is healthy, callgrind records one idle phase (HA cycles as leader and as replicas, the page
release 30 s after start) and then one phase of REST requests as probes and monitoring send
them. The functions of the idle phase come first, by instruction count, then those that only
the requests ran.

Usage (needs valgrind; as root it runs the cluster as the postgres OS user):
    scripts/hot_text_order.py [--build-dir build] [--idle-seconds 70]
Stale entries are harmless (the linker skips names it does not find); a function that is
missing only ends up outside the packed region. Re-run after changing what a cycle runs and
compare bench/run.sh's idle_rss_mb_per_member.
"""
import argparse
import collections
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_AS_POSTGRES = os.geteuid() == 0
PROBE_PATHS = ["/", "/patroni", "/health", "/liveness", "/readiness", "/leader", "/primary",
               "/replica", "/read-only", "/cluster", "/history", "/config", "/metrics"]


def as_pg():
    """Popen arguments that run a child as the postgres OS user when we are root."""
    return dict(user="postgres", group="postgres", extra_groups=[]) if RUN_AS_POSTGRES else {}


def own(path):
    if RUN_AS_POSTGRES:
        pg = pwd.getpwnam("postgres")
        os.chown(path, pg.pw_uid, pg.pw_gid)


def free_port(taken):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken and port + 1 not in taken:
            taken.update({port, port + 1})
            return port


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def wait_healthy(api_port, deadline):
    while time.time() < deadline:
        try:
            members = http_json(f"http://127.0.0.1:{api_port}/cluster").get("members", [])
            states = [m.get("state") for m in members]
            if len(members) == 3 and all(s in ("running", "streaming") for s in states) and \
                    any(m.get("role") == "leader" for m in members):
                return
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit("the cluster did not become healthy in time")


def callgrind_control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd="/tmp", **as_pg())


def parse_profile(path, binary_suffix):
    """Instruction count per function of the object ending in binary_suffix (mangled names)."""
    cost = collections.Counter()
    obs, fns = {}, {}

    def name(table, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "?")

    ob = fn = call_ob = None
    after_calls = False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                ob = name(obs, line[3:])
            elif line.startswith("fn="):
                fn = (ob, name(fns, line[3:]))
                cost[fn] += 0
            elif line.startswith("cob="):
                call_ob = name(obs, line[4:])
            elif line.startswith("cfn="):
                cost[(call_ob or ob, name(fns, line[4:]))] += 0
                call_ob = None
            elif line.startswith("calls="):
                after_calls = True  # the next cost line is the callee's, not fn's own
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if after_calls:
                    after_calls = False
                elif fn and len(parts) >= 2 and parts[1].isdigit():
                    cost[fn] += int(parts[1])
    return {f: c for (o, f), c in cost.items() if o and o.endswith(binary_suffix)}


def aliases_by_symbol(binary):
    """Every function symbol of binary -> all symbols at its address.

    GCC emits one body for a constructor's or destructor's C1/C2 (D1/D2) variants and names
    the section after one of them, while callgrind reports whichever name it saw first."""
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    at = collections.defaultdict(list)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwWiI":
            at[parts[0]].append(parts[2])
    return {sym: names for names in at.values() for sym in names}


def section_names(symbol, aliases):
    # -ffunction-sections names a function's section after its symbol; a cold part split off
    # by the optimiser (foo.cold) goes to .text.unlikely.foo. callgrind marks recursion
    # levels with 'N.
    symbol = re.sub(r"'\d+$", "", symbol)
    out = []
    for name in aliases.get(symbol, [symbol]):
        if name.endswith(".cold"):
            out.append(".text.unlikely." + name[: -len(".cold")])
        else:
            out.append(".text." + name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--idle-seconds", type=int, default=70)
    ap.add_argument("--output", default=os.path.join(ROOT, "cmake", "hot-text.order"))
    ap.add_argument("--from-profiles", metavar="DIR",
                    help="only regenerate the list from an earlier run's DIR/cg.<member>.{1,2}")
    args = ap.parse_args()
    binary = os.path.join(args.build_dir, "pgwarden")
    if args.from_profiles:
        names = sorted({os.path.basename(f).split(".")[1] for f in glob.glob(f"{args.from_profiles}/cg.*.1")})
        write_order(args.output, os.path.join(args.from_profiles, "pgwarden"),
                    *read_profiles(args.from_profiles, names))
        return
    for tool in ("valgrind", "callgrind_control", "etcd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install valgrind etcd-server)")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary} not built (bash scripts/build.sh)")

    work = "/tmp/pgwarden-hot-text"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    shutil.copy(binary, os.path.join(work, "pgwarden"))
    own(work)
    taken = set()
    etcd_port, etcd_peer = free_port(taken), free_port(taken)
    procs = []
    try:
        procs.append(subprocess.Popen([
            "etcd", "--name", "hot", "--data-dir", f"{work}/etcd",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"hot=http://127.0.0.1:{etcd_peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_pg()))
        template = open(os.path.join(ROOT, "config", "demo-node.yml.in")).read()
        members = []
        for i in (1, 2, 3):
            name = f"node{i}"
            pg_port, api_port = free_port(taken), free_port(taken)
            os.makedirs(f"{work}/{name}")
            own(f"{work}/{name}")
            conf = (template.replace("@DEMO@", work).replace("@NAME@", name)
                    .replace("@ETCD_PORT@", str(etcd_port)).replace("@PG_PORT@", str(pg_port))
                    .replace("@API_PORT@", str(api_port)))
            conf_path = f"{work}/{name}.yml"
            with open(conf_path, "w") as f:
                f.write(conf)
            own(conf_path)
            env = dict(os.environ, PATRONI_SUPERUSER_PASSWORD="hot-su", PATRONI_REPLICATION_PASSWORD="hot-repl")
            log = open(f"{work}/{name}.log", "w")
            p = subprocess.Popen([
                "valgrind", "--tool=callgrind", "--instr-atstart=no", "--demangle=no",
                f"--callgrind-out-file={work}/cg.{name}", f"{work}/pgwarden", conf_path],
                cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, **as_pg())
            procs.append(p)
            members.append((name, p.pid, api_port))
            time.sleep(2)  # the first member initialises the cluster
        wait_healthy(members[0][2], time.time() + 300)
        print("cluster healthy; recording the idle phase", file=sys.stderr)
        for _, pid, _ in members:
            callgrind_control(pid, "-i", "on")
        time.sleep(args.idle_seconds)
        for _, pid, _ in members:
            callgrind_control(pid, "-d")
        print("recording REST requests", file=sys.stderr)
        for _ in range(3):
            for _, _, api_port in members:
                for path in PROBE_PATHS:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{api_port}{path}", timeout=10).read()
                    except Exception:
                        pass  # 503 answers (a replica's /leader) are part of what is profiled
        for _, pid, _ in members:
            callgrind_control(pid, "-d")
    finally:
        # Members first (each stops its PostgreSQL and releases its key), then etcd.
        for group in (procs[1:], procs[:1]):
            for p in group:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in group:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()

    write_order(args.output, os.path.join(work, "pgwarden"), *read_profiles(work, [m[0] for m in members]))


def read_profiles(work, names):
    """Instruction counts per function: (idle phase, request phase), summed over members."""
    idle, requests = collections.Counter(), collections.Counter()
    for name in names:
        idle.update(parse_profile(f"{work}/cg.{name}.1", "/pgwarden"))
        requests.update(parse_profile(f"{work}/cg.{name}.2", "/pgwarden"))
    return idle, requests


def write_order(output, binary, idle, requests):
    aliases = aliases_by_symbol(binary)
    lines, seen = [], set()
    for phase in (idle, requests):
        for fn, _ in sorted(phase.items(), key=lambda kv: (-kv[1], kv[0])):
            for sec in section_names(fn, aliases):
                if sec not in seen:
                    seen.add(sec)
                    lines.append(sec)
    with open(output, "w") as f:
        f.write("# Generated by scripts/hot_text_order.py: functions an idle member runs, hottest first.\n")
        f.write("# Placed next to each other by gold (--section-ordering-file); see bench/README.md, \"Idle memory\".\n")
        f.write("\n".join(lines) + "\n")
    print(f"{output}: {len(lines)} functions ({len(set(idle))} in the idle phase)", file=sys.stderr)


if __name__ == "__main__":
    main()
