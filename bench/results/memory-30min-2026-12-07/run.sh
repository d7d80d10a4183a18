#!/usr/bin/env bash
# pgbench tpcb-like scale 10, 8 clients, DURATION s against a release DuetDB, memory sampled by bench/memory.sh
set -u
BIN=/var/tmp/duetdb-release-a931ebf
DATA=/var/tmp/mem30/data
DURATION=${DURATION:-900}
rm -rf $DATA
$BIN --data-dir $DATA --listen 127.0.0.1:55441 --http 127.0.0.1:58441 --log-level warn --column-cache-size 64MB > /var/tmp/mem30/server.log 2>&1 &
PID=$!
for i in $(seq 100); do psql -h 127.0.0.1 -p 55441 -U postgres -Atc "select 1" duetdb >/dev/null 2>&1 && break; sleep 0.2; done
echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
pgbench -h 127.0.0.1 -p 55441 -U postgres -i -s 10 duetdb > /var/tmp/mem30/init.log 2>&1
echo "init done $(date +%T)"
/work/main/bench/memory.sh $PID 127.0.0.1:58441 /var/tmp/mem30/memory.csv $((DURATION + 60)) 10 &
S=$!
pgbench -h 127.0.0.1 -p 55441 -U postgres -c 8 -j 2 -M prepared -T $DURATION -P 60 duetdb > /var/tmp/mem30/pgbench.log 2>&1
echo "pgbench done $(date +%T)"
sleep 30
curl -s http://127.0.0.1:58441/metrics > /var/tmp/mem30/metrics-end.txt
kill $PID; wait $PID; kill $S 2>/dev/null
echo finished
