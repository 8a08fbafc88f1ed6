#!/usr/bin/env python3
"""Draws DIR/compare.png from `pnn compare`'s DIR/curves.csv: test accuracy on the device after
every epoch against the device passes spent in training so far, one curve per method (the mean
over seeds, with the seeds' spread as a band). In-silico training spends no device pass: its
curve sits at 0 on the symmetric-log axis.

Usage: python3 tools/plot_compare.py DIR [--out FILE.png]"""
import argparse
import csv
import os
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--out")
    a = ap.parse_args()
    path = os.path.join(a.dir, "curves.csv")
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as e:
        sys.exit(f"plot_compare: cannot read {path}: {e.strerror} (run pnn compare --out {a.dir} first)")
    if not rows:
        sys.exit(f"plot_compare: {path} has no rows")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by = {}
    for r in rows:
        by.setdefault(r["method"], {}).setdefault(int(r["epoch"]), []).append(
            (float(r["device_passes"]), 100 * float(r["test_acc_device"])))
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    for i, (method, epochs) in enumerate(by.items()):
        es = sorted(epochs)
        x = [statistics.mean(p for p, _ in epochs[e]) for e in es]
        y = [statistics.mean(v for _, v in epochs[e]) for e in es]
        sd = [statistics.stdev([v for _, v in epochs[e]]) if len(epochs[e]) > 1 else 0 for e in es]
        n = len(epochs[es[-1]])
        ax.plot(x, y, marker="o", ms=3, color=f"C{i}", label=f"{method} ({n} seed{'s' if n > 1 else ''})")
        ax.fill_between(x, [m - s for m, s in zip(y, sd)], [m + s for m, s in zip(y, sd)], color=f"C{i}", alpha=0.15)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("device passes in training")
    ax.set_ylabel("test accuracy on the device (%)")
    ax.set_title(os.path.basename(os.path.normpath(a.dir)))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = a.out or os.path.join(a.dir, "compare.png")
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
