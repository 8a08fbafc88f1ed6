"""Devices: pnn's own (sim:, remote:, record:, replay:) and Python functions registered as devices."""
import ctypes
import itertools
import threading
import weakref

import numpy as np

from . import _lib
from ._lib import check, lib


class Device(_lib.Handle):
    """A running device: `pnn.Device("sim:oscillator?n=100&seed=7")`, a remote instrument
    ("remote:tcp://host:5555"), a recording ("replay:FILE", "record:FILE@URI"), or a Python function
    registered with `pnn.register_device` (its `.uri`, "callback:NAME").

    `forward(x, theta)` runs one request through the device's queue (retries, timing, the NaN
    check) and returns y; `submit` returns a Request to wait for. Arrays are float32, C order.
    Calls from several threads are serialised (one lock per device). close() waits for the
    requests in flight and closes the twins made over it first.
    """

    _free = lib.pnn_device_close

    def __init__(self, uri):
        self._h = ctypes.c_void_p()
        self._lock = threading.RLock()
        self._inflight = set()  # Requests not yet waited for: they hold the arrays C writes into
        self._twins = weakref.WeakSet()
        check(lib.pnn_capi_device_open(_lib.enc(uri), ctypes.byref(self._h)))
        dims = (ctypes.c_int64 * 4)()
        ranges = (ctypes.c_float * 4)()
        system, system_uri = ctypes.create_string_buffer(1024), ctypes.create_string_buffer(1024)
        check(lib.pnn_capi_device_info(self._h, dims, ranges, system, system_uri, 1024))
        self.uri = str(uri)
        self.x_dim, self.y_dim, self.theta_dim, self.max_batch = (int(v) for v in dims)
        self.x_range = (float(ranges[0]), float(ranges[1]))
        self.theta_range = (float(ranges[2]), float(ranges[3]))
        self.system = system.value.decode()
        self.system_uri = system_uri.value.decode()

    def _handle(self):
        if not self._h:
            raise ValueError(f"device {self.uri} is closed")
        return self._h

    def _args(self, x, theta):
        x = _lib.as_f32("x", x, (None, self.x_dim), allow_1d_row=True)
        theta = _lib.as_f32("theta", theta, (self.theta_dim,))
        return x, theta, np.empty((x.shape[0], self.y_dim), np.float32)

    def forward(self, x, theta):
        """y [rows, y_dim] at x [rows, x_dim] (or one row [x_dim]) and theta [theta_dim]."""
        x, theta, y = self._args(x, theta)
        with self._lock:
            check(lib.pnn_capi_device_forward(self._handle(), x.shape[0], _lib.ptr(x), _lib.ptr(theta),
                                              _lib.ptr(y)))
        return y

    __call__ = forward

    def submit(self, x, theta):
        """Starts a request; returns a Request whose wait() gives y. Requests run in order, at
        most 256 in flight. x and theta are copied when they are not float32 C-order already;
        otherwise they must not change until the request is waited for."""
        x, theta, y = self._args(x, theta)
        req = ctypes.c_void_p()
        with self._lock:
            check(lib.pnn_capi_device_submit(self._handle(), x.shape[0], _lib.ptr(x), _lib.ptr(theta), _lib.ptr(y),
                                             ctypes.byref(req)))
            r = Request(self, req, (x, theta, y))
            self._inflight.add(r)
        return r

    def close(self):
        """Waits for the requests in flight, closes the twins made over this device, closes it."""
        with self._lock:
            for r in list(self._inflight):
                try:
                    r.wait()
                except Exception:
                    pass
            for t in list(self._twins):
                t.close()
            super().close()

    def set_retry(self, retries=3, backoff_ms=10.0):
        """How failed calls are retried: further attempts, and the first wait (doubling)."""
        with self._lock:
            check(lib.pnn_capi_device_set_retry(self._handle(), int(retries), float(backoff_ms)))

    @property
    def counters(self):
        """calls (successful), attempts, faults, retries, busy_s (time inside its calls)."""
        c = (ctypes.c_uint64 * 4)()
        busy = ctypes.c_double()
        lib.pnn_capi_device_counters(self._handle(), c, ctypes.byref(busy))
        return {"calls": c[0], "attempts": c[1], "faults": c[2], "retries": c[3], "busy_s": busy.value}

    @property
    def calls(self):
        return self.counters["calls"]

    @calls.setter
    def calls(self, n):
        """A simulator draws its noise from (seed, call index): setting it replays a run's calls."""
        lib.pnn_capi_device_set_calls(self._handle(), int(n))

    def __repr__(self):
        return (f"pnn.Device({self.uri!r}: system {self.system}, x_dim {self.x_dim}, y_dim {self.y_dim}, "
                f"theta_dim {self.theta_dim})")


class Request:
    """A request in flight (Device.submit): wait() returns y; done() says whether it would block."""

    def __init__(self, device, req, arrays):
        self._device, self._req, self._arrays, self._status = device, req, arrays, 0

    def done(self):
        with self._device._lock:
            return self._req is None or bool(lib.pnn_capi_device_ready(self._device._handle(), self._req))

    def wait(self, timeout=None):
        """y, once the request completed (raises its failure, e.g. pnn.DeviceError after the
        retries); TimeoutError when timeout (seconds) passes first, leaving it in flight."""
        d = self._device
        with d._lock:
            if self._req is None:
                if self._status:
                    check(self._status)
                return self._arrays[2]
            ms = -1 if timeout is None else max(0, int(timeout * 1000))
            pending = ctypes.c_int()
            st = lib.pnn_capi_device_wait(d._handle(), self._req, ms, ctypes.byref(pending))
            if pending.value:
                if st == 11:  # a stop request (Ctrl-C) cut the wait short
                    raise KeyboardInterrupt(f"stopped while waiting for {d.uri}; the request is still in flight")
                raise TimeoutError(f"the request to {d.uri} is still running after {timeout} s")
            self._req, self._status = None, st
            d._inflight.discard(self)
            check(st)
            return self._arrays[2]


_names = itertools.count(1)
_registered = {}
_lock = threading.Lock()


class Registered:
    """A Python function or model registered with pnn; `.uri` (devices) or `.name` (twins:
    `twin: callback:NAME`) says where to use it. unregister() (or leaving a `with` block) removes
    it; it stays registered while the object lives."""

    def __init__(self, name, keep):
        self.name = name
        self._keep = keep
        with _lock:
            _registered[name] = self

    @property
    def uri(self):
        return f"callback:{self.name}"

    def unregister(self):
        with _lock:
            if _registered.get(self.name) is not self:
                return  # already unregistered (the name may belong to a newer registration now)
            check(lib.pnn_callback_unregister(self.name.encode()))
            del _registered[self.name]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unregister()


def _check_name(name):
    return name if name is not None else f"py{next(_names)}"


def register_device(fn, x_dim, y_dim, theta_dim, name=None, x_range=None, theta_range=None, system="python",
                    system_uri="", max_batch=0):
    """Registers a Python function y = fn(x, theta) as a device (a lab's instrument driver, in
    process), and returns its registration: use `reg.uri` ("callback:NAME") as any device URI, in
    `pnn.Device(reg.uri)` or a config's `device:`. fn gets x [rows, x_dim] and theta [theta_dim]
    (read-only float32 views, valid during the call) and returns an array [rows, y_dim]. It runs
    behind pnn's queue like every device (submit/wait, retries, timing); it may run on pnn's worker
    thread. Raising DeviceFault (or any exception) is a fault that pnn retries; NaN or Inf in y is a
    fault too. system_uri: when the instrument is one of pnn's systems (e.g.
    "sim:oscillator?n=100"), `twin: analytic` can model it, and its controls are named and ranged
    as that system's (the dims must match). x_range, theta_range: (lo, hi) of the inputs and
    controls (default the system's, or (-1, 1)); max_batch: rows per call (0: no limit)."""
    name = _check_name(name)
    x_dim, y_dim, theta_dim = int(x_dim), int(y_dim), int(theta_dim)
    if len(system.encode()) > 31 or len(_lib.enc(system_uri)) > 1023:
        raise ValueError(f"system ({len(system.encode())} bytes) or system_uri ({len(_lib.enc(system_uri))} bytes) is "
                         "too long: at most 31 and 1023 bytes")

    def forward(user, rows, x, theta, y, err, cap):
        return _lib.guarded(err, cap, "function", 1, lambda: _lib.put(
            y, fn(_lib.view(x, (rows, x_dim)), _lib.view(theta, (theta_dim,))), (rows, y_dim),
            f"{getattr(fn, '__name__', 'the function')} returned y"))

    cb = _lib.DEVICE_FORWARD(forward)
    spec = _lib.DeviceSpec(system=system.encode(), system_uri=_lib.enc(system_uri), x_dim=x_dim,
                           y_dim=y_dim, theta_dim=theta_dim, max_batch=int(max_batch), forward=cb, user=None)
    spec.x_range[0], spec.x_range[1] = x_range or (0.0, 0.0)  # (0, 0): the default
    spec.theta_range[0], spec.theta_range[1] = theta_range or (0.0, 0.0)
    check(lib.pnn_callback_device_register(name.encode(), ctypes.byref(spec)))
    return Registered(name, (cb, fn))
