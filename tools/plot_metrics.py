#!/usr/bin/env python3
"""Plots a run's metrics.csv: training loss, test accuracy on the device and on the twin after
each epoch, and, per epoch, where the training time went: the busiest device's duty cycle and
the share of time the backend waited on devices. Usage: plot_metrics.py RUN_DIR [RUN_DIR...]
[-o out.png]"""
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
    fig, (ax_loss, ax_acc, ax_time) = plt.subplots(1, 3, figsize=(16, 4))
    for run in args.runs:
        m = read(run)
        name = os.path.basename(os.path.normpath(run))
        train = m.get("train", [])
        ax_loss.plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], label=f"{name} train")
        for kind, style in (("test_device", "o-"), ("test_twin", "s--")):
            rows = m.get(kind, [])
            ax_acc.plot([int(r["epoch"]) for r in rows], [100 * float(r["acc"]) for r in rows], style,
                        label=f"{name} {kind.replace('_', ' on ')}")
        epochs = [r for r in m.get("train_epoch", []) if r.get("device_duty")]
        if epochs:
            x = [int(r["epoch"]) + 1 for r in epochs]
            ax_time.plot(x, [100 * float(r["device_duty"]) for r in epochs], "o-", label=f"{name} device duty")
            wait = [100 * float(r["backend_wait_s"]) / max(1e-12, float(r["backend_wait_s"]) + float(r["backend_busy_s"]))
                    for r in epochs]
            ax_time.plot(x, wait, "s--", label=f"{name} backend waiting")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax_time.set(xlabel="epoch", ylabel="% of training time", title="device duty cycle, backend waiting", ylim=(0, 105))
    for ax in (ax_loss, ax_acc, ax_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out = args.out or os.path.join(args.runs[0], "metrics.png")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
