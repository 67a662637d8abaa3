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
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        base = _base_type(_HINTS[f.name])
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None)
        elif typing.get_origin(base) is dict:
            parser.add_argument(flag, dest=f.name, type=_json_object, default=None,
                                metavar="JSON", help="a JSON object")
        else:
            kind = base if base in (int, float, Path) else str
            parser.add_argument(flag, dest=f.name, type=kind, default=None)


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
