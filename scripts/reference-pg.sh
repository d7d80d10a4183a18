#!/usr/bin/env bash
# Starts a throw-away PostgreSQL 15 (Debian's package) on 127.0.0.1:${PGPORT:-54329} with trust
# authentication, so tests can compare DuetDB's answers with PostgreSQL's. Prints the
# connection string to use as DUET_TEST_PG. Usage: scripts/reference-pg.sh start|stop
set -euo pipefail
PGBIN=/usr/lib/postgresql/15/bin
PORT=${PGPORT:-54329}
DIR=${DUET_PG_DIR:-/var/tmp/duet-reference-pg}
run_as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
case "${1:-start}" in
  start)
    if [ ! -x "$PGBIN/initdb" ]; then
      echo "PostgreSQL 15 server binaries not found in $PGBIN (apt-get install postgresql-15)" >&2
      exit 1
    fi
    if [ ! -f "$DIR/PG_VERSION" ]; then
      mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
      run_as_postgres "$PGBIN/initdb -D $DIR -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8" >/dev/null
    fi
    if ! run_as_postgres "$PGBIN/pg_ctl -D $DIR status" >/dev/null 2>&1; then
      run_as_postgres "$PGBIN/pg_ctl -D $DIR -l $DIR/server.log -w -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1' start" >/dev/null
    fi
    echo "host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
    ;;
  stop)
    run_as_postgres "$PGBIN/pg_ctl -D $DIR -m fast stop" >/dev/null || true
    ;;
esac
