#!/usr/bin/env python3
"""Plots a run's metrics.csv: training loss and accuracy, and test accuracy on the device and
on the twin after each epoch. Usage: plot_metrics.py RUN_DIR [RUN_DIR...] [-o out.png]"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(run_dir):
    rows = list(csv.DictReader(open(os.path.join(run_dir, "metrics.csv"))))
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    return by_kind


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="run directories (holding metrics.csv)")
    ap.add_argument("-o", "--out", help="output PNG (default RUN_DIR/metrics.png)")
    args = ap.parse_args()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for run in args.runs:
        m = read(run)
        name = os.path.basename(os.path.normpath(run))
        train = m.get("train", [])
        ax_loss.plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], label=f"{name} train")
        for kind, style in (("test_device", "o-"), ("test_twin", "s--")):
            rows = m.get(kind, [])
            ax_acc.plot([int(r["epoch"]) for r in rows], [100 * float(r["acc"]) for r in rows], style,
                        label=f"{name} {kind.replace('_', ' on ')}")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out = args.out or os.path.join(args.runs[0], "metrics.png")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
