#!/usr/bin/env bash
# Side by side: the same group fan-out through Parlor, the bare broadcast server `baseline`
# and mosquitto, one after the other, with the same load generator, the same pinning and the
# same sizes; prints one table of the three runs and Parlor's deliveries/s against the other
# two. See BENCHMARKS.md ("Side by side") for the method.
#
#   benches/compare.sh [--members N] [--senders N] [--messages N] [--rate R] [--window W]
#                      [--timeout S] [--targets parlor,baseline,mqtt] [--keep]
#
# Defaults: 1,000 members, 10 senders, 2,000 messages, closed loop (loadgen's window);
# `--rate R` runs an open loop at R messages a second. Loopback only; every server is pinned
# to CPU 0 and the generator to CPU 1; every process the script starts is stopped on exit.
set -euo pipefail

MEMBERS=1000
SENDERS=10
MESSAGES=2000
RATE=
WINDOW=
TIMEOUT=60
TARGETS=parlor,baseline,mqtt
KEEP=
MOSQUITTO=/usr/sbin/mosquitto

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS=$2; shift 2 ;;
    --senders) SENDERS=$2; shift 2 ;;
    --messages) MESSAGES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

for n in "$MEMBERS" "$SENDERS" "$MESSAGES" "$TIMEOUT"; do
  case "$n" in ''|*[!0-9]*) echo "compare.sh: not a number: $n" >&2; exit 2 ;; esac
done
IFS=, read -r -a RUNS <<<"$TARGETS"
for t in "${RUNS[@]}"; do
  case "$t" in parlor|baseline|mqtt) ;; *) echo "compare.sh: unknown target $t" >&2; exit 2 ;; esac
done
if [ "$(nproc --all)" -lt 2 ]; then
  echo "compare.sh: needs two CPUs (server on CPU 0, generator on CPU 1)" >&2
  exit 2
fi
for t in "${RUNS[@]}"; do
  if [ "$t" = mqtt ] && [ ! -x "$MOSQUITTO" ]; then
    echo "compare.sh: $MOSQUITTO is missing: apt-get install -y mosquitto" >&2
    exit 2
  fi
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --bin parlor --bin loadgen --bin baseline

WORK=$(mktemp -d /tmp/parlor-compare.XXXXXX)
mkdir -p "$WORK/bin"
cp target/release/parlor target/release/loadgen target/release/baseline "$WORK/bin/"
SERVER_PID=
GEN_PID=

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

cleanup() {
  if [ -n "$GEN_PID" ]; then kill -TERM "$GEN_PID" 2>/dev/null || true; fi
  stop_server
  if [ -n "$KEEP" ]; then
    echo "compare.sh: logs and results kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sockets: the generator's and the server's sides, plus set-up and slack.
WANT=$((MEMBERS + 1000))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$WANT" ]; then
  echo "compare.sh: the hard open-file limit $HARD is below $WANT; raise it first" >&2
  exit 2
fi
SOFT=$(ulimit -Sn)
if [ "$SOFT" != unlimited ] && [ "$SOFT" -lt "$WANT" ]; then ulimit -n "$WANT"; fi

# Highest priority when allowed (root), as in BENCHMARKS.md; plain otherwise.
NICE=()
if [ "$(id -u)" = 0 ]; then NICE=(nice -n -20); fi

# A TCP port on 127.0.0.1 that nothing listens on, from 7301 up.
free_port() {
  local p
  for p in $(seq 7301 7999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "compare.sh: no free port in 7301-7999" >&2
  exit 1
}

# Waits (at most 30 s) until the server started last accepts connections on `$1`.
wait_ready() {
  for _ in $(seq 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "compare.sh: the server exited; its log:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "compare.sh: the server does not listen on port $1 after 30 s" >&2
  exit 1
}

# Starts the server of target `$1` on CPU 0; sets SERVER_PID and URL.
start_server() {
  local port
  port=$(free_port)
  LOG="$WORK/$1.log"
  case "$1" in
    parlor)
      rm -rf "$WORK/data" && mkdir -p "$WORK/data"
      PARLOR_SERVER__BIND=127.0.0.1:$port \
      PARLOR_STORAGE__PATH="$WORK/data/parlor.redb" \
      PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1 \
      PARLOR_LIMITS__RATE_PER_SEC=0 \
      PARLOR_SERVER__MAX_CONNECTIONS=1000000 PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=1000000 \
        "${NICE[@]}" taskset -c 0 "$WORK/bin/parlor" >"$LOG" 2>&1 &
      URL=http://127.0.0.1:$port
      ;;
    baseline)
      "${NICE[@]}" taskset -c 0 "$WORK/bin/baseline" --bind "127.0.0.1:$port" >"$LOG" 2>&1 &
      URL=http://127.0.0.1:$port
      ;;
    mqtt)
      cat >"$WORK/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
      "${NICE[@]}" taskset -c 0 "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$LOG" 2>&1 &
      URL=mqtt://127.0.0.1:$port
      ;;
  esac
  SERVER_PID=$!
  wait_ready "$port"
}

LOADGEN_ARGS=(--members "$MEMBERS" --senders "$SENDERS" --messages "$MESSAGES" --timeout "$TIMEOUT")
if [ -n "$RATE" ]; then LOADGEN_ARGS+=(--rate "$RATE"); fi
if [ -n "$WINDOW" ]; then LOADGEN_ARGS+=(--window "$WINDOW"); fi
# Set-up of 10,000 members takes seconds; the send phase is bounded by --timeout.
BOUND=$((3 * TIMEOUT + 600))

FAILED=0
for t in "${RUNS[@]}"; do
  echo "== $t" >&2
  start_server "$t"
  # In the background, so that a signal to the script is handled at once.
  "${NICE[@]}" timeout "$BOUND" taskset -c 1 "$WORK/bin/loadgen" fanout --target "$t" --url "$URL" \
    "${LOADGEN_ARGS[@]}" --summary-json >"$WORK/$t.out" &
  GEN_PID=$!
  rc=0
  wait "$GEN_PID" || rc=$?
  GEN_PID=
  cat "$WORK/$t.out"
  stop_server
  sed -n 's/^RESULT //p' "$WORK/$t.out" >"$WORK/$t.json"
  if [ "$rc" != 0 ]; then
    echo "compare.sh: loadgen against $t exited with $rc" >&2
    FAILED=1
  fi
done

# One field of a RESULT object: a number, `null`, true or false.
field() {
  sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$WORK/$1.json"
}

# `$1` with `$2` decimals, or `-` when it is absent or null.
num() {
  case "$1" in ''|null) echo - ;; *) awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }' ;; esac
}

ratio() {
  local a b
  a=$(field parlor deliveries_per_s 2>/dev/null)
  b=$(field "$1" deliveries_per_s 2>/dev/null)
  case "$a$b" in *null*) echo - ; return ;; esac
  if [ -z "$a" ] || [ -z "$b" ]; then echo -; return; fi
  awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}

LOOP="closed loop"
if [ -n "$RATE" ]; then LOOP="open loop at $RATE msgs/s"; fi
echo
echo "Side by side: $MEMBERS members, $SENDERS senders, $MESSAGES messages, $LOOP"
printf '%-9s %13s %12s %10s %10s %10s %10s %8s %6s\n' \
  target deliveries/s "CPU us/del" "p50 ms" "p99 ms" "p99.9 ms" "max ms" lost clean
for t in "${RUNS[@]}"; do
  if [ ! -s "$WORK/$t.json" ]; then
    printf '%-9s %13s\n' "$t" "(no result)"
    continue
  fi
  printf '%-9s %13s %12s %10s %10s %10s %10s %8s %6s\n' "$t" \
    "$(num "$(field "$t" deliveries_per_s)" 0)" \
    "$(num "$(field "$t" server_cpu_us_per_delivery)" 2)" \
    "$(num "$(field "$t" p50_ms)" 3)" "$(num "$(field "$t" p99_ms)" 3)" \
    "$(num "$(field "$t" p999_ms)" 3)" "$(num "$(field "$t" max_ms)" 3)" \
    "$(field "$t" lost)" "$(field "$t" clean)"
done
have() { [ -s "$WORK/$1.json" ]; }
if have parlor && have baseline; then
  echo "deliveries/s Parlor/baseline:  $(ratio baseline)"
fi
if have parlor && have mqtt; then
  echo "deliveries/s Parlor/mosquitto: $(ratio mqtt)"
fi
exit "$FAILED"
