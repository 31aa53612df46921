#!/usr/bin/env bash
# The data server on PostgreSQL, measured beside the embedded store and beside PostgreSQL itself,
# in one run on one PostgreSQL server (Debian's `main` cluster, fsync on):
#   1. pgbench running the reference transfer (../shared/bench/pg_transfer.sql), 64 clients;
#   2. `interbank bench dataserver` (lock -> commit -> release, 64 connections, batches of 16
#      transfers, as a batching replica sends them) on the embedded store, then on PostgreSQL;
#   3. `interbank bench transfer` (POST /transfer through two replicas, 64 connections) on the
#      embedded store, then on PostgreSQL.
# Each PostgreSQL run gets a new database. Needs root (installs and starts PostgreSQL when
# missing) and the reference workloads in ../shared/bench.
# Usage: bash scripts/bench-postgres.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
source scripts/lib/pgbench.sh
pgbench_setup bench-postgres
# A local benchmark password for the loopback connections of our data server (Debian's cluster
# asks for one on 127.0.0.1); it goes to the data server in the environment, never on a command line.
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'bench-only-password'\""
fresh_db() {
  su postgres -c "psql -q -c 'DROP DATABASE IF EXISTS interbank_bench' -c 'CREATE DATABASE interbank_bench'"
  export INTERBANK_BENCH_DATABASE_URL="postgres://postgres:bench-only-password@127.0.0.1:5432/interbank_bench"
}
cargo build --release --workspace --bins -q
pg_tps=$(pgbench_transfer_tps "$secs")
unset INTERBANK_BENCH_DATABASE_URL
ds_embedded=$(target/release/interbank bench dataserver --connections 64 --batch 16 --duration-s "$secs" --json)
fresh_db
ds_pg=$(target/release/interbank bench dataserver --connections 64 --batch 16 --duration-s "$secs" --json)
unset INTERBANK_BENCH_DATABASE_URL
tr_embedded=$(target/release/interbank bench transfer --duration-s "$secs" --json)
fresh_db
tr_pg=$(target/release/interbank bench transfer --duration-s "$secs" --json)
python3 - "$pg_tps" "$ds_embedded" "$ds_pg" "$tr_embedded" "$tr_pg" <<'PY'
import json, sys
pg = float(sys.argv[1])
rows = [("data server alone, embedded store", sys.argv[2]), ("data server alone, PostgreSQL", sys.argv[3]),
        ("POST /transfer, embedded store", sys.argv[4]), ("POST /transfer, PostgreSQL", sys.argv[5])]
print(f"{'PostgreSQL itself (pgbench, pg_transfer.sql)':46} {pg:9.0f} transfers/s")
for name, raw in rows:
    r = json.loads(raw)
    print(f"{name:46} {r['transfers_per_s']:9.0f} transfers/s   p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
          f"   {r['transfers_per_s'] / pg:5.2f}x pgbench   ({r['errors']} errors)")
PY
