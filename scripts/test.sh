#!/usr/bin/env bash
# Runs every check and test: formatting, lints, the wasm32 build of `shared`, the browser app's
# release build (trunk), and the whole test suite (unit, property and integration tests over
# real processes, and the end-to-end test in headless Chromium).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# A CI checkout is built once: incremental state would only take disk (gigabytes of it).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
echo "== format"
cargo fmt --all --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== shared builds for wasm32 (Architecture Invariant)"
cargo build -p shared --target wasm32-unknown-unknown --locked
echo "== browser app (trunk build --release)"
cargo fetch --locked
trunk build --release
WASM="$(ls frontend/dist/*.wasm)"
echo "release wasm: $(gzip -9 -c "$WASM" | wc -c) bytes gzipped (limit 307200)"
[ "$(gzip -9 -c "$WASM" | wc -c)" -le 307200 ]
echo "== tests"
cargo build --workspace --bins --locked
cargo test --workspace --locked
echo "== the data server's tests again, on PostgreSQL (a private cluster the harness starts)"
INTERBANK_TEST_BACKEND=postgres cargo test -p dataserver --tests --locked
