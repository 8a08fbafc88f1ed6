#!/usr/bin/env python3
"""PyTorch (CPU) reference of fitting a learned twin (the step `pnn twin fit` runs; pnn's
host/twins/mlp.c), written from the spec of benchmarks/bench_twin_fit.c as a careful PyTorch user
would, for benchmarks/twin_fit_throughput.py.

The problem: an MLP in -> hidden widths (tanh after each hidden layer) -> out, nn.Linear layers
with bias and PyTorch's default init (U(+-1/sqrt(fan_in)) as pnn, from another generator, so the
losses agree only roughly), MSE regression (mean over all elements, which is pnn's mean over rows
of the mean over columns) with Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8), on one fixed batch:
  x[r, j] = sin(0.37 (r * IN + j) + 0.1),  t[r, k] = cos(0.23 (r * OUT + k))   (float32)
Each step copies the batch from host (numpy) memory into the step's tensors, as bench_twin_fit
does from_host each step, then zero_grad, forward, loss, backward, optimizer.step().

  timed (default): 2 warm-up steps, then steps until --seconds have passed and at least 3 were
                   timed; one JSON line (samples_per_s: rows through forward + backward + update)
  --steps K:       exactly K steps (no warm-up); loss_first and loss_last (each the loss of its
                   step's forward, before that step's update)
  --adam IMPL:     which of torch's Adam implementations: fused (the default: the fastest on this
                   machine's CPU, measured with --compare-adam), foreach, or single (the for-loop)
  --compare-adam:  times each implementation in turn at the given size and prints one JSON line
                   per implementation
Usage: python3 benchmarks/reference/mlp_fit_torch.py --in 64 --hidden 1024,1024 --out 64
           --batch 256 [--seconds 2] [--threads 2] [--steps K] [--adam fused|foreach|single]
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ADAM_IMPLS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}


def data(batch, n_in, n_out):
    """the batch as bench_twin_fit builds it: sinf(0.37f * (float)i + 0.1f), cosf(0.23f * (float)i)"""
    i = np.arange(batch * n_in, dtype=np.float32)
    xh = np.sin(np.float32(0.37) * i + np.float32(0.1)).astype(np.float32).reshape(batch, n_in)
    i = np.arange(batch * n_out, dtype=np.float32)
    th = np.cos(np.float32(0.23) * i).astype(np.float32).reshape(batch, n_out)
    return xh, th


def mlp(n_in, hidden, n_out):
    layers, width = [], n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


def run(args, adam, steps=0, seconds=0.0):
    """steps > 0: exactly that many steps; else 2 warm-up steps and then the timed ones"""
    torch.manual_seed(0)
    model = mlp(args.n_in, args.hidden, args.n_out)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **ADAM_IMPLS[adam])
    xh, th = data(args.batch, args.n_in, args.n_out)
    xh, th = torch.from_numpy(xh), torch.from_numpy(th)  # host memory (views of the numpy arrays)
    x = torch.empty(args.batch, args.n_in)
    t = torch.empty(args.batch, args.n_out)
    warm = 0 if steps else 2
    first = last = float("nan")
    done, t0, s = 0, 0.0, 0
    while True:
        if s == warm:
            t0 = time.perf_counter()
        x.copy_(xh)
        t.copy_(th)
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), t)
        loss.backward()
        opt.step()
        if s >= warm:
            done += 1
        if s == 0:
            first = loss.item()
        if steps and s == steps - 1:
            last = loss.item()
        s += 1
        if steps:
            if s >= steps:
                break
        elif s > warm and time.perf_counter() - t0 >= seconds and done >= 3:
            break
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    return {"in": args.n_in, "hidden": args.hidden, "out": args.n_out, "batch": args.batch, "params": params,
            "steps": done, "seconds": round(dt, 4), "samples_per_s": round(done * args.batch / dt, 2),
            "loss_first": first, "loss_last": last if steps else None, "adam_impl": adam, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in", dest="n_in", type=int, default=64)
    p.add_argument("--hidden", type=lambda s: [int(w) for w in s.split(",") if w], default=[1024, 1024])
    p.add_argument("--out", dest="n_out", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--adam", choices=sorted(ADAM_IMPLS), default="fused")
    p.add_argument("--compare-adam", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_adam:
        for adam in ADAM_IMPLS:
            try:
                print(json.dumps(run(args, adam, seconds=args.seconds)), flush=True)
            except (RuntimeError, ValueError) as e:  # an implementation this build lacks on the CPU
                print(json.dumps({"adam_impl": adam, "error": str(e)}), flush=True)
        return
    if args.steps < 0:
        sys.exit("mlp_fit_torch: --steps must be >= 0")
    print(json.dumps(run(args, args.adam, steps=args.steps, seconds=args.seconds)))


if __name__ == "__main__":
    main()
