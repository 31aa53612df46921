#!/usr/bin/env bash
# The interbank package benchmark in one run: the reference workload — the same package (a
# debit at one bank, a credit at each of the two others) done with PostgreSQL's own two-phase
# commit across three databases, 64 clients, fsync on (../shared/bench/pg_2pc.py) — and then
# `interbank bench packages` (3 banks x 2 replicas, 64 clients) at each offered rate given; prints
# both, the ratio, and what a settled package cost (record writes, data-server requests, durable
# writes). Needs root (installs PostgreSQL from Debian packages and psycopg from PyPI when
# missing) and the reference workloads in ../shared/bench.
# Usage: bash scripts/bench-packages.sh [seconds] [rate...]   (default: 15 s at 600 1200 2400/s)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(600 1200 2400)
source scripts/lib/pgbench.sh
pgbench_setup bench-packages
bash "$bench/pg_2pc_setup.sh"
python3 -c 'import psycopg' 2>/dev/null || python3 -m pip install -q 'psycopg[binary]'
pg=$(python3 "$bench/pg_2pc.py" 64 "$secs")
cargo build --release --workspace --bins -q
for rate in "${rates[@]}"; do
  ours=$(target/release/interbank bench packages --rate "$rate" --duration-s "$secs" --json 2>/dev/null)
  python3 - "$pg" "$ours" <<'PY'
import json, re, sys
pg_line = sys.argv[1]; r = json.loads(sys.argv[2])
pg = float(re.search(r"([0-9.]+) packages/s", pg_line).group(1))
print(pg_line)
print(f"InterBank, offered {r['offered_per_s']}/s: {r['settled_per_s']:.0f} settled/s, submit->terminal p50 "
      f"{r['terminal_p50_ms']:.0f} ms p99 {r['terminal_p99_ms']:.0f} ms; refused {r['refused']} "
      f"(p99 {r['refused_p99_ms']:.0f} ms); check {'clean' if not r['violations'] else r['violations'][0]}")
print(f"  per package: {r['record_writes_per_package']:.1f} record writes, {r['ds_requests_per_package']:.1f} "
      f"data-server requests, {r['fsyncs_per_package']:.2f} durable writes; rounds of "
      f"{r['round_packages_mean']:.0f} packages, {r['round_ms_mean']:.0f} ms")
print(f"  ratio to PostgreSQL 2PC: {r['settled_per_s'] / pg:.2f}x")
PY
done
