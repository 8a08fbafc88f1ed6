"""pnn from Python: the engine's devices, twins, training and checkpoints over libpnn's C API
(no second implementation: the same code as the `pnn` command). docs/python.md has the guide.

    import pnn
    res = pnn.train("examples/vowels-oscillator.yaml", overrides={"epochs": 5})
    dev = pnn.Device("sim:oscillator?n=100&seed=7"); y = dev.forward(x, theta)
    reg = pnn.register_device(my_driver, x_dim=16, y_dim=16, theta_dim=272)   # "callback:NAME"
    tw = pnn.TorchTwin(my_module, x_dim=16, y_dim=16, theta_dim=272)          # twin: callback:NAME
"""
from ._lib import ConfigError, DeviceError, DeviceFault, Error, FormatError, InvalidError, NotFoundError
from .checkpoint import checkpoint_metadata, load_checkpoint, save_checkpoint
from .device import Device, Registered, Request, register_device
from .train import evaluate, train
from .twin import TorchTwin, Twin, register_twin

__version__ = "0.1.0"
__all__ = ["ConfigError", "Device", "DeviceError", "DeviceFault", "Error", "FormatError", "InvalidError",
           "NotFoundError", "Registered", "Request", "TorchTwin", "Twin", "checkpoint_metadata", "evaluate",
           "load_checkpoint", "register_device", "register_twin", "save_checkpoint", "train"]
