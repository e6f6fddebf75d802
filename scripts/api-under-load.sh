#!/usr/bin/env bash
# Does a busy management API slow the message path? The same warren-perf load (default 1 -> 1,
# 16 B, auto-ack) against a release broker, alternately without and with a loop that requests
# /api/overview, /api/queues and /metrics (as fast as it can, or every PAUSE_MS ms), ROUNDS times.
# Prints per run: msgs/s, broker CPU per message (all its threads, the HTTP one included) and the
# scrapes made; then the means and the change. The broker is pinned to BROKER_CPU, the load and
# the scraper to LOAD_CPU (so the scraper takes CPU from the load tool, not from the broker).
# Usage: scripts/api-under-load.sh
# Environment: SCEN (warren-perf arguments, default "-x 1 -y 1 -s 16 -a"), SHARDS (1), ROUNDS (3),
#              SECONDS_EACH (8), PAUSE_MS (0: as fast as possible), BROKER_CPU (0), LOAD_CPU (1),
#              PORT (5791), WARREN (the broker binary; default: the one just built).
set -u
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --bin warren --bin warren-perf || exit 1
WARREN=${WARREN:-$TARGET/release/warren}
PERF=$TARGET/release/warren-perf
SCEN=${SCEN:--x 1 -y 1 -s 16 -a}
PORT=${PORT:-5791}
SECS=${SECONDS_EACH:-8}

scraper() { # MGMT_PORT PROM_PORT SECONDS -> prints the number of requests made
    python3 - "$@" <<'PY'
import base64, http.client, sys, time
mgmt, prom, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
pause = float(sys.argv[4]) / 1000
auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
m, p = http.client.HTTPConnection("127.0.0.1", mgmt), http.client.HTTPConnection("127.0.0.1", prom)
n, end = 0, time.time() + secs
while time.time() < end:
    for conn, path, h in [(m, "/api/overview", auth), (m, "/api/queues", auth), (p, "/metrics", {})]:
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (path, r.status)
        n += 1
    if pause:
        time.sleep(pause)
print(n)
PY
}

run() { # with_api(0|1) -> "msgs/s us-per-msg scrapes"
    local d pid spid="" mgmt prom out scrapes=0
    d=$(mktemp -d /tmp/warren-api-load.XXXX)
    taskset -c "${BROKER_CPU:-0}" "$WARREN" --listen "127.0.0.1:$PORT" --shards "${SHARDS:-1}" --data-dir "$d" \
        --management-listen 127.0.0.1:0 --prometheus-listen 127.0.0.1:0 > "$d/out" 2> "$d/err" &
    pid=$!
    for _ in $(seq 1 50); do [ "$(cat "$d/out" 2>/dev/null | wc -l)" -ge 3 ] && break; sleep 0.1; done
    mgmt=$(sed -n 2p "$d/out" | awk '{print $NF}' | cut -d: -f2)
    prom=$(sed -n 3p "$d/out" | awk '{print $NF}' | cut -d: -f2)
    if [ "$1" = 1 ]; then
        taskset -c "${LOAD_CPU:-1}" bash -c "$(declare -f scraper); scraper $mgmt $prom $SECS ${PAUSE_MS:-0}" > "$d/scrapes" &
        spid=$!
    fi
    # shellcheck disable=SC2086
    out=$(taskset -c "${LOAD_CPU:-1}" "$PERF" --addr "127.0.0.1:$PORT" --broker-pid "$pid" --json -z "$SECS" $SCEN 2>/dev/null | tail -1)
    [ -n "$spid" ] && wait "$spid"
    [ -s "$d/scrapes" ] && scrapes=$(cat "$d/scrapes")
    echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["received_per_s"]), round(1e6/d["received_per_broker_cpu_s"], 3), sys.argv[1])' "$scrapes"
    kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
}

results=$(mktemp)
for _ in $(seq 1 "${ROUNDS:-3}"); do
    for api in 0 1; do
        r=$(run $api)
        echo "api=$api: $r msgs/s, us of broker CPU per msg, scrapes"
        echo "$api $r" >> "$results"
    done
done
python3 - "$results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def mean(api, i):
    v = [float(r[i]) for r in rows if r[0] == api]
    return sum(v) / len(v)
rate0, rate1 = mean("0", 1), mean("1", 1)
cpu0, cpu1 = mean("0", 2), mean("1", 2)
print(f"without API load: {rate0:,.0f} msgs/s, {cpu0:.3f} us broker CPU/msg")
print(f"with API load:    {rate1:,.0f} msgs/s, {cpu1:.3f} us broker CPU/msg, {mean('1', 3):,.0f} scrapes")
print(f"change: {100 * (rate1 / rate0 - 1):+.1f}% msgs/s, {100 * (cpu1 / cpu0 - 1):+.1f}% CPU per msg")
PY
rm -f "$results"
