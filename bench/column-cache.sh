#!/usr/bin/env bash
# The column replica larger than its cache: TPC-H loaded once into a DuetDB release binary,
# then the server restarted with each column cache budget in turn (alternating, ROUNDS
# times) and the 22 queries run twice on the column engine (first pass cold: after a
# restart nothing is cached). The server's resident memory (VmRSS, and VmHWM, its peak) is
# sampled every 0.2 s while the queries run.
#
#   bench/column-cache.sh DUETDB_BINARY TBL_DIR [BUDGETS] [ROUNDS]
#     BUDGETS: space-separated --column-cache-size values, default "64MB 8GB"
#     TBL_DIR: region.tbl … lineitem.tbl, e.g. `tpch --tbl-only`'s <work-dir>/sf1/tbl
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1
TBL=$2
BUDGETS=${3:-64MB 8GB}
ROUNDS=${4:-2}
. bench/lib.sh
PORT=${DUET_PORT:-55433}
HTTP=${DUET_HTTP:-127.0.0.1:58433}
DATA=$(mktemp -d /var/tmp/duet-cache-bench-XXXXXX)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$DATA"' EXIT
A=(-X -h 127.0.0.1 -p "$PORT" -U postgres duetdb)
now() { date +%s.%N; }

start() { # budget
  "$BIN" --data-dir "$DATA/data" --listen "127.0.0.1:$PORT" --http "$HTTP" --log-level warn \
    --column-cache-size "$1" >>"$DATA/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    psql "${A[@]}" -Atc "select 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "DuetDB did not start; its log:" >&2
  cat "$DATA/server.log" >&2
  exit 1
}
rss_mb() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$PID/status"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GB, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
start "$(echo "$BUDGETS" | cut -d' ' -f1)"
t0=$(now)
tpch_load "$TBL" "${A[@]}"
d=$(wait_column_delta "${A[@]}")
echo "load (COPY + ANALYZE + column delta folded, rows left in it: $d): $(echo "$(now) - $t0" | bc) s; RSS after load $(rss_mb) MB"
du -sh "$DATA/data/colstore" "$DATA/data/rowstore" | sed 's/^/on disk: /'
stop

for round in $(seq "$ROUNDS"); do
  for budget in $BUDGETS; do
    start "$budget"
    rss0=$(rss_mb)
    : >"$DATA/rss"
    ( while sleep 0.2; do rss_mb >>"$DATA/rss" 2>/dev/null || exit 0; echo >>"$DATA/rss"; done ) &
    sampler=$!
    for pass in cold warm; do
      total=$(tpch_queries "${A[@]}" 2>"$DATA/times")
      echo "round $round, cache $budget, $pass pass: 22 queries in $(printf '%.1f' "$total") s; $(awk '{printf "%s=%.2f ", $1, $2}' "$DATA/times")"
    done
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    peak=$(awk '/^VmHWM/ {printf "%d", $2 / 1024}' "/proc/$PID/status")
    max=$(grep -E '^[0-9]+$' "$DATA/rss" | sort -n | tail -1)
    cache=$(curl -s "http://$HTTP/metrics" | grep -E '^duet_(column_cache|memory_budget_bytes\{pool="column_cache")' | tr '\n' ' ')
    echo "round $round, cache $budget: RSS at start ${rss0} MB, max sampled ${max} MB, peak (VmHWM) ${peak} MB; $cache"
    stop
  done
done
