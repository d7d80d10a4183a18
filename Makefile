# Developer shortcuts. CI runs .ci/run, which runs the same commands.
export CARGO_TARGET_DIR ?= /var/tmp/duetdb-target

.PHONY: fmt clippy test slt check run bench-commit pg

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

test:
	cargo test --workspace

# The sqllogictest files, checked against PostgreSQL 15 first (started if needed).
slt:
	DUET_TEST_PG="$$(scripts/reference-pg.sh start)" cargo test -p duet-tests --test main slt::

check: clippy test
	cargo fmt --all --check

run:
	cargo run -- --data-dir ./duet-data

bench-commit:
	cargo build --release && bench/commit.sh

pg:
	scripts/reference-pg.sh start
