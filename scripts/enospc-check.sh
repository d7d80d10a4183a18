#!/usr/bin/env bash
# Without the reserve: fill a tmpfs to a real ENOSPC and see what happens.
set -u
BIN=/var/tmp/duetdb-target/debug/duetdb; PORT=5493
M=$(mktemp -d /tmp/enospc.XXXX); mount -t tmpfs -o size=300m tmpfs $M
dd if=/dev/zero of=$M/ballast bs=1M count=60 status=none
start() { $BIN --data-dir $M/data --listen 127.0.0.1:$PORT --http off --disk-reserve-mb 0 >>$M.log 2>&1 & PID=$!; for i in $(seq 1 100); do psql -h 127.0.0.1 -p $PORT -U postgres -d duetdb -Atqc 'select 1' >/dev/null 2>&1 && return; sleep 0.2; done; echo "no start"; }
sql() { timeout 20 psql -h 127.0.0.1 -p $PORT -U postgres -d duetdb -Atqc "$1"; }
start
sql "CREATE TABLE f (id bigint PRIMARY KEY, pad text)"
acked=0
for b in $(seq 1 2000); do
  python3 -c "
import sys
for i in range($acked, $acked+${N:-20000}): sys.stdout.write(f'{i}\tx{\"x\"*99}\n')" | timeout 20 psql -h 127.0.0.1 -p $PORT -U postgres -d duetdb -Atq -c "\\copy f FROM STDIN" 2>$M.err
  rc=$?
  if [ $rc -ne 0 ]; then echo "COPY #$b rc=$rc: $(head -c 300 $M.err)"; break; fi
  acked=$((acked+${N:-20000}))
done
echo "acked $acked, free $(df -m --output=avail $M | tail -1)"
echo "read while full: $(sql 'select count(*) from f')"
sed 's/\x1b\[[0-9;]*m//g' $M.log | grep -v "^ " | grep "WARN\|ERROR" | grep -v "slow\|broken batch" | cut -c1-300 | tail -8
rm -f $M/ballast; sleep 3
echo "after freeing: free $(df -m --output=avail $M | tail -1)"
echo "insert after freeing: $(sql "insert into f values (-5, 'x')" 2>&1)"
echo "count: $(sql 'select count(*) from f')"
kill -9 $PID; sleep 1; start
echo "after kill -9 + restart: $(sql 'select count(*) from f' 2>&1)"
sed 's/\x1b\[[0-9;]*m//g' $M.log | grep -v "^ " | grep "WARN\|ERROR\|INFO.*raft log\|Error" | grep -v "slow\|broken batch" | cut -c1-300 | tail -8
kill -9 $PID; sleep 0.5; cp -a $M/data /var/tmp/enospc-data; umount $M
