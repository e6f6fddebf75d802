#!/usr/bin/env bash
# scripts/idle-connections.py against RabbitMQ and Warren in one run (issue 20's figures): N idle
# connections with 2 channels at heartbeat 15, RSS per connection, heartbeats per connection per
# minute, a publish/consume round trip while they are open, RSS after closing.
# Usage: scripts/idle-connections.sh [N]     (default 10000; HOLD seconds of heartbeat counting, 60)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
HOLD=${HOLD:-60}
RABBIT_PORT=${RABBIT_PORT:-5683}
WORK=$(mktemp -d /tmp/warren-idle.XXXXXX)
PY=${PY:-.venv/bin/python}

if ! command -v /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null; then
    echo "installing rabbitmq-server from Debian..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
cargo build --release --quiet

cleanup() {
    [ -n "${WARREN_PID:-}" ] && kill "$WARREN_PID" 2>/dev/null || true
    if [ -n "${RABBIT_PID:-}" ]; then
        HOME=$WORK/rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || kill "$RABBIT_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

RABBIT_NODE=warrenidle$$@localhost
mkdir -p "$WORK/rabbit/mnesia" "$WORK/rabbit/log"
echo '[].' > "$WORK/rabbit/enabled_plugins"
(
    export HOME=$WORK/rabbit RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_PORT=$RABBIT_PORT \
        RABBITMQ_DIST_PORT=$((RABBIT_PORT + 20000)) RABBITMQ_MNESIA_BASE=$WORK/rabbit/mnesia \
        RABBITMQ_LOG_BASE=$WORK/rabbit/log RABBITMQ_ENABLED_PLUGINS_FILE=$WORK/rabbit/enabled_plugins
    exec /usr/lib/rabbitmq/bin/rabbitmq-server > "$WORK/rabbit/out" 2>&1
) &
for _ in $(seq 1 120); do
    grep -q "completed with" "$WORK/rabbit/out" 2>/dev/null && break
    sleep 0.5
done
RABBIT_PID=$(HOME=$WORK/rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" status 2>/dev/null | awk '/OS PID/ {print $3}')
[ -n "$RABBIT_PID" ] || { echo "RabbitMQ did not start:" >&2; cat "$WORK/rabbit/out" >&2; exit 1; }
echo "== RabbitMQ ($(HOME=$WORK/rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" version 2>/dev/null))"
"$PY" scripts/idle-connections.py --port "$RABBIT_PORT" --pid "$RABBIT_PID" -n "$N" --hold "$HOLD"
HOME=$WORK/rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
RABBIT_PID=

target/release/warren --config config/warren.toml --listen 127.0.0.1:0 --management-listen off --prometheus-listen off --data-dir "$WORK/warren" \
    > "$WORK/warren.out" 2> "$WORK/warren.err" &
WARREN_PID=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/warren.out" 2>/dev/null && break
    sleep 0.1
done
PORT=$(awk '/^warren listening on/ {print $4}' "$WORK/warren.out" | sed 's/.*://')
echo "== Warren ($(target/release/warren --version), $(awk '/^warren listening on/ {print $6}' "$WORK/warren.out") shards)"
"$PY" scripts/idle-connections.py --port "$PORT" --pid "$WARREN_PID" -n "$N" --hold "$HOLD"
