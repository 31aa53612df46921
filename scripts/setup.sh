#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already there. Sourced by run.sh
# and test.sh, so a fresh machine needs nothing else.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "setup: the Rust toolchain (cargo) is required" >&2
  exit 1
fi
# `shared` must build for the browser: keep the wasm32 target installed.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
