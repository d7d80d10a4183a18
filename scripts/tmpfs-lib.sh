# Shared by scripts/full-disk-check.sh and scripts/enospc-check.sh: source it with NAME set,
# then `tmpfs_mount SIZE_MB`. Sets BIN (the duetdb build), MNT (a fresh tmpfs), LOG (the
# server's log beside it) and PID (set it to the server's pid); at exit the server is killed
# and the filesystem unmounted (DUET_DISK_KEEP=1 leaves it mounted, to look at what a
# failure left). `fail MESSAGE` ends the check; `start ARGS…` starts the server on
# 127.0.0.1:$PORT with its data on the tmpfs and waits until psql connects.
TARGET=${CARGO_TARGET_DIR:-target}
PROFILE=${DUET_PROFILE:-debug}
BIN="$TARGET/$PROFILE/duetdb"
MNT=$(mktemp -d "/tmp/duet-$NAME.XXXXXX")
LOG=$MNT.log
PID=

[ "$(id -u)" -eq 0 ] || { echo "needs root to mount a tmpfs" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build${PROFILE/debug/} --bin duetdb" >&2; exit 2; }

tmpfs_cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  sleep 0.5
  [ -n "${DUET_DISK_KEEP:-}" ] && { echo "left mounted: $MNT"; return; }
  umount "$MNT" 2>/dev/null || true
  rmdir "$MNT" 2>/dev/null || true
}
trap tmpfs_cleanup EXIT

fail() { echo "FAIL: $*" >&2; echo "server log: $LOG" >&2; exit 1; }

tmpfs_mount() { # size in MB
  mount -t tmpfs -o "size=${1}m" tmpfs "$MNT"
}

start() { # extra duetdb flags…
  "$BIN" --data-dir "$MNT/data" --listen "127.0.0.1:$PORT" --http off "$@" >>"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    psql -h 127.0.0.1 -p "$PORT" -U postgres -d duetdb -Atqc 'select 1' >/dev/null 2>&1 && return
    sleep 0.2
  done
  fail "the server did not start"
}
