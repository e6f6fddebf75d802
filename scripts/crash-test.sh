#!/usr/bin/env bash
# The long crash test: the suite's SIGKILL test (tests/crash.rs) with many more rounds, against the
# release build. Each round publishes with confirms (and, every other round, consumes with acks)
# while the broker is killed at a random moment, then restarts it on the same data dir; at the end
# every confirmed message must be there. Usage: scripts/crash-test.sh [ROUNDS] (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-50}"
cargo build --release --bin warren
WARREN_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/warren" WARREN_CRASH_ROUNDS="$rounds" \
  timeout $((60 + rounds * 10)) cargo test --release --test crash -- --nocapture 2>&1 | grep -v '^\[warren\]'
