#!/usr/bin/env bash
# pgbench against one DuetDB process and against a cluster of 3 voters and 1 column-only
# member on loopback (scripts/cluster.sh), release builds on fresh data directories, run
# alternately (one process, cluster, one process, cluster, …); pgbench connects to the
# cluster's leader. Prints each run's TPS and, per workload, the median ratio cluster/one;
# during the cluster's runs, the column-only member's lag is sampled every 0.5 s.
#
#   bench/cluster.sh [SCALE] [SECONDS] [PAIRS]      # default 10, 30, 3
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-10}
SECS=${2:-30}
PAIRS=${3:-3}
TARGET=${CARGO_TARGET_DIR:-target}
# DUET_PROFILE=debug checks the script quickly; figures come from release builds only.
BIN="$TARGET/${DUET_PROFILE:-release}/duetdb"
. bench/lib.sh
cleanup() {
  cluster_stop
  duet_stop
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
duet_start "$BIN"
trap cleanup EXIT
cluster_start 3 1
LPORT=$LEADER_PORT
echo "cluster leader: member $LEADER (port $LPORT)"
for port in "$DUET_PORT" "$LPORT"; do
  pgbench_load "$port" "$SCALE"
done

run() { # port workload → TPS
  pgbench -n -c 8 -j 2 -M prepared -T "$SECS" -b "$2" -h 127.0.0.1 -p "$1" -U postgres duetdb \
    2>/dev/null | awk '/^tps/ {printf "%d", $3}'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for w in select-only tpcb-like; do
  ratios=()
  for pair in $(seq 1 "$PAIRS"); do
    one=$(run "$DUET_PORT" "$w")
    sample_lag "$LPORT" 4 "/tmp/cluster-lag-$w-$pair.txt" &
    lp=$!
    cluster=$(run "$LPORT" "$w")
    kill "$lp"
    ratio=$(echo "scale=3; $cluster / $one" | bc)
    ratios+=("$ratio")
    echo "$w pair $pair: one process $one TPS, cluster $cluster TPS, ratio $ratio (load $(cut -d' ' -f1 /proc/loadavg)); member 4's column lag $(lag_summary "/tmp/cluster-lag-$w-$pair.txt")"
  done
  echo "$w: median ratio cluster/one $(printf '%s\n' "${ratios[@]}" | median), ratios ${ratios[*]}"
done
