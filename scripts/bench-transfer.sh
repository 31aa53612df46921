#!/usr/bin/env bash
# The transfer benchmark in one run: the reference workload in PostgreSQL (pgbench, fsync on,
# 64 clients, 10,000 accounts) and then `POST /transfer` through two business replicas (64
# connections, 10,000 accounts); prints both and the ratio. Needs root (installs PostgreSQL from
# Debian packages when missing) and the reference workloads in ../shared/bench.
# Usage: bash scripts/bench-transfer.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
source scripts/lib/pgbench.sh
pgbench_setup bench-transfer
pg_tps=$(pgbench_transfer_tps "$secs")
cargo build --release --workspace --bins -q
ours=$(target/release/interbank bench transfer --duration-s "$secs" --json)
python3 - "$pg_tps" "$ours" <<'PY'
import json, sys
pg = float(sys.argv[1]); r = json.loads(sys.argv[2])
print(f"PostgreSQL (pgbench, fsync on): {pg:10.0f} transfers/s")
print(f"InterBank POST /transfer:       {r['transfers_per_s']:10.0f} transfers/s   p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
      f"({r['refused']} refused, {r['errors']} errors)")
c = r.get('cpu_us_per_transfer')
if c:
    print(f"CPU per transfer (µs): data server {c['dataserver']:.0f}, replicas {c['replicas']:.0f}, load generator {c['load_generator']:.0f}")
print(f"ratio: {r['transfers_per_s'] / pg:.2f}x")
PY
