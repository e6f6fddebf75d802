#!/usr/bin/env bash
# Builds the container image (config/Dockerfile) and checks a pika round trip through it on a
# local port. Skips, saying why, where Docker (a running daemon) is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    echo "docker-smoke: SKIPPED: no Docker daemon here (docker info fails)"
    exit 0
fi
PORT=${PORT:-56720}
docker build -f config/Dockerfile -t warren:smoke .
ID=$(docker run -d --rm -p "127.0.0.1:$PORT:5672" --ulimit memlock=-1 --security-opt seccomp=unconfined warren:smoke)
trap 'docker stop "$ID" >/dev/null 2>&1 || true' EXIT
PY=${PY:-.venv/bin/python}
"$PY" - "$PORT" <<'PYEOF'
import sys, time, pika
port = int(sys.argv[1])
deadline = time.time() + 30
while True:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.5)
ch = conn.channel()
q = ch.queue_declare("", exclusive=True).method.queue
ch.basic_publish("", q, b"through docker")
_, _, body = next(ch.consume(q, auto_ack=True, inactivity_timeout=10))
assert body == b"through docker", body
conn.close()
print("docker-smoke: pika round trip through the container: ok")
PYEOF
