#!/usr/bin/env bash
# scripts/idle-connections.py against RabbitMQ and Warren in one run (issue 20's figures): N idle
# connections with 2 channels at heartbeat 15, RSS per connection, heartbeats per connection per
# minute, a publish/consume round trip while they are open, RSS after closing.
# Usage: scripts/idle-connections.sh [N]     (default 10000; HOLD seconds of heartbeat counting, 60;
#        WARREN_ONLY=1 skips RabbitMQ)
# It starts from the soft file descriptor limit a login shell usually has (1024): the broker raises
# its own to the hard limit at start (and logs it), the client script raises its own too.
set -euo pipefail
ulimit -Sn 1024
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rabbitmq.sh
source scripts/rabbitmq.sh
N=${1:-10000}
HOLD=${HOLD:-60}
RABBIT_PORT=${RABBIT_PORT:-5683}
WORK=$(mktemp -d /tmp/warren-idle.XXXXXX)
PY=${PY:-.venv/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet --bin warren

cleanup() {
    [ -n "${WARREN_PID:-}" ] && kill "$WARREN_PID" 2>/dev/null || true
    stop_rabbitmq
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${WARREN_ONLY:-}" ]; then
    start_rabbitmq "warrenidle$$@localhost" "$RABBIT_PORT"
    echo "== RabbitMQ $RABBIT_VERSION"
    "$PY" scripts/idle-connections.py --port "$RABBIT_PORT" --pid "$RABBIT_PID" -n "$N" --hold "$HOLD"
    stop_rabbitmq
fi

"$TARGET/release/warren" --config config/warren.toml --listen 127.0.0.1:0 --management-listen off --prometheus-listen off --data-dir "$WORK/warren" \
    > "$WORK/warren.out" 2> "$WORK/warren.err" &
WARREN_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/warren.out" 2>/dev/null && break
    sleep 0.1
done
PORT=$(awk '/^warren listening on/ {print $4}' "$WORK/warren.out" | sed 's/.*://')
grep "file descriptor limit" "$WORK/warren.err" || true
echo "== Warren ($("$TARGET/release/warren" --version), $(awk '/^warren listening on/ {print $6}' "$WORK/warren.out") shards)"
"$PY" scripts/idle-connections.py --port "$PORT" --pid "$WARREN_PID" -n "$N" --hold "$HOLD"
