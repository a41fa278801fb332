#!/usr/bin/env bash
# The OpenAPI documents against a running server (README: OpenAPI and AsyncAPI).
#
# Starts the `parlor` binary on loopback with a fresh data directory and the admin listener
# on, fetches `GET /openapi.json` from both listeners and validates each with
# openapi-spec-validator, then runs schemathesis against each listener (the admin one with
# a hook that signs every request, .ci/schemathesis_hooks.py) with the checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance: any 5xx, or any answer (status, media type, body) that its
# document does not describe, fails the run.
#
# Environment: PARLOR_BIN (default: the debug build, `cargo build --bin parlor`),
# PARLOR_CI_VENV (the Python virtual environment, default /tmp/parlor-ci-venv, made and
# filled from PyPI when missing), ST_MAX_EXAMPLES (cases per operation and phase, default
# 30), ST_SECONDS (time limit of each schemathesis run, default 240).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv="${PARLOR_CI_VENV:-/tmp/parlor-ci-venv}"
examples="${ST_MAX_EXAMPLES:-30}"
seconds="${ST_SECONDS:-240}"

if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1 \
  || ! "$venv/bin/python" -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  echo "== pip install openapi-spec-validator schemathesis (into $venv)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'openapi-spec-validator>=0.7,<0.10' 'schemathesis>=4.3,<5'
fi
"$venv/bin/schemathesis" --version

if [ -n "${PARLOR_BIN:-}" ]; then
  bin=$PARLOR_BIN
else
  # Up to date after `cargo test` (which builds it for the CLI tests): a no-op then.
  cargo build --bin parlor
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/parlor"
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# Two free loopback ports.
read -r client_port admin_port < <("$venv/bin/python" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
client="127.0.0.1:$client_port"
admin="127.0.0.1:$admin_port"
secret="schemathesis-$(date +%s%N)"
# Generated requests log in and register far more often than people do: the login and
# visitor throttles are raised so that they are not all that is tested (a 429 is still a
# documented answer), and new users need no approval, for the hooks' set-up.
cat >"$work/parlor.toml" <<EOF
[server]
bind = "$client"
workers = 2
[admin]
bind = "$admin"
secret = "$secret"
max_refusals = 100000
[storage]
path = "$work/data/parlor.redb"
[login]
per_account_per_min = 100000
per_address_per_min = 100000
visitors_per_address_per_min = 100000
[users]
default_invite_confirm = 0
EOF

echo "== parlor on $client (admin $admin)"
RUST_LOG=warn "$bin" --config "$work/parlor.toml" >"$work/parlor.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://$client/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

fetch() {
  "$venv/bin/python" -c "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())" "$1" >"$2"
}
fetch "http://$client/openapi.json" "$work/client.json"
fetch "http://$admin/openapi.json" "$work/admin.json"

echo "== openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$work/client.json" "$work/admin.json"

run() {
  local name=$1 document=$2 url=$3
  shift 3
  echo "== schemathesis: $name listener"
  # In the work directory: schemathesis keeps a .schemathesis/ cache where it runs.
  (cd "$work" && timeout --signal=INT "$seconds" "$venv/bin/schemathesis" run "$document" --url "$url" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples "$examples" --no-shrink \
    --workers 2 --request-timeout 30 --warnings off "$@")
}

status=0
# `logout` would revoke the token every other request uses.
PARLOR_ST_CLIENT="$client" SCHEMATHESIS_HOOKS="$root/.ci/schemathesis_hooks.py" \
  run client "$work/client.json" "http://$client" --exclude-path /api/chat/logout || status=1
PARLOR_ST_ADMIN_SECRET="$secret" SCHEMATHESIS_HOOKS="$root/.ci/schemathesis_hooks.py" \
  run admin "$work/admin.json" "http://$admin" || status=1

if ! kill -0 "$server" 2>/dev/null; then
  echo "== parlor exited during the run" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "== the server's log (last 50 lines)" >&2
  tail -50 "$work/parlor.log" >&2
fi
exit "$status"
