"""The ctypes layer over libpnn's flat C API (include/pnn/capi.h, include/pnn/callback.h).

The library is found at $PNN_LIBRARY when set (a development build: cmake -DPNN_PYTHON=ON), else
beside this file (where `pip install .` puts it). Every C call returns a status; `check` turns a
failure into the matching exception with pnn's own message.
"""
import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, c_char, c_char_p, c_double, c_float, c_int, c_int64, c_size_t, c_uint64,
                    c_void_p)

import numpy as np

STATUS_NAMES = ("ok", "invalid", "io", "format", "device", "timeout", "nomem", "cuda", "unsupported", "not_found",
                "config", "interrupted")


class Error(Exception):
    """A pnn call failed. `status` is pnn's status name ("config", "device", ...), `message`
    pnn's message (what went wrong and how to fix it)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class ConfigError(Error, ValueError):
    """A configuration or override is wrong."""


class InvalidError(Error, ValueError):
    """A bad argument."""


class DeviceError(Error):
    """A device failed (after its retries) or timed out."""


class FormatError(Error, ValueError):
    """Data from outside (a file, a device's or callback's answer) is malformed."""


class NotFoundError(Error, FileNotFoundError):
    """An input file or run directory does not exist."""


_CLASSES = {"config": ConfigError, "invalid": InvalidError, "device": DeviceError, "timeout": DeviceError,
            "format": FormatError, "not_found": NotFoundError}


_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_library():
    env = os.environ.get("PNN_LIBRARY")
    if env:
        if not os.path.exists(env):
            raise ImportError(f"PNN_LIBRARY={env}: no such file; build it with cmake -S . -B build-py -DPNN_PYTHON=ON "
                              "&& cmake --build build-py, or unset PNN_LIBRARY to use the installed package's")
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libpnn.so")
    if os.path.exists(here):
        return here
    raise ImportError("libpnn.so is not installed beside the pnn package: install it with `pip install .` from the "
                      "repository, or point PNN_LIBRARY at a build (cmake -S . -B build-py -DPNN_PYTHON=ON)")


lib = ctypes.CDLL(_find_library())

_f32p = POINTER(c_float)
_i64p = POINTER(c_int64)

# Callback signatures (pnn/callback.h, pnn/capi.h)
DEVICE_FORWARD = CFUNCTYPE(c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, POINTER(c_char), c_size_t)
TWIN_FORWARD = CFUNCTYPE(c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, c_int, POINTER(c_char), c_size_t)
TWIN_VJP = CFUNCTYPE(c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, _f32p, c_int, POINTER(c_char), c_size_t)
PROGRESS = CFUNCTYPE(None, c_void_p, c_char_p, c_int64, c_int64, c_int64, c_int64, c_int64, c_double, c_double,
                     c_double, c_double, c_double)


class DeviceSpec(ctypes.Structure):
    _fields_ = [("system", c_char * 32), ("system_uri", c_char * 1024), ("x_dim", c_int64), ("y_dim", c_int64),
                ("theta_dim", c_int64), ("max_batch", c_int64), ("x_range", c_float * 2),
                ("theta_range", c_float * 2), ("forward", DEVICE_FORWARD), ("user", c_void_p)]


class TwinSpec(ctypes.Structure):
    _fields_ = [("x_dim", c_int64), ("y_dim", c_int64), ("theta_dim", c_int64), ("forward", TWIN_FORWARD),
                ("vjp", TWIN_VJP), ("user", c_void_p)]


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_sig("pnn_last_error", c_char_p)
_sig("pnn_capi_version", c_int)
_sig("pnn_capi_device_open", c_int, c_char_p, POINTER(c_void_p))
_sig("pnn_device_close", None, c_void_p)
_sig("pnn_capi_device_info", c_int, c_void_p, _i64p, _f32p, c_char_p, c_char_p, c_size_t)
_sig("pnn_capi_device_forward", c_int, c_void_p, c_int64, _f32p, _f32p, _f32p)
_sig("pnn_capi_device_submit", c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, POINTER(c_void_p))
_sig("pnn_capi_device_wait", c_int, c_void_p, c_void_p, c_int, POINTER(c_int))
_sig("pnn_capi_device_ready", c_int, c_void_p, c_void_p)
_sig("pnn_capi_device_set_retry", c_int, c_void_p, c_int, c_double)
_sig("pnn_capi_device_counters", None, c_void_p, POINTER(c_uint64), POINTER(c_double))
_sig("pnn_capi_device_set_calls", None, c_void_p, c_uint64)
_sig("pnn_capi_twin_create", c_int, c_void_p, c_char_p, c_double, POINTER(c_void_p))
_sig("pnn_twin_free", None, c_void_p)
_sig("pnn_capi_twin_forward", c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, c_int)
_sig("pnn_capi_twin_vjp", c_int, c_void_p, c_int64, _f32p, _f32p, _f32p, _f32p, c_int)
_sig("pnn_capi_twin_init_theta", c_int, c_void_p, c_uint64, c_char_p, _f32p)
_sig("pnn_capi_train", c_int, c_char_p, c_char_p, POINTER(c_char_p), c_int, c_char_p, c_int, PROGRESS, c_void_p,
     POINTER(c_int), POINTER(c_double))
_sig("pnn_capi_request_stop", None)
_sig("pnn_capi_evaluate", c_int, c_char_p, POINTER(c_char_p), c_int, POINTER(c_char_p), c_int, c_int,
     POINTER(c_double))
_sig("pnn_capi_st_read", c_int, c_char_p, POINTER(c_void_p))
_sig("pnn_capi_st_count", c_int, c_void_p)
_sig("pnn_capi_st_entry", c_int, c_void_p, c_int, POINTER(c_char_p), POINTER(c_int), _i64p, POINTER(_f32p))
_sig("pnn_capi_st_meta_count", c_int, c_void_p)
_sig("pnn_capi_st_meta_at", c_int, c_void_p, c_int, POINTER(c_char_p), POINTER(c_char_p))
_sig("pnn_capi_st_free", None, c_void_p)
_sig("pnn_capi_st_write", c_int, c_char_p, c_int, POINTER(c_char_p), POINTER(c_int), _i64p, POINTER(_f32p), c_int,
     POINTER(c_char_p), POINTER(c_char_p))
_sig("pnn_callback_device_register", c_int, c_char_p, POINTER(DeviceSpec))
_sig("pnn_callback_twin_register", c_int, c_char_p, POINTER(TwinSpec))
_sig("pnn_callback_unregister", c_int, c_char_p)

if lib.pnn_capi_version() != 2:
    raise ImportError(f"libpnn's C API is version {lib.pnn_capi_version()}, this package speaks version 2: "
                      "reinstall the package from the same checkout as the library")


def error(status):
    name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else f"status {status}"
    msg = (lib.pnn_last_error() or b"").decode("utf-8", "replace") or f"pnn failed ({name})"
    return _CLASSES.get(name, Error)(name, msg)


def check(status):
    if status != 0:
        raise error(status)


def enc(s):
    return os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode()


def strings(items):
    """A C array of char* for a list of str (kept alive by the returned tuple's second item)."""
    bufs = [enc(s) for s in items]
    arr = (c_char_p * max(len(bufs), 1))(*bufs)
    return arr, bufs


def ptr(a):
    """A float* to a float32 C-contiguous array (zero-copy); NULL for None."""
    return None if a is None else a.ctypes.data_as(_f32p)


def as_f32(name, a, shape=None, allow_1d_row=False):
    """Checks an array argument: float32 (no silent casts), the shape asked for (None entries free);
    returns it C-contiguous. Raises TypeError or ValueError naming the argument."""
    if not isinstance(a, np.ndarray) and hasattr(a, "detach") and hasattr(a, "numpy"):
        a = a.detach().cpu().numpy()  # a PyTorch tensor is accepted where an array is
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy float32 array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name}: dtype {a.dtype}; pnn computes in float32: pass {name}.astype(np.float32)")
    if allow_1d_row and a.ndim == 1 and shape is not None and len(shape) == 2:
        a = a.reshape(1, -1)
    if shape is not None:
        want = "x".join("?" if s is None else str(s) for s in shape)
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            raise ValueError(f"{name}: shape {tuple(a.shape)}, expected [{want}]")
    if shape is not None and a.ndim >= 1 and a.shape[0] == 0:
        raise ValueError(f"{name}: no rows; give at least one")
    return np.require(a, requirements="C")  # keeps 0-d arrays 0-d


class DeviceFault(Exception):
    """Raise it from a registered device function for a glitch of the instrument: pnn retries the
    call (bridge.retries). Any other exception is a fault too, reported with its traceback."""


class ShapeError(Exception):
    """A callback returned an array of the wrong shape (an error, not retried)."""


def guarded(err, cap, what, fault, body):
    """Runs a callback's body and returns its code for C: 0; for an exception, `fault` with the
    traceback in err (DeviceFault: its message), 2 for a wrong shape, and for Ctrl-C a stop."""
    import traceback
    try:
        body()
        return 0
    except (KeyboardInterrupt, SystemExit) as e:
        interrupted(e)
        write_message(err, cap, f"stopped: {type(e).__name__}")
        return 2
    except ShapeError as e:
        write_message(err, cap, str(e))
        return 2
    except DeviceFault as e:
        write_message(err, cap, f"DeviceFault: {e}")
        return 1
    except BaseException as e:
        # what was raised first (pnn's messages have a bounded length), then the traceback from
        # the user's own code on (pnn's wrapper frames left out)
        tb = e.__traceback__
        while tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _HERE:
            tb = tb.tb_next
        write_message(err, cap, f"the Python {what} raised " + "".join(traceback.format_exception_only(type(e), e)) +
                      "Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb)))
        return fault


def put(ptr_, value, shape, what, add=False):
    """Writes value (an array-like of `shape`) into C memory at ptr_, or adds it."""
    a = np.asarray(value, dtype=np.float32)
    if a.shape != shape:
        raise ShapeError(f"{what} of shape {a.shape}, expected {shape}")
    out = np.ctypeslib.as_array(ptr_, shape=shape)
    if add:
        out += a
    else:
        out[...] = a


def view(ptr_, shape):
    """A read-only NumPy view of C memory (valid during the callback)."""
    a = np.ctypeslib.as_array(ptr_, shape=shape)
    a.flags.writeable = False
    return a


_interrupts = []


def interrupted(exc):
    """A callback caught Ctrl-C (or SystemExit): pnn stops after the current step; pnn.train
    raises it when the run returns."""
    _interrupts.append(exc)
    lib.pnn_capi_request_stop()


def take_interrupt():
    exc = _interrupts[0] if _interrupts else None
    _interrupts.clear()
    return exc


def write_message(err, cap, text):
    """Copies text (its tail when too long: a traceback's end says the most) into a C buffer."""
    data = text.encode("utf-8", "replace")
    if len(data) > cap - 1:
        data = b"..." + data[-(cap - 4):]
    ctypes.memmove(err, data, len(data))
    err[len(data)] = b"\0"


class Handle:
    """An object holding a C handle (self._h) that _free releases: closed by close(), by leaving a
    `with` block, or when collected."""

    _free = None

    def close(self):
        h = getattr(self, "_h", None)
        if h:
            type(self)._free(h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
