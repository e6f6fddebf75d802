#!/usr/bin/env bash
# Side by side: the same warren-perf scenarios against RabbitMQ and Warren in one run, each broker
# pinned to the same CPUs and the load tool to the others. Prints
#   scenario | RabbitMQ | Warren | ratio   (msgs/s, deliveries per broker CPU-second, p99 latency)
# and writes every measurement as JSON lines to $OUT.
#
# Usage: scripts/compare-rabbitmq.sh [SCENARIO...]        (default: all scenarios)
# Environment: DURATION (s, default 10), BROKER_CPUS (default 0), LOAD_CPUS (default: the rest),
#              OUT (default target/compare/results.jsonl), RABBIT_PORT (5673), WARREN_PORT (5674),
#              WARREN (the warren binary, default target/release/warren: e.g. an older build to
#              compare before and after a change in one run of RabbitMQ), RABBIT_TLS_PORT (5675),
#              WARREN_TLS_PORT (5676): the AMQPS listeners of the TLS scenarios (a throw-away
#              certificate made with openssl; warren-perf --tls does not verify it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rabbitmq.sh
source scripts/rabbitmq.sh

DURATION=${DURATION:-10}
BROKER_CPUS=${BROKER_CPUS:-0}
NCPU=$(nproc)
LOAD_CPUS=${LOAD_CPUS:-$(seq -s, 0 $((NCPU - 1)) | tr ',' '\n' | grep -vxF -f <(echo "$BROKER_CPUS" | tr ',' '\n') | paste -sd, -)}
LOAD_CPUS=${LOAD_CPUS:-$BROKER_CPUS}
BROKER_NCPU=$(echo "$BROKER_CPUS" | tr ',' '\n' | wc -l)
RABBIT_PORT=${RABBIT_PORT:-5673}
WARREN_PORT=${WARREN_PORT:-5674}
RABBIT_TLS_PORT=${RABBIT_TLS_PORT:-5675}
WARREN_TLS_PORT=${WARREN_TLS_PORT:-5676}
OUT=${OUT:-target/compare/results.jsonl}
WORK=$(mktemp -d /tmp/warren-compare.XXXXXX)
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

cargo build --release --quiet
PERF=target/release/warren-perf
WARREN=${WARREN:-target/release/warren}

cleanup() {
    kill -CONT "${WARREN_PID:-}" "${RABBIT_PID:-}" 2>/dev/null || true
    [ -n "${WARREN_PID:-}" ] && kill "$WARREN_PID" 2>/dev/null || true
    stop_rabbitmq
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# One self-signed certificate for both brokers' AMQPS listeners (ECDSA P-256, as is common).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/tls-key.pem" -out "$WORK/tls-cert.pem" 2>/dev/null
export RABBIT_TLS_PORT RABBIT_TLS_CERT=$WORK/tls-cert.pem RABBIT_TLS_KEY=$WORK/tls-key.pem

# RabbitMQ on its own port, node name and directories; as many Erlang schedulers as broker CPUs.
start_rabbitmq "warrencmp$$@localhost" "$RABBIT_PORT" "$BROKER_CPUS"

# A build from before TLS (WARREN= for a before/after run) is started without the TLS listener.
TLS_ARGS=()
if "$WARREN" --help | grep -q -- --tls-listen; then
    TLS_ARGS=(--tls-listen "127.0.0.1:$WARREN_TLS_PORT" --tls-cert "$WORK/tls-cert.pem" --tls-key "$WORK/tls-key.pem")
fi
taskset -c "$BROKER_CPUS" "$WARREN" --listen "127.0.0.1:$WARREN_PORT" --shards "$BROKER_NCPU" \
    --management-listen off --prometheus-listen off "${TLS_ARGS[@]}" \
    --data-dir "$WORK/warren" > "$WORK/warren.out" 2> "$WORK/warren.err" &
WARREN_PID=$!
for _ in $(seq 1 50); do grep -q listening "$WORK/warren.out" 2>/dev/null && break; sleep 0.1; done

echo "RabbitMQ $RABBIT_VERSION (pid $RABBIT_PID) and Warren (pid $WARREN_PID) on CPUs $BROKER_CPUS; load on CPUs $LOAD_CPUS; ${DURATION}s each" >&2

declare -A SCENARIOS=(
    [1to1-16B-autoack]="-x 1 -y 1 -s 16 -a"
    [1to1-1KiB-ack-prefetch100]="-x 1 -y 1 -s 1024 -q 100"
    [fanout-4-queues]="-t fanout --queues 4 -x 1 -y 4 -s 16 -a"
    [topic-20-bindings]="-t topic --queues 4 --bindings 20 -x 1 -y 4 -s 16 -a"
    [16-queues-16x16]="--queues 16 -x 16 -y 16 -s 16 -q 100 -A 50"
    [latency-10k-per-s]="-x 1 -y 1 -s 16 -r 10000 -a"
    [connection-churn]="--churn 4"
    [persistent-confirms-1KiB]="-x 2 -y 2 -s 1024 -f -c 200 -q 200 -A 50"
    # Issue 16's figure: one publisher keeping 256 persistent confirms in flight, one consumer.
    [persistent-confirms-1pub-256]="-x 1 -y 1 -s 1024 -f -c 256 -q 200 -A 50"
    # Queue extensions (issue 17): every message expires at once (TTL 0, no consumer on its
    # queue) and is dead-lettered through a fanout exchange to the queue the consumer reads;
    # and a priority queue (10 levels) with acks.
    [ttl-dead-letter-16B]="-x 1 -y 1 -s 16 --ttl 0 --dead-letter -a"
    [priority-10-ack-prefetch100]="-x 1 -y 1 -s 16 --priorities 10 -q 100 -A 50"
    # TLS (issue 19): 1 KiB, one publisher to one consumer (acks, prefetch 100), over AMQPS.
    [tls-1to1-1KiB]="-x 1 -y 1 -s 1024 -q 100 -A 50 --tls"
)
ORDER=(1to1-16B-autoack 1to1-1KiB-ack-prefetch100 fanout-4-queues topic-20-bindings 16-queues-16x16 latency-10k-per-s connection-churn persistent-confirms-1KiB persistent-confirms-1pub-256 ttl-dead-letter-16B priority-10-ack-prefetch100 tls-1to1-1KiB)
[ $# -gt 0 ] && ORDER=("$@")

# Waits until a broker is idle (under 5% of a CPU over half a second; at most 60 s), so one
# scenario's leftovers (a backlog still draining from socket buffers, RabbitMQ paging a backlog
# to disk) do not load the next run, of either broker.
wait_idle() {
    local pid=$1 hz before after
    hz=$(getconf CLK_TCK)
    for _ in $(seq 1 120); do
        before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        sleep 0.5
        after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        [ $(( (after - before) * 100 )) -lt $(( hz * 5 / 2 )) ] && return 0
    done
    echo "warning: broker $pid still busy after 60 s" >&2
}

for name in "${ORDER[@]}"; do
    args=${SCENARIOS[$name]:?unknown scenario $name}
    for broker in rabbitmq warren; do
        if [ $broker = rabbitmq ]; then
            port=$RABBIT_PORT pid=$RABBIT_PID other=$WARREN_PID
            [[ " $args " == *" --tls "* ]] && port=$RABBIT_TLS_PORT
        else
            port=$WARREN_PORT pid=$WARREN_PID other=$RABBIT_PID
            [[ " $args " == *" --tls "* ]] && port=$WARREN_TLS_PORT
        fi
        # Both brokers share the CPUs: neither may still be busy with the last run's leftovers,
        # and the one not measured is paused (SIGSTOP) so its timers cannot preempt the other.
        wait_idle "$RABBIT_PID"
        wait_idle "$WARREN_PID"
        kill -STOP "$other"
        echo "== $name on $broker" >&2
        # shellcheck disable=SC2086
        line=$(taskset -c "$LOAD_CPUS" "$PERF" --addr "127.0.0.1:$port" -z "$DURATION" --broker-pid "$pid" \
            --queue-prefix "cmp-$name" --exchange "cmp-$name" --name "$name" --json $args) || line='{"scenario":"'$name'","failed":true}'
        kill -CONT "$other"
        echo "{\"broker\":\"$broker\",\"result\":$line}" >> "$OUT"
    done
done

# The floor under the fixed-rate scenario: a blocking relay in place of a broker, same CPUs, same
# pacing (benches/loopback_floor.rs). No broker can spend less CPU or add less latency here.
if [[ " ${ORDER[*]} " == *" latency-10k-per-s "* ]]; then
    wait_idle "$RABBIT_PID"
    wait_idle "$WARREN_PID"
    kill -STOP "$RABBIT_PID" "$WARREN_PID"
    FLOOR=$(RELAY_CPU=${BROKER_CPUS%%,*} LOAD_CPU=${LOAD_CPUS%%,*} cargo bench --quiet --bench loopback_floor -- 10000 "$DURATION" 2>/dev/null | tail -1)
    kill -CONT "$RABBIT_PID" "$WARREN_PID"
fi

python3 - "$OUT" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["result"]["scenario"], {})[r["broker"]] = r["result"]
def ratio(w, r):
    return f"{w / r:.1f}x" if w and r else "-"
def fmt(v):
    return "-" if v is None else f"{v:,.0f}"
print(f"{'scenario':<28} | {'metric':<22} | {'RabbitMQ':>12} | {'Warren':>12} | ratio")
print("-" * 92)
for name, b in rows.items():
    r, w = b.get("rabbitmq", {}), b.get("warren", {})
    metrics = [("received/s", "received_per_s"), ("per broker CPU-s", "received_per_broker_cpu_s")]
    for label, key in metrics:
        print(f"{name:<28} | {label:<22} | {fmt(r.get(key)):>12} | {fmt(w.get(key)):>12} | {ratio(w.get(key), r.get(key))}")
    rl, wl = r.get("latency_us", {}).get("p99"), w.get("latency_us", {}).get("p99")
    if rl or wl:
        print(f"{name:<28} | {'p99 latency (us)':<22} | {fmt(rl):>12} | {fmt(wl):>12} | {ratio(rl, wl)} lower")
PY
[ -n "${FLOOR:-}" ] && echo "$FLOOR"
echo "results: $OUT" >&2
