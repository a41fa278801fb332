#!/usr/bin/env bash
# Runs the benchmark scenarios of BENCHMARKS.md, one fresh release server per scenario.
#
#   benches/scenarios.sh [--out DIR] [--port P] [scenario ...]
#
# Scenarios (default: all, in this order):
#   connect      10,000 sockets opened as fast as allowed (connects/s, handshake + JWT p99)
#   idle10k      10,000 idle sockets held 30 s, heartbeats on: server RSS per session
#   idle50k      50,000 idle sockets over several 127.0.0.x source addresses
#   direct10k    direct messages, open loop at 10,000 msgs/s (1,000 clients)
#   knee         direct messages, closed loop (the most the server commits and delivers)
#   fanout10 fanout100 fanout1000 fanout10000
#                group fan-out, 10 senders, N members, open loop near the target rates
#   paced1000    fan-out to 1,000 members at a chat-like 2 messages a second (60 messages):
#                what confirmation and wake-ups cost per delivery when messages are few
#   slow         fan-out to 1,000 members, once as is and once with one member not reading
#   offline      1,000 messages waiting for a user, then login -> last message (20 rounds)
#   writer       the Writer alone (criterion: cargo bench --bench writer)
#
# The server runs pinned to CPU 0 and the generator to CPU 1 (taskset), each with the open
# file limit raised as far as the hard limit allows; every server starts on an empty data
# directory under DIR and is stopped with SIGTERM afterwards. Each scenario's report is
# printed and kept in DIR/<scenario>.txt. Loopback only; every run is bounded by the
# generator's --timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${TMPDIR:-/tmp}/parlor-bench
PORT=7301
SCENARIOS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) SCENARIOS+=("$1"); shift ;;
  esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(connect idle10k idle50k direct10k knee fanout10 fanout100 fanout1000 paced1000 fanout10000 slow offline writer)

mkdir -p "$OUT/bin"
cargo build --release --bin parlor --bin loadgen
cp target/release/parlor target/release/loadgen "$OUT/bin/"
URL=http://127.0.0.1:$PORT
CPUS=$(nproc)
if [ "$CPUS" -ge 2 ]; then SERVER_CPU="taskset -c 0"; GEN_CPU="taskset -c 1"; else SERVER_CPU=; GEN_CPU=; fi

# Raise the open-file limit of this shell (inherited by server and generator).
want=200000
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FDS=$(ulimit -n)
echo "open-file limit: $FDS (wanted $want)"

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
trap stop_server EXIT

start_server() {
  local data="$OUT/data"
  rm -rf "$data"; mkdir -p "$data"
  PARLOR_SERVER__BIND=127.0.0.1:$PORT \
  PARLOR_STORAGE__PATH="$data/parlor.redb" \
  PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1 \
  PARLOR_LIMITS__RATE_PER_SEC=0 \
  PARLOR_SERVER__MAX_CONNECTIONS=1000000 PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=1000000 \
  $SERVER_CPU "$OUT/bin/parlor" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -sf "$URL/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start; see $OUT/server.log" >&2
  exit 1
}

# loadgen <scenario-name> <loadgen args...>: one fresh server, one report.
loadgen() {
  local name=$1; shift
  echo "== $name: loadgen $*"
  start_server
  local rc=0
  $GEN_CPU "$OUT/bin/loadgen" "$@" --url "$URL" --probe-dir "$OUT/data" | tee "$OUT/$name.txt" || rc=$?
  stop_server
  [ $rc -eq 0 ] || echo "!! $name exited with $rc" | tee -a "$OUT/$name.txt"
}

# Source addresses for N sockets: one 127.0.0.x per 25,000.
sources() {
  local n=$1 ips=() i
  for i in $(seq 1 $(( (n + 24999) / 25000 ))); do ips+=("127.0.0.$i"); done
  (IFS=,; echo "${ips[*]}")
}

for s in "${SCENARIOS[@]}"; do
  case "$s" in
    connect) loadgen connect connect --clients 10000 --setup-concurrency 256 ;;
    idle10k) loadgen idle10k idle --clients 10000 --hold 30 --setup-concurrency 256 ;;
    idle50k)
      if [ "$FDS" -lt 50300 ]; then
        echo "== idle50k: skipped: the open-file limit is $FDS, 50,000 sockets need more than 50,300 in each process" | tee "$OUT/idle50k.txt"
      else
        loadgen idle50k idle --clients 50000 --hold 30 --setup-concurrency 256 --source-ips "$(sources 50000)" --timeout 120
      fi ;;
    direct10k) loadgen direct10k direct --clients 1000 --messages 200000 --rate 10000 --timeout 60 ;;
    knee) loadgen knee direct --clients 1000 --messages 300000 --window 32 --timeout 60 ;;
    fanout10) loadgen fanout10 fanout --members 10 --senders 10 --messages 60000 --rate 3000 --timeout 60 ;;
    fanout100) loadgen fanout100 fanout --members 100 --senders 10 --messages 30000 --rate 1500 --timeout 60 ;;
    fanout1000) loadgen fanout1000 fanout --members 1000 --senders 10 --messages 3000 --rate 300 --timeout 60 ;;
    paced1000) loadgen paced1000 fanout --members 1000 --senders 10 --messages 60 --rate 2 --timeout 90 ;;
    fanout10000) loadgen fanout10000 fanout --members 10000 --senders 10 --messages 300 --rate 15 --timeout 60 ;;
    slow)
      loadgen slow-without fanout --members 1000 --senders 10 --messages 2000 --rate 200 --timeout 60
      loadgen slow-with fanout --members 1000 --senders 10 --messages 2000 --rate 200 --slow 1 --timeout 60 ;;
    offline) loadgen offline offline --messages 1000 --repeat 20 ;;
    writer) cargo bench --bench writer 2>&1 | tee "$OUT/writer.txt" ;;
    *) echo "unknown scenario: $s" >&2; exit 2 ;;
  esac
done
echo "reports in $OUT"
