"""What the driver scripts share: the server to talk to and a step runner.

The server is named by DRIVER_HOST, DRIVER_PORT, DRIVER_USER and DRIVER_DB (tests/tests/
drivers.rs sets them, for DuetDB and for the reference PostgreSQL); DRIVER_LABEL names it
in the output. Each step prints PASS or FAIL with the SQLSTATE; the script exits 1 if one
failed.
"""
import os, sys, traceback

TARGET = os.environ.get("DRIVER_LABEL", "duet")
HOST = os.environ.get("DRIVER_HOST", "127.0.0.1")
PORT = int(os.environ.get("DRIVER_PORT", "5433"))
USER = os.environ.get("DRIVER_USER", "postgres")
DB = os.environ.get("DRIVER_DB", "duetdb")
DSN = f"host={HOST} port={PORT} user={USER} dbname={DB}"
RESULTS = []


def step(name):
    def deco(fn):
        try:
            fn()
            RESULTS.append((name, "PASS", ""))
            print(f"[PASS] {name}", flush=True)
        except Exception as e:
            o = getattr(e, "orig", None) or getattr(e, "__cause__", None) or e
            state = (getattr(o, "sqlstate", None) or getattr(o, "pgcode", None)
                     or getattr(e, "sqlstate", None)
                     or getattr(getattr(e, "diag", None), "sqlstate", None))
            msg = f"{type(e).__module__}.{type(e).__name__} sqlstate={state}: {str(e).strip()}"
            RESULTS.append((name, "FAIL", msg))
            print(f"[FAIL] {name}: {msg}", flush=True)
            if os.environ.get("TB"):
                traceback.print_exc()
        return fn
    return deco


def summary():
    nf = sum(1 for r in RESULTS if r[1] == "FAIL")
    print(f"== {TARGET}: {len(RESULTS)-nf}/{len(RESULTS)} steps passed")
    sys.exit(1 if nf else 0)
