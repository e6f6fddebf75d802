#!/usr/bin/env bash
# The long connection fuzz: tests/fuzz_connection.rs (generated and mutated AMQP sessions against
# the release broker over real sockets) for an hour instead of the suite's 20 s. It prints the run's
# seed first and a summary at the end (cases, reply codes seen, RSS); a failure prints the failing
# case's seed (replay it with WARREN_FUZZ_CASE=<seed>) and saves its bytes.
# Usage: scripts/fuzz-connections.sh [SECONDS] (default 3600); WARREN_FUZZ_SEED fixes the seed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3600}"
cargo build --locked --release --bin warren
WARREN_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/warren" WARREN_FUZZ_SECS="$secs" \
  timeout $((secs + 300)) cargo test --locked --release --test fuzz_connection -- --nocapture 2>&1 \
  | grep -v '^\[warren\]'
