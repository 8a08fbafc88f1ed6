#!/usr/bin/env python3
"""Draws the JSON of `pnn transfer --out` (or several, e.g. one per fine-tuning budget): the test
accuracy on each device copy, before and after fine-tuning, beside the training device's.
Usage: python3 tools/plot_transfer.py FILE.json [FILE.json...] [--out PLOT.png]"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--out", help="the PNG (default: the first file's name with .png)")
    args = p.parse_args()
    runs = [json.load(open(f)) for f in args.files]
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    labels, columns = [], []
    first = runs[0]
    labels.append("copies, as trained")
    columns.append([c["acc"] for c in first["copies"]])
    for r in runs:
        if r["finetune_steps"] > 0:
            calls = sum(c["device_calls"] for c in r["copies"]) / len(r["copies"])
            labels.append("%s\n%d steps\n(%.0f calls)" % ("distilled" if r.get("remedy") == "distill" else "fine-tuned",
                                                        r["finetune_steps"], calls))
            columns.append([c["acc_finetuned"] for c in r["copies"]])
    for i, col in enumerate(columns):
        ax.scatter([i] * len(col), [100 * a for a in col], alpha=0.6, color="C%d" % i)
        ax.errorbar([i + 0.15], [100 * sum(col) / len(col)], fmt="D", color="k", markersize=5)
    ax.axhline(100 * first["training_device"]["acc"], color="gray", ls="--", label="the training device")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("test accuracy on the device (%)")
    ax.set_title("%s: %d device copies" % (os.path.basename(os.path.dirname(first["checkpoint"])) or "transfer",
                                          len(first["copies"])), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = args.out or os.path.splitext(args.files[0])[0] + ".png"
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
