"""Imports every architecture module so that each registers itself with the registry."""

import importlib

from spineseg_core.models.registry import MODEL_NAMES

# The context family (2.5D stacks and the 3D U-Net) lives in two modules of its own.
for _name in (*MODEL_NAMES, "context", "unet3d"):
    importlib.import_module(f"{__package__}.{_name}")
