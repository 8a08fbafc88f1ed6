"""Train the vowels network from Python, with a Python function as the physical device.

The "instrument" below stands in for a lab's driver: a NumPy program for 40 coupled nonlinear
oscillators that differs from pnn's model of them the way hardware does (a hidden coupling, a
stiffer nonlinearity, input noise; ../shared/PHYSICS.md, "oscillator"). pnn calls it for every
forward pass, behind the same queue as any device (retries, timing, the NaN check), and runs
the backward pass through its own analytic oscillator twin, which the registration's system_uri
names. The result is read back into NumPy. With --torch-twin, the backward pass runs through a
PyTorch model of the same physics instead (pnn.TorchTwin), as a lab's existing digital model would.

    pip install .                      # from the repository root (docs/python.md)
    python3 examples/python_vowels.py [--torch-twin] [RUN_DIR]   # a few seconds
"""
import os
import sys
import tempfile

import numpy as np

import pnn

N, NT, DT, ETA = 40, 10, 0.1, 0.1
HERE = os.path.dirname(os.path.abspath(__file__))


def j2q(c):
    """Q from a coupling C: S = (C + C^T)/2 off the diagonal, Q_ii = -sum_k S_ki."""
    s = 0.5 * (c + c.T)
    return s - np.diag(np.diag(s) + s.sum(0))


class Instrument:
    """y = q(T) of the oscillators started at q(0) = x + noise, at rest; theta = [C (N x N), e (N)]."""

    def __init__(self, seed=1):
        rng = np.random.default_rng(seed)
        self.hidden = j2q(0.2 * rng.standard_normal((N, N))).astype(np.float32)  # what no model knows
        self.noise = np.random.default_rng(seed + 1000)
        self.calls = 0

    def __call__(self, x, theta):
        self.calls += 1
        c, e = theta[:N * N].reshape(N, N), theta[N * N:]
        m = (j2q(c) - np.eye(N) + self.hidden).astype(np.float32)
        q = x + 0.02 * self.noise.standard_normal(x.shape).astype(np.float32)
        p = np.zeros_like(q)

        def acc(q):
            return np.sin((1 + ETA) * q) @ m + e

        for _ in range(NT):  # classic RK4
            a1 = acc(q)
            a2 = acc(q + 0.5 * DT * p)
            a3 = acc(q + 0.5 * DT * (p + 0.5 * DT * a1))
            a4 = acc(q + DT * (p + 0.5 * DT * a2))
            q, p = (q + DT * p + DT * DT / 6 * (a1 + a2 + a3),
                    p + DT / 6 * (a1 + 2 * a2 + 2 * a3 + a4))
        return q


def torch_oscillators():
    """The ideal physics (no hidden coupling, sin(q), no noise) as a PyTorch module: model(x, theta)."""
    import torch

    class Oscillators(torch.nn.Module):
        def forward(self, x, theta):
            c, e = theta[:N * N].reshape(N, N), theta[N * N:]
            s = 0.5 * (c + c.T)
            m = s - torch.diag(torch.diagonal(s) + s.sum(0)) - torch.eye(N)
            q, p = x, torch.zeros_like(x)
            for _ in range(NT):
                a1 = torch.sin(q) @ m + e
                a2 = torch.sin(q + 0.5 * DT * p) @ m + e
                a3 = torch.sin(q + 0.5 * DT * (p + 0.5 * DT * a1)) @ m + e
                a4 = torch.sin(q + DT * (p + 0.5 * DT * a2)) @ m + e
                q, p = q + DT * p + DT * DT / 6 * (a1 + a2 + a3), p + DT / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            return q

    return Oscillators()


def main():
    args = [a for a in sys.argv[1:] if a != "--torch-twin"]
    instrument = Instrument()
    reg = pnn.register_device(instrument, x_dim=N, y_dim=N, theta_dim=N * N + N, name="lab-oscillators",
                              system_uri=f"sim:oscillator?n={N}&nt={NT}&seed=1")
    out = args[0] if args else tempfile.mkdtemp(prefix="pnn-python-vowels-")
    overrides = {"network.1.device": reg.uri, "epochs": 30,
                 "data.path": os.path.join(HERE, "..", "data", "vowels_hillenbrand_women.csv")}
    twin = None
    if "--torch-twin" in sys.argv:
        twin = pnn.TorchTwin(torch_oscillators(), x_dim=N, y_dim=N, theta_dim=N * N + N)
        overrides["network.1.twin"] = twin.spec
    res = pnn.train(os.path.join(HERE, "vowels-oscillator.yaml"), out=out, overrides=overrides, progress=False)
    print(f"trained in {res['train_s']:.1f} s with {instrument.calls} calls of the Python instrument: test accuracy "
          f"on it {100 * res['test_acc_device']:.1f} %, on the twin ({'PyTorch' if twin else 'pnn'}) "
          f"{100 * res['test_acc_twin']:.1f} %")

    params = pnn.load_checkpoint(os.path.join(res["run_dir"], "checkpoint.safetensors"))
    c = params["osc.C"]
    print(f"the learned coupling C: shape {c.shape}, mean |C| {np.abs(c).mean():.3f}; the encoder "
          f"{params['enc.weight'].shape}; {len(params)} tensors in the checkpoint (parameters and Adam's state)")

    # the trained controls, run on the instrument by hand: one forward through pnn's queue
    dev = pnn.Device(reg.uri)
    theta = np.concatenate([c.ravel(), params["osc.e"].ravel()]).astype(np.float32)
    y = dev.forward(np.zeros((2, N), np.float32), theta)
    print(f"one more call by hand: y {y.shape}, counters {dev.counters['calls']} call(s)")
    dev.close()
    reg.unregister()
    if twin:
        twin.unregister()
    return res


if __name__ == "__main__":
    main()
