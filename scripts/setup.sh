#!/usr/bin/env bash
# Installs everything pgwarden needs to build, test and run its demo, from Debian 12
# packages only. Idempotent: packages already present are skipped.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-system-dev libboost-filesystem-dev
  libssl-dev nlohmann-json3-dev libspdlog-dev libpq-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libcli11-dev
  postgresql-15 postgresql-client-15 etcd-server etcd-client pgbackrest
  patroni python3-etcd
  curl ca-certificates procps util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # Debian starts a default PostgreSQL cluster and etcd on install; pgwarden's demo and
  # tests run their own on random ports, so those services are not needed.
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# The packaged services are not used (tests and demo start their own processes).
for svc in etcd postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

id postgres >/dev/null 2>&1 || { echo "setup: the postgres user is missing" >&2; exit 1; }
echo "setup: done"
