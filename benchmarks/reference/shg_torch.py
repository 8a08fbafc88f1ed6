#!/usr/bin/env python3
"""PyTorch (CPU) reference of the shg twin (PHYSICS.md, "shg"; pnn's hwbridge/systems/shg_twin.c),
written from the spec as a careful PyTorch user would, for benchmarks/shg_throughput.py.

The map, per sample: u = [x, theta] on K spectral bins (layout concat), A = sqrt(clamp(u, 0, 1))
with dA/du = 1 / (2 sqrt(max(u, 1e-4))) inside (0, 1] and 0 outside (a custom autograd function,
as pnn), E = A * A (the autoconvolution: by rfft/irfft zero-padded to a power of two >= 2K - 1,
or directly as one grouped conv1d), y_j = c sum_{m in bin j} E(m)^2 (index_add over the bins of
the 2K - 1 points, c = y_dim / (K (2K^2 + 1) / 3)), times 1 + noise n in training forwards. The
twin's training work is one forward and the backward (dx and dtheta) through autograd.

  --bench: samples per second of forward + backward at --k, --batch, --y-dim, --form; one JSON line
  --check FILE: compares with a case bench_shg --dump FILE wrote (pnn's y, dx, dtheta)
"""
import argparse
import json
import struct
import sys
import time

import torch
import torch.nn.functional as F

FLOOR = 1e-4


class Amplitude(torch.autograd.Function):
    """A = sqrt(clamp(u, 0, 1)), with pnn's derivative (floored near 0, zero where clamped)."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return u.clamp(0.0, 1.0).sqrt()

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        inside = (u > 0) & (u <= 1)
        return g * torch.where(inside, 0.5 * torch.rsqrt(u.clamp(min=FLOOR)), torch.zeros_like(u))


class ShgTwin(torch.nn.Module):
    def __init__(self, k, y_dim, form="fft", noise=0.0):
        super().__init__()
        self.k, self.y_dim, self.form, self.noise = k, y_dim, form, noise
        self.m = 2 * k - 1
        self.len = 1 << (self.m - 1).bit_length()
        self.register_buffer("bins", torch.tensor([((i + 1) * y_dim - 1) // self.m for i in range(self.m)]))
        self.c = y_dim * 3.0 / (k * (2.0 * k * k + 1.0))

    def forward(self, x, theta, train=True):
        b = x.shape[0]
        a = Amplitude.apply(torch.cat([x, theta.expand(b, -1)], 1))
        if self.form == "fft":
            spec = torch.fft.rfft(a, n=self.len)
            e = torch.fft.irfft(spec * spec, n=self.len)[:, : self.m]
        else:  # a grouped conv1d: one group per sample, its own flipped amplitudes as the kernel
            e = F.conv1d(a.unsqueeze(0), a.flip(1).unsqueeze(1), padding=self.k - 1, groups=b).squeeze(0)
        y = torch.zeros(b, self.y_dim, dtype=x.dtype).index_add_(1, self.bins, e * e) * self.c
        if train and self.noise > 0:
            y = y * (1 + self.noise * torch.randn_like(y))
        return y


def step(model, x, theta, dy):
    x.grad = None
    theta.grad = None
    y = model(x, theta)
    y.backward(dy)
    return y


def bench(args):
    torch.manual_seed(1)
    x_dim = args.k // 2
    model = ShgTwin(args.k, args.y_dim, args.form, args.noise)
    x = torch.rand(args.batch, x_dim, requires_grad=True)
    theta = torch.rand(args.k - x_dim, requires_grad=True)
    dy = torch.randn(args.batch, args.y_dim)
    for _ in range(2):
        step(model, x, theta, dy)
    n, start = 0, time.perf_counter()
    while True:
        step(model, x, theta, dy)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds:
            break
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(), "k": args.k,
                      "batch": args.batch, "y_dim": args.y_dim, "form": args.form, "steps": n,
                      "s_per_step": elapsed / n, "samples_per_s": args.batch * n / elapsed}))


def check(path):
    """pnn's outputs and gradients of a case (bench_shg --dump) against this implementation, in float64."""
    raw = open(path, "rb").read()
    k, batch, x_dim, y_dim = struct.unpack_from("<4q", raw)
    floats = torch.tensor(struct.unpack_from("<%df" % ((len(raw) - 32) // 4), raw, 32), dtype=torch.float64)
    sizes = [batch * x_dim, k - x_dim, batch * y_dim, batch * y_dim, batch * x_dim, k - x_dim]
    x, theta, dy, y_pnn, dx_pnn, dt_pnn = torch.split(floats, sizes)
    worst = 0.0
    for form in ("fft", "direct"):
        xv = x.view(batch, x_dim).clone().requires_grad_(True)
        tv = theta.clone().requires_grad_(True)
        y = step(ShgTwin(k, y_dim, form), xv, tv, dy.view(batch, y_dim))
        for name, got, want in (("y", y_pnn, y.detach().flatten()), ("dx", dx_pnn, xv.grad.flatten()),
                                ("dtheta", dt_pnn, tv.grad)):
            err = ((got - want).abs().max() / want.abs().max().clamp(min=1e-30)).item()
            print("%s %-6s normalized difference pnn vs torch: %.3g" % (form, name, err))
            worst = max(worst, err)
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", action="store_true")
    p.add_argument("--check", metavar="FILE")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--y-dim", type=int, default=16)
    p.add_argument("--form", choices=("fft", "direct"), default="fft")
    p.add_argument("--noise", type=float, default=0.01)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        sys.exit(0 if check(args.check) < 1e-4 else 1)
    if args.bench:
        bench(args)
        return
    p.print_help()


if __name__ == "__main__":
    main()
