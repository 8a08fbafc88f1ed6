#!/usr/bin/env python3
"""PyTorch's side of `pnn bench --suite` (section torch): each system's PyTorch reference twin
(oscillator_torch.py, circuit_torch.py, scatter_torch.py, shg_torch.py in this folder, written
from ../shared/PHYSICS.md, independent of the C engine) as one trainable layer, timed at the
suite's points with pnn's default sizes.

  oscillator  N all-to-all coupled oscillators (oscillator_torch.py's layer and device)
  circuit     RK4 over segments x steps time steps, the whole batch one step per iteration
              (a sequential recurrence: small batch ops, as a PyTorch user writes it)
  scatter     y = |x W1^T diag(exp(i theta)) W2^T|^2 with complex64 GEMMs (the folded form)
  shg         the autoconvolution of the shaped spectrum by rfft/irfft, binned |E|^2

Each point times three passes as pnn's suite does: forward (twin, no grad), vjp (a taped twin
forward and its backward for input and controls) and pat (the simulated device's forward, the
twin's forward and backward, one Adam step); the oscillator's device is oscillator_torch's, the
others' the twin's computation with noise (NoisyDevice). Figures: the median of repetitions lasting
--min-s seconds (at least 3), after one untimed call.

Usage:
  python3 benchmarks/reference/systems_torch.py --points circuit:16:32,scatter:256:32 --json -
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import circuit_torch  # noqa: E402  (each system's PyTorch twin, written from PHYSICS.md)
import oscillator_torch  # noqa: E402
import scatter_torch  # noqa: E402
import shg_torch  # noqa: E402


class Layer(torch.nn.Module):
    """One system's twin, y = f(x, theta), with theta its trainable controls."""

    def __init__(self, f, theta):
        super().__init__()
        self.f = f
        self.theta = torch.nn.Parameter(theta)

    def forward(self, x):
        return self.f(x, self.theta)


class NoisyDevice:
    """The simulated device: the twin's computation plus measurement noise, with no graph. Hidden
    differences (pnn's devices have them) change the numbers, not the work, so the cost is the
    device's; shg's device field is complex, so for it this is a lower bound."""

    def __init__(self, layer, seed, noise=0.01, clamp=None):
        self.layer, self.noise, self.clamp = layer, noise, clamp
        self.gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, x):
        y = self.layer(x)
        y = y + self.noise * torch.randn(y.shape, generator=self.gen)
        return y if self.clamp is None else y.clamp(max=self.clamp)


def circuit(segments, gen, steps=20, t_total=4.0):
    """circuit_torch's forward: RK4 over segments x steps, x and theta interleaved."""
    x_dim = y_dim = segments // 2
    order = circuit_torch.layout(segments, x_dim)
    f = lambda x, th: circuit_torch.forward(x, th, segments, steps, y_dim, t_total, order)  # noqa: E731
    return Layer(f, 2 * torch.rand(segments - x_dim, generator=gen) - 1), x_dim, y_dim


def scatter(modes, gen, x_dim=64, y_dim=16):
    """scatter_torch's twin in the folded form (phases folded into W2^T), complex64 GEMMs."""
    tw = scatter_torch.ScatterTwin(x_dim, modes, y_dim, seed=int(torch.randint(1 << 30, (1,), generator=gen)))
    f = lambda x, th: tw.forward(x, th, "folded")  # noqa: E731
    return Layer(f, math.pi * (2 * torch.rand(modes, generator=gen) - 1)), x_dim, y_dim


def shg(k, gen):
    """shg_torch's twin by rfft/irfft."""
    x_dim, y_dim = k // 2, min(2 * k - 1, 16)
    tw = shg_torch.ShgTwin(k, y_dim, form="fft")
    f = lambda x, th: tw(x, th, train=False)  # noqa: E731
    return Layer(f, 0.25 + 0.5 * torch.rand(k - x_dim, generator=gen)), x_dim, y_dim


# ---- timing ----

def make(system, size, batch, seed):
    """(twin module, device, x, dy) of one point; x in the device's input range"""
    gen = torch.Generator().manual_seed(seed)
    if system == "oscillator":
        twin = oscillator_torch.OscillatorLayer(size, gen)
        device, x_dim, y_dim = oscillator_torch.Device(twin, seed), size, size
    elif system in ("circuit", "scatter", "shg"):
        twin, x_dim, y_dim = {"circuit": circuit, "scatter": scatter, "shg": shg}[system](size, gen)
        device = NoisyDevice(twin, seed, clamp=4.0 if system == "scatter" else None)
    else:
        raise SystemExit(f"systems_torch.py: unknown system '{system}' (oscillator, circuit, scatter, shg)")
    lo = -1.0 if system == "circuit" else 0.0
    x = lo + (1.0 - lo) * torch.rand(batch, x_dim, generator=gen)
    return twin, device, x, torch.rand(batch, y_dim, generator=gen)


def median_ms(fn, min_s):
    fn()
    ms, end = [], time.perf_counter() + min_s
    while len(ms) < 3 or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        ms.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ms)


def time_point(system, size, batch, seed, min_s):
    twin, device, x, dy = make(system, size, batch, seed)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def forward():
        with torch.no_grad():
            twin(x)

    def vjp():
        xr = x.clone().requires_grad_(True)
        twin.zero_grad()
        twin(xr).backward(dy)

    def pat():
        y_dev = device(x)
        opt.zero_grad()
        y = twin(x)
        (y + (y_dev - y).detach()).backward(dy)
        opt.step()

    res = {"system": system, "size": size, "batch": batch}
    for name, fn in (("forward", forward), ("vjp", vjp), ("pat", pat)):
        res[name + "_ms"] = median_ms(fn, min_s)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", required=True, help="SYSTEM:SIZE:BATCH,... (size: n, segments, modes or k)")
    ap.add_argument("--min-s", type=float, default=0.2, help="seconds of repetitions per figure")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="-", help="write the figures here (- prints them)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = []
    for spec in args.points.split(","):
        try:
            system, size, batch = spec.split(":")
            size, batch = int(size), int(batch)
        except ValueError:
            raise SystemExit(f"systems_torch.py: point '{spec}' is not SYSTEM:SIZE:BATCH (e.g. circuit:16:32)")
        out.append(time_point(system, size, batch, args.seed, args.min_s))
    text = json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "points": out})
    if args.json != "-":
        with open(args.json, "w") as fh:
            fh.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
