# Shared by the bench scripts: start and stop a DuetDB server on a fresh data directory.
# Source it, then `duet_start BINARY`; it sets DUET_PID and DUET_DATA and stops the server
# and removes the directory at exit (or at `duet_stop`). Uses DUET_PORT and DUET_HTTP.
DUET_PORT=${DUET_PORT:-55433}
DUET_HTTP=${DUET_HTTP:-127.0.0.1:58433}
DUET_PID=
DUET_DATA=

duet_stop() {
  if [ -n "$DUET_PID" ]; then kill "$DUET_PID" 2>/dev/null || true; wait "$DUET_PID" 2>/dev/null || true; fi
  if [ -n "$DUET_DATA" ]; then rm -rf "$DUET_DATA"; fi
  DUET_PID= DUET_DATA=
}

duet_start() { # binary [extra args…]; older builds without --http: set DUET_HTTP=none
  local bin=$1; shift
  DUET_DATA=$(mktemp -d /var/tmp/duet-bench-XXXXXX)
  local http=()
  if [ "$DUET_HTTP" != none ]; then http=(--http "$DUET_HTTP"); fi
  "$bin" --data-dir "$DUET_DATA/data" --listen "127.0.0.1:$DUET_PORT" "${http[@]}" --log-level warn "$@" \
    >"$DUET_DATA/server.log" 2>&1 &
  DUET_PID=$!
  trap duet_stop EXIT
  for _ in $(seq 200); do
    psql -h 127.0.0.1 -p "$DUET_PORT" -U postgres duetdb -Atc "select 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "DuetDB ($bin) did not start; its log:" >&2
  cat "$DUET_DATA/server.log" >&2
  exit 1
}

# A local cluster (scripts/cluster.sh; release build unless DUET_PROFILE says otherwise) of
# N voters and M column-only members
# on a fresh directory: `cluster_start N M` sets LEADER (member id) and LEADER_PORT, and
# stops the members and removes the directory at `cluster_stop`.
cluster_stop() {
  if [ -n "${DUET_CLUSTER_DIR:-}" ]; then
    scripts/cluster.sh stop >/dev/null 2>&1 || true
    sleep 1
    rm -rf "$DUET_CLUSTER_DIR"
  fi
}

cluster_start() { # voters column-members
  local base=${DUET_CLUSTER_SQL_PORT:-5500}
  export DUET_PROFILE=${DUET_PROFILE:-release}
  DUET_CLUSTER_DIR=$(mktemp -d /var/tmp/duet-cluster-bench.XXXXXX)
  export DUET_CLUSTER_DIR
  scripts/cluster.sh start "$1" "$2" >/dev/null
  LEADER=
  for _ in $(seq 1 300); do
    LEADER=$(psql -X -h 127.0.0.1 -p $((base + 1)) -U postgres duetdb -Atqc \
      "SELECT member_id FROM duet.cluster WHERE leader" 2>/dev/null || true)
    [ -n "$LEADER" ] && break
    sleep 0.1
  done
  [ -n "$LEADER" ] || { echo "the cluster elected no leader" >&2; exit 1; }
  LEADER_PORT=$((base + LEADER))
}

# Member MEMBER's column lag as the member on PORT measures it (duet.cluster.column_lag_ms),
# sampled every 0.5 s into FILE until the sampler is killed.
sample_lag() { # port member file
  : >"$3"
  while sleep 0.5; do
    psql -X -h 127.0.0.1 -p "$1" -U postgres -Atqc \
      "SELECT column_lag_ms FROM duet.cluster WHERE member_id = $2" duetdb >>"$3" 2>/dev/null || true
  done
}

lag_summary() { # file → "p50 …, p95 …, max … ms (N samples)"
  grep -E '^[0-9]+$' "$1" | sort -n | awk '{a[NR]=$1} END {
    if (NR == 0) { print "no samples"; exit }
    i95 = int(NR * 0.95); if (i95 < 1) i95 = 1
    printf "p50 %d, p95 %d, max %d ms (%d samples)", a[int((NR + 1) / 2)], a[i95], a[NR], NR }'
}

# pgbench's tables at scale SCALE, loaded through the server on PORT as a user would
# (pgbench -i: one transaction of SCALE × 100,000 rows, then ADD PRIMARY KEY; in a
# cluster each is one proposal of ~100-150 MB at scale 10, written as 4 MiB parts).
pgbench_load() { # port scale
  pgbench -i -q -s "$2" -h 127.0.0.1 -p "$1" -U postgres duetdb >/dev/null
}

# TPC-H's tables (bench/tpch-ddl.sql) loaded from TBL_DIR's .tbl files with COPY, then
# ANALYZE, through `psql ARGS…`.
tpch_load() { # tbl_dir psql-args…
  local tbl=$1 t; shift
  psql "$@" -q < bench/tpch-ddl.sql >/dev/null 2>&1
  for t in region nation part supplier partsupp customer orders lineitem; do
    psql "$@" -qc "COPY $t FROM STDIN WITH (DELIMITER '|')" < "$tbl/$t.tbl"
  done
  psql "$@" -qc "ANALYZE" >/dev/null
}

# Waits (at most 10 min) until no column replica has delta rows left to fold; prints how
# many are left.
wait_column_delta() { # psql-args…
  local d=
  for _ in $(seq 1200); do
    d=$(psql "$@" -Atc "SELECT coalesce(sum(delta_rows), 0) FROM duet.replicas")
    [ "$d" = 0 ] && break
    sleep 0.5
  done
  echo "$d"
}

# The 22 TPC-H queries on the column engine, one run each: total seconds on stdout,
# "qN seconds" per query on stderr.
tpch_queries() { # psql-args…
  local total=0 i s e
  for i in $(seq 1 22); do
    s=$(date +%s.%N)
    { echo "SET duet.engine = 'column'; SET duet.learner_wait_timeout = '30s';"; cat "tests/tpch/queries/q$i.sql"; } \
      | psql "$@" -q -v ON_ERROR_STOP=1 >/dev/null || echo "q$i failed" >&2
    e=$(date +%s.%N)
    echo "q$i $(echo "$e - $s" | bc)" >&2
    total=$(echo "$total + $e - $s" | bc)
  done
  echo "$total"
}
