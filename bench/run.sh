#!/usr/bin/env bash
# Builds and runs the HA benchmark (bench/ha_bench.cpp) against a real three-member cluster.
#   bench/run.sh [--quick] [--runs N]
# PostgreSQL refuses to run as root: as root, ha_bench runs as the postgres user (the build
# tree is made readable for it). Figures go to stdout, progress to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PGWARDEN_BENCH_BUILD_DIR:-$root/build-bench}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$build" -j2 pgwarden ha_bench >/dev/null
if [ "$(id -u)" = 0 ]; then
  chmod -R o+rX "$build"
  exec runuser -u postgres -- "$build/ha_bench" "$@"
fi
exec "$build/ha_bench" "$@"
