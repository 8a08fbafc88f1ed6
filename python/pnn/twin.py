"""Twins: pnn's own (analytic, learned, residual) over a Device, and Python models (a PyTorch
module) registered as twins."""
import ctypes

import numpy as np

from . import _lib
from ._lib import check, lib
from .device import Registered, _check_name


class Twin(_lib.Handle):
    """A differentiable model of a device: `pnn.Twin(device)` (the analytic twin of its system),
    `pnn.Twin(device, "learned:FILE")`, or "callback:NAME" (a registered Python twin).

    forward(x, theta) evaluates it; forward(x, theta, slot=k) tapes the call under slot k, and
    vjp(dy, theta, slot=k) gives (dx, dtheta) at that tape. noise: the modelled noise of taped
    forwards (None: the device's nominal level)."""

    _free = lib.pnn_twin_free

    def __init__(self, device, kind="analytic", noise=None):
        self.device = device  # the twin reads the device's info: keep it alive (Device.close closes it first)
        self._h = ctypes.c_void_p()
        self._lock = device._lock
        with self._lock:
            check(lib.pnn_capi_twin_create(device._handle(), _lib.enc(kind), -1.0 if noise is None else float(noise),
                                           ctypes.byref(self._h)))
            device._twins.add(self)
        self.kind = kind
        self.x_dim, self.y_dim, self.theta_dim = device.x_dim, device.y_dim, device.theta_dim

    def _handle(self):
        if not self._h:
            raise ValueError("the twin is closed (closing its device closes it)")
        return self._h

    def forward(self, x, theta, slot=None):
        x = _lib.as_f32("x", x, (None, self.x_dim), allow_1d_row=True)
        theta = _lib.as_f32("theta", theta, (self.theta_dim,))
        y = np.empty((x.shape[0], self.y_dim), np.float32)
        with self._lock:
            check(lib.pnn_capi_twin_forward(self._handle(), x.shape[0], _lib.ptr(x), _lib.ptr(theta), _lib.ptr(y),
                                            -1 if slot is None else int(slot)))
        return y

    __call__ = forward

    def vjp(self, dy, theta, slot=0, want_dx=True):
        """(dx, dtheta) = (J_x^T dy, J_theta^T dy) at the forward taped under slot (dx None
        unless want_dx)."""
        dy = _lib.as_f32("dy", dy, (None, self.y_dim), allow_1d_row=True)
        theta = _lib.as_f32("theta", theta, (self.theta_dim,))
        dx = np.empty((dy.shape[0], self.x_dim), np.float32) if want_dx else None
        dtheta = np.empty(self.theta_dim, np.float32)
        with self._lock:
            check(lib.pnn_capi_twin_vjp(self._handle(), dy.shape[0], _lib.ptr(theta), _lib.ptr(dy), _lib.ptr(dx),
                                        _lib.ptr(dtheta), int(slot)))
        return dx, dtheta

    def init_theta(self, seed=1, name="layer"):
        """The controls' start that a network's layer called `name` gets with this seed."""
        theta = np.empty(self.theta_dim, np.float32)
        with self._lock:
            check(lib.pnn_capi_twin_init_theta(self._handle(), int(seed), str(name).encode(), _lib.ptr(theta)))
        return theta


def register_twin(forward, vjp, x_dim, y_dim, theta_dim, name=None):
    """Registers a Python model as a twin, used as `twin: callback:NAME` in a config (or
    pnn.Twin(device, reg.uri... "callback:" + reg.name)). forward(x, theta, slot) -> y, where slot
    is None for an evaluation and an int for a training forward whose tape vjp will use;
    vjp(dy, theta, slot, want_dx) -> (dx or None, dtheta). Arrays are float32 views valid during
    the call. A model in PyTorch: pnn.TorchTwin does this for you."""
    name = _check_name(name)
    x_dim, y_dim, theta_dim = int(x_dim), int(y_dim), int(theta_dim)

    def c_forward(user, rows, x, theta, y, slot, err, cap):
        return _lib.guarded(err, cap, "twin", 2, lambda: _lib.put(
            y, forward(_lib.view(x, (rows, x_dim)), _lib.view(theta, (theta_dim,)), None if slot < 0 else slot),
            (rows, y_dim), "forward returned y"))

    def c_vjp(user, rows, theta, dy, dx, dtheta, slot, err, cap):
        def body():
            gx, gt = vjp(_lib.view(dy, (rows, y_dim)), _lib.view(theta, (theta_dim,)), slot, bool(dx))
            if dx:
                _lib.put(dx, gx, (rows, x_dim), "vjp returned dx")
            _lib.put(dtheta, gt, (theta_dim,), "vjp returned dtheta", add=True)
        return _lib.guarded(err, cap, "twin", 2, body)

    cf, cv = _lib.TWIN_FORWARD(c_forward), _lib.TWIN_VJP(c_vjp)
    spec = _lib.TwinSpec(x_dim=x_dim, y_dim=y_dim, theta_dim=theta_dim, forward=cf, vjp=cv, user=None)
    check(lib.pnn_callback_twin_register(name.encode(), ctypes.byref(spec)))
    return Registered(name, (cf, cv, forward, vjp))


class TorchTwin(Registered):
    """A PyTorch model as a physical layer's twin: model(x, theta) -> y with x [rows, x_dim] and
    theta [theta_dim] tensors (theta is pnn's controls, trained by pnn). Forward runs under
    autograd for training calls and keeps the graph per tape slot; the VJP is torch.autograd.grad.
    Use `twin: callback:` + twin.name in a config, with the twin registered before pnn.train.

        twin = pnn.TorchTwin(my_module, x_dim=16, y_dim=16, theta_dim=272)
        pnn.train("vowels.yaml", overrides={"network.1.twin": twin.spec})
    """

    def __init__(self, model, x_dim, y_dim, theta_dim, name=None, dtype=None):
        import torch
        self.model = model
        self._torch = torch
        self._tapes = {}
        self._dtype = dtype or torch.float32
        reg = register_twin(self._forward, self._vjp, x_dim, y_dim, theta_dim, name=name)
        super().__init__(reg.name, reg._keep)

    @property
    def spec(self):
        """The config value that names it: callback:NAME."""
        return f"callback:{self.name}"

    def _forward(self, x, theta, slot):
        torch = self._torch
        if slot is None:
            with torch.no_grad():
                y = self.model(torch.tensor(x, dtype=self._dtype), torch.tensor(theta, dtype=self._dtype))
            return y.detach().cpu().numpy()
        xt = torch.tensor(x, dtype=self._dtype, requires_grad=True)  # copies: pnn reuses its buffers
        tt = torch.tensor(theta, dtype=self._dtype, requires_grad=True)
        y = self.model(xt, tt)
        self._tapes[slot] = (xt, tt, y)
        return y.detach().cpu().numpy()

    def _vjp(self, dy, theta, slot, want_dx):
        torch = self._torch
        if slot not in self._tapes:
            raise RuntimeError(f"vjp at slot {slot} without a taped forward there")
        xt, tt, y = self._tapes.pop(slot)
        inputs = [xt, tt] if want_dx else [tt]
        grads = torch.autograd.grad(y, inputs, grad_outputs=torch.tensor(dy, dtype=y.dtype), allow_unused=True)
        gx = grads[0] if want_dx else None
        gt = grads[-1]
        gx = None if gx is None else gx.detach().cpu().numpy()
        if want_dx and gx is None:
            gx = np.zeros(xt.shape, np.float32)
        gt = np.zeros(tt.shape, np.float32) if gt is None else gt.detach().cpu().numpy()
        return gx, gt
