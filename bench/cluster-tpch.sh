#!/usr/bin/env bash
# TPC-H served by a column-only member while pgbench runs against the voters: a cluster of
# 3 voters and 1 column-only member on loopback (scripts/cluster.sh, release build). The
# leader holds no column replica, so with duet.engine = 'column' every scan of the 22
# queries runs on member 4 (joins and aggregates on the leader). Measures the 22 queries
# alone, pgbench tpcb-like alone, then both at once.
#
#   bench/cluster-tpch.sh TBL_DIR [PGBENCH_SCALE]      # TBL_DIR: tpch --tbl-only's output
set -euo pipefail
cd "$(dirname "$0")/.."
TBL=$1
SCALE=${2:-10}
. bench/lib.sh
trap cluster_stop EXIT
now() { date +%s.%N; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
cluster_start 3 1
leader=$LEADER
A=(-X -h 127.0.0.1 -p "$LEADER_PORT" -U postgres duetdb)
echo "leader: member $leader"

t0=$(now)
tpch_load "$TBL" "${A[@]}"
echo "TPC-H load (COPY + ANALYZE) through the leader: $(echo "$(now) - $t0" | bc) s"
pgbench_load "$LEADER_PORT" "$SCALE"
# Until member 4 serves lineitem's scans.
for _ in $(seq 1 600); do
  psql "${A[@]}" -Atqc "SET duet.engine = 'column'; EXPLAIN SELECT count(*) FROM lineitem" 2>/dev/null \
    | grep -q "member=4" && break
  sleep 0.5
done

queries() { tpch_queries "${A[@]}"; }
bench() { # seconds
  pgbench -n -c 8 -j 2 -M prepared -T "$1" -b tpcb-like "${A[@]:1}" 2>/dev/null | awk '/^tps/ {printf "%d", $3}'
}

queries >/dev/null 2>&1   # warm-up
alone=$(queries 2>/tmp/cluster-tpch-alone.txt)
echo "TPC-H SF$(basename "$(dirname "$TBL")" | tr -d sf) 22 queries alone: $alone s"
secs=$(printf '%.0f' "$alone")
[ "$secs" -ge 10 ] || secs=10
sample_lag "$LEADER_PORT" 4 /tmp/cluster-tpch-lag-oltp.txt &
lp=$!
tps_alone=$(bench "$secs")
kill "$lp"
echo "pgbench tpcb-like (scale $SCALE, 8 clients) alone, $secs s: $tps_alone TPS"
echo "  member 4's column lag meanwhile: $(lag_summary /tmp/cluster-tpch-lag-oltp.txt)"
bench "$secs" > /tmp/cluster-tpch-tps.txt &
bp=$!
sample_lag "$LEADER_PORT" 4 /tmp/cluster-tpch-lag-both.txt &
lp=$!
both=$(queries 2>/tmp/cluster-tpch-both.txt)
wait "$bp"
kill "$lp"
echo "together: TPC-H 22 queries $both s; pgbench $(cat /tmp/cluster-tpch-tps.txt) TPS over $secs s"
echo "  member 4's column lag meanwhile: $(lag_summary /tmp/cluster-tpch-lag-both.txt)"
paste /tmp/cluster-tpch-alone.txt /tmp/cluster-tpch-both.txt | awk '{printf "%s alone %.2f s, with pgbench %.2f s\n", $1, $2, $4}'
