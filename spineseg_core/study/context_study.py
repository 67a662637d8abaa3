"""The context study's facts: its name and which 2D model each context model is compared with.

The context models (2.5D U-Net and DeepLabv3+, the 3D U-Net: ``models.CONTEXT_MODEL_NAMES``)
are compared with 2D runs of the same code version, budget and seeds. Their runs lie in one of
two places, and :func:`spineseg_core.study.aggregate.context_split` finds them in either:

- a group of their own, ``<profile>-context``, that also holds its own 2D baselines (the
  6-epoch study, ``scripts/context_study.sh``);
- the main group, beside the twelve, at the same budget and from the same pinned code (the
  plateau seed and re-run, :mod:`spineseg_core.study.schedule`): their 2D baselines are then
  the main group's own U-Net and DeepLabv3+ runs, so nothing is trained twice.

Either way the context models stay out of the main tables (the paper's twelve) and come into
the study's own (``context.csv`` ...), with their baselines.
"""

from __future__ import annotations

STUDY = "context"
"""The context study's variant name: its own group is ``<profile>-context``."""

BASELINES: dict[str, str] = {
    "unet_25d3": "unet", "unet_25d5": "unet", "unet3d": "unet",
    "deeplabv3plus_25d3": "deeplabv3plus", "deeplabv3plus_25d5": "deeplabv3plus",
}
"""Each context model and the 2D model it is compared with (its own network, or for the 3D
U-Net, the 2D U-Net)."""


def study_models(models: list[str] | tuple[str, ...]) -> list[str]:
    """Of ``models`` (those in a group, in its order), the ones the context study takes when
    the group holds context models: the context models and their 2D baselines; none when the
    group holds no context model."""
    context = [m for m in models if m in BASELINES]
    wanted = set(context) | {BASELINES[m] for m in context}
    return [m for m in models if m in wanted]
