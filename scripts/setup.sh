#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already installed at the pinned
# version (see ../shared/TOOLCHAIN.md for why each pin). Sourced by run.sh and test.sh, so a
# fresh machine needs nothing else. Only crates.io, npm and Debian are used.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "setup: the Rust toolchain (cargo) is required" >&2
  exit 1
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRUNK_VERSION=0.21.14
BINARYEN_VERSION=132.0.0
# wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock (and Trunk.toml's pin).
WASM_BINDGEN_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')"

# The browser app and `shared` build for wasm32.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION"; then
  echo "setup: installing trunk $TRUNK_VERSION (a few minutes, once)"
  cargo install trunk --version "$TRUNK_VERSION" --locked
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Without --locked: a dependency pinned by its lock file is not in the registry.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
# wasm-opt from npm's binaryen (Debian's older one silently breaks the app).
if ! "$ROOT/.tools/node_modules/.bin/wasm-opt" --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
  if ! command -v npm >/dev/null; then
    sudo_or="" ; [ "$(id -u)" -ne 0 ] && sudo_or="sudo"
    $sudo_or apt-get install -y npm
  fi
  npm install --silent --prefix "$ROOT/.tools" "binaryen@$BINARYEN_VERSION"
fi
export PATH="$ROOT/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# The browser tests drive Debian's Chromium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo_or="" ; [ "$(id -u)" -ne 0 ] && sudo_or="sudo"
  $sudo_or apt-get install -y chromium chromium-driver
fi
# The data server's PostgreSQL backend is tested on a private cluster of Debian's PostgreSQL.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  sudo_or="" ; [ "$(id -u)" -ne 0 ] && sudo_or="sudo"
  $sudo_or env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql \
    || { $sudo_or apt-get update -qq && $sudo_or env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
fi
# trunk: never probe for updates; keep its cache in the project.
export TRUNK_SKIP_VERSION_CHECK=true
export XDG_CACHE_HOME="$ROOT/.tools/cache"
