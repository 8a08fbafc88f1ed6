#!/usr/bin/env python3
"""PyTorch reference of pnn's reference experiment: Fashion-MNIST through two networks of
coupled nonlinear oscillators, trained with physics-aware training (PAT). See PHYSICS.md,
section "oscillator", and examples/fmnist-oscillator.yaml.

An independent implementation written from the spec, used as the named reference for speed
comparisons (benchmarks/pat_step.py) and as a cross-check of the C engine.

Modes:
  --mode bench   times PAT steps, in-silico steps and device forward passes at batch 32 on
                 seeded random data; prints the figures and writes them as JSON (--json PATH).
                 --device cuda runs on the GPU (timings synchronize the device); --compile on
                 times the torch.compile'd model, --compile both times eager and compiled in
                 one run (the top-level figures are the first mode's).
  --mode train   trains on Fashion-MNIST (/usr/share/datasets/fashion-mnist/*.gz) and prints
                 the test accuracy measured on the simulated device after each epoch.
  --dump PATH    writes a small golden case (batch 2, twin only, no noise or mismatch) as
                 safetensors for a C test, then exits.

Examples:
  python3 benchmarks/reference/oscillator_torch.py --mode bench --steps 10
  python3 benchmarks/reference/oscillator_torch.py --mode bench --device cuda --compile both
  python3 benchmarks/reference/oscillator_torch.py --mode train --epochs 1 --limit-train 3200
  python3 benchmarks/reference/oscillator_torch.py --dump /tmp/oscillator_golden.safetensors
"""
import argparse
import gzip
import json
import math
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

DT, NT = 0.1, 5          # classic RK4, T = 0.5
ETA, NOISE, MISMATCH = 0.1, 0.02, 0.2
N1, N2, PATCHES, CLASSES = 100, 1610, 16, 10
N_PARAMS = 2_603_811
DATA_DIR = "/usr/share/datasets/fashion-mnist"


def j2q(c, shift=0.0):
    """Q - shift I from C: S = (C + C^T)/2, Q = S off the diagonal, Q_ii = -sum_k S_ki.
    The layers use shift 1, folding the -sin(q) restoring term in: a stage is one addmm."""
    s = 0.5 * (c + c.T)
    return s - torch.diag(s.diagonal() + s.sum(0) + shift)


def integrate(q, m, e, gain=1.0):
    """q(T) of dq/dt = p, dp/dt = s (Q - I) + e with s = sin(gain q), p(0) = 0; RK4, NT steps."""
    p = torch.zeros_like(q)

    def acc(x):
        return torch.addmm(e, torch.sin(x if gain == 1.0 else gain * x), m)

    h = 0.5 * DT
    for _ in range(NT):
        a1 = acc(q)
        p2 = p + h * a1
        a2 = acc(q + h * p)
        p3 = p + h * a2
        a3 = acc(q + h * p2)
        p4 = p + DT * a3
        a4 = acc(q + DT * p3)
        q = q + DT / 6 * (p + 2 * p2 + 2 * p3 + p4)
        p = p + DT / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
    return q


class OscillatorLayer(torch.nn.Module):
    """N all-to-all coupled oscillators; input sets q(0) (zero-padded), output is q(T)."""

    def __init__(self, n, gen):
        super().__init__()
        bound = 1 / math.sqrt(n)  # like nn.Linear(n, n)
        self.n = n
        self.c = torch.nn.Parameter(torch.empty(n, n).uniform_(-bound, bound, generator=gen))
        self.e = torch.nn.Parameter(torch.empty(n).uniform_(-bound, bound, generator=gen))

    def q0(self, x):
        return F.pad(x, (0, self.n - x.shape[1]))

    def forward(self, x):
        """The ideal model: the digital twin."""
        return integrate(self.q0(x), j2q(self.c, 1.0), self.e)


class Device:
    """The simulated physical system behind one layer: s = sin((1+eta) q), a fixed hidden
    coupling Q_n = J2Q(0.2 G) drawn once from the seed, fresh input noise on every call.
    Q_n is drawn on the CPU (the same on every device); on a GPU the noise comes from a
    generator on the GPU, seeded alike."""

    def __init__(self, layer, seed, device="cpu"):
        self.layer = layer
        self.gen = torch.Generator().manual_seed(seed)
        self.qn = j2q(MISMATCH * torch.randn(layer.n, layer.n, generator=self.gen)).to(device)
        if torch.device(device).type != "cpu":
            self.gen = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def __call__(self, x):
        q = self.layer.q0(x)
        q = q + NOISE * torch.randn(q.shape, generator=self.gen, device=q.device)
        m = j2q(self.layer.c, 1.0) + self.qn  # Q + Q_n - I: one matmul per stage
        return integrate(q, m, self.layer.e, 1.0 + ETA)


class Net(torch.nn.Module):
    """patches -> 100-oscillator layer (shared) -> concat, pad 10 -> 1610 oscillators -> last 10
    amplitudes times a trainable scale -> logits."""

    def __init__(self, seed=1, device="cpu"):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.osc1 = OscillatorLayer(N1, gen)
        self.osc2 = OscillatorLayer(N2, gen)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.to(device)
        self.dev1 = Device(self.osc1, seed=seed * 1000 + 1, device=device)
        self.dev2 = Device(self.osc2, seed=seed * 1000 + 2, device=device)
        n_params = sum(p.numel() for p in self.parameters())
        assert n_params == N_PARAMS, f"{n_params} parameters, expected {N_PARAMS}"

    @staticmethod
    def patchify(img):
        """[B, 28, 28] -> [B*16, 49]: patch-major, row-major inside a patch."""
        b = img.shape[0]
        return img.reshape(b, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(b * PATCHES, 49)

    @staticmethod
    def physical(layer, device, x, method):
        """One physical layer. pat: value from the device, gradient through the twin."""
        if method == "twin":
            return layer(x)
        if method == "device":
            return device(x)
        y_twin = layer(x)
        y_phys = device(x)
        return y_twin + (y_phys - y_twin).detach()

    def forward(self, img, method="pat"):
        """method: 'pat' (training), 'twin' (in silico) or 'device' (inference on hardware)."""
        b = img.shape[0]
        y1 = self.physical(self.osc1, self.dev1, self.patchify(img), method)
        y2 = self.physical(self.osc2, self.dev2, y1.reshape(b, PATCHES * N1), method)
        return self.scale * y2[:, -CLASSES:]


def step_flops(batch):
    """GEMM FLOPs of one forward pass (2 rows N^2 per RK4 stage) and of the training steps:
    PAT = device + twin forward + backward (~2x the twin's GEMMs); in silico = twin + backward."""
    fwd = 4 * NT * 2.0 * (batch * PATCHES * N1 * N1 + batch * N2 * N2)
    return {"forward": fwd, "pat": 4 * fwd, "insilico": 3 * fwd}


def train_step(net, opt, x, y, method):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x, method), y)
    loss.backward()
    opt.step()
    return loss.item()


def timed(fn, warmup, steps, device="cpu"):
    """ms per call; on a GPU each call is followed by a synchronize, so the time is the work's"""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync()
        ms.append(1e3 * (time.perf_counter() - t0))
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "all": ms}


def bench_mode(args, compiled):
    """The three timings of one mode (eager or torch.compile) on a fresh, identically seeded net."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 28, 28, generator=gen).to(args.device)
    y = torch.randint(0, CLASSES, (args.batch,), generator=gen).to(args.device)
    net = Net(args.seed, args.device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    model = torch.compile(net) if compiled else net
    res = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        res["device_forward_ms"] = timed(lambda: model(x, "device"), args.warmup, args.steps, args.device)
    res["pat_ms"] = timed(lambda: train_step(model, opt, x, y, "pat"), args.warmup, args.steps, args.device)
    res["insilico_ms"] = timed(lambda: train_step(model, opt, x, y, "twin"), args.warmup, args.steps, args.device)
    res["wall_s"] = time.perf_counter() - t0  # compiled: includes compilation in the warm-up
    fl = step_flops(args.batch)
    res["flops"] = fl
    res["gflops_achieved"] = {
        "pat": fl["pat"] / res["pat_ms"]["median"] / 1e6,
        "insilico": fl["insilico"] / res["insilico_ms"]["median"] / 1e6,
        "device_forward": fl["forward"] / res["device_forward_ms"]["median"] / 1e6}
    print(f"{'torch.compile' if compiled else 'eager'}:")
    for key, name, f in (("pat_ms", "PAT step", "pat"), ("insilico_ms", "in-silico step", "insilico"),
                         ("device_forward_ms", "device forward", "forward")):
        t = res[key]
        print(f"{name:>15}: median {t['median']:8.2f} ms  (min {t['min']:.2f}, max {t['max']:.2f})  "
              f"{fl[f] / 1e9:.2f} GFLOP, {res['gflops_achieved'][f if f != 'forward' else 'device_forward']:.1f} "
              f"GFLOP/s")
    return res


def bench(args):
    res = {"benchmark": "oscillator_torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "python": platform.python_version(), "batch": args.batch, "warmup": args.warmup, "steps": args.steps,
           "device": args.device}
    if torch.device(args.device).type == "cuda":
        res["gpu"] = torch.cuda.get_device_name()
        res["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    print(f"torch {torch.__version__}, {args.device}, {res['threads']} threads, batch {args.batch}, "
          f"{args.steps} steps after {args.warmup} warm-up")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    for compiled in modes:
        r = bench_mode(args, compiled)
        res["compiled" if compiled else "eager"] = r
    res.update(res["compiled" if modes[0] else "eager"])  # top level: the first mode, as before
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


def read_idx(path):
    """An IDX file (gzip) as a numpy array."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if raw[2] != 0x08 or int(np.prod(dims)) != len(raw) - 4 - 4 * ndim:
        raise ValueError(f"{path}: not a well-formed IDX file of unsigned bytes")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(kind, limit):
    img = read_idx(os.path.join(DATA_DIR, f"{kind}-images-idx3-ubyte.gz"))
    lab = read_idx(os.path.join(DATA_DIR, f"{kind}-labels-idx1-ubyte.gz"))
    if limit:
        img, lab = img[:limit], lab[:limit]
    return torch.from_numpy(img.astype(np.float32) / 255.0), torch.from_numpy(lab.astype(np.int64))


@torch.no_grad()
def evaluate(net, img, lab, batch):
    """Accuracy on the device: over all images, and the mean of per-batch accuracies (as the
    reference reports it)."""
    correct, per_batch = 0, []
    for i in range(0, len(img), batch):
        dev = next(net.parameters()).device
        hit = (net(img[i:i + batch].to(dev), "device").argmax(1).cpu() == lab[i:i + batch]).sum().item()
        correct += hit
        per_batch.append(hit / len(lab[i:i + batch]))
    return correct / len(img), sum(per_batch) / len(per_batch)


def train(args):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = load_split("train", args.limit_train)
    xte, yte = load_split("t10k", args.limit_test)
    net = Net(args.seed, args.device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    method = "pat" if args.method == "pat" else "twin"
    print(f"{args.method}: {len(xtr)} training images, {len(xte)} test images, batch {args.batch}")
    for epoch in range(1, args.epochs + 1):
        t0, losses = time.perf_counter(), []
        order = torch.randperm(len(xtr), generator=gen)
        for k, i in enumerate(range(0, len(xtr), args.batch)):
            idx = order[i:i + args.batch]
            x = xtr[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None], x.flip(-1), x)
            losses.append(train_step(net, opt, x.to(args.device), ytr[idx].to(args.device), method))
            if args.log_every and (k + 1) % args.log_every == 0:
                print(f"  epoch {epoch} step {k + 1}: loss {statistics.mean(losses[-args.log_every:]):.4f}")
        dt = time.perf_counter() - t0
        acc, acc_batches = evaluate(net, xte, yte, args.batch)
        print(f"epoch {epoch}: loss {statistics.mean(losses):.4f}, {1e3 * dt / len(losses):.0f} ms/step, "
              f"test accuracy on device {100 * acc:.2f}% (mean of per-batch accuracies {100 * acc_batches:.2f}%)")


def dump(args):
    """Golden case for a C test: batch 2, twin only (no noise, no mismatch), computed in float64
    and stored as F32. Inputs and parameters are drawn in float32, so they are stored exactly."""
    from safetensors.torch import save_file
    net = Net(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand(2, 28, 28, generator=gen)
    y = torch.randint(0, CLASSES, (2,), generator=gen)
    net = net.double()
    xd = x.double()
    y1 = net.osc1(net.patchify(xd))
    y2 = net.osc2(y1.reshape(2, PATCHES * N1))
    logits = net.scale * y2[:, -CLASSES:]
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out = {"input": xd, "labels": y.double(), "osc1.c": net.osc1.c, "osc1.e": net.osc1.e,
           "osc2.c": net.osc2.c, "osc2.e": net.osc2.e, "out.scale": net.scale.reshape(1),
           "osc1.y": y1, "osc2.y": y2, "logits": logits, "loss": loss.reshape(1)}
    for name, p in net.named_parameters():
        key = "out.scale" if name == "scale" else name
        out["grad." + key] = p.grad.reshape(p.shape or (1,))
    out = {k: v.detach().float().contiguous() for k, v in out.items()}
    meta = {"seed": str(args.seed), "dt": str(DT), "nt": str(NT), "loss": "cross_entropy mean over batch",
            "note": "twin only, no noise, no mismatch; computed in float64"}
    save_file(out, args.dump, metadata=meta)
    print(f"wrote {args.dump}: loss {loss.item():.10f}, {len(out)} tensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("bench", "train"), default="bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bench and train)")
    ap.add_argument("--compile", choices=("off", "on", "both"), default="off",
                    help="bench: eager (off), torch.compile (on), or both in one run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=20, help="bench: timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="bench: untimed steps first")
    ap.add_argument("--json", help="bench: write the figures here")
    ap.add_argument("--epochs", type=int, default=1, help="train: epochs")
    ap.add_argument("--method", choices=("pat", "insilico"), default="pat", help="train: PAT or twin only")
    ap.add_argument("--limit-train", type=int, default=0, help="train: first K training images (0: all)")
    ap.add_argument("--limit-test", type=int, default=0, help="train: first K test images (0: all)")
    ap.add_argument("--log-every", type=int, default=100, help="train: print the loss every K steps")
    ap.add_argument("--dump", help="write the golden case to this .safetensors file and exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.dump:
        dump(args)
    elif args.mode == "bench":
        bench(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
