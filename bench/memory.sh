#!/usr/bin/env bash
# Where a running DuetDB's memory goes, over time: every INTERVAL seconds, one CSV line with
# the process's PSS and RSS (/proc) beside what /metrics says of it — the budgeted pools
# (duet_memory_bytes), the raft logs' spans (entries between first and last index, voter and
# learner), and the column delta's rows over all tables. Memory that grows while these stay
# flat is outside what DuetDB accounts for. Runs until the process exits or for SECONDS.
#
#   bench/memory.sh PID HTTP_ADDR OUT.csv [SECONDS] [INTERVAL]
set -euo pipefail
PID=$1
HTTP=$2
OUT=$3
SECONDS_MAX=${4:-3600}
INTERVAL=${5:-10}
pools="row_cache block_cache memtables table_readers column_cache"
{
  printf 'seconds,pss_mb,rss_mb'
  for p in $pools; do printf ',%s_mb' "$p"; done
  echo ',voter_log_entries,learner_log_entries,delta_rows'
} >"$OUT"
t0=$(date +%s)
while kill -0 "$PID" 2>/dev/null && [ $(( $(date +%s) - t0 )) -le "$SECONDS_MAX" ]; do
  m=$(curl -s "http://$HTTP/metrics" || true)
  metric() { # exact series name → value (0 if absent)
    awk -v k="$1" '$1 == k {print $2; found = 1} END {if (!found) print 0}' <<<"$m"
  }
  line="$(( $(date +%s) - t0 ))"
  line+=",$(awk '/^Pss:/ {printf "%d", $2 / 1024}' "/proc/$PID/smaps_rollup")"
  line+=",$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$PID/status")"
  for p in $pools; do
    line+=",$(awk -v b="$(metric "duet_memory_bytes{pool=\"$p\"}")" 'BEGIN {printf "%d", b / 1048576}')"
  done
  for role in voter learner; do
    first=$(metric "duet_raft_index{kind=\"first\",peer=\"$role\"}")
    last=$(metric "duet_raft_index{kind=\"last\",peer=\"$role\"}")
    line+=",$(awk -v f="$first" -v l="$last" 'BEGIN {printf "%d", l - f}')"
  done
  line+=",$(awk '$1 ~ /^duet_column_replica\{.*figure="delta_rows"/ {s += $2} END {printf "%d", s}' <<<"$m")"
  echo "$line" >>"$OUT"
  sleep "$INTERVAL"
done
