#!/usr/bin/env bash
# Restart on a durable backlog larger than memory: COUNT persistent messages of SIZE bytes are
# published with confirms into QUEUES durable queues (nobody consumes), the broker is stopped
# (STOP=kill: SIGKILL; term: SIGTERM, a clean stop; both: one restart after each), and started
# again on the same data dir. Prints, for each restart, the time until it listens with every
# message back in its queue (warrenctl list_queues) and its peak RSS (VmHWM) against the backlog.
# memory_limit MEMORY_LIMIT keeps the backlog from fitting in memory: past half of it the queues
# page to disk, at run time and while they are recovered.
# Usage: scripts/recovery-restart.sh [COUNT] (default 10000000). Environment: SIZE (1024),
# MEMORY_LIMIT (268435456), SHARDS (2), QUEUES (SHARDS), STOP (kill), COLD (0; 1 drops the page
# cache before each restart, as root), RSS_CAP_MIB (3/4 of the memory available at start: a
# broker whose RSS passes it is killed and reported, rather than let it take the machine down),
# BIN_DIR (default: the release build of this tree, built first; set it to measure other
# binaries as they are).
# Needs about 2 * COUNT * (SIZE + 100) bytes free on the disk of TMPDIR (the log, and the page
# files the queues write while publishing and while recovering); it refuses to start without
# that plus 15 GB to spare.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000000}
SIZE=${SIZE:-1024}
MEMORY_LIMIT=${MEMORY_LIMIT:-268435456}
SHARDS=${SHARDS:-2}
QUEUES=${QUEUES:-$SHARDS}
STOP=${STOP:-kill}
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --quiet --bin warren --bin warren-perf --bin warrenctl
    BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
case "$STOP" in kill) stops=(KILL) ;; term) stops=(TERM) ;; both) stops=(KILL TERM) ;;
    *) echo "STOP must be kill, term or both" >&2; exit 2 ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/warren-recovery.XXXXXX")
PID=
PERF=
trap 'for p in $PERF $PID; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
need=$((2 * COUNT * (SIZE + 100)))
avail=$(($(df --output=avail -B1 "$WORK" | tail -1)))
if [ "$avail" -lt $((need + 15000000000)) ]; then
    echo "needs $((need / 1000000000)) GB free on $(df --output=target "$WORK" | tail -1) plus 15 GB to spare;" \
        "$((avail / 1000000000)) GB are free" >&2
    exit 1
fi
printf 'memory_limit = %s\n' "$MEMORY_LIMIT" > "$WORK/warren.toml"
RSS_CAP_MIB=${RSS_CAP_MIB:-$(awk '/^MemAvailable/ {print int($2 / 1024 * 3 / 4)}' /proc/meminfo)}

# Starts the broker on a free port (port 0; the port is read back from its first line).
start() {
    "$BIN_DIR/warren" --config "$WORK/warren.toml" --listen 127.0.0.1:0 --management-listen off \
        --prometheus-listen off --shards "$SHARDS" --data-dir "$WORK/data" > "$WORK/out" 2>> "$WORK/log" &
    PID=$!
    STARTED=$(date +%s.%N)
    rm -f "$WORK/capped"
    # The RSS cap, sampled every 0.2 s.
    (while r=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null) && [ -n "$r" ]; do
        if [ "$r" -gt $((RSS_CAP_MIB * 1024)) ]; then echo "$r" > "$WORK/capped"; kill -9 "$PID"; fi
        sleep 0.2
    done) &
}
# Exits if the broker is gone, saying why.
alive() {
    kill -0 "$PID" 2>/dev/null && return
    if [ -f "$WORK/capped" ]; then
        echo "warren killed after $(python3 -c "import time; print(f'{time.time() - $STARTED:.1f}')") s:" \
            "its RSS passed the cap of $RSS_CAP_MIB MiB" >&2
    else
        echo "warren exited:" >&2
        tail -5 "$WORK/log" >&2
    fi
    exit 1
}
# Waits until the broker listens; prints its address.
listening() {
    while ! grep -q listening "$WORK/out" 2>/dev/null; do
        alive
        sleep 0.02
    done
    awk '/listening/ {print $4; exit}' "$WORK/out"
}
# Messages the queues hold (0 while the admin socket does not answer yet).
messages() {
    local json
    json=$("$BIN_DIR/warrenctl" --data-dir "$WORK/data" list_queues --formatter json 2>/dev/null) || { echo 0; return; }
    python3 -c 'import json, sys; print(sum(q["messages_ready"] + q["messages_unacknowledged"] for q in json.load(sys.stdin)))' <<< "$json"
}
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$PID/status"; }

start
ADDR=$(listening)
echo "publishing $COUNT x $SIZE B persistent, with confirms, into $QUEUES durable queues on $SHARDS shards" \
    "(memory_limit $MEMORY_LIMIT)..."
per=$(((COUNT + QUEUES - 1) / QUEUES))
# Queues durable-0, durable-1, ...: with 2 shards the first two are on different shards, so both
# shards have a backlog to recover (list_queues below shows where each is).
"$BIN_DIR/warren-perf" --addr "$ADDR" -s "$SIZE" --persistent --json --name publish -x "$QUEUES" \
    --queues "$QUEUES" --queue-prefix durable -y 0 -c 1000 -C "$per" -z 36000 > "$WORK/publish.json" &
PERF=$!
while kill -0 "$PERF" 2>/dev/null; do
    alive
    sleep 0.5
done
wait "$PERF"
PERF=
pub=$(cat "$WORK/publish.json")
held=$(messages)
"$BIN_DIR/warrenctl" --data-dir "$WORK/data" list_queues
python3 - "$pub" "$held" "$(du -sh "$WORK/data/msgs" | cut -f1)" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
print(f"published: {r['confirmed']:,} confirmed at {r['sent_per_s']:,.0f} msg/s; the queues hold {int(sys.argv[2]):,}; log {sys.argv[3]}")
EOF

for sig in "${stops[@]}"; do
    kill "-$sig" "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    : > "$WORK/out"
    cold=warm
    if [ "${COLD:-0}" = 1 ]; then
        # The log dropped from the kernel's page cache (all of it: root only, and it slows
        # everything else on the machine for a while), so the restart reads it from the disk.
        sync
        echo 3 > /proc/sys/vm/drop_caches
        cold=cold
    fi
    t0=$(date +%s.%N)
    start
    ADDR=$(listening)
    t_listen=$(date +%s.%N)
    while alive && [ "$(messages)" -lt "$held" ]; do sleep 0.1; done
    t_back=$(date +%s.%N)
    back=$(messages)
    python3 - "$sig" "$cold" "$t0" "$t_listen" "$t_back" "$back" "$held" "$(peak_kib)" "$COUNT" "$SIZE" <<'EOF'
import sys
sig, cold = sys.argv[1:3]
t0, t_listen, t_back = (float(x) for x in sys.argv[3:6])
back, held, peak, count, size = (int(x) for x in sys.argv[6:11])
print(f"restart after SIG{sig} ({cold} cache): listening after {t_listen - t0:.1f} s, {back:,} of {held:,} messages"
      f" back after {t_back - t0:.1f} s; peak RSS {peak / 1024:,.0f} MiB for a backlog of {count * size / 2**30:.1f} GiB")
EOF
    { grep -E "log read in|recovered in" "$WORK/log" || true; } | tail -n $((2 * SHARDS)) | sed 's/^/  /'
    : > "$WORK/log"
done
