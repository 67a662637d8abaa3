"""Imports every architecture module so that each registers itself."""

import importlib

_MODULES = ("unet", "attention_unet", "resunetpp", "transunet", "miniseg", "pspnet",
            "deeplabv3plus", "denseaspp", "danet", "emanet", "infnet", "psanet")

for _m in _MODULES:
    try:
        importlib.import_module(f"{__package__}.{_m}")
    except ModuleNotFoundError as exc:  # an architecture not written yet
        if exc.name != f"{__package__}.{_m}":
            raise
