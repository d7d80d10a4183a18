#!/usr/bin/env bash
set -u
cd /var/tmp/sf10
echo "start $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) free $(df -BG --output=avail /var/tmp | tail -1)"
/var/tmp/tpch-a931ebf --sf 10 --work-dir /var/tmp/duet-tpch --engines column --column-cache-mb 4096,12288 --runs 2 --out /var/tmp/sf10/sf10-2.json > /var/tmp/sf10/sf10-2.md 2> /var/tmp/sf10/sf10-2.err &
pid=$!
while kill -0 $pid 2>/dev/null; do
  free=$(df -BM --output=avail /var/tmp | tail -1 | tr -dc 0-9)
  rss=$(awk '/^VmRSS/ {print int($2/1024)}' /proc/$pid/status 2>/dev/null)
  echo "$(date +%T) free ${free}M rss ${rss}M du $(du -sm /var/tmp/duet-tpch 2>/dev/null | cut -f1)M"
  if [ "$free" -lt 3000 ]; then echo "disk nearly full: stopping"; kill $pid; fi
  sleep 30
done
wait $pid; echo "rc $? end $(date +%T)"
