#!/usr/bin/env bash
# Where the bytes of an idle session go: the server under valgrind's massif holds N idle
# WebSocket sessions (heartbeats on), then the live heap at the peak is grouped by component.
#
#   benches/idle_heap/run.sh [--sessions N] [--out DIR]      (default 2,000 sessions)
#
# Needs valgrind (Debian package valgrind) and python3. The server is the release build
# with the system allocator (`--no-default-features`: massif sees only malloc, and mimalloc
# maps its own memory), on 127.0.0.1:7302, with an empty data directory under DIR. The
# default build is restored afterwards. Loopback only, bounded by the generator's --timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."

SESSIONS=2000
OUT=${TMPDIR:-/tmp}/parlor-idle-heap
PORT=7302
while [ $# -gt 0 ]; do
  case "$1" in
    --sessions) SESSIONS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT/data"
cargo build --release --no-default-features --bin parlor
cp target/release/parlor "$OUT/parlor-system-alloc"
cargo build --release --bin parlor --bin loadgen
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PARLOR_SERVER__BIND=127.0.0.1:$PORT \
PARLOR_STORAGE__PATH="$OUT/data/parlor.redb" \
PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1 \
PARLOR_LIMITS__RATE_PER_SEC=0 \
PARLOR_SERVER__MAX_CONNECTIONS=1000000 PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=1000000 \
valgrind --tool=massif --depth=40 --threshold=0.2 --detailed-freq=4 \
  --massif-out-file="$OUT/massif.out" "$OUT/parlor-system-alloc" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
target/release/loadgen idle --clients "$SESSIONS" --hold 10 --setup-concurrency 64 \
  --url "http://127.0.0.1:$PORT" --timeout 120 | tee "$OUT/idle.txt"
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
python3 benches/idle_heap/summary.py "$OUT/massif.out" "$SESSIONS" | tee "$OUT/summary.txt"
