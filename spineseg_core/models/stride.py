"""One output-stride rule for every encoder on the study's grid (issue 24, part 4).

An encoder built for 512-880 px inputs ends at stride 16 or 32; on the cpu profile's grid
(training slices 128 x 64 px, a band of half the width) a stride-32 encoder's deepest map is
2 px across, too few for its context modules to see anything but the whole slice. DANet was
moved to stride 8 because it failed there; Inf-Net, also at stride 32, was never examined.
The rule treats every model alike:

    every model whose encoder takes an ``output_stride`` keeps its authors' default stride
    unless its deepest map would then be narrower than ``k`` px on the short side of the
    training input; it then takes the largest stride it accepts that keeps ``k`` px (the
    smallest it accepts when none does).

It never makes a model coarser than its authors', and it changes a model only as much as the
grid demands. ``k`` is chosen on validation Dice only: ``scripts/stride_runs.sh`` makes the
validation runs of every configurable model at every stride some candidate ``k`` gives it (seed
0, side groups ``<profile>-os<s>``), and ``spineseg decide``
(:func:`spineseg_core.study.decisions.stride_decision`, then :func:`choose_k`) picks ``k``, set
as :data:`MIN_MAP_PX`. :func:`~spineseg_core.training.config.resolve_config` applies the rule to
every model at every entry point (an ``output_stride`` the user gives wins).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import pandas as pd
import torch

from spineseg_core.errors import ConfigError

STANDARD_STRIDES: tuple[int, ...] = (8, 16, 32)
"""The output strides a dilated encoder offers."""

MIN_MAP_PX = 8
"""``k``: the narrowest deepest map (px, short side of the training input) a model may keep.
Chosen on validation by ``spineseg decide`` over DeepLabv3+, DenseASPP, DANet and Inf-Net
(seed 0, 588 steps): k = 8 puts all four at stride 8 on the 64 px band and had the highest mean
best validation Dice. The scores of every candidate are in ``results/decisions/stride.csv``,
and the book's Table D and ``docs/protocol.md`` show them."""

K_DECIDED = True
"""Whether :data:`MIN_MAP_PX` was chosen on the validation runs of ``scripts/stride_runs.sh``
(``spineseg decide``), or is still provisional."""


@functools.cache
def stride_options(model: str) -> tuple[int, ...]:
    """The standard strides ``model`` can be built with (``output_stride=...``); empty for a
    model without the option (e.g. U-Net, PSPNet's fixed stride 8). Built on the meta device:
    no weights are allocated."""
    from spineseg_core.models import build_model

    accepted = []
    for stride in STANDARD_STRIDES:
        try:
            with torch.device("meta"):
                build_model(model, output_stride=stride)
        except (TypeError, ValueError, ConfigError):
            continue
        accepted.append(stride)
    return tuple(accepted)


@functools.cache
def default_stride(model: str) -> int | None:
    """The stride ``model`` is built with by default (its encoder's ``output_stride``); None
    for a model without the option."""
    from spineseg_core.models import build_model

    if not stride_options(model):
        return None
    with torch.device("meta"):
        net = build_model(model)
    strides = [int(m.output_stride) for m in net.modules()
               if isinstance(getattr(m, "output_stride", None), int)]
    return strides[0] if strides else None


def rule_stride(short_side: int, options: tuple[int, ...], default: int,
                k: int = MIN_MAP_PX) -> int:
    """The rule (module docstring) on a training input of ``short_side`` px for a model that
    accepts ``options`` and defaults to ``default``."""
    if short_side < 1 or k < 1:
        raise ConfigError(f"stride rule: expected a positive short side and k, got "
                          f"{short_side} and {k}")
    if not options:
        raise ConfigError("stride rule: the model takes no output_stride")

    def keeps(stride: int) -> bool:
        return math.ceil(short_side / stride) >= k

    if keeps(default):
        return default
    fitting = [s for s in options if keeps(s)]
    return max(fitting) if fitting else min(options)


def training_short_side(image_size: int, crop_width: float | None) -> int:
    """The short side (px) of a training input: the grid, or the band a crop keeps."""
    if crop_width is None:
        return image_size
    return min(image_size, max(1, round(image_size * crop_width)))


def stride_for(model: str, image_size: int, crop_width: float | None,
               k: int = MIN_MAP_PX) -> int | None:
    """The stride the rule gives ``model`` on a grid (``None``: the model has no option)."""
    options = stride_options(model)
    if not options:
        return None
    default = default_stride(model) or max(options)
    return rule_stride(training_short_side(image_size, crop_width), options, default, k)


def stride_table(models: list[str], image_size: int, crop_width: float | None,
                 k: int = MIN_MAP_PX) -> list[dict[str, object]]:
    """Per configurable model of ``models``: its options, default, the rule's stride and the
    deepest map's short side under it (Table D and the book list these)."""
    short = training_short_side(image_size, crop_width)
    rows = []
    for model in models:
        stride = stride_for(model, image_size, crop_width, k)
        if stride is None:
            continue
        rows.append({"model": model, "options": stride_options(model),
                     "default": default_stride(model), "stride": stride,
                     "map_px": math.ceil(short / stride), "k": k})
    return rows


K_CANDIDATES: tuple[int, ...] = (1, 2, 4, 8, 16)
"""The values of ``k`` the validation runs compare (1 keeps every default)."""

K_TIE = 0.01
"""Mean validation Dice within which two values of ``k`` count as equal; the smaller (fewer
changes to the authors' strides) is then chosen."""


def varying_models(image_size: int, crop_width: float | None,
                   candidates: Sequence[int] = K_CANDIDATES,
                   models: Sequence[str] | None = None) -> list[str]:
    """The models (default: every registered one) whose rule-given stride differs between
    ``candidates`` on this grid: the ones whose runs tell the candidates apart (a model every
    candidate leaves at one stride would add the same to each candidate's mean)."""
    from spineseg_core.models import list_models

    return sorted(m for m in (models if models is not None else list_models())
                  if stride_options(m)
                  and len({stride_for(m, image_size, crop_width, k) for k in candidates}) > 1)


def choose_k(variants: pd.DataFrame, image_size: int, crop_width: float | None,
             candidates: Sequence[int] = K_CANDIDATES, tie: float = K_TIE,
             models: Sequence[str] | None = None) -> tuple[int, pd.DataFrame]:
    """``k`` chosen on validation: for each candidate, the mean over the configurable models of
    the best validation Dice (``val_dice``, mean over seeds) of their runs at the stride the rule
    gives them (``variants.csv``'s rows: ``model``, ``output_stride``, ``val_dice``, at
    ``image_size``); the best mean wins, a smaller ``k`` within ``tie`` of it is preferred. A
    candidate whose strides were not all run scores NaN and cannot win; the models are
    :func:`varying_models` of ``models`` (default: every registered model), so a model with no
    run at all leaves every candidate that moves it unscored rather than out of the mean.
    Returns ``k`` and the table of candidates (``k``, ``val_dice``, ``strides``)."""
    lacking = [c for c in ("model", "output_stride", "val_dice") if c not in variants]
    if lacking:
        raise ConfigError(f"variants: lacks the columns {lacking}")
    runs = variants
    if "image_size" in variants:
        runs = variants[variants["image_size"] == image_size]
    dice = runs.groupby(["model", "output_stride"])["val_dice"].mean()
    models = varying_models(image_size, crop_width, candidates, models)
    rows = []
    for k in candidates:
        strides = {m: stride_for(m, image_size, crop_width, k) for m in models}
        scores = [dice.get((m, s), math.nan) for m, s in strides.items()]
        rows.append({"k": k, "val_dice": float(pd.Series(scores).mean(skipna=False))
                     if scores else math.nan,
                     "strides": ", ".join(f"{m} {s}" for m, s in strides.items())})
    table = pd.DataFrame(rows)
    scored = table.dropna(subset=["val_dice"])
    if not len(scored):
        raise ConfigError("stride runs: no candidate k has runs at every stride it needs "
                          "(run scripts/stride_runs.sh)")
    best = scored["val_dice"].max()
    return int(scored.loc[scored["val_dice"] >= best - tie, "k"].min()), table
