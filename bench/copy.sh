#!/usr/bin/env bash
# COPY FROM STDIN load time, DuetDB (release build, fresh data dir) and PostgreSQL 15 (Debian,
# default config) side by side: ROWS rows (default 1,000,000) of (bigint, int, text, double)
# in text format, generated once into a file and piped through psql on loopback. Prints the
# wall time of each load and, for DuetDB, how long after the COPY returned the column
# replica had applied it.
#
#   cargo build --release && bench/copy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
PG_CONN=$(scripts/reference-pg.sh start)
source bench/lib.sh
duet_start "${DUET_BIN:-${CARGO_TARGET_DIR:-target}/release/duetdb}"
PORT=$DUET_PORT
HTTP=$DUET_HTTP
WORK=$DUET_DATA
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\t%d\trow number %d\t%.3f\n", i, i % 1000, i, i * 0.5 }' >"$WORK/data.tsv"
echo "input: $ROWS rows, $(du -h "$WORK/data.tsv" | cut -f1)"

load() { # name, psql args...
  local name=$1; shift
  psql "$@" -qc "DROP TABLE IF EXISTS copy_bench" >/dev/null 2>&1 || true
  psql "$@" -qc "CREATE TABLE copy_bench (id bigint PRIMARY KEY, g int, s text, x double precision)"
  local t0 t1
  t0=$(date +%s.%N)
  psql "$@" -qc "COPY copy_bench FROM STDIN" <"$WORK/data.tsv"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$ROWS" -v name="$name" 'BEGIN { printf "%s: COPY %d rows in %.2f s (%.0f rows/s)\n", name, n, b - a, n / (b - a) }'
}

load duetdb -h 127.0.0.1 -p "$PORT" -U postgres duetdb
t0=$(date +%s.%N)
commit=$(curl -s "http://$HTTP/metrics" | sed -n 's/^duet_raft_index{kind="commit",peer="voter"} //p')
while :; do
  applied=$(curl -s "http://$HTTP/metrics" | sed -n 's/^duet_raft_index{kind="applied",peer="learner"} //p')
  [ "${applied:-0}" -ge "$commit" ] && break
  sleep 0.01
done
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "duetdb: column replica caught up %.3f s after COPY returned\n", b - a }'
load postgres $(echo "$PG_CONN" | sed 's/host=\([^ ]*\) port=\([^ ]*\) user=\([^ ]*\) dbname=\([^ ]*\)/-h \1 -p \2 -U \3 \4/')
