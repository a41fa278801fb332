#!/usr/bin/env bash
# One node against three (cluster mode, docs/cluster/three-nodes.sh: three clustered
# nats-servers, R3 logs, three nodes) on this machine, the same load generator commands,
# alternating, REPEATS times each:
#
#   benches/cluster.sh [REPEATS]        # default 3
#
# Every server process (the single node; or the three nodes and the three nats-servers) runs
# pinned to CPU 0 and the generator to CPU 1 (taskset), and the generator's "server CPU" is
# everything the deployment spent over the measured phase (--server-pids: utime + stime of
# all its processes), per message (direct) or per delivery (fan-out). The generator talks to one node (:7101), which tunnels to the
# owner of the tenant's shard (the `default` tenant: one shard, one owner). Everything is
# started on empty directories under a temporary directory and stopped afterwards.
# Needs nats-server (Debian: apt-get install -y nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin parlor --bin loadgen
bin="$target/release"
dir=$(mktemp -d)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1 PARLOR_LIMITS__RATE_PER_SEC=0 \
  PARLOR_SERVER__MAX_CONNECTIONS=100000 PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=100000
single_pid=
cleanup() {
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
  PARLOR_BIN="$bin/parlor" docs/cluster/three-nodes.sh stop "$dir/cluster" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

start_single() {
  rm -rf "$dir/single"; mkdir -p "$dir/single"
  PARLOR_SERVER__BIND=127.0.0.1:7101 PARLOR_STORAGE__PATH="$dir/single/parlor.redb" \
    taskset -c 0 "$bin/parlor" >"$dir/single.log" 2>&1 &
  single_pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7101/healthz >/dev/null && return; sleep 0.1; done
  echo "the single node did not start" >&2; exit 1
}
stop_single() { kill "$single_pid"; wait "$single_pid" 2>/dev/null || true; single_pid=; }
start_cluster() {
  rm -rf "$dir/cluster"
  if ! PARLOR_BIN="$bin/parlor" taskset -c 0 docs/cluster/three-nodes.sh start "$dir/cluster" >"$dir/start.log" 2>&1; then
    cat "$dir/start.log" "$dir"/cluster/n*.log >&2
    exit 1
  fi
  # Hand-overs settle once every node has been alive a few ticks.
  sleep 3
}
stop_cluster() {
  local running
  running=$(cat "$dir"/cluster/*.pid)
  PARLOR_BIN="$bin/parlor" docs/cluster/three-nodes.sh stop "$dir/cluster"
  # The next start binds the same ports.
  for pid in $running; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done
}
pids() {
  if [ "$1" = single ]; then echo "$single_pid"; else cat "$dir"/cluster/*.pid; fi
}

run() { # variant scenario
  local variant=$1 scenario=$2 out pids
  "start_$variant"
  pids=$(pids "$variant" | paste -sd, -)
  case $scenario in
    direct)
      out=$(taskset -c 1 "$bin/loadgen" direct --url http://127.0.0.1:7101 --server-pids "$pids" \
        --clients 100 --messages 10000 --rate 1000 --fsync-probes 0 2>&1) ;;
    fanout)
      out=$(taskset -c 1 "$bin/loadgen" fanout --url http://127.0.0.1:7101 --server-pids "$pids" \
        --members 100 --senders 5 --messages 2000 --fsync-probes 0 2>&1) ;;
  esac
  "stop_$variant"
  echo "== $variant $scenario"
  # The summary: everything but the progress lines and the machine lines.
  echo "$out" | grep -vE '^\[|^(machine|server|fsync):' 
}

for i in $(seq "$REPEATS"); do
  for scenario in direct fanout; do
    run single "$scenario"
    run cluster "$scenario"
  done
done
