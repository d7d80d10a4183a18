#!/usr/bin/env bash
# COPY the TPC-H .tbl files table by table into DuetDB (a release binary on a fresh data
# directory) and into PostgreSQL 15 (scripts/reference-pg.sh), one after the other; prints
# each table's wall time (DuetDB: and server CPU), and when DuetDB's column delta is empty.
#
#   bench/copy-tbl.sh DUETDB_BINARY TBL_DIR
# TBL_DIR holds region.tbl … lineitem.tbl ('|'-delimited, no trailing '|'), e.g. what the
# tpch harness writes to <work-dir>/sf1/tbl.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1
TBL=$2
. bench/lib.sh
tables="region nation part supplier partsupp customer orders lineitem"
now() { date +%s.%N; }

duet_start "$BIN"
A=(-h 127.0.0.1 -p "$DUET_PORT" -U postgres duetdb)
psql "${A[@]}" -q < bench/tpch-ddl.sql >/dev/null 2>&1
T0=$(now)
for t in $tables; do
  s0=$(awk '{print $14+$15}' "/proc/$DUET_PID/stat")
  t0=$(now)
  psql "${A[@]}" -qc "COPY $t FROM STDIN WITH (DELIMITER '|')" < "$TBL/$t.tbl"
  t1=$(now)
  s1=$(awk '{print $14+$15}' "/proc/$DUET_PID/stat")
  echo "DuetDB $t: $(echo "$t1 - $t0" | bc) s, server CPU $(( s1 - s0 )) ticks"
done
echo "DuetDB COPY, all tables: $(echo "$(now) - $T0" | bc) s"
d=$(wait_column_delta "${A[@]}")
echo "DuetDB column delta empty at $(echo "$(now) - $T0" | bc) s (rows left: $d)"
du -sh "$DUET_DATA"/data/*
duet_stop

scripts/reference-pg.sh start >/dev/null
P=(-h 127.0.0.1 -p 54329 -U postgres)
psql "${P[@]}" -qc "DROP DATABASE IF EXISTS copytbl" postgres
psql "${P[@]}" -qc "CREATE DATABASE copytbl" postgres
psql "${P[@]}" -q copytbl < bench/tpch-ddl.sql >/dev/null 2>&1
T0=$(now)
for t in $tables; do
  t0=$(now)
  psql "${P[@]}" copytbl -qc "COPY $t FROM STDIN WITH (DELIMITER '|')" < "$TBL/$t.tbl"
  echo "PostgreSQL $t: $(echo "$(now) - $t0" | bc) s"
done
echo "PostgreSQL COPY, all tables: $(echo "$(now) - $T0" | bc) s"
