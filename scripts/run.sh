#!/usr/bin/env bash
# Builds everything and starts the local InterBank network until Ctrl-C.
# Usage: bash scripts/run.sh [--fresh] [--data DIR] [--no-ui]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/interbank up "$@"
