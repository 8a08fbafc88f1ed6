#!/usr/bin/env python3
"""What a Python-function device and a PyTorch twin cost against pnn's in-process C simulator
and analytic twin, per call (us), at batch 32 and 1024, measured in one run (docs/python.md).

Devices (one forward each, through pnn's queue unless said):
  c_sim           sim:oscillator (40 oscillators, 10 RK4 steps): the C simulator
  py_numpy        the same physics as a Python function (NumPy), registered as a device
  py_numpy_direct that NumPy function called directly, without pnn (the physics' own cost)
  py_identity     a Python device that returns x (the mechanism alone: ctypes, the GIL, the queue)
Twins (a taped forward and its VJP):
  c_analytic      pnn's analytic oscillator twin
  torch           the same physics as a PyTorch module through pnn.TorchTwin
  torch_direct    that module's forward and backward called directly, without pnn
  torch_identity  a TorchTwin whose module returns x * theta[0] (the mechanism alone)
Training: ms per PAT step of the vowels main job with the C simulator, with the Python
instrument, and with the PyTorch twin (one epoch each, after one warm-up epoch).

Each figure is the median of repetitions lasting --min-s seconds, the variants alternating in
--rounds rounds (the median over rounds is reported with min and max).

  python3 benchmarks/python_overhead.py --json benchmarks/results/python-overhead.json
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import pnn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N, NT = 40, 10
sys.path.insert(0, os.path.join(ROOT, "examples"))
from python_vowels import Instrument, torch_oscillators  # noqa: E402  (the example's NumPy and PyTorch oscillators)


def median_us(fn, min_s):
    fn()
    t, end = [], time.perf_counter() + min_s
    while len(t) < 5 or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        t.append(1e6 * (time.perf_counter() - t0))
    return statistics.median(t)


def calls(batch, torch):
    """{name: fn} of the per-call variants at this batch."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (batch, N)).astype(np.float32)
    sim = pnn.Device(f"sim:oscillator?n={N}&nt={NT}&seed=1")
    twin = pnn.Twin(sim)
    theta = twin.init_theta(seed=1, name="osc")
    dy = rng.standard_normal((batch, N)).astype(np.float32)
    inst = Instrument()
    reg = pnn.register_device(inst, x_dim=N, y_dim=N, theta_dim=N * N + N)
    ident = pnn.register_device(lambda x, t: x, x_dim=N, y_dim=N, theta_dim=N * N + N)
    py, pid = pnn.Device(reg.uri), pnn.Device(ident.uri)
    out = {
        "device c_sim": lambda: sim.forward(x, theta),
        "device py_numpy": lambda: py.forward(x, theta),
        "device py_numpy_direct": lambda: inst(x, theta),
        "device py_identity": lambda: pid.forward(x, theta),
    }

    def c_twin():
        twin.forward(x, theta, slot=0)
        twin.vjp(dy, theta, slot=0)

    out["twin c_analytic"] = c_twin
    keep = [sim, twin, reg, ident, py, pid]
    if torch is not None:
        model = torch_oscillators()
        tt = pnn.TorchTwin(model, x_dim=N, y_dim=N, theta_dim=N * N + N)
        tid = pnn.TorchTwin(lambda x, th: x * th[0], x_dim=N, y_dim=N, theta_dim=N * N + N)
        ttw, tidw = pnn.Twin(sim, "callback:" + tt.name), pnn.Twin(sim, "callback:" + tid.name)

        def torch_twin():
            ttw.forward(x, theta, slot=0)
            ttw.vjp(dy, theta, slot=0)

        def torch_direct():
            xt = torch.tensor(x, requires_grad=True)
            th = torch.tensor(theta, requires_grad=True)
            y = model(xt, th)
            torch.autograd.grad(y, [xt, th], grad_outputs=torch.tensor(dy))

        def torch_ident():
            tidw.forward(x, theta, slot=0)
            tidw.vjp(dy, theta, slot=0)

        out.update({"twin torch": torch_twin, "twin torch_direct": torch_direct, "twin torch_identity": torch_ident})
        keep += [tt, tid, ttw, tidw]
    return out, keep


def train_step_ms(variant, torch, out_dir):
    """ms per PAT step of the vowels main job (1 epoch timed after 1 warm-up)."""
    cfg = os.path.join(ROOT, "examples", "vowels-oscillator.yaml")
    over, regs = {"epochs": 1}, []
    if variant == "py_numpy":
        reg = pnn.register_device(Instrument(), x_dim=N, y_dim=N, theta_dim=N * N + N,
                                  system_uri=f"sim:oscillator?n={N}&nt={NT}&seed=1")
        over["network.1.device"] = reg.uri
        regs.append(reg)
    elif variant == "torch":
        tt = pnn.TorchTwin(torch_oscillators(), x_dim=N, y_dim=N, theta_dim=N * N + N)
        over["network.1.twin"] = tt.spec
        regs.append(tt)
    steps = []
    for k in range(2):
        seen = []
        pnn.train(cfg, overrides=over, out=os.path.join(out_dir, f"{variant}-{k}-{time.monotonic_ns()}"),
                  progress=lambda p: seen.append(p) if p["phase"] == "train" else None)
        steps.append(1e3 * seen[-1]["elapsed_s"] / len(seen))
    for r in regs:
        r.unregister()
    return steps[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="32,1024")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-s", type=float, default=0.3)
    ap.add_argument("--json", help="write the figures here (and a .md beside it)")
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None
        print("python_overhead: PyTorch not installed: no PyTorch-twin figures", file=sys.stderr)
    res = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "torch": torch.__version__ if torch else None, "numpy": np.__version__, "n": N, "nt": NT,
           "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(), "calls": [], "train": []}
    for b in (int(v) for v in args.batches.split(",")):
        fns, keep = calls(b, torch)
        per = {k: [] for k in fns}
        for r in range(args.rounds):
            for k, fn in fns.items():
                per[k].append(median_us(fn, args.min_s))
        for k, v in per.items():
            kind, name = k.split()
            res["calls"].append({"kind": kind, "variant": name, "batch": b, "us_median": statistics.median(v),
                                 "us_min": min(v), "us_max": max(v)})
            print(f"batch {b:5d} {kind:6s} {name:16s} {statistics.median(v):10.1f} us", file=sys.stderr)
        for h in keep:
            if hasattr(h, "close"):
                h.close()
        for h in keep:
            if hasattr(h, "unregister"):
                h.unregister()
    with tempfile.TemporaryDirectory() as tmp:
        variants = ["c_sim", "py_numpy"] + (["torch"] if torch else [])
        per = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in variants:
                per[v].append(train_step_ms(v, torch, tmp))
        for v, t in per.items():
            res["train"].append({"variant": v, "ms_per_step_median": statistics.median(t), "ms_min": min(t),
                                 "ms_max": max(t)})
            print(f"train  {v:16s} {statistics.median(t):8.3f} ms per step", file=sys.stderr)
    text = json.dumps(res, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(report(res))
    else:
        print(text)


def report(res):
    get = {(c["kind"], c["variant"], c["batch"]): c for c in res["calls"]}
    lines = ["# Python-function devices and PyTorch twins against pnn's C ones\n",
             f"Machine: {res['machine']}, {res['cores']} cores; NumPy {res['numpy']}, PyTorch {res['torch']}; "
             f"commit {res['commit']}. {N} oscillators, {NT} RK4 steps (the vowels network's layer). Median us per "
             f"call over rounds (min-max), benchmarks/python_overhead.py.\n",
             "| batch | what | us per call | vs the C one |", "| --- | --- | --- | --- |"]
    for b in sorted({c["batch"] for c in res["calls"]}):
        for kind, ref in (("device", "c_sim"), ("twin", "c_analytic")):
            base = get.get((kind, ref, b))
            for c in res["calls"]:
                if c["kind"] != kind or c["batch"] != b:
                    continue
                ratio = f"{c['us_median'] / base['us_median']:.2f}x" if base else "-"
                lines.append(f"| {b} | {kind} {c['variant']} | {c['us_median']:.1f} ({c['us_min']:.1f}-"
                             f"{c['us_max']:.1f}) | {ratio} |")
    lines += ["", "The mechanism's own cost per call is the identity variants' time (a Python device returning x; a "
              "TorchTwin of x * theta[0]), and the difference between a variant through pnn and its direct call.", "",
              "| training (vowels main job) | ms per PAT step |", "| --- | --- |"]
    for t in res["train"]:
        lines.append(f"| {t['variant']} | {t['ms_per_step_median']:.3f} ({t['ms_min']:.3f}-{t['ms_max']:.3f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
