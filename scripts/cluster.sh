#!/usr/bin/env bash
# A local DuetDB cluster in one command: N voters holding the row replica and M learners
# holding only the column replica, each a process on this machine, Raft over TCP on
# loopback. With M = 0 the last voter also holds the column replica (row+column).
#
#   scripts/cluster.sh start [N [M]]  # default 3 voters, 1 learner; SQL on 127.0.0.1:5501..
#   scripts/cluster.sh status       # duet.cluster, asked of member 1
#   scripts/cluster.sh kill I       # kill -9 member I
#   scripts/cluster.sh restart I    # start member I again (same data, same flags)
#   scripts/cluster.sh stop         # stop every member (SIGTERM: the leader hands over)
#
# Data and logs go to $DUET_CLUSTER_DIR (default ./duet-cluster); DUET_PROFILE=release uses
# the release build; DUET_ELECTION_TIMEOUT_MS sets every member's --election-timeout-ms.
# psql may connect to any member; the others relay to the leader.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${DUET_CLUSTER_DIR:-./duet-cluster}
SQL_BASE=${DUET_CLUSTER_SQL_PORT:-5500}
RAFT_BASE=${DUET_CLUSTER_RAFT_PORT:-7100}
HTTP_BASE=${DUET_CLUSTER_HTTP_PORT:-8500}
TARGET=${CARGO_TARGET_DIR:-target}
# DUET_PROFILE=release runs (and builds) the release binary.
PROFILE=${DUET_PROFILE:-debug}
BIN="$TARGET/$PROFILE/duetdb"

members() {
  cat "$DIR/members" 2>/dev/null || { echo "no cluster in $DIR (start one)" >&2; exit 1; }
}

# The --initial-cluster list of "N M" (as saved in $DIR/members).
spec() {
  local n=$1 m=$2 out="" kind
  for i in $(seq 1 $((n + m))); do
    kind=row
    [ "$i" -gt "$n" ] && kind=column
    [ "$m" -eq 0 ] && [ "$i" -eq "$n" ] && kind=row+column
    out+="${out:+,}$i=$kind@127.0.0.1:$((RAFT_BASE + i))"
  done
  echo "$out"
}

count() {
  local n m
  read -r n m < <(members)
  echo $((n + ${m:-0}))
}

start_member() {
  local i=$1 n m
  read -r n m < <(members)
  mkdir -p "$DIR/m$i"
  "$BIN" --data-dir "$DIR/m$i" --node-id "$i" --initial-cluster "$(spec "$n" "${m:-0}")" \
    --listen "127.0.0.1:$((SQL_BASE + i))" --http "127.0.0.1:$((HTTP_BASE + i))" \
    ${DUET_ELECTION_TIMEOUT_MS:+--election-timeout-ms "$DUET_ELECTION_TIMEOUT_MS"} \
    --log-level warn >>"$DIR/m$i.log" 2>&1 &
  echo $! >"$DIR/m$i.pid"
  local page=inspector
  [ "$i" -gt "$n" ] && [ "${m:-0}" -gt 0 ] && page=api/cluster   # a column-only member
  echo "member $i: pid $!, SQL 127.0.0.1:$((SQL_BASE + i)), HTTP http://127.0.0.1:$((HTTP_BASE + i))/$page"
}

case "${1:-}" in
  start)
    n=${2:-3}
    m=${3:-1}
    [ "$n" -ge 1 ] || { echo "N must be at least 1" >&2; exit 1; }
    [ "$m" -ge 0 ] || { echo "M must be at least 0" >&2; exit 1; }
    if [ "$PROFILE" = release ]; then
      cargo build --quiet --release --bin duetdb
    else
      cargo build --quiet --bin duetdb
    fi
    mkdir -p "$DIR"
    echo "$n $m" >"$DIR/members"
    for i in $(seq 1 $((n + m))); do start_member "$i"; done
    echo "connect: psql -h 127.0.0.1 -p $((SQL_BASE + 1)) -U postgres duetdb"
    ;;
  restart)
    start_member "${2:?member id}"
    ;;
  kill)
    kill -9 "$(cat "$DIR/m${2:?member id}.pid")"
    ;;
  status)
    for i in $(seq 1 "$(count)"); do
      if psql -X -h 127.0.0.1 -p $((SQL_BASE + i)) -U postgres duetdb \
        -c "SELECT * FROM duet.cluster ORDER BY member_id" 2>/dev/null; then
        exit 0
      fi
    done
    echo "no member answers" >&2
    exit 1
    ;;
  stop)
    for i in $(seq 1 "$(count)"); do
      [ -f "$DIR/m$i.pid" ] && kill "$(cat "$DIR/m$i.pid")" 2>/dev/null || true
    done
    ;;
  *)
    sed -n '2,14p' "$0"
    exit 1
    ;;
esac
