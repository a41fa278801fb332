#!/usr/bin/env bash
# What the replicated log of cluster mode adds to a write: the Writer bench's `direct`
# (no log) beside `direct_logged` (every batch appended to a shard's JetStream log before it
# commits), against nats-server on loopback, its store in a temporary directory.
#
#   benches/log_cost.sh            # one nats-server, the log kept once (R1)
#   benches/log_cost.sh --r3       # three clustered nats-servers, the log kept three times
#
# Needs nats-server (Debian: apt-get install -y nats-server). Everything it starts is killed
# when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=1
[ "${1:-}" = "--r3" ] && replicas=3
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=() routes=()
for i in $(seq "$replicas"); do ports+=("$(free_port)"); routes+=("$(free_port)"); done
for i in $(seq 0 $((replicas - 1))); do
  args=(-a 127.0.0.1 -p "${ports[$i]}" -js -sd "$dir/n$i" -n "n$i")
  if [ "$replicas" -gt 1 ]; then
    others=$(for j in $(seq 0 $((replicas - 1))); do
      if [ "$j" != "$i" ]; then printf 'nats://127.0.0.1:%s,' "${routes[$j]}"; fi
    done)
    args+=(--cluster_name parlor --cluster "nats://127.0.0.1:${routes[$i]}" --routes "${others%,}")
  fi
  nats-server "${args[@]}" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/${ports[0]}") 2>/dev/null && break
  sleep 0.1
done
# A cluster elects its JetStream leader after its routes connect.
if [ "$replicas" -gt 1 ]; then sleep 5; fi
PARLOR_BENCH_NATS="nats://127.0.0.1:${ports[0]}" PARLOR_BENCH_REPLICAS="$replicas" \
  cargo bench --bench writer -- 'direct(_logged)?/(1|8|64)$' 2>&1 |
  grep -E '^writer/|time:|thrpt:|CPU per message|commits \(average' || true
