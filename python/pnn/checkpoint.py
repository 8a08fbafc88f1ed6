"""Checkpoints (safetensors files) to and from NumPy arrays and PyTorch tensors, through pnn's own
reader and writer (validated, written atomically)."""
import ctypes

import numpy as np

from . import _lib
from ._lib import check, lib


def load_checkpoint(path, as_torch=False):
    """The tensors of a checkpoint (a run's checkpoint.safetensors, or any float32 safetensors
    file) as {name: array} (copies), or torch tensors with as_torch=True. Parameters are named
    LAYER.PART ("osc1.C"); optimizer state and counters are in the same file."""
    h = ctypes.c_void_p()
    check(lib.pnn_capi_st_read(_lib.enc(path), ctypes.byref(h)))
    try:
        out = {}
        for i in range(lib.pnn_capi_st_count(h)):
            name, ndim = ctypes.c_char_p(), ctypes.c_int()
            shape = (ctypes.c_int64 * 4)()
            data = _lib._f32p()
            check(lib.pnn_capi_st_entry(h, i, ctypes.byref(name), ctypes.byref(ndim), shape, ctypes.byref(data)))
            dims = tuple(shape[k] for k in range(ndim.value))
            n = int(np.prod(dims)) if dims else 1
            arr = np.ctypeslib.as_array(data, shape=(n,)).copy().reshape(dims) if n else np.zeros(dims, np.float32)
            out[name.value.decode()] = arr
    finally:
        lib.pnn_capi_st_free(h)
    if as_torch:
        import torch
        out = {k: torch.from_numpy(v) for k, v in out.items()}
    return out


def checkpoint_metadata(path):
    """The metadata of a checkpoint: {key: str} (its config, counters, ...)."""
    h = ctypes.c_void_p()
    check(lib.pnn_capi_st_read(_lib.enc(path), ctypes.byref(h)))
    try:
        meta = {}
        for i in range(lib.pnn_capi_st_meta_count(h)):
            k, v = ctypes.c_char_p(), ctypes.c_char_p()
            check(lib.pnn_capi_st_meta_at(h, i, ctypes.byref(k), ctypes.byref(v)))
            meta[k.value.decode()] = v.value.decode()
        return meta
    finally:
        lib.pnn_capi_st_free(h)


def save_checkpoint(path, tensors, metadata=None):
    """Writes {name: array or tensor} (float32, up to 4 dimensions) and {key: str} metadata as a
    safetensors file, atomically. To change a trained network's parameters and test them with
    pnn.evaluate, load a checkpoint, edit its tensors and save it with its own metadata."""
    names, arrays = [], []
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"tensors: names must be str, got {type(k).__name__}")
        a = _lib.as_f32(f"tensors[{k!r}]", v)
        if a.ndim > 4:
            raise ValueError(f"tensors[{k!r}]: {a.ndim} dimensions; checkpoints hold at most 4")
        names.append(k)
        arrays.append(a)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    narr, nkeep = _lib.strings(names)
    ndims = (ctypes.c_int * max(len(arrays), 1))(*[a.ndim for a in arrays])
    shapes = (ctypes.c_int64 * max(4 * len(arrays), 1))()
    for i, a in enumerate(arrays):
        for k, d in enumerate(a.shape):
            shapes[4 * i + k] = d
    datas = (_lib._f32p * max(len(arrays), 1))(*[_lib.ptr(a) for a in arrays])
    karr, kkeep = _lib.strings(list(meta.keys()))
    varr, vkeep = _lib.strings(list(meta.values()))
    check(lib.pnn_capi_st_write(_lib.enc(path), len(arrays), narr, ndims, shapes, datas, len(meta), karr, varr))
