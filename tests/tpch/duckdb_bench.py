#!/usr/bin/env python3
"""TPC-H on DuckDB for `cargo run -p duet-tests --bin tpch`.

Runs the 22 queries (q1.sql ... q22.sql from --queries) on the Parquet files in
--parquet-dir (views over read_parquet in an in-memory database), then loads the same files
into native tables of a fresh database file --db (timed) and runs them again. Each query:
one warm-up run, then the best of --runs. Progress goes to stderr; the results go to stdout
as JSON: {"version", "threads", "parquet": [...], "native_load_seconds", "native_bytes",
"native": [...]}, each query {"query", "seconds" (null on error), "status", "rows"}.
Without the duckdb module it prints {"skipped": "<why>"}.
"""

import argparse
import json
import os
import sys
import time

TABLES = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


def log(msg, end="\n"):
    print(msg, end=end, file=sys.stderr, flush=True)


def run_queries(con, label, queries, runs):
    results = []
    for n, sql in queries:
        log(f"{label}: Q{n} of 22 ... ", end="")
        try:
            rows = len(con.execute(sql).fetchall())  # warm-up
            best = float("inf")
            for _ in range(runs):
                start = time.perf_counter()
                con.execute(sql).fetchall()
                best = min(best, time.perf_counter() - start)
            results.append({"query": n, "seconds": best, "status": "ok", "rows": rows})
            log(f"{best:.3f} s")
        except Exception as e:  # report it and go on with the next query
            msg = " ".join(str(e).split())
            results.append({"query": n, "seconds": None, "status": f"error: {msg}", "rows": None})
            log(f"error: {msg}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parquet-dir", required=True)
    ap.add_argument("--db", required=True, help="database file for the native tables (recreated)")
    ap.add_argument("--queries", required=True, help="directory holding q1.sql ... q22.sql")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    try:
        import duckdb
    except ImportError as e:
        json.dump({"skipped": f"python3 cannot import duckdb ({e}); pip install duckdb"}, sys.stdout)
        return
    queries = []
    for n in range(1, 23):
        with open(os.path.join(args.queries, f"q{n}.sql")) as f:
            queries.append((n, f.read()))
    parquet = {t: os.path.join(args.parquet_dir, f"{t}.parquet") for t in TABLES}
    out = {"version": duckdb.__version__}

    con = duckdb.connect()
    out["threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{parquet[t]}')")
    out["parquet"] = run_queries(con, "DuckDB (Parquet)", queries, args.runs)
    con.close()

    for path in (args.db, args.db + ".wal"):
        if os.path.exists(path):
            os.remove(path)
    con = duckdb.connect(args.db)
    start = time.perf_counter()
    for t in TABLES:
        log(f"DuckDB (native): loading {t} from Parquet")
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{parquet[t]}')")
    con.execute("CHECKPOINT")
    out["native_load_seconds"] = time.perf_counter() - start
    out["native_bytes"] = os.path.getsize(args.db)
    out["native"] = run_queries(con, "DuckDB (native)", queries, args.runs)
    con.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
