#!/usr/bin/env python3
"""The host bridge benchmark: PAT on the vowels (examples/vowels-oscillator.yaml) and on
Fashion-MNIST (examples/fmnist-oscillator.yaml) with simulated devices that take 2, 5 and 20 ms
per micro-batch (sim:...&latency_ms=L: a call takes max(compute, L)), each batch in 4
micro-batches, pipelined against sequential in the same invocation (`pnn bench`, alternating).

Per configuration it reports the step time, the busiest device's busy time and duty cycle
(busy / wall), the backend's busy time and its time blocked on devices. The goals (issue
"Host bridge"): duty >= 95% whenever the backend's work per micro-batch is shorter than the
device's, and a pipelined step within 5% of max(device time, backend time), where the device
time is the busiest device's busy time per step and the backend time is the backend's busy time
measured in the sequential schedule (where nothing overlaps it).

Caveat, measured not assumed: the simulated devices compute on the same 2 CPU cores as the
backend, so on Fashion-MNIST the simulator's own work (the 1610-oscillator device) competes
with the twin's; a real instrument does not.

Usage: python3 benchmarks/bridge_overlap.py [--build build] [--steps 10] [--rounds 2]
Writes benchmarks/results/bridge-overlap-<date>.json.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TASKS = {
    "vowels": {
        "config": os.path.join(ROOT, "examples", "vowels-oscillator.yaml"),
        "devices": {1: "sim:oscillator?n=40&nt=10&seed=1"},
        "micro_batch": 4,  # batch 16 -> 4 micro-batches
        "extra": [],
    },
    "fashion-mnist": {
        "config": os.path.join(ROOT, "examples", "fmnist-oscillator.yaml"),
        "devices": {1: "sim:oscillator?n=100&seed=1", 4: "sim:oscillator?n=1610&seed=2"},
        "micro_batch": 8,  # batch 32 -> 4 micro-batches
        "extra": ["--set", "data.limit_train=2048", "--set", "data.limit_test=256",
                  "--set", "network.1.twin_noise=nominal", "--set", "network.4.twin_noise=nominal"],
    },
}


def bench(pnn, task, latency, schedule, steps, threads):
    t = TASKS[task]
    args = [pnn, "bench", t["config"], "--steps", str(steps), "--warmup", "2",
            "--set", f"bridge.micro_batch={t['micro_batch']}", "--set", f"bridge.schedule={schedule}"] + t["extra"]
    for layer, uri in t["devices"].items():
        args += ["--set", f"network.{layer}.device={uri}&latency_ms={latency}"]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        out = subprocess.run(args + ["--json", f.name], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"failed: {' '.join(args)}\n{out.stdout}\n{out.stderr}")
        return json.load(open(f.name))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the median is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default="vowels,fashion-mnist")
    ap.add_argument("--latencies", default="2,5,20")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    pnn = os.path.join(a.build, "pnn")
    rows = []
    for task in a.tasks.split(","):
        for latency in [float(x) for x in a.latencies.split(",")]:
            runs = {"sequential": [], "pipelined": []}
            for _ in range(a.rounds):
                for schedule in runs:
                    runs[schedule].append(bench(pnn, task, latency, schedule, a.steps, a.threads))
            med = {s: {k: statistics.median(r[k] for r in rs) for k in
                       ("ms_mean", "ms_median", "device_busy_ms", "device_duty", "backend_busy_ms", "backend_wait_ms")}
                   for s, rs in runs.items()}
            device_ms = med["pipelined"]["device_busy_ms"]
            backend_ms = med["sequential"]["backend_busy_ms"]
            bound = max(device_ms, backend_ms)
            p = med["pipelined"]
            row = {
                "task": task, "latency_ms": latency, "micro_batches": 4,
                "sequential": med["sequential"], "pipelined": p,
                "device_ms_per_step": device_ms, "backend_ms_per_step": backend_ms,
                "speedup_vs_sequential": med["sequential"]["ms_mean"] / p["ms_mean"],
                "step_over_bound": p["ms_mean"] / bound,
                "device_bound": device_ms > backend_ms,
                "goal_duty_met": (p["device_duty"] >= 0.95) if device_ms > backend_ms else None,
                "goal_step_within_5pct": p["ms_mean"] <= 1.05 * bound,
            }
            rows.append(row)
            print(f"{task:14s} L={latency:4.0f} ms  seq {med['sequential']['ms_mean']:8.2f} ms  "
                  f"pipe {p['ms_mean']:8.2f} ms  (x{row['speedup_vs_sequential']:.2f})  device {device_ms:7.2f} ms  "
                  f"backend {backend_ms:7.2f} ms  duty {p['device_duty']:.3f}  step/max(dev,backend) "
                  f"{row['step_over_bound']:.3f}", flush=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result = {
        "benchmark": "bridge_overlap", "date": datetime.date.today().isoformat(), "commit": commit,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": a.threads},
        "steps": a.steps, "rounds": a.rounds, "rows": rows,
        "note": "simulated devices compute on the same CPU cores as the backend",
    }
    out = a.out or os.path.join(ROOT, "benchmarks", "results", f"bridge-overlap-{result['date']}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
