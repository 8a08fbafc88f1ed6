#!/usr/bin/env python3
"""Throughput of fitting a learned twin (Adam steps of MSE regression of a tanh MLP, the step
`pnn twin fit` runs): pnn (build/bench_twin_fit) against the PyTorch reference
(benchmarks/reference/mlp_fit_torch.py, its fastest Adam, fused), on 2 threads, alternating in
rounds in one invocation so that both see the same machine load (which of the two goes first
alternates from round to round too). Sizes: about 1M parameters (in 64, hidden 1024,1024, out 64)
and about 20M (in 256, hidden 4096,4096, out 256), batch 256 and 1024. First checks that the two
fit the same problem: one step each at the 1M size, batch 256, whose losses (before the update)
must agree within 20% (the inits are drawn from different generators; both start near the
targets' variance, about 0.5).
Writes benchmarks/results/twin-fit-throughput-<date>.json with, per size and batch, the samples/s
of every round, the ratio pnn / PyTorch (of the medians over rounds, and of each one's best round),
the GFLOP/s of each (the same FLOPs per sample for both, bench_twin_fit's count: 2 per
multiply-add, forward, weight gradients and activation gradients except into the input), and the
fraction of this machine's OpenBLAS sgemm rate at the widest layer's shape (measured by
bench_twin_fit in each of its runs) that each reaches; and the load average around each round.
The 20M size at batch 1024 is about 120 GFLOP a step, so it does only the minimum of 3 timed
steps (after 2 warm-up ones) a round.
Build pnn's side first: cmake --build build --target bench_twin_fit
Usage: python3 benchmarks/twin_fit_throughput.py [--rounds 3] [--seconds 2.0]"""
import argparse
import datetime
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "build", "bench_twin_fit")
TORCH = [sys.executable, os.path.join(ROOT, "benchmarks", "reference", "mlp_fit_torch.py")]
SIZES = [("1M", 64, (1024, 1024), 64), ("20M", 256, (4096, 4096), 256)]
BATCHES = [256, 1024]
THREADS = 2
CHECK_TOLERANCE = 0.2


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    # bench_twin_fit prints an unmeasured loss as null (builds before 2026-12-02: a bare nan, not JSON)
    return json.loads(re.sub(r"\b-?nan\b", "null", out.strip().splitlines()[-1]))


def size_args(n_in, hidden, n_out, batch):
    return ["--in", str(n_in), "--hidden", ",".join(map(str, hidden)), "--out", str(n_out), "--batch", str(batch)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    if not os.access(BENCH, os.X_OK):
        sys.exit("twin_fit_throughput: %s is missing; build it with: cmake --build build --target bench_twin_fit"
                 % BENCH)
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS))
    torch_threads = ["--threads", str(THREADS)]

    # the cross-check: one step of each on the same problem
    _, n_in, hidden, n_out = SIZES[0]
    common = size_args(n_in, hidden, n_out, 256) + ["--steps", "1"]
    r = run_json([BENCH] + common, env)
    t = run_json(TORCH + common + torch_threads, env)
    rel = abs(r["loss_first"] - t["loss_first"]) / abs(t["loss_first"])
    check = {"size": "1M", "batch": 256, "pnn_loss_first": r["loss_first"], "torch_loss_first": t["loss_first"],
             "relative_difference": rel, "tolerance": CHECK_TOLERANCE, "pnn_params": r["params"],
             "torch_params": t["params"]}
    print("cross-check (1M, batch 256, one step): loss pnn %.6f, torch %.6f (relative difference %.3f, "
          "params %d / %d)" % (r["loss_first"], t["loss_first"], rel, r["params"], t["params"]))
    if rel > CHECK_TOLERANCE or r["params"] != t["params"]:
        sys.exit("twin_fit_throughput: the two do not fit the same problem")

    runs = {}
    loads = []
    adam_impl = None
    for rnd in range(args.rounds):
        loads.append({"round": rnd, "before": os.getloadavg()})
        for (name, n_in, hidden, n_out), batch in itertools.product(SIZES, BATCHES):
            key = "%s,batch=%d" % (name, batch)
            common = size_args(n_in, hidden, n_out, batch) + ["--seconds", str(args.seconds)]
            order = ("pnn", "torch") if rnd % 2 == 0 else ("torch", "pnn")
            for impl in order:
                if impl == "pnn":
                    res = run_json([BENCH] + common, env)
                else:
                    res = run_json(TORCH + common + torch_threads, env)
                    adam_impl = res["adam_impl"]
                res["loadavg_after"] = os.getloadavg()[0]
                runs.setdefault(key, {}).setdefault(impl, []).append(res)
            print("round %d %-15s pnn %8.0f samples/s (%d steps), torch %8.0f samples/s (%d steps), load %.2f"
                  % (rnd, key, runs[key]["pnn"][-1]["samples_per_s"], runs[key]["pnn"][-1]["steps"],
                     runs[key]["torch"][-1]["samples_per_s"], runs[key]["torch"][-1]["steps"], os.getloadavg()[0]),
                  file=sys.stderr)
        loads[-1]["after"] = os.getloadavg()

    results = {}
    lines = []
    for (name, n_in, hidden, n_out), batch in itertools.product(SIZES, BATCHES):
        key = "%s,batch=%d" % (name, batch)
        pnn, ref = runs[key]["pnn"], runs[key]["torch"]
        sps = {"pnn": [x["samples_per_s"] for x in pnn], "torch": [x["samples_per_s"] for x in ref]}
        med = {k: statistics.median(v) for k, v in sps.items()}
        top = {k: max(v) for k, v in sps.items()}  # the best round: the least disturbed by other processes
        fl = pnn[0]["flops_per_sample"]
        sgemm = [x["sgemm_gflops_widest_layer"] for x in pnn]
        sgemm_med, sgemm_top = statistics.median(sgemm), max(sgemm)
        gf = {k: fl * v / 1e9 for k, v in med.items()}
        gf_top = {k: fl * v / 1e9 for k, v in top.items()}
        results[key] = {
            "size": name, "in": n_in, "hidden": list(hidden), "out": n_out, "batch": batch,
            "params": pnn[0]["params"], "flops_per_sample": fl, "samples_per_s": sps,
            "steps": {"pnn": [x["steps"] for x in pnn], "torch": [x["steps"] for x in ref]},
            "median_samples_per_s": med, "ratio_pnn_over_torch": med["pnn"] / med["torch"],
            "best_samples_per_s": top, "ratio_best_pnn_over_best_torch": top["pnn"] / top["torch"],
            "median_gflops": gf, "best_gflops": gf_top, "sgemm_gflops_widest_layer": sgemm,
            "fraction_of_sgemm_median": {k: v / sgemm_med for k, v in gf.items()},
            "fraction_of_sgemm_best": {k: v / sgemm_top for k, v in gf_top.items()},
            "loadavg_after_each": {"pnn": [x["loadavg_after"] for x in pnn],
                                   "torch": [x["loadavg_after"] for x in ref]}}
        lines.append("%-15s %9.0f %9.0f %6.2f %6.2f %8.1f %8.1f %7.1f %6.2f %6.2f" % (
            key, med["pnn"], med["torch"], med["pnn"] / med["torch"], top["pnn"] / top["torch"], gf["pnn"],
            gf["torch"], sgemm_med, gf["pnn"] / sgemm_med, gf["torch"] / sgemm_med))
    print("\n%-15s %9s %9s %6s %6s %8s %8s %7s %6s %6s" % (
        "size,batch", "pnn/s", "torch/s", "ratio", "best", "pnn GF", "torch GF", "sgemm", "pnn%", "torch%"))
    print("%-15s %9s %9s %6s %6s %8s %8s %7s %6s %6s" % (
        "", "(median)", "(median)", "(med)", "(best)", "(med)", "(med)", "GF/s", "sgemm", "sgemm"))
    print("\n".join(lines))

    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    res = {"benchmark": "twin_fit_throughput",
           "what": "Adam steps of MSE regression of a tanh MLP (host copy of the batch, forward, backward, "
                   "update), samples/s",
           "commit": git("rev-parse", "--short", "HEAD"),
           "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "machine": platform.machine(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "cpus": os.cpu_count(), "torch": torch.__version__, "torch_adam_impl": adam_impl, "threads": THREADS,
           "rounds": args.rounds, "seconds_per_measurement": args.seconds, "check": check, "loadavg": loads,
           "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
           "wall_s": round(time.perf_counter() - start, 1), "results": results}
    out = os.path.join(ROOT, "benchmarks", "results", "twin-fit-throughput-%s.json"
                       % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    json.dump(res, open(out, "w"), indent=1)
    print("torch Adam: %s; %.0f s in all; wrote %s" % (adam_impl, res["wall_s"], out))


if __name__ == "__main__":
    main()
