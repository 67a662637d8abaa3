"""Seeding, random-number states and the resumable training state (``checkpoint_last.pt``).

The state is a plain nest of tensors, numbers, strings, lists and dicts, so
``torch.load(path, weights_only=True)`` reads it without unpickling arbitrary objects. It holds
everything an interrupted run needs to continue exactly where it stopped: model, optimiser and
scheduler states, the torch/numpy/python random states, the epoch, the best score and the
history so far.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spineseg_core.io import write_with


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive numpy/python seeds from the worker's torch seed
    (which the loader draws from its own seeded generator)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def rng_state(device: torch.device | str | None = None) -> dict[str, Any]:
    """The global random states as tensors and plain numbers; with a CUDA ``device``, also
    that GPU's generator (only the training device's: a CPU run saves none, so its checkpoint
    restores on any machine)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if device is not None and torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | str | None = None) -> None:
    """Inverse of :func:`rng_state`; a saved CUDA state goes to ``device`` when that is a GPU
    (from a checkpoint of an older version, which saved every GPU's list, the first entry)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and device is not None and torch.device(device).type == "cuda":
        cuda = state["cuda"]
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, list) else cuda,
                                 torch.device(device))


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically write the resumable state."""
    write_with(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state` (``weights_only=True``: no arbitrary code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of a model's tensors (safetensors needs unshared, dense storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in
            model.state_dict().items()}
