#!/usr/bin/env bash
# A backlog larger than memory: COUNT messages of SIZE bytes published with confirms into one queue
# nobody consumes, then drained by one consumer. Warren runs with memory_limit MEMORY_LIMIT, so
# past half of it the queue pages to disk. Prints publish and drain rates and the broker's peak RSS
# (sampled every second and VmHWM) against the bytes queued.
# Usage: scripts/backlog.sh [COUNT] (default 10000000). Environment: SIZE (1024),
# MEMORY_LIMIT (268435456), PERSISTENT (0; 1 = persistent messages in a durable queue), PORT (5676).
# Needs COUNT * (SIZE + ~50) bytes free on the disk of /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-10000000}
SIZE=${SIZE:-1024}
MEMORY_LIMIT=${MEMORY_LIMIT:-268435456}
PERSISTENT=${PERSISTENT:-0}
PORT=${PORT:-5676}
cargo build --release --quiet
WORK=$(mktemp -d /tmp/warren-backlog.XXXXXX)
trap 'kill $PID $SAMPLER 2>/dev/null || true; grep -v accepting "$WORK/log" | tail -5; rm -rf "$WORK"' EXIT
printf 'memory_limit = %s\nshards = 1\n' "$MEMORY_LIMIT" > "$WORK/warren.toml"
taskset -c 0 target/release/warren --config "$WORK/warren.toml" --listen "127.0.0.1:$PORT" --management-listen off --prometheus-listen off \
    --data-dir "$WORK/data" > "$WORK/out" 2> "$WORK/log" &
PID=$!
for _ in $(seq 1 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
( peak=0; while kill -0 "$PID" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" > "$WORK/peak"; sleep 1; done ) &
SAMPLER=$!
flags=()
[ "$PERSISTENT" = 1 ] && flags+=(--persistent)
perf() { taskset -c 1 target/release/warren-perf --addr "127.0.0.1:$PORT" -s "$SIZE" --json "${flags[@]}" "$@"; }
echo "publishing $COUNT x $SIZE B (memory_limit $MEMORY_LIMIT bytes, RSS at start $(rss) KiB)..."
pub=$(perf --name publish -x 1 -y 0 -c 1000 -C "$COUNT" -z 36000)
depth=$(target/release/warrenctl --data-dir "$WORK/data" list_queues --formatter json)
rss_full=$(rss)
echo "draining..."
drain=$(perf --name drain -x 0 -y 1 -q 1000 -A 100 --no-purge -D "$COUNT" -z 36000)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
python3 - "$pub" "$drain" "$depth" "$rss_full" "$(cat "$WORK/peak")" "$hwm" "$COUNT" "$SIZE" <<'EOF'
import json, sys
pub, drain, depth = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
rss_full, peak, hwm, count, size = (int(x) for x in sys.argv[4:9])
print(f"queued after publishing : {depth[0]['messages_ready']:,} messages ({count * size / 2**30:.1f} GiB of bodies)")
print(f"publish (confirmed)     : {pub['sent_per_s']:,.0f} msg/s")
print(f"drain                   : {drain['received_per_s']:,.0f} msg/s, {drain['received']:,} received")
print(f"broker RSS full backlog : {rss_full / 1024:,.0f} MiB")
print(f"broker RSS peak         : {max(peak, hwm) / 1024:,.0f} MiB (sampled {peak / 1024:,.0f}, VmHWM {hwm / 1024:,.0f})")
EOF
