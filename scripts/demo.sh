#!/usr/bin/env bash
# Sets everything up, builds pgwarden and starts a local demo: etcd plus one pgwarden
# member (PostgreSQL 15) on loopback, as the postgres OS user. `demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=/tmp/pgwarden-demo
etcd_port=23790
pg_port=54321
api_port=8008

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_demo() {
  [ -f "$demo/pgwarden.pid" ] && kill "$(cat "$demo/pgwarden.pid")" 2>/dev/null || true
  for _ in $(seq 1 60); do
    [ -f "$demo/pgwarden.pid" ] && kill -0 "$(cat "$demo/pgwarden.pid")" 2>/dev/null || break
    sleep 0.5
  done
  [ -f "$demo/etcd.pid" ] && kill "$(cat "$demo/etcd.pid")" 2>/dev/null || true
  rm -f "$demo"/*.pid
}

if [ "${1:-}" = "stop" ]; then stop_demo; echo "demo stopped"; exit 0; fi

bash scripts/setup.sh
bash scripts/build.sh
stop_demo 2>/dev/null || true
mkdir -p "$demo"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$demo"
install -m 0755 build/pgwarden "$demo/pgwarden"

as_pg bash -c "(exec nohup etcd --name demo --data-dir '$demo/etcd' \
  --listen-client-urls http://127.0.0.1:$etcd_port --advertise-client-urls http://127.0.0.1:$etcd_port \
  --listen-peer-urls http://127.0.0.1:$((etcd_port + 1)) --initial-advertise-peer-urls http://127.0.0.1:$((etcd_port + 1)) \
  --initial-cluster demo=http://127.0.0.1:$((etcd_port + 1)) > '$demo/etcd.log' 2>&1) & echo \$! > '$demo/etcd.pid'"

sed -e "s#@DEMO@#$demo#g" -e "s#@ETCD_PORT@#$etcd_port#g" -e "s#@PG_PORT@#$pg_port#g" \
    -e "s#@API_PORT@#$api_port#g" config/demo-node1.yml.in > "$demo/node1.yml"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$demo/node1.yml"

as_pg bash -c "cd '$demo' && (exec env PATRONI_SUPERUSER_PASSWORD=demo-superuser PATRONI_REPLICATION_PASSWORD=demo-replication \
  nohup '$demo/pgwarden' '$demo/node1.yml' > '$demo/node1.log' 2>&1) & echo \$! > '$demo/pgwarden.pid'"

echo "waiting for the leader..."
for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$api_port/leader" >/dev/null 2>&1 && break
  sleep 1
done
curl -s "http://127.0.0.1:$api_port/patroni"; echo
cat <<INFO

pgwarden demo is running (files, logs and data in $demo):
  REST API:    curl http://127.0.0.1:$api_port/patroni
  PostgreSQL:  psql "host=127.0.0.1 port=$pg_port user=postgres password=demo-superuser dbname=postgres"
  patronictl:  patronictl -c $demo/node1.yml list
  etcd keys:   ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$etcd_port get --prefix /service/
  stop:        bash $root/scripts/demo.sh stop
INFO
