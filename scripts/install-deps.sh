#!/usr/bin/env bash
# Installs the system packages DuetDB's build needs on Debian: Debian's RocksDB (linked, see
# .cargo/config.toml) and libclang (bindgen for RocksDB's bindings); and what the tests run:
# psql (postgresql-client), pgbench (Debian ships it in postgresql-15), Chromium (the
# inspector page's test), and the application drivers of tests/drivers: psycopg 3,
# psycopg2, asyncpg, SQLAlchemy and Django from PyPI in a virtualenv, node-postgres from
# npm (both in $DUET_DRIVERS, default /var/tmp/duetdb-drivers), pgjdbc and a JDK from Debian. Uses sudo when not root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq librocksdb-dev libclang-dev clang postgresql-client postgresql-15 chromium \
  default-jdk-headless libpostgresql-jdbc-java "$@" >/dev/null

# Application drivers (tests/tests/drivers.rs runs tests/drivers with them), with the
# machine's Python 3 and Node.js.
DRIVERS=${DUET_DRIVERS:-/var/tmp/duetdb-drivers}
if [ ! -x "$DRIVERS/venv/bin/python" ]; then
  python3 -m venv "$DRIVERS/venv"
fi
"$DRIVERS/venv/bin/pip" install -q --disable-pip-version-check \
  'psycopg[binary]==3.*' 'psycopg2-binary==2.9.*' 'asyncpg==0.*' 'SQLAlchemy==2.*' 'Django==5.*'
if [ ! -d "$DRIVERS/node/node_modules/pg" ]; then
  mkdir -p "$DRIVERS/node"
  npm install -s --prefix "$DRIVERS/node" pg@8 >/dev/null
fi
