#!/usr/bin/env bash
# The many-queues scenario (16 queues, 16 producers, 16 consumers, prefetch 100) against Warren with
# 1..N shards, to see how throughput grows with shards. Each run starts a fresh broker.
# Usage: scripts/shard-scaling.sh [MAX_SHARDS]   (default: nproc). Environment: DURATION (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${1:-$(nproc)}
DURATION=${DURATION:-10}
PORT=${PORT:-5675}
cargo build --release --quiet
WORK=$(mktemp -d /tmp/warren-scaling.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
printf '%-8s | %14s | %16s | %14s\n' shards "received msg/s" "broker CPU-s/s" "per CPU-second"
for shards in $(seq 1 "$MAX"); do
    target/release/warren --listen "127.0.0.1:$PORT" --management-listen off --prometheus-listen off --shards "$shards" --data-dir "$WORK/d$shards" > "$WORK/out" 2>/dev/null &
    PID=$!
    for _ in $(seq 1 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
    line=$(target/release/warren-perf --addr "127.0.0.1:$PORT" -z "$DURATION" --broker-pid "$PID" --json \
        --name "many-queues-$shards" --queues 16 -x 16 -y 16 -s 16 -q 100 -A 50)
    kill "$PID"; wait "$PID" 2>/dev/null || true
    python3 -c "
import json, sys
r = json.loads(sys.argv[1]); s = r['seconds']
print(f\"{$shards:<8} | {r['received_per_s']:>14,.0f} | {r['broker_cpu_s'] / s:>16.2f} | {r['received_per_broker_cpu_s']:>14,.0f}\")
" "$line"
done
