#!/usr/bin/env python3
"""PyTorch reference of pnn's scatter twin (PHYSICS.md, "scatter"): y = |W2 diag(exp(i theta)) W1 x|^2
with x real [batch, x_dim], theta [modes], W1 [modes, x_dim] and W2 [y_dim, modes] fixed complex
Gaussian (E|W1|^2 = 1/x_dim, E|W2|^2 = 1/modes, as pnn draws them, from torch's own generator), and
its gradients dx, dtheta by autograd. Written from the spec as a careful PyTorch user would:

- x is real, so u = W1 x is one real matmul with W1^T stored as interleaved (re, im) floats,
  viewed as complex without a copy (torch.view_as_complex): half the work of a complex matmul;
- "literal": the phase multiplies every row's field, v = u * exp(i theta), then z = v @ W2^T;
- "folded": the phase is folded into the matrix once per call, z = u @ (exp(i theta)[:, None] W2^T),
  as pnn's fields form does (autograd then pays one more product for theta's gradient);
- "transfer": the transfer matrix T = W1^T diag(exp(i theta)) W2^T (x_dim x y_dim) once per call,
  then z = x T, as pnn's transfer form does (its cost does not grow with the batch);
- y = z.real^2 + z.imag^2; the VJP is torch.autograd.grad(y, (x, theta), dy).

--bench times forward + VJP (the phases change every call, as in training) and prints JSON: the
median ms per call and samples/s of each formulation, and the best. CPU, torch.set_num_threads(THREADS).

  python3 benchmarks/reference/scatter_torch.py --bench --x-dim 128 --modes 4096 --y-dim 64 --batch 256
"""
import argparse
import json
import math
import statistics
import time

import torch

FORMS = ("literal", "folded", "transfer")


class ScatterTwin:
    def __init__(self, x_dim, modes, y_dim, seed=1):
        g = torch.Generator().manual_seed(seed)
        # W1^T [x_dim, modes] complex as interleaved floats [x_dim, 2 modes]
        self.w1t = torch.randn(x_dim, 2 * modes, generator=g) * math.sqrt(0.5 / x_dim)
        self.w2t = torch.view_as_complex(torch.randn(modes, y_dim, 2, generator=g) * math.sqrt(0.5 / modes))
        self.modes = modes

    def fields(self, x):
        return torch.view_as_complex((x @ self.w1t).view(x.shape[0], self.modes, 2))

    def forward(self, x, theta, form):
        phase = torch.polar(torch.ones_like(theta), theta)
        if form == "transfer":
            w1t = torch.view_as_complex(self.w1t.view(x.shape[1], self.modes, 2))
            t = w1t @ (phase[:, None] * self.w2t)
            z = torch.view_as_complex((x @ torch.view_as_real(t).flatten(1)).view(x.shape[0], -1, 2))
        elif form == "folded":
            z = self.fields(x) @ (phase[:, None] * self.w2t)
        else:
            z = (self.fields(x) * phase) @ self.w2t
        return z.real.square() + z.imag.square()

    def forward_vjp(self, x, theta, dy, form):
        x = x.detach().requires_grad_(True)
        theta = theta.detach().requires_grad_(True)
        y = self.forward(x, theta, form)
        dx, dtheta = torch.autograd.grad(y, (x, theta), dy)
        return y, dx, dtheta


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    twin = ScatterTwin(args.x_dim, args.modes, args.y_dim)
    x = torch.rand(args.batch, args.x_dim) * 2 - 1
    dy = torch.rand(args.batch, args.y_dim) * 2 - 1
    thetas = [torch.rand(args.modes) * 2 * math.pi - math.pi for _ in range(4)]
    out = {"x_dim": args.x_dim, "modes": args.modes, "y_dim": args.y_dim, "batch": args.batch,
           "threads": args.threads, "torch": torch.__version__}
    for name in FORMS:
        for i in range(3):
            twin.forward_vjp(x, thetas[i % 4], dy, name)
        times, end = [], time.perf_counter() + args.seconds
        while len(times) < 5 or time.perf_counter() < end:
            t0 = time.perf_counter()
            twin.forward_vjp(x, thetas[len(times) % 4], dy, name)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * statistics.median(times)
        out[name] = {"ms": ms, "samples_per_s": args.batch / ms * 1e3, "reps": len(times)}
    best = max(FORMS, key=lambda n: out[n]["samples_per_s"])
    out["best"] = best
    out["samples_per_s"] = out[best]["samples_per_s"]
    print(json.dumps(out))


def self_check():
    """autograd's gradients against central differences in double, on a small problem"""
    torch.manual_seed(1)
    twin = ScatterTwin(5, 7, 3)
    twin.w1t, twin.w2t = twin.w1t.double(), twin.w2t.to(torch.complex128)
    x, theta, dy = torch.rand(4, 5, dtype=torch.float64), torch.rand(7, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)
    for form in FORMS:
        _, dx, dt = twin.forward_vjp(x, theta, dy, form)
        eps = 1e-6
        for v, grad, which in ((torch.rand_like(x), dx, "x"), (torch.rand_like(theta), dt, "theta")):
            a = (x + eps * v, theta) if which == "x" else (x, theta + eps * v)
            b = (x - eps * v, theta) if which == "x" else (x, theta - eps * v)
            fd = ((twin.forward(*a, form) - twin.forward(*b, form)) * dy).sum() / (2 * eps)
            assert abs(fd - (grad * v).sum()) < 1e-7 * (1 + abs(fd)), (which, form, fd, (grad * v).sum())
    print("scatter_torch: gradients match central differences")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--check", action="store_true", help="autograd against finite differences, then exit")
    ap.add_argument("--x-dim", type=int, default=64)
    ap.add_argument("--modes", type=int, default=256)
    ap.add_argument("--y-dim", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.check:
        self_check()
    elif args.bench:
        bench(args)
    else:
        ap.print_help()


if __name__ == "__main__":
    main()
