#!/bin/sh
# Three Parlor nodes over three clustered nats-servers, all on this machine (README:
# Cluster mode). Everything lives under DIR (default ./cluster-demo):
#
#   docs/cluster/three-nodes.sh start [DIR]   # start, wait until every shard is served
#   docs/cluster/three-nodes.sh stop [DIR]    # stop the nodes (SIGTERM), then NATS
#
# Clients use any node: http://127.0.0.1:7101, :7102, :7103. Kill one (`kill -9`, its pid
# is in DIR/n1.pid) and its shards move to the others within the lease (1.5 s here).
# Needs nats-server on PATH or in /usr/sbin (`apt-get install -y nats-server`) and the
# parlor binary (PARLOR_BIN, default target/release/parlor).
set -eu

cmd=${1:-start}
dir=${2:-./cluster-demo}
bin=${PARLOR_BIN:-target/release/parlor}
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
# Ports: NATS clients 42221-42223, NATS routes 46221-46223, Parlor nodes 7101-7103.
nats_base=${NATS_PORT_BASE:-42220}
route_base=${ROUTE_PORT_BASE:-46220}
node_base=${NODE_PORT_BASE:-7100}

stop() {
    for n in 1 2 3; do [ -f "$dir/n$n.pid" ] && kill "$(cat "$dir/n$n.pid")" 2>/dev/null || true; done
    sleep 2
    for n in 1 2 3; do [ -f "$dir/s$n.pid" ] && kill "$(cat "$dir/s$n.pid")" 2>/dev/null || true; done
    rm -f "$dir"/*.pid
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

mkdir -p "$dir"
routes=""
for n in 1 2 3; do routes="${routes:+$routes,}nats://127.0.0.1:$((route_base + n))"; done
for n in 1 2 3; do
    mkdir -p "$dir/s$n"
    "$nats" -n "s$n" -a 127.0.0.1 -p $((nats_base + n)) -js -sd "$dir/s$n" \
        --cluster_name parlor --cluster "nats://127.0.0.1:$((route_base + n))" --routes "$routes" \
        >"$dir/s$n.log" 2>&1 &
    echo $! >"$dir/s$n.pid"
done

urls=""
for n in 1 2 3; do urls="${urls:+$urls,}\"nats://127.0.0.1:$((nats_base + n))\""; done
for n in 1 2 3; do
    mkdir -p "$dir/n$n"
    PARLOR_SERVER__BIND="127.0.0.1:$((node_base + n))" \
    PARLOR_STORAGE__PATH="$dir/n$n/parlor.redb" \
    PARLOR_CLUSTER__ENABLED=true \
    PARLOR_CLUSTER__NODE_ID="n$n" \
    PARLOR_CLUSTER__NATS_URLS="[$urls]" \
    PARLOR_CLUSTER__SHARDS=4 \
    PARLOR_CLUSTER__REPLICAS=3 \
    PARLOR_CLUSTER__LEASE_TTL_MS=1500 \
    PARLOR_CLUSTER__ADVERTISE=127.0.0.1 \
    PARLOR_AUTH__JWT_SECRET="${PARLOR_AUTH__JWT_SECRET:-demo-secret-change-me-0123456789abcdef}" \
    PARLOR_FILES__BACKEND=s3 \
    PARLOR_FILES__S3_BUCKET="${PARLOR_FILES__S3_BUCKET:-parlor}" \
    PARLOR_FILES__S3_ENDPOINT="${PARLOR_FILES__S3_ENDPOINT:-http://127.0.0.1:9000}" \
    PARLOR_FILES__S3_ALLOW_HTTP=true \
        "$bin" >"$dir/n$n.log" 2>&1 &
    echo $! >"$dir/n$n.pid"
done

# Ready when the nodes together serve every shard (each node's /healthz lists its own).
tries=0
while :; do
    owned=""
    for n in 1 2 3; do
        owned="$owned $(curl -fsS "http://127.0.0.1:$((node_base + n))/healthz" 2>/dev/null |
            sed -n 's/.*"owns":\[\([0-9,]*\)\].*/\1/p' | tr ',' ' ')"
    done
    if [ "$(echo $owned | wc -w)" -ge 4 ]; then
        echo "three nodes on http://127.0.0.1:$((node_base + 1)) .. $((node_base + 3)); shards:$owned"
        exit 0
    fi
    tries=$((tries + 1))
    if [ $tries -gt 120 ]; then
        echo "the nodes did not come up; see $dir/*.log" >&2
        stop
        exit 1
    fi
    sleep 0.5
done
