#!/usr/bin/env bash
# Fills a real, small filesystem under a running DuetDB and checks what a user relies on:
# writes refused with SQLSTATE 53100 (COPY and pgbench), reads going on, writes resuming by
# themselves once space is freed, and every acknowledged row present after kill -9 and a
# restart. Needs root (it mounts a tmpfs); CI runs the same logic at the storage seam
# (tests/tests/disk.rs, and replication's injected ENOSPC tests).
#
#   sudo scripts/full-disk-check.sh            # 400 MB tmpfs, the default reserve
#   DUET_DISK_MB=600 DUET_PROFILE=release scripts/full-disk-check.sh
#   DUET_DISK_KEEP=1 scripts/full-disk-check.sh   # leave the filesystem mounted
#
# Exits non-zero at the first check that fails. Leaves nothing mounted.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZE_MB=${DUET_DISK_MB:-400}
PORT=${DUET_DISK_PORT:-5491}
NAME=full-disk
. scripts/tmpfs-lib.sh

tmpfs_mount "$SIZE_MB"
# Space to give back later: a ballast file the "operator" deletes.
dd if=/dev/zero of="$MNT/ballast" bs=1M count=$((SIZE_MB / 4)) status=none

sql() { psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -v ON_ERROR_STOP=1 -Atqc "$1"; }
free_mb() { df -m --output=avail "$MNT" | tail -1 | tr -d ' '; }

start --log-level info
echo "tmpfs ${SIZE_MB} MB at $MNT; free after ballast: $(free_mb) MB"
sql "CREATE TABLE f (id bigint PRIMARY KEY, pad text)"
pgbench -i -q -s 1 -h 127.0.0.1 -p "$PORT" -U postgres duetdb >/dev/null 2>&1 || fail "pgbench -i"

# COPY batches of 20,000 rows (about 2.4 MB each), then of 1,000, then of 50, each size
# until one is refused (a write is admitted while the reserve and twice its size are free).
acked=0
copy_batch() {
  local from=$1 n=$2
  python3 -c "
import sys
pad = 'x' * 100
w = sys.stdout.write
for i in range($from, $from + $n):
    w(f'{i}\t{pad}\n')
" | psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -v ON_ERROR_STOP=1 -Atq \
      -c "\\copy f FROM STDIN" 2>"$MNT.err"
}
fill() {
  local n=$1
  for _ in $(seq 1 100000); do
    if copy_batch "$acked" "$n"; then
      acked=$((acked + n))
    else
      grep -q "reserve" "$MNT.err" || { cat "$MNT.err"; fail "COPY failed without 53100"; }
      echo "COPY of $n rows refused after $acked acknowledged rows, free $(free_mb) MB"
      return
    fi
  done
  fail "the disk never filled"
}
fill 20000
head -1 "$MNT.err"
fill 1000
fill 50
# Single-row INSERTs until one is refused, with its SQLSTATE.
refused=0
for _ in $(seq 1 2000); do
  out=$(psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -Atq -c "\\set VERBOSITY verbose" \
    -c "INSERT INTO f VALUES ($acked, 'x')" 2>&1) && { acked=$((acked + 1)); continue; }
  echo "$out" | grep -q "53100" || fail "INSERT failed without 53100: $out"
  refused=1
  break
done
[ "$refused" -eq 1 ] || fail "single-row INSERTs were never refused"
echo "INSERT refused with 53100 after $acked acknowledged rows"
# pgbench's writes are refused too (each client stops at its first error).
pgbench -n -c 2 -T 3 -h 127.0.0.1 -p "$PORT" -U postgres duetdb >"$MNT.pgb" 2>&1 || true
grep -q "reserve" "$MNT.pgb" || fail "pgbench ran on a full disk: $(tail -3 "$MNT.pgb")"
echo "pgbench refused: $(grep -m1 reserve "$MNT.pgb" | cut -c1-160)"
# Reads go on.
[ "$(sql "SELECT count(*) FROM f")" = "$acked" ] || fail "count while full"
[ "$(sql "SET duet.engine = 'column'; SELECT count(*) FROM f" | tail -1)" = "$acked" ] \
  || fail "column replica count while full"
echo "reads go on while full: count(*) = $acked on both replicas"

# The operator frees space: writes resume without a restart.
rm -f "$MNT/ballast"
sleep 1
copy_batch "$acked" 20000 || { cat "$MNT.err"; fail "COPY after freeing space"; }
acked=$((acked + 20000))
pgbench -n -c 2 -t 200 -h 127.0.0.1 -p "$PORT" -U postgres duetdb >"$MNT.pgb" 2>&1 \
  || fail "pgbench after freeing space: $(tail -3 "$MNT.pgb")"
echo "writes resumed after freeing space: $acked rows acknowledged, free $(free_mb) MB"

# Nothing acknowledged is lost across kill -9.
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
start --log-level info
[ "$(sql "SELECT count(*) FROM f")" = "$acked" ] || fail "count after kill -9: $(sql "SELECT count(*) FROM f")"
[ "$(sql "SELECT count(*) FROM f WHERE id < 0")" = "0" ] || fail "a refused INSERT was applied"
! grep -q "raft peer stopped\|panicked" "$LOG" || fail "a peer stopped or a thread panicked"
echo "PASS: $acked acknowledged rows after kill -9 and restart"
