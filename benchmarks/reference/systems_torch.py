#!/usr/bin/env python3
"""PyTorch references of pnn's physical systems, one layer each, for the side-by-side column of
`pnn bench --suite` (section torch). Written from ../shared/PHYSICS.md and the parameters pnn's
simulators use by default; independent of the C engine.

  oscillator  N all-to-all coupled oscillators (oscillator_torch.py's layer and device)
  circuit     driven damped oscillator with a tanh element, RK4 over segments x steps time steps
              (a sequential recurrence: one small batch op per stage, as a PyTorch user writes it)
  scatter     y = |x B1 diag(exp(i theta)) B2|^2 with complex64 GEMMs (the fields form)
  shg         the autoconvolution of the shaped spectrum by FFT (rfft/irfft), binned |E|^2

Each point times three passes as pnn's suite does: forward (twin, no grad), vjp (a taped twin
forward and its backward for input and controls) and pat (the simulated device's forward, the
twin's forward and backward, one Adam step). The devices hold hidden differences of the sizes
PHYSICS.md gives (component tolerances, perturbed media, chirp and phase matching, noise), so a
device call costs about what pnn's simulator spends. Figures: the median of repetitions lasting
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
import oscillator_torch  # noqa: E402  (the oscillator's layer and device)


# ---- circuit: v'' + (w0/Qf) v' + w0^2 v + alpha tanh(kappa v) = w0^2 u ----

def circuit_sources(segments, x_dim):
    """(index into [x, theta], for each segment): the interleaved layout of pnn's circuit"""
    out = []
    for i in range(segments):
        j = (i * x_dim + segments - 1) // segments
        out.append(j if j < x_dim and j * segments // x_dim == i else x_dim + i - j)
    return out


class Circuit(torch.nn.Module):
    """The ideal circuit (the twin): drive u from x and theta (clipped to the rails), RK4 with
    u constant over each step, v sampled at y_dim equally spaced steps."""

    def __init__(self, segments, gen, steps=20, T=4.0, w0=2 * math.pi, qf=4.0, alpha=20.0, kappa=2.0):
        super().__init__()
        self.s, self.steps, self.dt = segments, steps, T / (segments * steps)
        self.x_dim = self.y_dim = segments // 2
        self.consts = (w0, qf, alpha, kappa)
        self.theta = torch.nn.Parameter(2 * torch.rand(segments - self.x_dim, generator=gen) - 1)
        self.register_buffer("src", torch.tensor(circuit_sources(segments, self.x_dim)))
        n = segments * steps
        self.sample = {(j + 1) * n // self.y_dim: j for j in range(self.y_dim)}

    def forward(self, x, consts=None):
        w0, qf, alpha, kappa = consts or self.consts
        a, c, h = w0 * w0, w0 / qf, self.dt
        u = torch.cat([x, self.theta.expand(x.shape[0], -1)], 1)[:, self.src].clamp(-1, 1)
        v = torch.zeros(x.shape[0])
        w = torch.zeros_like(v)
        out = [None] * self.y_dim

        def force(v, w, ub):
            return a * (ub - v) - c * w - alpha * torch.tanh(kappa * v)

        for n in range(self.s * self.steps):
            ub = u[:, n // self.steps]
            f1 = force(v, w, ub)
            w2 = w + 0.5 * h * f1
            f2 = force(v + 0.5 * h * w, w2, ub)
            w3 = w + 0.5 * h * f2
            f3 = force(v + 0.5 * h * w2, w3, ub)
            w4 = w + h * f3
            f4 = force(v + h * w3, w4, ub)
            v, w = v + h / 6 * (w + 2 * (w2 + w3) + w4), w + h / 6 * (f1 + 2 * (f2 + f3) + f4)
            if n + 1 in self.sample:
                out[self.sample[n + 1]] = v
        return torch.stack(out, 1)


class CircuitDevice:
    """Component tolerances of 5% on w0, Qf, alpha, kappa (one draw per device) and measurement
    noise 0.01 on every output sample."""

    def __init__(self, twin, seed):
        self.twin, self.gen = twin, torch.Generator().manual_seed(seed)
        g = torch.randn(4, generator=self.gen)
        self.consts = tuple(v * math.exp(0.05 * float(e)) for v, e in zip(twin.consts, g))

    @torch.no_grad()
    def __call__(self, x):
        y = self.twin(x, self.consts)
        return y + 0.01 * torch.randn(y.shape, generator=self.gen)


# ---- scatter: y = |x B1 diag(exp(i theta)) B2|^2 ----

class Scatter(torch.nn.Module):
    def __init__(self, modes, gen, x_dim=64, y_dim=16):
        super().__init__()
        self.x_dim, self.y_dim = x_dim, y_dim

        def medium(rows, cols):  # complex Gaussian, E|c|^2 = 1/rows
            re, im = torch.randn(2, rows, cols, generator=gen) * math.sqrt(0.5 / rows)
            return torch.complex(re, im)

        self.register_buffer("b1", medium(x_dim, modes))
        self.register_buffer("b2", medium(modes, y_dim))
        self.theta = torch.nn.Parameter(math.pi * (2 * torch.rand(modes, generator=gen) - 1))

    def forward(self, x, b1=None, b2=None, gamma=0.0):
        t = self.theta + gamma * torch.sin(self.theta) if gamma else self.theta
        w = torch.polar(torch.ones_like(t), t)[:, None] * (self.b2 if b2 is None else b2)  # diag(phi) B2
        z = (x.to(torch.complex64) @ (self.b1 if b1 is None else b1)) @ w
        return z.real ** 2 + z.imag ** 2


class ScatterDevice:
    """Media perturbed by 5% (relative), the modulator's nonlinearity theta + 0.1 sin theta,
    camera noise 0.01 and a full well at 4."""

    def __init__(self, twin, seed):
        self.twin, self.gen = twin, torch.Generator().manual_seed(seed)

        def perturb(m):
            re, im = torch.randn(2, *m.shape, generator=self.gen) * 0.05 * math.sqrt(0.5)
            return m + m.abs().mean() * torch.complex(re, im)

        self.b1, self.b2 = perturb(twin.b1), perturb(twin.b2)

    @torch.no_grad()
    def __call__(self, x):
        y = self.twin(x, self.b1, self.b2, 0.1)
        return (y + 0.01 * torch.randn(y.shape, generator=self.gen)).clamp(max=4.0)


# ---- shg: E(m) = sum_{k+l=m} a_k a_l, y_j = c sum_{m in bin j} |E(m)|^2 ----

class Shg(torch.nn.Module):
    def __init__(self, k, gen):
        super().__init__()
        self.k, self.x_dim, self.y_dim = k, k // 2, min(2 * k - 1, 16)
        m = 2 * k - 1
        self.m, self.fft_len = m, 1 << (m - 1).bit_length()
        bins = torch.zeros(m, self.y_dim)
        for j in range(self.y_dim):
            bins[j * m // self.y_dim:(j + 1) * m // self.y_dim, j] = 1.0
        self.register_buffer("bins", bins * (self.y_dim / (k * (2 * k * k + 1) / 3)))  # open pulse's mean bin = 1
        self.theta = torch.nn.Parameter(0.25 + 0.5 * torch.rand(k - self.x_dim, generator=gen))

    def forward(self, x, phase=None, pm=None):
        a = torch.cat([x, self.theta.expand(x.shape[0], -1)], 1).clamp(0, 1).sqrt()
        if phase is None:  # flat phase: a real autoconvolution
            e = torch.fft.irfft(torch.fft.rfft(a, self.fft_len) ** 2, self.fft_len)[:, :self.m]
            p = e * e
        else:
            ac = a.to(torch.complex64) * phase
            e = torch.fft.ifft(torch.fft.fft(ac, self.fft_len) ** 2)[:, :self.m] * pm
            p = e.real ** 2 + e.imag ** 2
        return p @ self.bins


class ShgDevice:
    """A residual quadratic spectral phase, finite phase matching (sinc), detector noise 1% and
    a dark offset 0.02."""

    def __init__(self, twin, seed):
        self.twin, self.gen = twin, torch.Generator().manual_seed(seed)
        half, k = twin.k / 2, torch.arange(twin.k, dtype=torch.float32)
        beta = 0.75 / (half * half)
        self.phase = torch.polar(torch.ones(twin.k), beta * (k - half) ** 2)
        xm = (torch.arange(twin.m, dtype=torch.float32) - (twin.k - 1)) / (twin.k - 1)
        self.pm = torch.sinc(xm / math.pi).to(torch.complex64)  # sin(x)/x

    @torch.no_grad()
    def __call__(self, x):
        y = self.twin(x, self.phase, self.pm)
        return y * (1 + 0.01 * torch.randn(y.shape, generator=self.gen)) + 0.02


# ---- timing ----

def make(system, size, batch, seed):
    """(twin module, device, x, dy) of one point; x in the device's input range"""
    gen = torch.Generator().manual_seed(seed)
    if system == "oscillator":
        twin = oscillator_torch.OscillatorLayer(size, gen)
        device, x_dim, y_dim = oscillator_torch.Device(twin, seed), size, size
        x = torch.rand(batch, x_dim, generator=gen)
    elif system == "circuit":
        twin = Circuit(size, gen)
        device, x_dim, y_dim = CircuitDevice(twin, seed), twin.x_dim, twin.y_dim
        x = 2 * torch.rand(batch, x_dim, generator=gen) - 1
    elif system == "scatter":
        twin = Scatter(size, gen)
        device, x_dim, y_dim = ScatterDevice(twin, seed), twin.x_dim, twin.y_dim
        x = torch.rand(batch, x_dim, generator=gen)
    elif system == "shg":
        twin = Shg(size, gen)
        device, x_dim, y_dim = ShgDevice(twin, seed), twin.x_dim, twin.y_dim
        x = torch.rand(batch, x_dim, generator=gen)
    else:
        raise SystemExit(f"systems_torch.py: unknown system '{system}' (oscillator, circuit, scatter, shg)")
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
