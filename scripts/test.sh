#!/usr/bin/env bash
# Sets everything up, builds, and runs every test (unit + integration) with CTest.
# This is the command README.md and .ci/run use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Integration tests run PostgreSQL, etcd and pgwarden as the postgres OS user when we are
# root (PostgreSQL refuses root). That user must be able to read the tree; a checkout under
# /root is not, so then the tests run from a copy in /var/tmp.
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -r "$PWD/CMakeLists.txt" 2>/dev/null; then
  copy=/var/tmp/pgwarden-tests
  echo "test: $PWD is not readable by postgres; running from a copy in $copy"
  rm -rf "$copy" && mkdir -p "$copy"
  tar --exclude=./build -cf - . | tar -xf - -C "$copy"
  cd "$copy"
fi

bash scripts/build.sh
if [ "$(id -u)" -eq 0 ]; then chmod -R o+rX . 2>/dev/null || true; fi
cd build
ctest --output-on-failure --timeout 600 -j2
