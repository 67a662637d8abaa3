"""``spineseg train``: one training run, the same parameters as the notebook.

Every field of :class:`~spineseg_core.training.config.TrainConfig` is an option (``--image-size``,
``--max-train-slices-per-epoch``...); an option not given keeps the profile's value, and the
values are validated by :func:`~spineseg_core.training.config.resolve_config` before training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from enum import StrEnum
from pathlib import Path

from spineseg_core.training.config import TrainConfig

HELP = "train one model (run folder: runs/<profile>/<model>/seed_<s>/fold_<f>/)"

_HINTS = typing.get_type_hints(TrainConfig)


def _base_type(hint: object) -> object:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


FIELD_HELP: dict[str, str] = {
    "model": "model to train, by stable or display name in any case (see --help's list)",
    "model_kwargs": "build overrides of the architecture, e.g. '{\"base_width\": 8}'",
    "profile": "set of defaults sized for a machine: smoke (seconds), cpu (the study's "
               "miniature), paper (the paper's protocol, for a GPU)",
    "data_dir": "real data (MRSpineSeg or SPIDER layout); none: the procedural phantom",
    "phantom": "train on the procedural phantom where the profile expects real data (the paper "
               "profile: 264 cases at 880 px are generated first, about 30 min and 12 GB of RAM)",
    "phantom_cases": "phantom cases to generate for training and validation",
    "phantom_size": "in-plane size in px at which phantom cases are written",
    "phantom_seed": "seed of the phantom's training cases",
    "image_size": "in-plane size in px the slices are resampled to for training",
    "epochs": "training epochs (used when no step budget is set; giving it replaces the "
              "profile's step budget)",
    "steps": "the budget in optimiser steps, equal for every model (the epochs follow from it, "
             "the last one partial)",
    "warmup_steps": "optimiser steps of linear learning-rate warm-up before the schedule",
    "batch_size": "slices (or volumes, for a 3D model) per training step",
    "lr": "Adam's (initial) learning rate",
    "scheduler": "learning-rate schedule, stepped per optimiser step to the budget",
    "loss": "training loss",
    "loss_kwargs": "options of the Dice term (include_background, pooling, smooth_nr, smooth_dr), "
                   "e.g. '{\"include_background\": true}'",
    "seed": "seed of the run (split of training and validation, weights, augmentation)",
    "fold": "validation fold (0 with the single 8:2 split)",
    "k_folds": "folds of a k-fold cross-validation; none: the paper's single 8:2 split",
    "max_cases": "use at most this many cases of the data (a quick look); none: all",
    "test_dir": "labelled test cases of real data; none: a held-out fraction (--test-fraction)",
    "test_cases": "fresh phantom cases of the test set",
    "phantom_test_seed": "seed of the phantom's test cases (must differ from --phantom-seed)",
    "test_fraction": "fraction of real data's patients held out once as the test set",
    "out_dir": "run folder; none: runs/<profile>/<model>/seed_<s>/fold_<f>/",
    "device": "where to train; auto takes CUDA when present",
    "num_workers": "data-loader worker processes",
    "threads": "torch CPU threads; none: torch's default",
    "resume": "continue an interrupted run of the same parameters from its last checkpoint "
              "(--no-resume starts over)",
    "augment": "augment training slices (TorchIO's noise, blur, motion, ghosting)",
    "p_noise": "probability of random noise per training slice",
    "p_blur": "probability of random blur per training slice",
    "p_motion": "probability of random motion artefacts per training slice",
    "p_ghosting": "probability of random ghosting per training slice",
    "max_train_slices_per_epoch": "training slices drawn at random per epoch; none: every "
                                  "slice",
    "crop_width": "crop training slices to a band of this fraction of the width around the "
                  "spine; none: no crop",
    "gpu_augment": "batch the augmentation on the device: on (--gpu-augment), off "
                   "(--no-gpu-augment); not given: on a GPU only",
    "compile": "train through torch.compile",
    "val_every": "validate every N epochs (and after the last)",
    "channels_last": "channels-last memory layout for 2D models",
    "amp": "bf16 autocast where the device runs bf16 faster than fp32",
    "hd95": "compute the 95th-percentile Hausdorff distance on the test set",
    "skip_bad": "skip data cases that fail their checks instead of stopping",
    "keep_last_checkpoint": "keep checkpoint_last.pt (the resumable state) after the run "
                            "finished; by default it is deleted",
}
"""One line of help per :class:`TrainConfig` field; the defaults come from the profiles."""


def _defaults(name: str) -> str:
    """``name``'s default: one value, or per profile where the profiles differ."""
    from spineseg_core.training.config import PROFILE_DEFAULTS, Profile

    if name == "profile":
        return "cpu"  # :func:`run`'s default
    base = getattr(TrainConfig, name)
    values = {p: PROFILE_DEFAULTS[p].get(name, base) for p in Profile}

    def text(v: object) -> str:
        return "none" if v is None else json.dumps(v) if isinstance(v, dict) else str(v)

    if len({text(v) for v in values.values()}) == 1:
        return text(base)
    return ", ".join(f"{text(v)} ({p})" for p, v in values.items())


def _choices(name: str, base: object) -> list[str] | None:
    from spineseg_core.losses import LossName

    if name == "loss":
        return [str(n) for n in LossName]
    if isinstance(base, type) and issubclass(base, StrEnum):
        return [str(m) for m in base]
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spineseg_core.models import list_models

    models = ", ".join(list_models(None))
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        base = _base_type(_HINTS[f.name])
        text = FIELD_HELP[f.name].replace("%", "%%")
        if f.name == "model":
            text = f"{text.replace(' (see --help' + chr(39) + 's list)', '')}: {models}"
        text += f" (default: {_defaults(f.name)})".replace("%", "%%")
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        elif typing.get_origin(base) is dict:
            parser.add_argument(flag, dest=f.name, type=_json_object, default=None,
                                metavar="JSON", help=f"a JSON object: {text}")
        else:
            kind = base if base in (int, float, Path) else str
            parser.add_argument(flag, dest=f.name, type=kind, default=None,
                                choices=_choices(f.name, base), help=text)


def run(args: argparse.Namespace) -> int:
    from spineseg_core.training.config import resolve_config
    from spineseg_core.training.loop import run_training

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    profile = values.pop("profile") or "cpu"
    cfg = resolve_config(profile, **values)
    metrics = run_training(cfg)
    keys = ("dice", "miou", "fnr", "fpr", "recall", "dice3d_mean")
    print(" ".join(f"{k}={metrics[k]:.4f}" for k in keys if metrics.get(k) is not None))
    return 0
