"""Tests of the Python package (run by tools/test.sh through pytest, after `pip install .`)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import pnn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOWELS = os.path.join(ROOT, "examples", "vowels-oscillator.yaml")
N = 40  # the vowels network's oscillators
sys.path.insert(0, os.path.join(ROOT, "examples"))
import python_vowels  # noqa: E402  (the example: its NumPy instrument and PyTorch model)


def cli():
    path = os.environ.get("PNN_CLI", os.path.join(ROOT, "build", "pnn"))
    assert os.path.exists(path), f"the pnn command is not at {path}: build it (bash tools/setup.sh) or set PNN_CLI"
    return path


def j2q(c):
    s = 0.5 * (c + c.T)
    return s - np.diag(np.diag(s) + s.sum(0))


def oscillators(x, theta, n=N, nt=10, dt=0.1, eta=0.0, hidden=None):
    """pnn's oscillator physics in NumPy (float64): q(T) from q(0) = x, at rest."""
    c, e = theta[:n * n].reshape(n, n).astype(np.float64), theta[n * n:].astype(np.float64)
    m = j2q(c) - np.eye(n) + (0 if hidden is None else hidden)
    q, p = x.astype(np.float64), np.zeros(x.shape)
    acc = lambda q: np.sin((1 + eta) * q) @ m + e  # noqa: E731
    for _ in range(nt):
        a1 = acc(q)
        a2 = acc(q + 0.5 * dt * p)
        a3 = acc(q + 0.5 * dt * (p + 0.5 * dt * a1))
        a4 = acc(q + dt * (p + 0.5 * dt * a2))
        q, p = q + dt * p + dt * dt / 6 * (a1 + a2 + a3), p + dt / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
    return q.astype(np.float32)


# ---- devices and twins ----

def test_device_forward_is_the_simulator_and_deterministic():
    with pnn.Device("sim:oscillator?n=8&nt=5&noise=0&mismatch=0&seed=3") as d:
        assert (d.x_dim, d.y_dim, d.theta_dim, d.system) == (8, 8, 72, "oscillator")
        tw = pnn.Twin(d)
        theta = tw.init_theta(seed=1, name="osc")
        x = np.random.default_rng(0).uniform(-1, 1, (5, 8)).astype(np.float32)
        y = d.forward(x, theta)
        # an ideal, noise-free device is its twin, and both are pnn's physics
        np.testing.assert_allclose(y, tw.forward(x, theta), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y, oscillators(x, theta, n=8, nt=5), rtol=1e-4, atol=1e-5)
        req = d.submit(x, theta)
        np.testing.assert_array_equal(req.wait(), y)
        assert d.counters["calls"] == 2 and d.counters["faults"] == 0


def test_record_and_replay_from_python(tmp_path):
    rec = tmp_path / "osc.pnnrec"
    x = np.random.default_rng(2).uniform(-1, 1, (4, 8)).astype(np.float32)
    with pnn.Device(f"record:{rec}@sim:oscillator?n=8&seed=5") as d:
        theta = pnn.Twin(d).init_theta(seed=1)
        ys = [d.forward(x, theta) for _ in range(3)]
    with pnn.Device(f"replay:{rec}") as r:
        assert (r.x_dim, r.theta_dim, r.system) == (8, 72, "oscillator")
        for y in ys:
            np.testing.assert_array_equal(r.forward(x, theta), y)
        with pytest.raises(pnn.Error, match="recording"):
            r.forward(x, theta)  # the recording has no fourth call


def test_requests_live_until_waited_and_timeouts_are_told_apart():
    import gc
    slow = pnn.register_device(lambda x, t: (__import__("time").sleep(0.05), x)[1], x_dim=2, y_dim=2, theta_dim=1)
    with pnn.Device(slow.uri) as d:
        theta = np.zeros(1, np.float32)
        d.submit(np.ones((3, 2), np.float32), theta)  # dropped at once: the device keeps it until done
        gc.collect()
        r = d.submit(np.full((1, 2), 2, np.float32), theta)
        with pytest.raises(TimeoutError, match="still running"):
            r.wait(timeout=0.001)
        np.testing.assert_array_equal(r.wait(), [[2, 2]])
    slow.unregister()
    # a request that itself times out (a dropped reply) is a device error, not "still running"
    with pnn.Device("sim:oscillator?n=4&drop_rate=1&timeout_ms=50") as d:
        d.set_retry(0, 1)
        r = d.submit(np.zeros((1, 4), np.float32), np.zeros(20, np.float32))
        with pytest.raises(pnn.DeviceError, match="timed out|timeout|no reply|dropped"):
            r.wait(timeout=5)
    # closing a device closes the twins made over it
    d = pnn.Device("sim:oscillator?n=4")
    tw = pnn.Twin(d)
    d.close()
    with pytest.raises(ValueError, match="closed"):
        tw.init_theta()


def test_twin_vjp_matches_finite_differences():
    with pnn.Device("sim:oscillator?n=6&nt=5&seed=1") as d:
        tw = pnn.Twin(d, noise=0.0)
        rng = np.random.default_rng(1)
        theta = tw.init_theta(seed=2)
        x = rng.uniform(-1, 1, (3, 6)).astype(np.float32)
        dy = rng.standard_normal((3, 6)).astype(np.float32)
        tw.forward(x, theta, slot=0)
        dx, dtheta = tw.vjp(dy, theta, slot=0)

        def loss(xx, th):
            return float((tw.forward(xx, th).astype(np.float64) * dy).sum())

        h = 1e-2
        for i, j in ((0, 0), (2, 5)):
            xp, xm = x.copy(), x.copy()
            xp[i, j] += h
            xm[i, j] -= h
            assert abs((loss(xp, theta) - loss(xm, theta)) / (2 * h) - dx[i, j]) < 2e-3 * (1 + abs(dx[i, j]))
        for k in (0, 7, 40):
            tp, tm = theta.copy(), theta.copy()
            tp[k] += h
            tm[k] -= h
            assert abs((loss(x, tp) - loss(x, tm)) / (2 * h) - dtheta[k]) < 2e-3 * (1 + abs(dtheta[k]))


def test_bad_arguments_name_themselves():
    with pnn.Device("sim:oscillator?n=8") as d:
        theta = np.zeros(72, np.float32)
        with pytest.raises(TypeError, match=r"^x: dtype float64; .*astype\(np.float32\)"):
            d.forward(np.zeros((2, 8)), theta)
        with pytest.raises(ValueError, match=r"^theta: shape \(71,\), expected \[72\]"):
            d.forward(np.zeros((2, 8), np.float32), theta[:71])
        with pytest.raises(ValueError, match=r"^x: shape \(2, 7\), expected \[\?x8\]"):
            d.forward(np.zeros((2, 7), np.float32), theta)
        with pytest.raises(TypeError, match="^x: expected a NumPy float32 array, got list"):
            d.forward([[0.0] * 8], theta)
    with pytest.raises(pnn.InvalidError, match="did you mean 'oscillator'") as e:
        pnn.Device("sim:oscilator?n=8")
    assert e.value.status == "invalid"
    with pytest.raises(pnn.InvalidError, match="unknown key 'm'|'m'"):
        pnn.Device("sim:oscillator?m=8")


# ---- a Python function as a device ----

def test_python_device_runs_behind_the_queue():
    calls = []

    def driver(x, theta):
        calls.append(x.shape[0])
        assert not x.flags.writeable
        return 2 * x[:, :3] + theta[0]

    with pnn.register_device(driver, x_dim=4, y_dim=3, theta_dim=1) as reg:
        assert reg.uri.startswith("callback:")
        with pnn.Device(reg.uri) as d:
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            y = d.forward(x, np.array([0.5], np.float32))
            np.testing.assert_array_equal(y, 2 * x[:, :3] + 0.5)
            reqs = [d.submit(x, np.array([k], np.float32)) for k in range(3)]
            for k, r in enumerate(reqs):
                np.testing.assert_array_equal(r.wait(timeout=10), 2 * x[:, :3] + k)
            assert d.counters["calls"] == 4 and calls == [2, 2, 2, 2]
            with pytest.raises(pnn.InvalidError, match="in use"):
                reg.unregister()
    with pytest.raises(pnn.NotFoundError, match="no callback device called 'nobody'"):
        pnn.Device("callback:nobody")
    # a stale registration's unregister leaves a newer one under the same name alone
    a = pnn.register_device(driver, x_dim=4, y_dim=3, theta_dim=1, name="same")
    a.unregister()
    b = pnn.register_device(driver, x_dim=4, y_dim=3, theta_dim=1, name="same")
    a.unregister()
    pnn.Device(b.uri).close()
    b.unregister()


def test_python_device_that_raises_or_returns_nan_is_a_fault():
    state = {"n": 0}

    def flaky(x, theta):
        state["n"] += 1
        if state["n"] == 1:
            raise pnn.DeviceFault("the shutter stuck")
        if state["n"] == 2:
            return np.full((x.shape[0], 2), np.nan, np.float32)
        return np.ones((x.shape[0], 2), np.float32)

    with pnn.register_device(flaky, x_dim=2, y_dim=2, theta_dim=1) as reg, pnn.Device(reg.uri) as d:
        d.set_retry(retries=3, backoff_ms=1)
        y = d.forward(np.zeros((1, 2), np.float32), np.zeros(1, np.float32))
        assert (y == 1).all()
        c = d.counters
        assert (c["calls"], c["faults"], c["retries"]) == (1, 2, 2), c

    def broken(x, theta):
        return {}["missing"]

    with pnn.register_device(broken, x_dim=2, y_dim=2, theta_dim=1) as reg, pnn.Device(reg.uri) as d:
        d.set_retry(retries=1, backoff_ms=1)
        with pytest.raises(pnn.DeviceError, match=r"(?s)raised KeyError: 'missing'.*Traceback.*in broken"):
            d.forward(np.zeros((1, 2), np.float32), np.zeros(1, np.float32))
        assert d.counters["faults"] == 2

    with pnn.register_device(lambda x, t: np.zeros((1, 5), np.float32), x_dim=2, y_dim=2, theta_dim=1) as reg:
        with pnn.Device(reg.uri) as d, pytest.raises(pnn.FormatError, match=r"returned y of shape \(1, 5\), expected \(1, 2\)"):
            d.forward(np.zeros((1, 2), np.float32), np.zeros(1, np.float32))


def instrument(seed=1):
    hidden = j2q(0.2 * np.random.default_rng(seed).standard_normal((N, N)))
    rng = np.random.default_rng(seed + 1)
    return lambda x, theta: oscillators(x + 0.02 * rng.standard_normal(x.shape), theta, eta=0.1, hidden=hidden)


def test_vowels_trained_with_a_python_instrument(tmp_path):
    reg = pnn.register_device(instrument(), x_dim=N, y_dim=N, theta_dim=N * N + N,
                              system_uri=f"sim:oscillator?n={N}&nt=10&seed=1")
    seen = []
    res = pnn.train(VOWELS, overrides={"network.1.device": reg.uri, "epochs": 8}, out=tmp_path / "run",
                    progress=seen.append)
    reg.unregister()
    epochs = [p for p in seen if p["phase"] == "epoch_done"]
    assert len(epochs) == 8 and epochs[-1]["loss"] < 0.5 * epochs[0]["loss"], epochs
    assert res["test_acc_device"] > 0.8, res
    params = pnn.load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert params["osc.C"].shape == (N, N) and params["osc.e"].shape == (N,)


def test_a_failing_instrument_ends_the_run_with_its_traceback_and_a_checkpoint(tmp_path):
    good = instrument()
    count = {"n": 0}

    def dies(x, theta):
        count["n"] += 1
        if count["n"] > 30:
            raise RuntimeError("the laser interlock tripped")
        return good(x, theta)

    reg = pnn.register_device(dies, x_dim=N, y_dim=N, theta_dim=N * N + N,
                              system_uri=f"sim:oscillator?n={N}&nt=10&seed=1")
    with pytest.raises(pnn.DeviceError, match=r"(?s)RuntimeError: the laser interlock tripped.*state .* is saved"):
        pnn.train(VOWELS, overrides={"network.1.device": reg.uri, "bridge.backoff_ms": 1}, out=tmp_path / "run",
                  progress=False)
    reg.unregister()
    meta = pnn.checkpoint_metadata(tmp_path / "run" / "checkpoint.safetensors")
    assert meta, "no checkpoint was written"


# ---- a Python model as a twin ----

def test_numpy_twin_drives_pat():
    """A twin registered from Python (the linear map y = x W, W = theta) against pnn's numeric
    check: its VJP through the C path, and PAT with it decreases the loss."""
    d_in, d_out = 3, 2
    tapes = {}

    def forward(x, theta, slot):
        w = theta.reshape(d_in, d_out)
        if slot is not None:
            tapes[slot] = x.copy()
        return x @ w

    def vjp(dy, theta, slot, want_dx):
        x = tapes.pop(slot)
        w = theta.reshape(d_in, d_out)
        return (dy @ w.T if want_dx else None), (x.T @ dy).ravel()

    dev = pnn.register_device(lambda x, t: x @ t.reshape(d_in, d_out), x_dim=d_in, y_dim=d_out,
                              theta_dim=d_in * d_out)
    twin = pnn.register_twin(forward, vjp, x_dim=d_in, y_dim=d_out, theta_dim=d_in * d_out)
    with pnn.Device(dev.uri) as d:
        tw = pnn.Twin(d, "callback:" + twin.name)
        theta = np.arange(6, dtype=np.float32) / 10
        x = np.ones((4, 3), np.float32)
        np.testing.assert_allclose(tw.forward(x, theta, slot=1), x @ theta.reshape(3, 2), rtol=1e-6)
        dx, dth = tw.vjp(np.ones((4, 2), np.float32), theta, slot=1)
        np.testing.assert_allclose(dx, np.ones((4, 2)) @ theta.reshape(3, 2).T, rtol=1e-6)
        np.testing.assert_allclose(dth, (x.T @ np.ones((4, 2))).ravel(), rtol=1e-6)
        tw.close()
    with pytest.raises(pnn.ConfigError, match="x_dim 3, y_dim 2, theta_dim 6, and device sim:oscillator"):
        with pnn.Device("sim:oscillator?n=4") as d:
            pnn.Twin(d, "callback:" + twin.name)
    twin.unregister()
    dev.unregister()


def test_the_example_runs(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_vowels.py"), str(tmp_path / "ex")],
                         check=True, capture_output=True, text=True).stdout
    assert "calls of the Python instrument: test accuracy on it" in out, out
    assert float(out.split("accuracy on it ")[1].split(" %")[0]) > 80, out
    assert os.path.exists(tmp_path / "ex" / "checkpoint.safetensors")


def test_ctrl_c_inside_a_python_twin_stops_the_run(tmp_path):
    d_in, d_out = 3, 2
    calls = {"n": 0}

    def forward(x, theta, slot):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return x @ theta.reshape(d_in, d_out)

    def vjp(dy, theta, slot, want_dx):
        return (dy @ theta.reshape(d_in, d_out).T if want_dx else None), np.zeros(d_in * d_out, np.float32)

    dev = pnn.register_device(lambda x, t: x @ t.reshape(d_in, d_out), x_dim=d_in, y_dim=d_out, theta_dim=6)
    twin = pnn.register_twin(forward, vjp, x_dim=d_in, y_dim=d_out, theta_dim=6)
    cfg = {"data": {"set": "vowels"},
           "network": [{"kind": "linear", "name": "enc", "out": d_in},
                       {"kind": "physical", "name": "p", "device": dev.uri, "twin": "callback:" + twin.name},
                       {"kind": "linear", "name": "out", "out": 7}],
           "epochs": 2, "batch": 16}
    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        pnn.train(cfg, out=tmp_path / "run", progress=False)
    assert os.path.exists(tmp_path / "run" / "checkpoint.safetensors")
    twin.unregister()
    dev.unregister()


def test_torch_twin_trains_the_vowels_network(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch) for pnn.TorchTwin")

    twin = pnn.TorchTwin(python_vowels.torch_oscillators(), x_dim=N, y_dim=N, theta_dim=N * N + N)
    res = pnn.train(VOWELS, overrides={"network.1.twin": twin.spec, "epochs": 10}, out=tmp_path / "torch",
                    progress=False)
    ref = pnn.train(VOWELS, overrides={"epochs": 10}, out=tmp_path / "analytic", progress=False)
    twin.unregister()
    # the same physics as the analytic twin, so PAT learns as well with it
    assert res["test_acc_device"] > 0.85 and abs(res["test_acc_device"] - ref["test_acc_device"]) < 0.1, (res, ref)


# ---- training, evaluation, checkpoints ----

def test_vowels_from_python_equals_pnn_train_bit_for_bit(tmp_path):
    res = pnn.train(VOWELS, out=tmp_path / "py", progress=False)
    subprocess.run([cli(), "train", VOWELS, "--out", str(tmp_path / "cli")], check=True, capture_output=True)
    a = pnn.load_checkpoint(tmp_path / "py" / "checkpoint.safetensors")
    b = pnn.load_checkpoint(tmp_path / "cli" / "checkpoint.safetensors")
    assert set(a) == set(b) and len(a) > 5
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert res["test_acc_device"] > 0.9


def test_train_from_a_dict_with_overrides_and_resume(tmp_path):
    cfg = {"data": {"set": "vowels", "test_frac": 0.2},
           "network": [{"kind": "linear", "name": "enc", "out": 16},
                       {"kind": "physical", "name": "osc", "device": "sim:oscillator?n=16&nt=5&seed=1",
                        "outputs": "last:7"},
                       {"kind": "scale", "name": "out", "init": 5.0}],
           "method": "pat", "loss": "cross_entropy", "optimizer": {"kind": "adam", "lr": 0.01}, "batch": 16,
           "epochs": 4, "seed": 2}
    whole = pnn.train(cfg, out=tmp_path / "whole", progress=False)
    seen = []

    def stop_early(p):
        seen.append(p)
        if p["phase"] == "train" and p["global_step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        pnn.train(cfg, out=tmp_path / "part", progress=stop_early)
    resumed = pnn.train(cfg, out=tmp_path / "part", resume=True, progress=False)
    assert resumed["test_acc_device"] == whole["test_acc_device"]
    a = pnn.load_checkpoint(tmp_path / "whole" / "checkpoint.safetensors")
    b = pnn.load_checkpoint(tmp_path / "part" / "checkpoint.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_training_errors_are_pnn_messages(tmp_path):
    with pytest.raises(pnn.ConfigError, match="epochs"):
        pnn.train(VOWELS, overrides={"epochs": -1}, out=tmp_path / "a", progress=False)
    with pytest.raises(TypeError, match="overrides: expected a dict"):
        pnn.train(VOWELS, overrides=["epochs=1"], out=tmp_path / "b")
    with pytest.raises(TypeError, match="config: expected a YAML file's path or a dict"):
        pnn.train(42)
    with pytest.raises(pnn.NotFoundError):
        pnn.train(tmp_path / "missing.yaml", out=tmp_path / "c")


def test_checkpoint_round_trip_and_evaluate(tmp_path):
    res = pnn.train(VOWELS, overrides={"epochs": 5}, out=tmp_path / "run", progress=False)
    ckpt = tmp_path / "run" / "checkpoint.safetensors"
    ev = pnn.evaluate(ckpt)
    # evaluation draws the device's noise from where its counter stands, so compare to itself
    assert 0.5 < ev["test_acc_device"] <= 1.0 and ev["test_acc_twin"] == pytest.approx(res["test_acc_twin"])
    tensors, meta = pnn.load_checkpoint(ckpt), pnn.checkpoint_metadata(ckpt)
    copy = tmp_path / "copy.safetensors"
    pnn.save_checkpoint(copy, tensors, meta)
    assert pnn.evaluate(copy) == ev
    tensors["out.scale"] = np.zeros_like(tensors["out.scale"])  # all logits 0: chance
    pnn.save_checkpoint(copy, tensors, meta)
    assert pnn.evaluate(copy)["test_acc_twin"] < 0.5
    with pytest.raises(TypeError, match=r"tensors\['bad'\]: dtype int64"):
        pnn.save_checkpoint(copy, {"bad": np.zeros(3, np.int64)})
