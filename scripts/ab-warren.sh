#!/usr/bin/env bash
# A/B of two (or more) warren binaries: the same warren-perf scenario against each in turn,
# alternating, ROUNDS times, each broker pinned to BROKER_CPU and the load to LOAD_CPU. Prints
# "binary: msgs/s deliveries-per-broker-CPU-s" per run. On a small noisy machine single runs move
# by ~10%: compare the means of several alternated rounds, not one run.
# Usage: scripts/ab-warren.sh OLD_BINARY NEW_BINARY [...]
# Environment: SCEN (warren-perf arguments, default "-x 1 -y 1 -s 16 -a"), SHARDS (1), ROUNDS (2),
#              SECONDS_EACH (5), BROKER_CPU (0), LOAD_CPU (1), PORT (5790).
set -u
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin warren-perf
PERF=${CARGO_TARGET_DIR:-$PWD/target}/release/warren-perf
SCEN=${SCEN:--x 1 -y 1 -s 16 -a}
run() {
    local bin=$1 d pid
    d=$(mktemp -d /tmp/warren-ab.XXXX)
    taskset -c "${BROKER_CPU:-0}" "$bin" --listen "127.0.0.1:${PORT:-5790}" --shards "${SHARDS:-1}" --data-dir "$d" \
        --management-listen off --prometheus-listen off > "$d/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do grep -q listening "$d/out" 2>/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2086
    taskset -c "${LOAD_CPU:-1}" "$PERF" --addr "127.0.0.1:${PORT:-5790}" --broker-pid "$pid" --json \
        -z "${SECONDS_EACH:-5}" $SCEN 2>/dev/null | tail -1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["received_per_s"]), round(d["received_per_broker_cpu_s"]))'
    kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
}
for _ in $(seq 1 "${ROUNDS:-2}"); do
    for b in "$@"; do echo "$b: $(run "$b")"; done
done
