"""The device a run trains and predicts on."""

from __future__ import annotations

import torch

from spineseg_core.errors import ConfigError


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` as a :class:`torch.device` (``"auto"``: CUDA when available, else the CPU);
    a bad name or a missing GPU is a ConfigError."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be e.g. 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available")
    return dev
