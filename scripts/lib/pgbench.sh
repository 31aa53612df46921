# Sourced by the benchmark scripts that measure against PostgreSQL itself: one place for finding
# the reference workloads (../shared/bench), preparing PostgreSQL, and running the reference
# transfer with pgbench. Needs root (pg_setup.sh installs and starts PostgreSQL when missing).

# Finds ../shared/bench and prepares the `bankbench` database; $1 names the caller in errors.
# Sets `bench` to the workloads' directory.
pgbench_setup() {
  bench=$(realpath ../shared/bench)
  [ -f "$bench/pg_transfer.sql" ] || { echo "$1: $bench/pg_transfer.sql not found" >&2; exit 1; }
  bash "$bench/pg_setup.sh"
}

# Prints the transfers/s of pg_transfer.sql: pgbench, 64 clients, fsync on, for $1 seconds.
pgbench_transfer_tps() {
  su postgres -c "pgbench -n -c 64 -j 2 -T $1 -f $bench/pg_transfer.sql bankbench" | awk '/^tps/ {print $3; exit}'
}
