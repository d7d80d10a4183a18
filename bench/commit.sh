#!/usr/bin/env bash
# Commit throughput and latency, side by side in one run: autocommit single-row INSERTs
# (bench/commit_insert.sql) with pgbench, 1/8/32 clients, against one or more DuetDB builds
# (release, fresh data dir each) and PostgreSQL 15 (Debian's package, default config: fsync and
# synchronous_commit on), all on loopback. Prints a Markdown table.
#
#   cargo build --release && bench/commit.sh
#   DUET_BINS="raft=target/release/duetdb direct=/path/to/older/duetdb" bench/commit.sh
#
# Environment: DURATION (s, default 15), CLIENTS (default "1 8 32"), MODE (pgbench -M,
# default prepared), DUET_BINS (space-separated name=path; default
# duetdb=$CARGO_TARGET_DIR/release/duetdb or target/release/duetdb).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-"1 8 32"}
MODE=${MODE:-prepared}
DUET_BINS=${DUET_BINS:-duetdb=${CARGO_TARGET_DIR:-target}/release/duetdb}

PG_CONN=$(scripts/reference-pg.sh start)
# Builds from before issue #3 have no --http flag.
DUET_HTTP=${DUET_HTTP:-none}
source bench/lib.sh

run() { # name, libpq args...
  local name=$1; shift
  psql "$@" -qc "DROP TABLE IF EXISTS bench_kv" >/dev/null 2>&1 || true
  psql "$@" -qc "CREATE TABLE bench_kv (id bigint PRIMARY KEY, v text)" >/dev/null
  for c in $CLIENTS; do
    local j=$(( c < 2 ? 1 : 2 ))
    local out
    out=$(pgbench "$@" -n -M "$MODE" -f bench/commit_insert.sql -c "$c" -j "$j" -T "$DURATION" 2>&1)
    local tps lat failed
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    echo "| $name | $c | ${tps:-error} | ${lat:-?} | ${failed:-?} |"
  done
}

echo "| system | clients | TPS | mean latency (ms) | failed |"
echo "|---|---|---|---|---|"
for entry in $DUET_BINS; do
  name=${entry%%=*}
  bin=${entry#*=}
  duet_start "$bin"
  run "$name" -h 127.0.0.1 -p "$DUET_PORT" -U postgres duetdb
  duet_stop
done
run postgres $(echo "$PG_CONN" | sed 's/host=\([^ ]*\) port=\([^ ]*\) user=\([^ ]*\) dbname=\([^ ]*\)/-h \1 -p \2 -U \3 \4/')
