#!/usr/bin/env python3
"""Validation NMSE of a learned twin against the device calls spent fitting it: `pnn twin fit` of
the vowels oscillator device (sim:oscillator?n=40&nt=10&seed=1: x 40, theta 1,640, y 40) and of the
vowels circuit device (sim:circuit?segments=16&y_dim=16&seed=1: x 8, theta 8, y 16) at growing
sample counts (16 rows per call, each call its own theta), with the analytic twin's NMSE on the
same held-out calls beside it (what the hidden mismatch and noise cost the ideal model). Writes
benchmarks/results/twin-fit-curve-<date>.json and .png (log-log).
Usage: python3 benchmarks/twin_fit_curve.py [--build build] [--quick]"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = [
    ("circuit", "sim:circuit?segments=16&y_dim=16&seed=1", [256, 512, 1024, 2048, 4096, 8192, 16384],
     ["--hidden", "128,128", "--epochs", "300", "--patience", "30"]),
    ("oscillator", "sim:oscillator?n=40&nt=10&seed=1", [512, 1024, 2048, 4096, 8192],
     ["--hidden", "128,128", "--epochs", "100", "--patience", "15", "--x-dist", "normal"]),
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--quick", action="store_true", help="the two smallest sizes only")
    args = p.parse_args()
    pnn = os.path.join(args.build, "pnn")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, uri, sizes, opts in SYSTEMS:
            rows = []
            for n in sizes[:2] if args.quick else sizes:
                out = os.path.join(tmp, "%s-%d.safetensors" % (name, n))
                cmd = [pnn, "twin", "fit", uri, "--out", out, "--samples", str(n)] + opts
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode:
                    sys.exit("%s failed: %s" % (" ".join(cmd), r.stderr[-2000:]))
                line = [l for l in r.stdout.splitlines() if l.startswith("fit: ")][-1]
                fig = {k: float(v) for k, v in (kv.split("=") for kv in line[5:].split())}
                rows.append(fig)
                print("%-10s samples %6d calls %5d: validation NMSE %.4g (analytic %.4g), fit %.1f s" % (
                    name, n, fig["device_calls"], fig["validation_nmse"], fig["analytic_validation_nmse"],
                    fig["fit_s"]), file=sys.stderr)
            results[name] = {"device": uri, "options": opts, "fits": rows}
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    date = datetime.datetime.now(datetime.timezone.utc)
    res = {"benchmark": "twin_fit_curve", "what": "validation NMSE of pnn twin fit against device calls (16 rows per "
           "call), held-out calls; the analytic twin's NMSE on the same calls", "commit": git("rev-parse", "--short",
           "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")), "date": date.isoformat(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "machine": platform.machine(), "cpus": os.cpu_count(), "results": results}
    base = os.path.join(ROOT, "benchmarks", "results", "twin-fit-curve-%s" % date.strftime("%Y-%m-%d"))
    json.dump(res, open(base + ".json", "w"), indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (name, r), color in zip(results.items(), ["C0", "C1"]):
        calls = [f["device_calls"] for f in r["fits"]]
        ax.loglog(calls, [f["validation_nmse"] for f in r["fits"]], "o-", color=color, label="%s: learned twin" % name)
        ax.loglog(calls, [f["analytic_validation_nmse"] for f in r["fits"]], "--", color=color,
                  label="%s: analytic twin" % name)
    ax.set_xlabel("device calls spent fitting (16 samples each)")
    ax.set_ylabel("validation NMSE (held-out calls)")
    ax.set_title("Learned twins: NMSE against device calls")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=120)
    print("wrote", base + ".json", base + ".png")


if __name__ == "__main__":
    main()
