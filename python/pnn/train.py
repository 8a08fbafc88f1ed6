"""Training and evaluation: what `pnn train` and `pnn eval` do, from Python."""
import ctypes
import json
import math
import os
import sys
import threading
import time

from . import _lib
from ._lib import check, lib

_one_run = threading.Lock()
FINAL_KEYS = ("test_acc_device", "test_acc_twin", "test_loss_device", "test_acc_device_batchmean", "test_loss_twin",
              "train_s")


def _value(v):
    """A Python value as a --set value: YAML flow (JSON) for lists and maps, true/false for bools."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return str(v)


def _sets(overrides):
    if overrides is None:
        return []
    if not isinstance(overrides, dict):
        raise TypeError(f"overrides: expected a dict {{'key': value}} (keys as in --set, e.g. 'epochs' or "
                        f"'network.1.device'), got {type(overrides).__name__}")
    return [f"{k}={_value(v)}" for k, v in overrides.items()]


class _Bar:
    """The default progress display: one line on stderr, rewritten on a terminal."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p):
        if p["phase"] == "epoch_done":
            twin = "none" if math.isnan(p["test_acc_twin"]) else f"{100 * p['test_acc_twin']:.2f}%"
            print(f"{chr(13) if self.tty else ''}epoch {p['epoch']}/{p['epochs']}: train loss {p['loss']:.4f} acc "
                  f"{100 * p['acc']:.2f}% | test on device {100 * p['test_acc_device']:.2f}% | on twin {twin}",
                  file=sys.stderr)
            return
        if p["phase"] != "train" or not self.tty:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and p["step"] != p["steps"]:
            return
        self.last = now
        done = int(30 * p["step"] / max(p["steps"], 1))
        print(f"\repoch {p['epoch'] + 1}/{p['epochs']} [{'#' * done}{'.' * (30 - done)}] {p['step']}/{p['steps']} "
              f"loss {p['loss']:.4f} acc {100 * p['acc']:.1f}%", end="", file=sys.stderr, flush=True)


def train(config, overrides=None, out=None, progress=True, resume=False):
    """Trains a network as `pnn train` does and returns the final figures (the keys of its
    `final:` line: test_acc_device, test_acc_twin, test_loss_device, test_acc_device_batchmean,
    test_loss_twin, train_s) and run_dir.

    config: a YAML file's path, or a dict with the same keys (relative data paths then resolve
    against the working directory). overrides: {key: value} as --set key=value. out: the run
    directory (default runs/<name>-<date-time>); resume=True continues the run in `out`.
    progress: True (a line on stderr), False, or a function called with a dict (phase "train"
    after each step, "eval", "epoch_done" with test_acc_device and test_acc_twin; epoch, epochs,
    step, steps, global_step, loss, acc, elapsed_s). Ctrl-C stops after the current step, saves
    the state and raises KeyboardInterrupt; a failure raises pnn.Error with pnn's message, after
    saving the state of the last completed step for resume."""
    sets = _sets(overrides)
    if isinstance(config, dict):
        path, text, name = None, json.dumps(config), "config"
    elif isinstance(config, (str, os.PathLike)):
        path, text = os.fspath(config), None
        name = os.path.basename(path).split(".")[0] or "config"
    else:
        raise TypeError(f"config: expected a YAML file's path or a dict, got {type(config).__name__}")
    if resume and out is None:
        raise ValueError("resume=True needs out=RUN_DIR, the run to continue")
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = os.path.join("runs", f"{name}-{stamp}")
        k = 2
        while os.path.exists(out):
            out = os.path.join("runs", f"{name}-{stamp}-{k}")
            k += 1
    show = _Bar() if progress is True else progress if callable(progress) else None
    raised = []

    def on_progress(user, phase, epoch, epochs, step, steps, gstep, loss, acc, elapsed, tdev, ttwin):
        try:
            if show:
                show({"phase": phase.decode(), "epoch": epoch, "epochs": epochs, "step": step, "steps": steps,
                      "global_step": gstep, "loss": loss, "acc": acc, "elapsed_s": elapsed,
                      "test_acc_device": tdev, "test_acc_twin": ttwin})
        except BaseException as e:  # Ctrl-C lands here (the only Python code that runs): stop cleanly
            if not raised:
                raised.append(e)
            lib.pnn_capi_request_stop()

    cb = _lib.PROGRESS(on_progress)
    arr, keep = _lib.strings(sets)
    interrupted = ctypes.c_int()
    final = (ctypes.c_double * 6)()
    if not _one_run.acquire(blocking=False):
        raise RuntimeError("pnn.train is already running in this process (its stop request is process-wide): "
                           "run one at a time, or in separate processes")
    try:
        _lib.take_interrupt()
        st = lib.pnn_capi_train(_lib.enc(path) if path else None, text.encode() if text else None, arr, len(sets),
                                _lib.enc(out), int(bool(resume)), cb, None, ctypes.byref(interrupted), final)
    finally:
        _one_run.release()
    stopped = _lib.take_interrupt()  # Ctrl-C caught inside a Python device or twin
    if stopped is not None and not raised:
        raised.append(stopped)
        if st != 0:  # the step failed on it; the state before it is saved
            interrupted.value, st = 1, 0
    if st != 0:
        err = _lib.error(st)
        if raised:
            raise err from raised[0]
        raise err
    if interrupted.value:
        if show is not None and isinstance(show, _Bar) and show.tty:
            print(file=sys.stderr)
        cause = raised[0] if raised else None
        if cause is not None and not isinstance(cause, KeyboardInterrupt):
            raise cause
        raise KeyboardInterrupt(f"training stopped; the state is saved in {out}: continue with "
                                f"pnn.train(..., out={out!r}, resume=True)")
    res = dict(zip(FINAL_KEYS, final))
    res["run_dir"] = out
    return res


def evaluate(checkpoint, device=None, overrides=None, trust=False):
    """Tests a checkpoint's network on its test set, on the device and on the twin, as `pnn eval`
    does; returns the final figures. device: a URI for the only physical layer, {layer: URI}, or a
    list of "LAYER=URI"; trust: open the devices and files the checkpoint's own config names
    (otherwise only sim: devices: a checkpoint is data anyone may have made)."""
    sets = _sets(overrides)
    if device is None:
        devices = []
    elif isinstance(device, str):
        devices = [device]
    elif isinstance(device, dict):
        devices = [f"{k}={v}" for k, v in device.items()]
    else:
        devices = list(device)
    sarr, skeep = _lib.strings(sets)
    darr, dkeep = _lib.strings(devices)
    final = (ctypes.c_double * 6)()
    check(lib.pnn_capi_evaluate(_lib.enc(checkpoint), sarr, len(sets), darr, len(devices), int(bool(trust)), final))
    return dict(zip(FINAL_KEYS, final))
