#!/usr/bin/env bash
# Builds and runs a cluster benchmark against a real three-member cluster:
#   bench/run.sh [--quick | --idle] [--runs N]       ha_bench (etcd, bench/ha_bench.cpp)
#   bench/run.sh k8s [--quick] [--runs N] [--configmaps]
#                                                     k8s_bench (Kubernetes API emulator)
#   bench/run.sh ops [--runs N] [--no-wrk]            ops_bench (switchover, REST throughput)
#   bench/run.sh backup [--size-mb N] [--runs N] [--compress lz4|none]
#                                                     backup_bench (replica by pgbackrest vs basebackup)
# PostgreSQL refuses to run as root: as root, the bench runs as the postgres user (the build
# tree is made readable for it). Figures go to stdout, progress to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PGWARDEN_BENCH_BUILD_DIR:-$root/build-bench}
bench=ha_bench
if [ "${1:-}" = k8s ]; then
  bench=k8s_bench
  shift
elif [ "${1:-}" = backup ]; then
  bench=backup_bench
  shift
elif [ "${1:-}" = ops ]; then
  bench=ops_bench
  shift
  # wrk drives the REST throughput figures; a benchmark-only tool, not needed by the tests.
  if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || true; fi
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$build" -j2 pgwarden "$bench" >/dev/null
if [ "$(id -u)" = 0 ]; then
  chmod -R o+rX "$build"
  exec runuser -u postgres -- "$build/$bench" "$@"
fi
exec "$build/$bench" "$@"
