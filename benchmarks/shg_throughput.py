#!/usr/bin/env python3
"""Throughput of the shg twin (forward + VJP, samples/s): pnn (build/bench_shg) against the PyTorch
reference (benchmarks/reference/shg_torch.py), both on 2 threads and both on 1, alternating in
rounds in one invocation so that both see the same machine load (on a shared machine the 2-thread
figures swing with the other processes: a parallel region waits for both of its threads; the
1-thread ones do not). Sizes: K = 64 (y_dim 16) and K = 1024 (y_dim 64), batch
32 and 256. PyTorch runs both of its forms (rfft/irfft and a grouped conv1d) where the direct one
is in reach, and the faster is the reference; pnn runs form=auto. First checks that the two
compute the same (bench_shg --dump, shg_torch.py --check). Writes
benchmarks/results/shg-throughput-<date>.json with the ratio pnn / PyTorch per size and thread
count (of the medians over rounds, and of each one's best round), the FLOPs per sample, and the load average around each round; and,
from bench_shg, the forms' agreement (--forms) and the crossover of the two forms on one thread
(--crossover, what PNN_SHG_FFT_MIN_K rests on).
Usage: python3 benchmarks/shg_throughput.py [--rounds 3] [--seconds 1.0]"""
import argparse
import datetime
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "build", "bench_shg")
TORCH = [sys.executable, os.path.join(ROOT, "benchmarks", "reference", "shg_torch.py")]
SIZES = [(64, 16), (1024, 64)]
BATCHES = [32, 256]
THREADS = [2, 1]


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def flops_per_sample(k, y_dim, form):
    """forward + VJP, counting multiply-adds as 2 and a complex FFT of length L as 5 L log2 L"""
    m = 2 * k - 1
    if form == "direct":  # forward: K^2/2 products (each pair once); VJP: K^2 (the correlation)
        conv = 2 * (k * k / 2) + 2 * k * k
    else:  # two real rows per complex FFT: per sample one forward and one inverse, in each pass
        length = 1 << (m - 1).bit_length()
        conv = 2 * 5 * length * math.log2(length) + 2 * 8 * (length / 2)  # transforms + packed products
    return conv + 6 * m + 4 * k  # squares and bins, dE, amplitudes and their derivatives


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for k, y_dim in SIZES:
            path = os.path.join(tmp, "case%d.bin" % k)
            subprocess.run([BENCH, "--k", str(k), "--batch", "5", "--y-dim", str(y_dim), "--dump", path], check=True)
            subprocess.run(TORCH + ["--check", path], check=True)
    samples = {}
    loads = []
    pnn_form = {}
    env = dict(os.environ)
    for rnd in range(args.rounds):
        loads.append({"round": rnd, "before": os.getloadavg()})
        for k, y_dim in SIZES:
            for batch in BATCHES:
                for threads in THREADS:
                    key = "k=%d,batch=%d,threads=%d" % (k, batch, threads)
                    common = ["--k", str(k), "--batch", str(batch), "--y-dim", str(y_dim), "--seconds",
                              str(args.seconds)]
                    env["OMP_NUM_THREADS"] = str(threads)
                    r = run_json([BENCH] + common, env)
                    pnn_form[key] = r["form"]  # what form=auto chose
                    samples.setdefault(key, {}).setdefault("pnn", []).append(r["samples_per_s"])
                    for form in ("fft", "direct") if k <= 64 else ("fft",):
                        t = run_json(TORCH + common + ["--bench", "--form", form, "--threads", str(threads)], env)
                        samples[key].setdefault("torch_" + form, []).append(t["samples_per_s"])
                    print("round %d %s: pnn %.0f/s, torch %s" % (rnd, key, r["samples_per_s"], ", ".join(
                        "%s %.0f/s" % (f, v[-1]) for f, v in samples[key].items() if f != "pnn")), file=sys.stderr)
        loads[-1]["after"] = os.getloadavg()
    results = {}
    for (k, y_dim), batch, threads in itertools.product(SIZES, BATCHES, THREADS):
        key = "k=%d,batch=%d,threads=%d" % (k, batch, threads)
        med = {impl: statistics.median(v) for impl, v in samples[key].items()}
        best_torch = max((v, f) for f, v in med.items() if f != "pnn")
        # the best round of each: the least disturbed by the machine's other processes
        top = {impl: max(v) for impl, v in samples[key].items()}
        top_torch = max(v for f, v in top.items() if f != "pnn")
        form = pnn_form[key]
        fl = flops_per_sample(k, y_dim, form)
        results[key] = {"k": k, "batch": batch, "threads": threads, "y_dim": y_dim, "pnn_form": form,
                        "samples_per_s": samples[key], "median_samples_per_s": med, "reference": best_torch[1],
                        "ratio_pnn_over_torch": med["pnn"] / best_torch[0], "best_samples_per_s": top,
                        "ratio_best_pnn_over_best_torch": top["pnn"] / top_torch, "flops_per_sample_pnn": fl,
                        "pnn_gflops": fl * med["pnn"] / 1e9}
        print("%-28s median: pnn %9.0f samples/s, torch (%s) %9.0f, ratio %5.2f; best rounds: ratio %5.2f; "
              "pnn %.2f GFLOP/s" % (key, med["pnn"], best_torch[1], best_torch[0], med["pnn"] / best_torch[0],
                                    top["pnn"] / top_torch, fl * med["pnn"] / 1e9))
    env["OMP_NUM_THREADS"] = "1"
    forms = run_json([BENCH, "--forms", "--batch", "5"], env)
    crossover = [run_json([BENCH, "--crossover", "--batch", str(b), "--seconds", "0.3"], env) for b in BATCHES]
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    res = {"benchmark": "shg_throughput", "what": "twin forward (taped, noise 0.01) + VJP (dx, dtheta), samples/s",
           "commit": git("rev-parse", "--short", "HEAD"),
           "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "machine": platform.machine(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "cpus": os.cpu_count(), "torch": torch.__version__, "threads": THREADS, "rounds": args.rounds,
           "seconds_per_measurement": args.seconds, "loadavg": loads, "uptime": subprocess.run(
               ["uptime"], capture_output=True, text=True).stdout.strip(), "results": results,
           "forms": forms, "crossover_1_thread": crossover}
    out = os.path.join(ROOT, "benchmarks", "results",
                       "shg-throughput-%s.json" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    json.dump(res, open(out, "w"), indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
