#!/usr/bin/env bash
# Installs the system packages DuetDB's build needs on Debian: Debian's RocksDB (linked, see
# .cargo/config.toml) and libclang (bindgen for RocksDB's bindings); and what the tests run:
# psql (postgresql-client), pgbench (Debian ships it in postgresql-15) and Chromium (the
# inspector page's test). Uses sudo when not root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq librocksdb-dev libclang-dev clang postgresql-client postgresql-15 chromium "$@" >/dev/null
