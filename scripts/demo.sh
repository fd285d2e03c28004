#!/usr/bin/env bash
# Sets everything up, builds pgwarden and starts a local demo: etcd plus three pgwarden
# members (PostgreSQL 15) on loopback, as the postgres OS user. `demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=/tmp/pgwarden-demo
etcd_port=23790
members=(node1 node2 node3)

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_port() { echo $((54320 + $1)); }
api_port() { echo $((8007 + $1)); }

stop_demo() {
  for pidfile in "$demo"/node*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for pidfile in "$demo"/node*.pid; do
    [ -f "$pidfile" ] || continue
    for _ in $(seq 1 120); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
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

for i in 1 2 3; do
  name=node$i
  as_pg mkdir -p "$demo/$name"
  sed -e "s#@DEMO@#$demo#g" -e "s#@NAME@#$name#g" -e "s#@ETCD_PORT@#$etcd_port#g" \
      -e "s#@PG_PORT@#$(pg_port $i)#g" -e "s#@API_PORT@#$(api_port $i)#g" \
      config/demo-node.yml.in > "$demo/$name.yml"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$demo/$name.yml"
  as_pg bash -c "cd '$demo'; (exec env PATRONI_SUPERUSER_PASSWORD=demo-superuser PATRONI_REPLICATION_PASSWORD=demo-replication \
    nohup '$demo/pgwarden' '$demo/$name.yml' > '$demo/$name.log' 2>&1) & echo \$! > '$demo/$name.pid'"
done

echo "waiting for a leader and two streaming replicas..."
for _ in $(seq 1 90); do
  n=$(patronictl -c "$demo/node1.yml" list -f json 2>/dev/null | grep -o '"State": "\(running\|streaming\)"' | wc -l || true)
  [ "${n:-0}" -ge 3 ] && break
  sleep 1
done
patronictl -c "$demo/node1.yml" list || true
cat <<INFO

pgwarden demo is running (files, logs and data in $demo):
  REST API:    curl http://127.0.0.1:$(api_port 1)/patroni   (node2: $(api_port 2), node3: $(api_port 3))
  PostgreSQL:  psql "host=127.0.0.1 port=$(pg_port 1) user=postgres password=demo-superuser dbname=postgres"
               (node2: port $(pg_port 2), node3: port $(pg_port 3))
  patronictl:  patronictl -c $demo/node1.yml list
  etcd keys:   ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$etcd_port get --prefix /service/
  stop:        bash $root/scripts/demo.sh stop
INFO
