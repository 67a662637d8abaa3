"""The device a run trains and predicts on, checked on the machine where the run executes.

The configuration only names the device (:class:`~spineseg_core.training.config.DeviceChoice`);
whether it exists is asked here, when the run starts, so a Slurm study can ask for CUDA from
a login node without a GPU and each array task checks its own node. A run that asked for
CUDA and finds none stops with one line and never trains on the CPU instead. ``auto`` takes
CUDA when it is usable, else the CPU, but not for the paper profile (880 px, 120 epochs,
sized for a GPU: days on a CPU): there a missing GPU stops the run before it starts unless the
user asks for the CPU explicitly (``device="cpu"``).
"""

from __future__ import annotations

import torch

from spineseg_core.errors import ConfigError

GPU_PROFILES: frozenset[str] = frozenset({"paper"})
"""Profiles sized for a GPU: ``auto`` without a usable GPU refuses them."""


def resolve_device(device: torch.device | str, profile: str | None = None) -> torch.device:
    """``device`` as a :class:`torch.device` (``"auto"``: CUDA when available, else the CPU);
    a bad name, a missing GPU, or ``auto`` on a GPU-sized ``profile`` (:data:`GPU_PROFILES`)
    without a GPU is a ConfigError."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif profile is not None and str(profile) in GPU_PROFILES:
            raise ConfigError(f"device: the {profile} profile is sized for a GPU (days on a "
                              f"CPU) and this machine has no usable CUDA GPU; pass device "
                              f"'cpu' to train on the CPU anyway")
        else:
            device = "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be e.g. 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {str(device)!r} requested but this machine has no usable "
                          f"CUDA GPU (torch.cuda.is_available() is False); the run stops "
                          f"rather than train on the CPU")
    return dev


def configure_backend(device: torch.device) -> None:
    """The trainer's backend settings on ``device`` (one definition, the benchmark's too).

    On CUDA: cuDNN autotuning, non-deterministic kernels (speed; seeds, not bits, carry the
    uncertainty). On the CPU: deterministic algorithms (warn only), so a run repeats bit for
    bit on one machine, but without filling every fresh tensor with NaN
    (``torch.utils.deterministic.fill_uninitialized_memory``, on by default with deterministic
    algorithms): that fill is a debugging aid, costs a pass over every new buffer (up to a quarter
    of a CPU step: Inf-Net and TransUNet in ``spineseg bench --before-after``, a few percent for
    most models) and changes no result of code that initialises what it reads.
    """
    if device.type == "cuda":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
