#!/usr/bin/env bash
# Failover time of a local cluster (scripts/cluster.sh): KILLS times, kill -9 the leader
# while a client inserts through another member, and time from the kill to the first
# insert the new leader acknowledges; the killed member is restarted and caught up before
# the next round. Prints each round and p50 / p90 / max.
#
#   bench/failover.sh [KILLS] [MEMBERS]      # default 20 kills of a 3-member cluster
#
# Uses the build scripts/cluster.sh uses (DUET_PROFILE, debug by default); the time is
# mostly Raft's election timeout (150-300 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
N=${2:-3}
export DUET_CLUSTER_DIR=${DUET_CLUSTER_DIR:-$(mktemp -d /tmp/duet-failover.XXXXXX)}
SQL_BASE=${DUET_CLUSTER_SQL_PORT:-5500}
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT

q() { # member, sql
  psql -X -A -t -q -h 127.0.0.1 -p $((SQL_BASE + $1)) -U postgres duetdb \
    -v ON_ERROR_STOP=1 -c "$2" 2>/dev/null
}
now_ms() { date +%s%3N; }

# N voters, the last also holding the column replica (no column-only member).
scripts/cluster.sh start "$N" 0 >/dev/null
for _ in $(seq 1 200); do q 1 "SELECT 1" >/dev/null && break; sleep 0.05; done
q 1 "CREATE TABLE failover (k int PRIMARY KEY)"
key=0
times=()
for round in $(seq 1 "$KILLS"); do
  leader=$(q 1 "SELECT member_id FROM duet.cluster WHERE leader")
  via=$(( leader % N + 1 ))
  key=$((key + 1)); q "$via" "INSERT INTO failover VALUES ($key)"
  start=$(now_ms)
  scripts/cluster.sh kill "$leader"
  until q "$via" "INSERT INTO failover VALUES ($((key + 1)))" >/dev/null; do :; done
  key=$((key + 1))
  t=$(( $(now_ms) - start ))
  times+=("$t")
  new=$(q "$via" "SELECT member_id FROM duet.cluster WHERE leader")
  echo "round $round: killed leader $leader, member $new leads, first commit after $t ms"
  scripts/cluster.sh restart "$leader" >/dev/null
  until [ "$(q "$via" "SELECT count(*) FROM duet.cluster WHERE state = 'up'")" = "$N" ]; do
    sleep 0.05
  done
done
count=$(q 1 "SELECT count(*) FROM failover")
[ "$count" = "$key" ] || { echo "LOST COMMITS: $count rows, $key acknowledged" >&2; exit 1; }
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
pick() { echo "$sorted" | sed -n "$(( ($1 * ${#times[@]} + 99) / 100 ))p"; }
echo "failover over $KILLS kills of a $N-member cluster: p50 $(pick 50) ms, p90 $(pick 90) ms, p99 $(pick 99) ms, max $(echo "$sorted" | tail -1) ms; $key acknowledged inserts, all present"
