#!/usr/bin/env python3
"""Plots bench/gc.sh's samples: disk use, memory and TPS per minute of each system over the
run, in one PNG (gc.png beside the CSVs), and prints a summary table in Markdown.

    python3 bench/gc_plot.py bench/results/gc
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(out):
    samples = defaultdict(list)
    for r in read(f"{out}/samples.csv"):
        if r["disk_bytes"] and r["memory_bytes"]:
            samples[r["system"]].append(
                (int(r["seconds"]) / 60, int(r["disk_bytes"]) / 2**20, int(r["memory_bytes"]) / 2**20)
            )
    tps = defaultdict(list)
    for r in read(f"{out}/tps.csv"):
        tps[r["system"]].append((int(r["minute"]), float(r["tps"])))

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for system, rows in samples.items():
        t = [r[0] for r in rows]
        axes[0].plot(t, [r[1] for r in rows], label=system)
        axes[1].plot(t, [r[2] for r in rows], label=system)
    for system, rows in tps.items():
        axes[2].plot([m for m, _ in rows], [v for _, v in rows], marker="o", label=system)
    axes[0].set_ylabel("data directory (MB)")
    axes[1].set_ylabel("memory, PSS (MB)")
    axes[2].set_ylabel("TPS (per minute)")
    axes[2].set_xlabel("minutes into the run")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("pgbench tpcb-like: disk, memory and TPS over the run")
    fig.tight_layout()
    fig.savefig(f"{out}/gc.png", dpi=90)

    print("| system | disk at start | disk at end | max disk | memory at end | TPS first min | TPS last min |")
    print("|---|---|---|---|---|---|---|")
    for system, rows in samples.items():
        ts = tps.get(system, [(0, 0.0)])
        print(
            f"| {system} | {rows[0][1]:.0f} MB | {rows[-1][1]:.0f} MB | {max(r[1] for r in rows):.0f} MB "
            f"| {rows[-1][2]:.0f} MB | {ts[0][1]:.0f} | {ts[-1][1]:.0f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gc")
