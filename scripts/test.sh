#!/usr/bin/env bash
# Runs the whole test suite: lints, Rust unit and integration tests (lapin, raw sockets), and the
# pika tests (RabbitMQ's tutorials among them). Every test starts its own broker on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/pytest ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet -r tests/python/requirements.txt
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# No new import cycle between top-level modules (issue 16).
python3 scripts/module-cycles.py
# Integration tests drive the optimized broker, as users run it (some behaviour under load, such as
# a flooding publisher starving its shard, only shows there); unit tests run in debug (overflow
# checks on).
cargo build --locked --release
export WARREN_BIN="$PWD/target/release/warren"
# Every test bounds itself; this bounds the whole run too, so a hang fails CI instead of stalling it.
timeout 1500 cargo test --locked
timeout 900 .venv/bin/pytest -q tests/python
