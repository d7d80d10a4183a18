#!/usr/bin/env bash
# pgbench side by side: DuetDB (a release binary on a fresh data directory) and PostgreSQL 15
# (scripts/reference-pg.sh, Debian's package, default configuration), one after the other
# for each script and mode, in one run. Prints a Markdown table of TPS, mean latency and the
# ratio DuetDB / PostgreSQL.
#
#   bench/pgbench.sh [DUETDB_BINARY]
#   SCALE=10 CLIENTS=8 THREADS=2 DURATION=30 SCRIPTS="select-only tpcb-like" MODES="simple extended prepared"
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/duetdb}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30}
SCRIPTS=${SCRIPTS:-"select-only tpcb-like"}
MODES=${MODES:-"simple extended prepared"}
. bench/lib.sh

scripts/reference-pg.sh start >/dev/null
PG=(-h 127.0.0.1 -p 54329 -U postgres)
psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS pgbench" postgres
psql "${PG[@]}" -qc "CREATE DATABASE pgbench" postgres
duet_start "$BIN"
DUET=(-h 127.0.0.1 -p "$DUET_PORT" -U postgres)

init() { # name, connection args…, db
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  pgbench "$@" -i -q -s "$SCALE" >/dev/null 2>&1 || { echo "$name: pgbench -i failed" >&2; pgbench "$@" -i -s "$SCALE" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$name init -s $SCALE: $(echo "$t1 - $t0" | bc) s" >&2
}
init DuetDB "${DUET[@]}" duetdb
init PostgreSQL "${PG[@]}" pgbench

run() { # script mode, connection args…, db → "tps latency failed"
  local script=$1 mode=$2; shift 2
  local out
  out=$(pgbench "$@" -n -b "$script" -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" 2>&1) || { echo "$out" >&2; echo "0 0 ?"; return; }
  local tps lat failed
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  echo "$tps $lat ${failed:-0}"
}

echo "| script | mode | DuetDB TPS | latency ms | failed | PostgreSQL TPS | latency ms | failed | DuetDB / PG |"
echo "|---|---|---|---|---|---|---|---|---|"
for script in $SCRIPTS; do
  for mode in $MODES; do
    read -r dt dl df < <(run "$script" "$mode" "${DUET[@]}" duetdb)
    read -r pt pl pf < <(run "$script" "$mode" "${PG[@]}" pgbench)
    ratio=$(echo "scale=3; $dt / $pt" | bc)
    printf '| %s | %s | %.0f | %s | %s | %.0f | %s | %s | %s |\n' "$script" "$mode" "$dt" "$dl" "$df" "$pt" "$pl" "$pf" "$ratio"
  done
done
