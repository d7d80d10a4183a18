#!/usr/bin/env bash
# Two DuetDB builds side by side on pgbench, alternated (A B A B …) so that drift on the
# machine hits both: each build gets its own data directory, initialised once (pgbench -i),
# and is started afresh on it for every run. Prints one line per run (with the load average
# before it) and, per script, the median TPS of each build and the ratio B / A with the
# spread of the per-pair ratios.
#
#   bench/ab.sh A_BINARY B_BINARY
#   PAIRS=3 SCALE=10 CLIENTS=8 THREADS=2 DURATION=30 MODE=prepared SCRIPTS="select-only tpcb-like"
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
PAIRS=${PAIRS:-3}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30}
MODE=${MODE:-prepared}
SCRIPTS=${SCRIPTS:-"select-only tpcb-like"}
PORT=${DUET_PORT:-55433}
WORK=$(mktemp -d /var/tmp/duet-ab-XXXXXX)
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; rm -rf "$WORK"' EXIT

start() { # binary data-dir
  "$1" --data-dir "$2" --listen "127.0.0.1:$PORT" --http off --log-level warn >>"$2.log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do
    psql -h 127.0.0.1 -p "$PORT" -U postgres duetdb -Atc "select 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not start:" >&2; cat "$2.log" >&2; exit 1
}

for side in A B; do
  start "${!side}" "$WORK/$side"
  pgbench -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s "$SCALE" duetdb >/dev/null 2>&1
  stop
done

RESULTS=$WORK/results
for script in $SCRIPTS; do
  for pair in $(seq "$PAIRS"); do
    for side in A B; do
      start "${!side}" "$WORK/$side"
      load=$(cut -d' ' -f1 /proc/loadavg)
      out=$(pgbench -h 127.0.0.1 -p "$PORT" -U postgres -n -b "$script" -M "$MODE" \
        -c "$CLIENTS" -j "$THREADS" -T "$DURATION" duetdb 2>&1)
      stop
      t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
      echo "$script $pair $side $t" >>"$RESULTS"
      echo "$script $MODE pair $pair $side: $t TPS (load average before: $load)"
    done
  done
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    script, pair, side, t = line.split()
    runs.setdefault(script, {}).setdefault(int(pair), {})[side] = float(t)
for script, pairs in runs.items():
    a = [p["A"] for p in pairs.values()]
    b = [p["B"] for p in pairs.values()]
    r = [p["B"] / p["A"] for p in pairs.values()]
    print(f"{script}: median A {statistics.median(a):.0f} TPS, median B {statistics.median(b):.0f} TPS; "
          f"B/A per pair {', '.join(f'{x:.3f}' for x in r)}, median {statistics.median(r):.3f}")
PY
