#!/usr/bin/env bash
# Fuzzes every parser at the edge: `bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]`.
# Targets (fuzz/fuzz_targets): money ibk document pix_key bodies. Default: 60 s each, all.
# Installs cargo-fuzz from crates.io when missing. Uses the nightly toolchain when installed,
# otherwise the stable one with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags).
# A crash leaves its input under fuzz/artifacts/TARGET/; replay it with
# `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…` from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(money ibk document pix_key bodies)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  "${fuzz[@]}" run "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 2>&1 | grep -E '^(#[0-9]+ *DONE|Done|==[0-9]+==|SUMMARY|INFO: -max_total_time)' || true
  if ls fuzz/artifacts/"$t"/crash-* >/dev/null 2>&1; then
    echo "fuzz $t: a crashing input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz: no crash in ${#targets[@]} targets × ${seconds}s"
