#!/usr/bin/env python3
"""Draws the plots of a `pnn bench --suite` report: DIR/twins.png (the oscillator twin's GFLOP/s
against N per pass and batch, with the sgemm floor measured in the same run, and its time per
pass against N on log axes beside PyTorch's), DIR/systems.png (the other systems' PAT step:
samples/s against batch, pnn beside PyTorch, per size) and DIR/bridge.png (a training step's duty cycle
against device latency, one device and a chain of two, with the M/(M+1) bound).

Usage: python3 tools/plot_bench.py DIR
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    rep = json.load(open(os.path.join(d, "report.json")))
    osc = [p for p in rep["twins"] if p["system"] == "oscillator"]
    if osc:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        batches = sorted({p["batch"] for p in osc})
        for pas, style in (("forward", "-"), ("vjp", "--"), ("pat", ":")):
            for b in batches:
                pts = sorted((p["size"], p) for p in osc if p["pass"] == pas and p["batch"] == b)
                if not pts:
                    continue
                ns = [n for n, _ in pts]
                ax1.plot(ns, [p["gflops"] for _, p in pts], style, marker="o", label=f"{pas}, batch {b}")
                if pas == "forward":
                    line, = ax2.plot(ns, [p["ms_median"] for _, p in pts], "-", marker="o", label=f"pnn, batch {b}")
                    tm = [(n, p["torch_ms_median"]) for n, p in pts if "torch_ms_median" in p]
                    if tm:
                        ax2.plot([n for n, _ in tm], [t for _, t in tm], "--", marker="x", color=line.get_color(),
                                 label=f"PyTorch, batch {b}")
        floor = rep["floor"]["gemm_gflops"]
        if floor:
            ax1.axhline(floor, color="k", lw=1, label=f"sgemm floor {floor:.0f}")
        ax1.set_xscale("log")
        ax1.set_xlabel("oscillators N")
        ax1.set_ylabel("GFLOP/s")
        ax1.set_title("oscillator twin")
        ax1.legend(fontsize=7)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("oscillators N")
        ax2.set_ylabel("ms per forward")
        ax2.set_title("forward time (B N^2 per stage)")
        ax2.legend(fontsize=7)
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(d, "twins.png"), dpi=110)
    others = [p for p in rep["twins"] if p["system"] != "oscillator" and p["pass"] == "pat"]
    systems = sorted({p["system"] for p in others})
    if systems:
        fig, axes = plt.subplots(1, len(systems), figsize=(4.2 * len(systems), 3.8), squeeze=False)
        for ax, name in zip(axes[0], systems):
            pts = [p for p in others if p["system"] == name]
            for size in sorted({p["size"] for p in pts}):
                row = sorted((p["batch"], p) for p in pts if p["size"] == size)
                bs = [b for b, _ in row]
                line, = ax.plot(bs, [p["samples_per_s"] for _, p in row], "-", marker="o", label=f"pnn, size {size}")
                tm = [(b, 1e3 * b / p["torch_ms_median"]) for b, p in row if "torch_ms_median" in p]
                if tm:
                    ax.plot([b for b, _ in tm], [v for _, v in tm], "--", marker="x", color=line.get_color(),
                            label=f"PyTorch, size {size}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("batch")
            ax.set_ylabel("samples/s, PAT step")
            ax.set_title(name)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(d, "systems.png"), dpi=110)
    br = rep.get("bridge") or []
    if br:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in sorted({b["devices"] for b in br}):
            pts = sorted((b["latency_ms"], b) for b in br if b["devices"] == m)
            line, = ax.plot([x for x, _ in pts], [b["duty"] for _, b in pts], marker="o",
                            label=f"{m} device{'s' if m > 1 else ''}")
            ax.axhline(pts[0][1]["bound"], color=line.get_color(), lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("device latency per call (ms)")
        ax.set_ylabel("duty cycle of the busiest device")
        ax.set_title("host bridge (dashed: the bound)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(d, "bridge.png"), dpi=110)


if __name__ == "__main__":
    main()
