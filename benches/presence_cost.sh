#!/usr/bin/env bash
# What presence and webhooks cost a group fan-out: the same loadgen command against a fresh
# release server, alternating between variants, several rounds, in one sitting.
#
#   benches/presence_cost.sh [--rounds N] [--variants off,presence,hooks,all] [--out DIR]
#                            [--members N] [--messages N] [--rate R]
#
# Variants:
#   off       presence.enabled = false, no webhook endpoint
#   presence  presence on, group members told of each other (setting 7 = the group's size),
#             a user.online/user.offline endpoint
#   hooks     presence off, one endpoint subscribed to message.sent (a group message's event
#             lists every member)
#   all       presence on as above and one endpoint subscribed to every event
# The endpoint is a local receiver (python3's http.server) answering 204. Server on CPU 0,
# generator and receiver on CPU 1; every process started here is stopped on exit. Prints
# one line per run: server CPU per delivery, deliveries/s, p99, lost; keeps every report in
# DIR/<variant>-<round>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
VARIANTS=off,presence,hooks,all
OUT=${TMPDIR:-/tmp}/parlor-presence-cost
MEMBERS=1000
MESSAGES=3000
RATE=300
PORT=7311
ADMIN_PORT=7312
HOOK_PORT=7313
SECRET=bench-admin-secret

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --members) MEMBERS=$2; shift 2 ;;
    --messages) MESSAGES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT/bin"
cargo build --release --bin parlor --bin loadgen
TARGET=${CARGO_TARGET_DIR:-target}
cp "$TARGET/release/parlor" "$TARGET/release/loadgen" "$OUT/bin/"
URL=http://127.0.0.1:$PORT
ADMIN=http://127.0.0.1:$ADMIN_PORT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The receiver: answers every POST with 204, on CPU 1.
cat >"$OUT/receiver.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
taskset -c 1 python3 "$OUT/receiver.py" "$HOOK_PORT" &
PIDS+=($!)

# A signed admin request (sha1 of nonce|secret|timestamp).
admin() {
  local path=$1 body=$2 nonce ts sign
  nonce=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  ts=$(date +%s%3N)
  sign=$(printf '%s|%s|%s' "$nonce" "$SECRET" "$ts" | sha1sum | cut -d' ' -f1)
  curl -sf -X POST "$ADMIN$path" -H 'Content-Type: application/json' \
    -H "nonce: $nonce" -H "timestamp: $ts" -H "sign: $sign" -d "$body"
}

run() {
  local variant=$1 round=$2 presence=false events=
  case "$variant" in
    off) ;;
    presence) presence=true; events='["user.online","user.offline"]' ;;
    hooks) events='["message.sent"]' ;;
    all) presence=true; events='["message.sent","message.revoked","group.members","friend.request","user.online","user.offline"]' ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
  local data="$OUT/data"
  rm -rf "$data"; mkdir -p "$data"
  PARLOR_SERVER__BIND=127.0.0.1:$PORT PARLOR_ADMIN__BIND=127.0.0.1:$ADMIN_PORT \
  PARLOR_ADMIN__SECRET=$SECRET \
  PARLOR_STORAGE__PATH="$data/parlor.redb" \
  PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1 \
  PARLOR_LIMITS__RATE_PER_SEC=0 \
  PARLOR_SERVER__MAX_CONNECTIONS=1000000 PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=1000000 \
  PARLOR_PRESENCE__ENABLED=$presence PARLOR_PRESENCE__GROUP_MAX_MEMBERS=$((MEMBERS + 10)) \
  PARLOR_WEBHOOKS__ALLOWED_HOSTS='["127.0.0.1"]' \
  taskset -c 0 "$OUT/bin/parlor" >"$OUT/server.log" 2>&1 &
  local server=$!
  PIDS+=("$server")
  for _ in $(seq 100); do
    curl -sf "$URL/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ -n "$events" ]; then
    admin /admin/webhook/add "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hook\",\"events\":$events}" >/dev/null
  fi
  local report="$OUT/$variant-$round.txt"
  taskset -c 1 "$OUT/bin/loadgen" fanout --members "$MEMBERS" --senders 10 --messages "$MESSAGES" \
    --rate "$RATE" --timeout 90 --url "$URL" --probe-dir "$data" --summary-json >"$report" 2>&1 || true
  # What the variant did beside the fan-out (events delivered so far, presence told).
  local counters
  counters=$(curl -s "$URL/metrics" | grep -E '^parlor_(webhook_deliveries_total|webhook_outbox_depth|presence_changes_total|presence_frames_total) ' \
    | sed 's/^parlor_//' | tr '\n' ' ')
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  local result
  result=$(grep '^RESULT ' "$report" | tail -1 | cut -d' ' -f2-)
  if [ -z "$result" ]; then
    echo "$variant round $round: no result, see $report"
    return
  fi
  python3 - "$variant" "$round" "$result" "$counters" <<'PY'
import json, sys
v, r, j, counters = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
cpu = j.get("server_cpu_us_per_delivery")
print(f"{v:9} round {r}: server CPU {cpu:.2f} us/delivery ({j['server_cpu_s']:.2f} s), "
      f"{j['deliveries_per_s']:.0f} deliveries/s, p99 {j['p99_ms']:.1f} ms, lost {j['lost']}; {counters}")
PY
}

IFS=, read -r -a LIST <<<"$VARIANTS"
for round in $(seq 1 "$ROUNDS"); do
  for v in "${LIST[@]}"; do
    run "$v" "$round"
  done
done
