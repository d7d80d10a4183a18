#!/usr/bin/env bash
# A B A B: tpch before (07bc56a, whole-table ANALYZE) and after (a931ebf, sampled ANALYZE)
set -u
cd /var/tmp/anb
for round in 1 2; do
  for v in 07bc56a a931ebf; do
    echo "== round $round $v $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    /var/tmp/tpch-$v --sf 1 --work-dir /var/tmp/duet-tpch --engines auto,column --runs 2 --out /var/tmp/anb/$v-$round.json > /var/tmp/anb/$v-$round.md 2> /var/tmp/anb/$v-$round.err
    echo "rc $?"
    find /var/tmp/duet-tpch/duetdb -name stats.json -exec cp {} /var/tmp/anb/stats-$v-$round.json \;
  done
done
echo finished
