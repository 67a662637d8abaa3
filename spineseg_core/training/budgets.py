"""The per-model departures from a profile's equal budget, part of every run's configuration.

A profile gives every model the same budget (CONTRIBUTING, "Equal budgets"). A few models
cannot train on it as they stand; each :class:`BudgetException` names the model, the profile,
the values it gets instead and the evidence or design reason that forced them.
:func:`~spineseg_core.training.config.resolve_config` applies them to the resolved
configuration, so every entry point (the notebook, ``spineseg train``, ``study``, ``bench``,
``efficiency`` and the GPU check) trains and measures a model with the same values; a value the
user gives explicitly still wins (for ``model_kwargs``, key by key). The run's ``params.json``
records the values used, and Table D of the book lists the exceptions
(:func:`spineseg_core.report.deviations.exception_deviations`).

This module imports nothing from the package, so the configuration can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BudgetException:
    """A model that cannot train on a profile's equal budget as it stands, and what it gets
    instead: ``params`` overlay the profile's values (unless the user sets them)."""

    model: str
    profile: str
    params: Mapping[str, Any]
    reason: str
    paper: str = "the same training for every model"
    """What the paper did instead (the deviations table's "paper" column)."""


MINISEG_BF16_REASON = (
    "in bf16 autocast MiniSeg's training loss became non-finite: at epoch 2 on the cpu "
    "profile (seed 0, a 2-core AVX512-BF16 CPU), and at epoch 1 to 3 of smoke runs on AMX "
    "Xeons. The cause is in torch 2.13's CPU kernels, not the network: the bf16 weight "
    "gradient of a dilated depthwise 3x3 convolution in channels-last layout on maps of 32 px "
    "and more is wrong, by a factor of 2 up to 1e31 or not a number, on AMX and on AVX512-BF16 "
    "alike, while fp32 and channels-first bf16 agree (MiniSeg alone has such layers). So it "
    "trains in fp32 on every profile: on a GPU its bf16 path has not been checked, and fp32 costs "
    "an 83 K-parameter network little")
"""Why MiniSeg trains in fp32 (one sentence shared by its exceptions)."""


BUDGET_EXCEPTIONS: tuple[BudgetException, ...] = (
    *(BudgetException("miniseg", profile, {"amp": False}, MINISEG_BF16_REASON)
      for profile in ("smoke", "cpu", "paper")),
    *(BudgetException(
        "unet3d", profile, {"batch_size": 1},
        "a 3D U-Net's batch item is a whole volume (12-15 slices), so the profile's batch of 4 "
        "would be about 52 slices per step; one volume per step (set by design, not tuned) "
        "keeps it near the 2D models' slices per step, and the budget in optimiser steps gives "
        "it as many steps as every other model")
      for profile in ("cpu", "paper")),
)
"""The study's departures from equal budgets, each with the evidence or design reason that
forced it."""


def budget_exception(model: str, profile: str) -> BudgetException | None:
    """The exception of ``model`` on ``profile``, if any."""
    return next((e for e in BUDGET_EXCEPTIONS if (e.model, e.profile) == (model, profile)), None)


def model_budget(model: str, profile: str) -> dict[str, Any]:
    """The values ``model`` gets on ``profile`` instead of the profile's (empty for none)."""
    exception = budget_exception(model, str(profile))
    return dict(exception.params) if exception is not None else {}
