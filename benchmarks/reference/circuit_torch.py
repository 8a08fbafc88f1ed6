"""PyTorch (CPU) reference of the circuit system's twin (PHYSICS.md, "circuit"), written from the
spec, for benchmarks/circuit_throughput.py to time beside pnn's (benchmarks/bench_circuit.c).

    v'' + (w0/Qf) v' + w0^2 v + alpha tanh(kappa v) = w0^2 u(t),  from rest,

u piecewise constant over S segments (x and theta interleaved: x column j on segment
floor(j S / x_dim), theta on the others in order; clipped to [-1, 1]), `steps` classic RK4 steps
per segment, y_dim samples of v, sample j after step floor((j + 1) S steps / y_dim). The VJP
(dx, dtheta) is autograd's, as a PyTorch user would write it: the whole batch advances one RK4
step per iteration, with torch.tanh.

The problem is the one bench_circuit builds (closed-form x, theta, dy), so the sums of y, dx
and dtheta can be compared. Prints one JSON object per size, like bench_circuit.

    python3 benchmarks/reference/circuit_torch.py [--threads 2] [--dtype float32|float64]
        [SEGMENTS STEPS BATCH]...
"""
import argparse
import json
import math
import time

import torch

W0, QF, ALPHA, KAPPA = 2 * math.pi, 4.0, 20.0, 2.0


def layout(s, x_dim):
    """For each segment: ('x', column) or ('t', theta index), interleaved."""
    x_at = {j * s // x_dim: j for j in range(x_dim)}
    out, k = [], 0
    for i in range(s):
        if i in x_at:
            out.append(("x", x_at[i]))
        else:
            out.append(("t", k))
            k += 1
    return out


def problem(s, steps, batch, dtype):
    x_dim, y_dim = s // 2, s // 2
    i = torch.arange(batch * x_dim, dtype=torch.float64)
    x = torch.tanh(1.5 * torch.sin(1.7 * i + 0.3)).reshape(batch, x_dim)
    theta = 0.8 * torch.cos(2.1 * torch.arange(s - x_dim, dtype=torch.float64))
    dy = torch.sin(0.37 * torch.arange(batch * y_dim, dtype=torch.float64)).reshape(batch, y_dim)
    # the closed forms in float32, as the C benchmark evaluates them
    x, theta, dy = (t.float().to(dtype) for t in (x, theta, dy))
    return x, theta, dy, y_dim


def forward(x, theta, s, steps, y_dim, t_total, order):
    batch = x.shape[0]
    cols = [x[:, j] if kind == "x" else theta[j].expand(batch) for kind, j in order]
    u = torch.clamp(torch.stack(cols, dim=1), -1.0, 1.0)
    h = t_total / (s * steps)
    a, c = W0 * W0, W0 / QF
    n_steps = s * steps
    sample_at = {(j + 1) * n_steps // y_dim: j for j in range(y_dim)}

    def force(v, w, uu):
        return a * (uu - v) - c * w - ALPHA * torch.tanh(KAPPA * v)

    v = torch.zeros(batch, dtype=x.dtype)
    w = torch.zeros(batch, dtype=x.dtype)
    ys = []
    for n in range(n_steps):
        uu = u[:, n // steps]
        f1 = force(v, w, uu)
        w2 = w + 0.5 * h * f1
        f2 = force(v + 0.5 * h * w, w2, uu)
        w3 = w + 0.5 * h * f2
        f3 = force(v + 0.5 * h * w2, w3, uu)
        w4 = w + h * f3
        f4 = force(v + h * w3, w4, uu)
        v, w = v + h / 6 * (w + 2 * (w2 + w3) + w4), w + h / 6 * (f1 + 2 * (f2 + f3) + f4)
        if n + 1 in sample_at:
            ys.append(v)
    return torch.stack(ys, dim=1)


def bench(s, steps, batch, dtype, min_seconds=0.5):
    x0, theta0, dy, y_dim = problem(s, steps, batch, dtype)
    order = layout(s, s // 2)
    t_total = s / 4

    def call():
        x = x0.clone().requires_grad_(True)
        theta = theta0.clone().requires_grad_(True)
        y = forward(x, theta, s, steps, y_dim, t_total, order)
        y.backward(dy)
        return y, x.grad, theta.grad

    y, dx, dth = call()
    reps, start = 0, time.perf_counter()
    while True:
        call()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:  # a call of the long drive lasts many seconds: one timed call then
            break
    per_call = elapsed / reps
    return {"impl": "torch", "segments": s, "steps": steps, "batch": batch, "x_dim": s // 2, "y_dim": y_dim,
            "reps": reps, "seconds_per_call": per_call, "samples_per_s": batch / per_call,
            "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
            "sum_y": float(y.detach().sum()), "sum_dx": float(dx.sum()), "sum_dtheta": float(dth.sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("sizes", nargs="*", type=int)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = args.sizes or [16, 20, 32, 16, 20, 256, 256, 20, 32, 256, 20, 256]
    if len(sizes) % 3:
        ap.error("sizes come in threes: SEGMENTS STEPS BATCH")
    dtype = getattr(torch, args.dtype)
    for k in range(0, len(sizes), 3):
        print(json.dumps(bench(*sizes[k:k + 3], dtype, args.min_seconds)), flush=True)


if __name__ == "__main__":
    main()
