#!/usr/bin/env bash
# Garbage collection over a long update-heavy run: pgbench tpcb-like against DuetDB (a
# release binary, fresh data directory, default settings: gc_life_time 10 min) and then
# against PostgreSQL 15 (scripts/reference-pg.sh, default configuration, autovacuum on), in
# one run. Every 10 s it samples each system's data directory on disk and its memory (the
# sum of PSS over its processes, so PostgreSQL's shared buffers count once); pgbench
# reports TPS every minute. Writes a CSV of the samples and the per-minute TPS, and plots
# them (bench/gc_plot.py, matplotlib).
#
#   bench/gc.sh [DUETDB_BINARY]
#   SCALE=10 CLIENTS=8 THREADS=2 DURATION=1800 OUT=bench/results/gc
#   DUET_ARGS="--column-cache-size 256MB" (more flags for duetdb)
#   SYSTEMS="duetdb postgresql" (which of the two to run)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/duetdb}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
DURATION=${DURATION:-1800}
OUT=${OUT:-bench/results/gc}
SYSTEMS=${SYSTEMS:-duetdb postgresql}
read -r -a DUET_EXTRA <<<"${DUET_ARGS:-}"
. bench/lib.sh
mkdir -p "$OUT"
SAMPLES=$OUT/samples.csv
TPS=$OUT/tps.csv
echo "system,seconds,disk_bytes,memory_bytes" >"$SAMPLES"
echo "system,minute,tps" >"$TPS"

pss_of() { # pids… → summed PSS in bytes
  local total=0 kb
  for p in "$@"; do
    kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo $((total * 1024))
}

sample() { # system, dir, pid-lister → samples every 10 s until the file $OUT/stop appears
  local system=$1 dir=$2 lister=$3 t0
  t0=$(date +%s)
  while [ ! -e "$OUT/stop" ]; do
    # shellcheck disable=SC2046
    echo "$system,$(( $(date +%s) - t0 )),$(du -sb "$dir" 2>/dev/null | cut -f1),$(pss_of $($lister))" >>"$SAMPLES"
    sleep 10
  done
}

run() { # system, dir, pid-lister, connection args… → pgbench with per-minute progress
  local system=$1 dir=$2 lister=$3; shift 3
  rm -f "$OUT/stop"
  sample "$system" "$dir" "$lister" &
  local sampler=$!
  echo "$(date -u +%H:%M:%S) $system: pgbench tpcb-like -c $CLIENTS -j $THREADS -T $DURATION" >&2
  pgbench "$@" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -P 60 \
    >"$OUT/$system.out" 2>"$OUT/$system.progress" || true
  touch "$OUT/stop"
  wait "$sampler"
  awk -v s="$system" '/^progress:/ {m++; print s "," m "," $4}' "$OUT/$system.progress" >>"$TPS"
  grep -E "^tps|failed" "$OUT/$system.out" | sed "s/^/$system: /" >&2
}

load=$(cut -d' ' -f1 /proc/loadavg)
echo "load average before the run: $load" >&2

if [[ " $SYSTEMS " == *" duetdb "* ]]; then
  duet_start "$BIN" "${DUET_EXTRA[@]}"
  duet_pids() { echo "$DUET_PID"; }
  pgbench -h 127.0.0.1 -p "$DUET_PORT" -U postgres -i -q -s "$SCALE" duetdb >/dev/null 2>&1
  run duetdb "$DUET_DATA/data" duet_pids -h 127.0.0.1 -p "$DUET_PORT" -U postgres duetdb
  psql -h 127.0.0.1 -p "$DUET_PORT" -U postgres duetdb -Atc \
    "SELECT 'duetdb gc: safe point ' || safe_point || ', versions removed ' || versions_removed || ', tombstones removed ' || tombstones_removed FROM duet.gc" >&2
  curl -s "http://$DUET_HTTP/metrics" | grep -E '^duet_(column_cache|memory_budget_bytes)' >&2 || true
  duet_stop
fi

if [[ " $SYSTEMS " == *" postgresql "* ]]; then
  PGDIR=${DUET_PG_DIR:-/var/tmp/duet-reference-pg}
  scripts/reference-pg.sh start >/dev/null
  PG=(-h 127.0.0.1 -p 54329 -U postgres)
  psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS pgbench_gc" postgres
  psql "${PG[@]}" -qc "CREATE DATABASE pgbench_gc" postgres
  pgbench "${PG[@]}" -i -q -s "$SCALE" pgbench_gc >/dev/null 2>&1
  pg_pids() { pgrep -u postgres -x postgres; }
  run postgresql "$PGDIR" pg_pids "${PG[@]}" pgbench_gc
  psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS pgbench_gc" postgres
fi

python3 bench/gc_plot.py "$OUT"
