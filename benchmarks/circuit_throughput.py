#!/usr/bin/env python3
"""Throughput of the circuit twin, forward + VJP, pnn (benchmarks/bench_circuit.c) against the
PyTorch reference (benchmarks/reference/circuit_torch.py) on the same problems, in alternating
rounds of one invocation (the order flips every round), both on 2 CPU threads. Checks that the
two compute the same sums of y, dx and dtheta, and writes the median samples/s of each, their
ratio, and the machine's load average to benchmarks/results/circuit-throughput-<date>.json.

    python3 benchmarks/circuit_throughput.py [--rounds 3] [--build build] [--env KEY=VALUE]... [--tag TAG]
        [SEGMENTS STEPS BATCH]...

--env sets a variable for both programs (e.g. OMP_WAIT_POLICY=passive: on a 2-vCPU machine shared
with other jobs, OpenMP threads that spin-wait at the end of a parallel region cost pnn up to
15 ms per region; PyTorch's OpenMP threads are given the same setting).
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


def run_json(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        sys.exit("%s failed (%d): %s" % (" ".join(cmd), out.returncode, out.stderr[-2000:]))
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for both programs")
    ap.add_argument("--tag", default="", help="results file circuit-throughput-TAG-<date>.json")
    ap.add_argument("sizes", nargs="*", type=int)
    args = ap.parse_args()
    sizes = [str(s) for s in (args.sizes or [16, 20, 32, 16, 20, 256, 256, 20, 32, 256, 20, 256])]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    env.update(extra_env)
    pnn_cmd = [os.path.join(ROOT, args.build, "bench_circuit")] + sizes
    torch_cmd = [sys.executable, os.path.join(ROOT, "benchmarks/reference/circuit_torch.py"),
                 "--threads", str(args.threads)] + sizes
    load_before = os.getloadavg()
    results = {"pnn": [], "torch": []}
    for r in range(args.rounds):
        order = ["pnn", "torch"] if r % 2 == 0 else ["torch", "pnn"]
        for impl in order:
            rows = run_json(pnn_cmd if impl == "pnn" else torch_cmd, env)
            results[impl].append(rows)
            for row in rows:
                print("round %d %-5s S=%-4d steps=%-3d B=%-4d %10.0f samples/s" % (
                    r + 1, impl, row["segments"], row["steps"], row["batch"], row["samples_per_s"]), flush=True)
    load_after = os.getloadavg()
    table = []
    for k in range(len(sizes) // 3):
        p = [rows[k] for rows in results["pnn"]]
        t = [rows[k] for rows in results["torch"]]
        pm = statistics.median(x["samples_per_s"] for x in p)
        tm = statistics.median(x["samples_per_s"] for x in t)
        agree = {key: abs(p[0][key] - t[0][key]) / max(1e-30, abs(t[0][key])) for key in ("sum_y", "sum_dx", "sum_dtheta")}
        table.append({"segments": p[0]["segments"], "steps": p[0]["steps"], "batch": p[0]["batch"],
                      "pnn_samples_per_s": pm, "torch_samples_per_s": tm, "ratio": pm / tm,
                      "pnn_gflops": statistics.median(x["gflops"] for x in p),
                      "flops_per_call": p[0]["flops_per_call"],
                      "pnn_rounds": [x["samples_per_s"] for x in p], "torch_rounds": [x["samples_per_s"] for x in t],
                      "relative_difference_of_sums": agree})
    import torch  # only for its version
    res = {"benchmark": "circuit_throughput", "what": "twin forward (taped) + VJP (dx, dtheta), samples/s",
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip(),
           "date": datetime.datetime.utcnow().isoformat() + "Z", "machine": cpu_model(), "cpus": os.cpu_count(),
           "threads": args.threads, "env": extra_env, "torch": torch.__version__, "rounds": args.rounds,
           "load_average_before": load_before, "load_average_after": load_after,
           "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), "sizes": table}
    out = args.out or os.path.join(ROOT, "benchmarks/results/circuit-throughput%s-%s.json" % (
        "-" + args.tag if args.tag else "", datetime.datetime.utcnow().strftime("%Y-%m-%d")))
    json.dump(res, open(out, "w"), indent=1)
    for row in table:
        print("S=%-4d steps=%-3d B=%-4d pnn %10.0f  torch %8.0f samples/s  ratio %.1fx  (sums agree to %.1g)" % (
            row["segments"], row["steps"], row["batch"], row["pnn_samples_per_s"], row["torch_samples_per_s"],
            row["ratio"], max(row["relative_difference_of_sums"].values())))
    print("wrote", out)


if __name__ == "__main__":
    main()
