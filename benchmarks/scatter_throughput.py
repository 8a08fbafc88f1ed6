#!/usr/bin/env python3
"""Throughput of the scatter twin (forward + VJP, samples/s): pnn (benchmarks/bench_scatter.c) against
the PyTorch reference (benchmarks/reference/scatter_torch.py, the faster of its two formulations), in
the same invocation, alternating rounds so both see the same machine state, at a small and a large
layer and two batch sizes. Writes benchmarks/results/scatter-throughput-<date>.json with each round's
figures, the ratio of the median samples/s and the median of the rounds' ratios per size, the FLOPs per call, where pnn's time goes, and the load average
(the machine may be shared).

Sizes (x_dim, modes, y_dim): small (64, 256, 16), large (128, 4096, 64); batches 32 and 256.
Usage: python3 benchmarks/scatter_throughput.py [--build build] [--rounds 5] [--seconds 0.5] [--threads 2] [--out PATH]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH = os.path.join(ROOT, "benchmarks", "reference", "scatter_torch.py")
SIZES = {"small": (64, 256, 16), "large": (128, 4096, 64)}
BATCHES = (32, 256)


def run_json(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg():
    return [float(v) for v in open("/proc/loadavg").read().split()[:3]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    bench = os.path.join(args.build, "bench_scatter")
    load_start = loadavg()
    cases = []
    for size, (d, m, k) in SIZES.items():
        for b in BATCHES:
            case = {"size": size, "x_dim": d, "modes": m, "y_dim": k, "batch": b, "pnn": [], "torch": []}
            for r in range(args.rounds):
                case["pnn"].append(run_json([bench, str(d), str(m), str(k), str(b), str(args.seconds)], env))
                case["torch"].append(run_json([sys.executable, TORCH, "--bench", "--x-dim", str(d), "--modes", str(m),
                                               "--y-dim", str(k), "--batch", str(b), "--seconds", str(args.seconds),
                                               "--threads", str(args.threads)], env))
                case["pnn"][-1]["loadavg"] = loadavg()
            pnn_sps = statistics.median(p["samples_per_s"] for p in case["pnn"])
            torch_sps = statistics.median(t["samples_per_s"] for t in case["torch"])
            case["pnn_samples_per_s"] = pnn_sps
            case["torch_samples_per_s"] = torch_sps
            case["ratio"] = pnn_sps / torch_sps
            case["ratio_per_round"] = [p["samples_per_s"] / t["samples_per_s"] for p, t in zip(case["pnn"], case["torch"])]
            # each round's two timings are seconds apart: their ratio is the figure least moved by
            # other processes on a shared machine
            case["ratio_median_of_rounds"] = statistics.median(case["ratio_per_round"])
            case["flops_per_call"] = case["pnn"][0]["flops_per_call"]
            case["pnn_gflops"] = statistics.median(p["gflops"] for p in case["pnn"])
            case["torch_samples_per_s_by_form"] = {
                f: statistics.median(t[f]["samples_per_s"] for t in case["torch"]) for f in ("literal", "folded", "transfer")}
            case["ratio_by_torch_form"] = {f: pnn_sps / v for f, v in case["torch_samples_per_s_by_form"].items()}
            parts = ("gemm_u", "cgemm_z", "cgemm_gu", "gemm_dx", "cgemm_t", "cgemm_s", "elementwise")
            case["pnn_parts_ms"] = {p: statistics.median(r[p + "_ms"] for r in case["pnn"]) for p in parts}
            case["pnn_forward_vjp_ms"] = statistics.median(r["forward_vjp_ms"] for r in case["pnn"])
            case["pnn_form"] = case["pnn"][0]["form"]
            print(f"{size:5s} x_dim={d} modes={m} y_dim={k} batch={b}: pnn {pnn_sps:.0f} samples/s "
                  f"({case['pnn_gflops']:.1f} GFLOP/s), torch {torch_sps:.0f} samples/s "
                  f"(best: {case['torch'][0]['best']}), ratio {case['ratio']:.2f} (median of rounds "
                  f"{case['ratio_median_of_rounds']:.2f})", flush=True)
            cases.append(case)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.machine())
    res = {
        "benchmark": "scatter_throughput",
        "what": "twin forward (taped, phases changed every call) + VJP (dx, dtheta), samples/s",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "threads": args.threads, "python": platform.python_version()},
        "loadavg_start": load_start, "loadavg_end": loadavg(),
        "rounds": args.rounds, "seconds_per_timing": args.seconds, "cases": cases,
    }
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"scatter-throughput-{args.threads}thr-{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
