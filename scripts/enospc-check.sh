#!/usr/bin/env bash
# Below the disk reserve: DuetDB with --disk-reserve-mb 0 on a small tmpfs, filled by COPY
# until the disk is really full (ENOSPC in raft-engine and RocksDB). Checks that reads go
# on, that the commit waiting for the log is applied once space is freed (a client that
# gave up on it cannot know: it is committed, as PostgreSQL's would be after a lost
# connection), that new writes then succeed, and that kill -9 and a restart keep exactly
# what the server had. Needs root (it mounts a tmpfs).
#
#   sudo scripts/enospc-check.sh                 # 300 MB tmpfs, COPY batches of 20,000 rows
#   DUET_ENOSPC_ROWS=5000 sudo scripts/enospc-check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROWS=${DUET_ENOSPC_ROWS:-20000}
PORT=${DUET_ENOSPC_PORT:-5493}
NAME=enospc
. scripts/tmpfs-lib.sh

tmpfs_mount 300
dd if=/dev/zero of="$MNT/ballast" bs=1M count=60 status=none

sql() { timeout 20 psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -Atqc "$1"; }
count() { sql "SET duet.engine = '$1'; SET duet.learner_wait_timeout = '20s'; SELECT count(*) FROM f" | tail -1; }

start --disk-reserve-mb 0
sql "CREATE TABLE f (id bigint PRIMARY KEY, pad text)"
acked=0
for b in $(seq 1 2000); do
  if python3 -c "
import sys
pad = 'x' * 100
for i in range($acked, $acked + $ROWS):
    sys.stdout.write(f'{i}\t{pad}\n')
" | timeout 20 psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -Atq \
      -c "\\copy f FROM STDIN" 2>"$MNT.err"; then
    acked=$((acked + ROWS))
  else
    echo "COPY #$b did not finish within 20 s (the disk is full): $(head -c 200 "$MNT.err")"
    break
  fi
done
[ "$(df -m --output=avail "$MNT" | tail -1 | tr -d ' ')" -le 1 ] || fail "the disk did not fill"
[ "$(count row)" -ge "$acked" ] || fail "reads while full"
echo "full after $acked acknowledged rows; reads go on"

rm -f "$MNT/ballast"
sleep 3
sql "INSERT INTO f VALUES (-1, 'after')" || fail "INSERT after freeing space"
before=$(count row)
[ "$before" -ge $((acked + 1)) ] || fail "rows after freeing space: $before"
[ "$(count column)" = "$before" ] || fail "the column replica differs: $(count column) vs $before"
echo "space freed: writes resume, $before rows (the waiting COPY committed: $((before - acked - 1)) rows)"

kill -9 "$PID"
wait "$PID" 2>/dev/null || true
start --disk-reserve-mb 0
after=$(count row)
[ "$after" = "$before" ] || fail "after kill -9 and restart: $after rows, $before before"
[ "$(count column)" = "$after" ] || fail "the column replica differs after restart"
echo "PASS: $after rows after kill -9 and restart, on both replicas"
