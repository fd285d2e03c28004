#!/usr/bin/env bash
# Prints the resident memory of a running pgwarden member (the demo's by default) next to
# what a Patroni process uses in the same role, if one is running. Figures, not assertions.
set -euo pipefail
pid=${1:-$(cat /tmp/pgwarden-demo/pgwarden.pid 2>/dev/null || true)}
[ -n "$pid" ] || { echo "usage: bench/memory.sh PID (or start scripts/demo.sh first)"; exit 1; }
echo "pgwarden pid $pid: $(grep VmRSS /proc/"$pid"/status)"
for p in $(pgrep -f 'bin/patroni' || true); do echo "patroni pid $p: $(grep VmRSS /proc/"$p"/status)"; done
