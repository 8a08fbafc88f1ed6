#!/usr/bin/env python3
"""The PAT-step benchmark of the reference experiment (examples/fmnist-oscillator.yaml):
times pnn's training step (`pnn bench`) and the PyTorch reference
(benchmarks/reference/oscillator_torch.py) in the same invocation, alternating rounds so both
see the same machine state, and reports the ratio, the step's FLOP count and the floor that
this machine's measured GEMM rate and memory bandwidth give (benchmarks/bench_floor.c).
Writes benchmarks/results/pat_step-<date>.json.

Usage: python3 benchmarks/pat_step.py [--build build] [--steps 20] [--rounds 3] [--threads 2]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "examples", "fmnist-oscillator.yaml")
TORCH = os.path.join(ROOT, "benchmarks", "reference", "oscillator_torch.py")


def flops_per_pat_step(batch=32, patches=16, n1=100, n2=1610, nt=5):
    """GEMM FLOPs of one PAT step: per RK4 stage one s.Q product per pass; device and twin
    forward; the VJP does g.Q^T per stage plus dQ = S^T G over all stages (same FLOPs)."""
    stages = 4 * nt
    per_pass = lambda rows, n: 2.0 * rows * n * n * stages  # noqa: E731
    fwd = per_pass(batch * patches, n1) + per_pass(batch, n2)
    return {"device_forward": fwd, "twin_forward": fwd, "twin_vjp": 2 * fwd, "total": 4 * fwd}


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    pnn = os.path.join(args.build, "pnn")
    floor = json.loads(run([os.path.join(args.build, "bench_floor")], env))
    res = {"pnn_pat": [], "pnn_insilico": [], "torch_pat": [], "torch_insilico": []}
    tmp = tempfile.mkdtemp()
    for r in range(args.rounds):
        for method in ("pat", "insilico"):
            j = os.path.join(tmp, f"pnn-{method}-{r}.json")
            # plain PAT, as the PyTorch reference runs it (the example's default estimates the noise)
            run([pnn, "bench", CONFIG, "--steps", str(args.steps), "--set", f"method={method}",
                 "--set", "network.1.twin_noise=nominal", "--set", "network.4.twin_noise=nominal", "--json", j], env)
            res[f"pnn_{method}"].append(json.load(open(j))["ms_median"])
        j = os.path.join(tmp, f"torch-{r}.json")
        run([sys.executable, TORCH, "--mode", "bench", "--steps", str(args.steps), "--threads", str(args.threads),
             "--json", j], env)
        t = json.load(open(j))
        res["torch_pat"].append(t["pat_ms"]["median"])
        res["torch_insilico"].append(t["insilico_ms"]["median"])
    med = {k: statistics.median(v) for k, v in res.items()}
    fl = flops_per_pat_step()
    gemm_rate = floor["sgemm_gflops"]["32x1610x1610"]
    floor_ms = fl["total"] / (gemm_rate * 1e9) * 1e3
    peak_ms = fl["total"] / (floor["sgemm_gflops"]["2048x2048x2048"] * 1e9) * 1e3
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = re.sub(r"\s+", " ", next((l.split(":", 1)[1] for l in open("/proc/cpuinfo") if "model name" in l), "?"))
    result = {
        "benchmark": "pat_step", "config": "examples/fmnist-oscillator.yaml", "batch": 32,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit, "machine": {"cpu": cpu.strip(), "cores": os.cpu_count(), "threads": args.threads,
                                      "python": platform.python_version()},
        "steps_per_round": args.steps, "rounds": args.rounds, "ms_per_step_rounds": res, "ms_per_step_median": med,
        "ratio_torch_over_pnn": {"pat": med["torch_pat"] / med["pnn_pat"],
                                 "insilico": med["torch_insilico"] / med["pnn_insilico"]},
        "flops": fl, "measured_ceilings": floor,
        "floor_ms_at_step_gemm_rate": floor_ms, "floor_ms_at_peak_gemm_rate": peak_ms,
        "pnn_pat_fraction_of_floor": floor_ms / med["pnn_pat"],
        "pnn_pat_gflops": fl["total"] / (med["pnn_pat"] * 1e-3) / 1e9,
    }
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"pat_step-{datetime.date.today().isoformat()}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: result[k] for k in ("ms_per_step_median", "ratio_torch_over_pnn",
                                             "floor_ms_at_step_gemm_rate", "pnn_pat_fraction_of_floor",
                                             "pnn_pat_gflops")}, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
