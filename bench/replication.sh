#!/usr/bin/env bash
# Replication lag and row→column conversion on a release build (fresh data dir):
#
# 1. Lag: pgbench inserts 10-row transactions (bench/lag_insert.sql) at a fixed rate (ROWS
#    rows/s, default 5000, i.e. ROWS/10 transactions/s) with 8 clients for DURATION s
#    (default 30); the learner records, for every entry it applies, the
#    time since the leader committed it (`duet_learner_visibility_seconds` on /metrics). The
#    script prints p50/p90/p99/max of that histogram (bucket upper bounds, ~19% resolution)
#    and the achieved rate.
# 2. Conversion: one transaction inserts BULK rows (default 1,000,000) in batches of 100,000
#    via INSERT … SELECT generate_series; reports the learner's pure apply rate
#    (rows_applied / apply time from /metrics) and the wall time from the last commit
#    until the learner has applied it.
#
#   cargo build --release && bench/replication.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000}
DURATION=${DURATION:-30}
BULK=${BULK:-1000000}
source bench/lib.sh
duet_start "${DUET_BIN:-${CARGO_TARGET_DIR:-target}/release/duetdb}"
PORT=$DUET_PORT
HTTP=$DUET_HTTP
PSQL="psql -h 127.0.0.1 -p $PORT -U postgres duetdb -Atq"
metrics() { curl -s "http://$HTTP/metrics"; }
quantiles() { # reads the histogram from stdin
  awk '/^duet_learner_visibility_seconds_bucket/ {
         match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5);
         n++; bound[n] = le; cum[n] = $2 }
       /^duet_learner_visibility_seconds_count/ { total = $2 }
       END {
         split("0.5 0.9 0.99 1.0", qs, " ");
         for (i = 1; i <= 4; i++) {
           target = qs[i] * total; if (target < 1) target = 1;
           for (j = 1; j <= n; j++) if (cum[j] >= target) { printf "p%s=%.3f ms  ", qs[i] * 100, bound[j] * 1000; break }
         }
         printf "(n=%d)\n", total
       }'
}

$PSQL -c "CREATE TABLE bench_kv (id bigint PRIMARY KEY, v text)"
base=$(metrics | sed -n 's/^duet_learner_visibility_seconds_count //p')
out=$(pgbench -h 127.0.0.1 -p "$PORT" -U postgres duetdb -n -M prepared -f bench/lag_insert.sql \
  -c 8 -j 2 -R "$((ROWS / 10))" -T "$DURATION" 2>&1)
echo "$out" | grep -E "^(tps|latency average|latency stddev|rate limit schedule lag|number of failed)" || true
echo "rows in bench_kv: $($PSQL -c 'SELECT count(*) FROM bench_kv')"
echo "lag (commit on leader → applied on learner), all entries since start:"
metrics | quantiles
echo "learner lag now: $(metrics | grep '^duet_learner_lag' | tr '\n' ' ')"

$PSQL -c "CREATE TABLE bulk (id bigint PRIMARY KEY, a int, b text, c double precision)"
before_rows=$(metrics | sed -n 's/^duet_column_events_total{event="rows_applied"} //p')
before_us=$(metrics | sed -n 's/^duet_column_events_total{event="apply_microseconds"} //p')
start=$(date +%s.%N)
for ((off = 0; off < BULK; off += 100000)); do
  $PSQL -c "INSERT INTO bulk SELECT i, (i % 1000)::int, 'row ' || i, i * 0.5 FROM generate_series($off + 1, $off + 100000) AS s(i)"
done
committed=$(date +%s.%N)
commit_index=$(metrics | sed -n 's/^duet_raft_index{kind="commit",peer="voter"} //p')
while :; do
  applied=$(metrics | sed -n 's/^duet_raft_index{kind="applied",peer="learner"} //p')
  [ "${applied:-0}" -ge "$commit_index" ] && break
  sleep 0.01
done
caught_up=$(date +%s.%N)
# Background compaction folds the delta into Arrow stable chunks (every 5 s or 200,000 versions).
folded0=$(metrics | sed -n 's/^duet_column_events_total{event="versions_folded"} //p')
for _ in $(seq 600); do
  folded=$(metrics | sed -n 's/^duet_column_events_total{event="versions_folded"} //p')
  delta=$($PSQL -c "SELECT delta_rows FROM duet.replicas WHERE table_name = 'bulk'")
  [ "${delta:-1}" -eq 0 ] && break
  sleep 0.1
done
compact_us=$(metrics | sed -n 's/^duet_column_events_total{event="compact_microseconds"} //p')
folded=$(metrics | sed -n 's/^duet_column_events_total{event="versions_folded"} //p')
echo "compaction since start: $folded versions folded into stable chunks in $((compact_us / 1000)) ms ($(awk -v f="$folded" -v u="$compact_us" 'BEGIN { printf "%.0f", f / (u / 1e6) }') versions/s, checkpoint included); stable rows of bulk: $($PSQL -c "SELECT stable_rows FROM duet.replicas WHERE table_name = 'bulk'")"
after_rows=$(metrics | sed -n 's/^duet_column_events_total{event="rows_applied"} //p')
after_us=$(metrics | sed -n 's/^duet_column_events_total{event="apply_microseconds"} //p')
awk -v r0="$before_rows" -v r1="$after_rows" -v u0="$before_us" -v u1="$after_us" \
    -v s="$start" -v c="$committed" -v e="$caught_up" -v n="$BULK" 'BEGIN {
  printf "bulk: %d rows committed in %.2f s (%.0f rows/s through Raft + RocksDB)\n", n, c - s, n / (c - s);
  printf "learner: %d rows converted in %.2f s of apply time = %.0f rows/s; caught up %.3f s after the last commit\n",
    r1 - r0, (u1 - u0) / 1e6, (r1 - r0) / ((u1 - u0) / 1e6), e - c }'
