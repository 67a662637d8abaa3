"""Imports every architecture module so that each registers itself with the registry."""

import importlib

from spineseg_core.models.registry import MODEL_NAMES

for _name in MODEL_NAMES:
    importlib.import_module(f"{__package__}.{_name}")
