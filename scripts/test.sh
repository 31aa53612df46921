#!/usr/bin/env bash
# Runs every check and test: formatting, lints, the wasm32 build of `shared`, and the whole
# test suite (unit, property and integration tests over real processes).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "== format"
cargo fmt --all --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== shared builds for wasm32 (Architecture Invariant)"
cargo build -p shared --target wasm32-unknown-unknown --locked
echo "== tests"
cargo build --workspace --bins --locked
cargo test --workspace --locked
