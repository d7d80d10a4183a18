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
DUET_PORT=${DUET_PORT:-55433}

PG_CONN=$(scripts/reference-pg.sh start)
DUET_PID=
DATA=
stop_duet() {
  if [ -n "$DUET_PID" ]; then kill "$DUET_PID" 2>/dev/null || true; wait "$DUET_PID" 2>/dev/null || true; fi
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
  DUET_PID= DATA=
}
trap stop_duet EXIT

start_duet() { # binary
  DATA=$(mktemp -d /var/tmp/duet-bench-XXXXXX)
  "$1" --data-dir "$DATA" --listen "127.0.0.1:$DUET_PORT" --log-level warn >"$DATA/server.log" 2>&1 &
  DUET_PID=$!
  for _ in $(seq 200); do
    psql -h 127.0.0.1 -p "$DUET_PORT" -U duet duetdb -Atc "select 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "DuetDB ($1) did not start" >&2
  exit 1
}

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
  start_duet "$bin"
  run "$name" -h 127.0.0.1 -p "$DUET_PORT" -U duet duetdb
  stop_duet
done
run postgres $(echo "$PG_CONN" | sed 's/host=\([^ ]*\) port=\([^ ]*\) user=\([^ ]*\) dbname=\([^ ]*\)/-h \1 -p \2 -U \3 \4/')
