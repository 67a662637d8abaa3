"""Where and with what a run was made: the ``env`` stamp of ``params.json``.

A result is only comparable with another when the hardware and software behind it are known
(nnU-Net keeps the same facts in ``debug.json``). Nothing here fails: an unknown fact is
``None``.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from spineseg_core import __version__
from spineseg_core.fingerprint import REPO as _REPO, source_fingerprint


def cpu_model() -> str | None:
    """Marketing name of the CPU (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_features() -> str:
    """What the CPU offers for training: its core count and the matrix/vector extensions that
    decide the precision (``torch.backends.cpu.get_cpu_capability()``, e.g. ``AVX512``, and
    whether it has AVX512-BF16 and AMX), e.g. ``"2 cores, AVX512, AVX512-BF16, no AMX"``."""
    import os

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    parts = [f"{os.cpu_count()} cores", torch.backends.cpu.get_cpu_capability()]
    if flags:
        parts.append("AVX512-BF16" if "avx512_bf16" in flags else "no AVX512-BF16")
        parts.append("AMX" if "amx_bf16" in flags else "no AMX")
    return ", ".join(parts)


def gpu_name(device: str | torch.device | None = None) -> str | None:
    """Name of the CUDA ``device`` (``"cuda"`` alone: the current one), or ``None`` when
    ``device`` is no GPU or CUDA is unavailable."""
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.device(device))


def processor(env: Mapping[str, object]) -> str | None:
    """The processor a run's env stamp (:func:`env_stamp`) says it trained on: its GPU where it
    used one, else its CPU model; ``None`` when neither is recorded. A run's wall-clock times
    only compare with those of runs on the same processor."""
    for key in ("gpu", "cpu"):
        if env.get(key):
            return str(env[key])
    return None


def machine(env: Mapping[str, object]) -> str | None:
    """The machine type a run's env stamp says it trained on: its GPU where it used one, else
    its CPU model with the features that set its speed (:func:`cpu_features`; two VMs that
    both call their CPU "Intel(R) Xeon(R) Processor" differ by AMX), e.g. ``"Intel(R) Xeon(R)
    Processor (2 cores, AVX512, AVX512-BF16, AMX)"``; ``None`` when nothing is recorded."""
    name = processor(env)
    if name is None or env.get("gpu") or not env.get("cpu_features"):
        return name
    return f"{name} ({env['cpu_features']})"


def git_commit(repo: Path = _REPO) -> str | None:
    """Commit hash of the working tree the package runs from, or ``None`` outside git."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def env_stamp(device: str | torch.device | None = None) -> dict[str, object]:
    """Host, CPU, the GPU of ``device`` (``None`` for a CPU run), library versions, git commit,
    source fingerprint (:func:`spineseg_core.fingerprint.source_fingerprint`), device and
    thread count of this process."""
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "gpu": gpu_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "spineseg": __version__,
        "git_commit": git_commit(),
        "source_fingerprint": source_fingerprint(),
        "device": str(device) if device is not None else None,
        "threads": torch.get_num_threads(),
    }
