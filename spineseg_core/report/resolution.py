"""The resolution check: does the models' ordering at the cpu profile's 128 px hold at 256 px?

At 128 px a thoracic disc of the phantom is 2-4 px high and a stride-32 encoder sees a map of a
few pixels (``spineseg resolution``), so an ordering measured there may be an artefact of the
grid. The check trains U-Net, Attention U-Net, DeepLabv3+, PSPNet and DANet again at twice the
size (group ``<profile>-res256``, one seed) and DANet at output stride 8 at both sizes (groups
``<profile>-os8``, ``<profile>-os8-res256``); ``spineseg aggregate`` puts these runs and the
profile's own runs of the same models in ``variants.csv``. :func:`resolution_check` says, with
numbers, whether (a) the U-Net family vs backbone-model ordering and (b) DeepLabv3+'s rank
among the models run at both sizes change between the two sizes. The claims of
:mod:`spineseg_core.report.claims` use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spineseg_core.models.registry import Family

RESOLUTION_MODELS: tuple[str, ...] = ("unet", "attention_unet", "deeplabv3plus", "pspnet",
                                      "danet")
"""The models the check trains at both sizes (issue 11, item 2)."""

STRIDE_MODEL = "danet"
"""The model also trained at output stride 8 (stride 32 by default)."""

BEST_CANDIDATE = "deeplabv3plus"
"""The model whose rank the check follows (the paper's best)."""

REQUIRED = ("group", "model", "family", "seed", "image_size", "output_stride", "dice")


@dataclass(frozen=True)
class ResolutionCheck:
    """The check's numbers; a ``None`` verdict field means it could not be decided (``missing``
    says why). Dice values are fractions; ``table`` has one row per model run at both sizes at
    its default stride, with its Dice at each size (mean over the seeds run at both)."""

    sizes: tuple[int, ...] = ()
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    family_gap: dict[int, float] = field(default_factory=dict)
    family_order_changes: bool | None = None
    deeplab_rank: dict[int, int] = field(default_factory=dict)
    deeplab_rank_changes: bool | None = None
    stride8_gain: dict[int, float] = field(default_factory=dict)
    family_gap_stride8: dict[int, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every model of :data:`RESOLUTION_MODELS` was compared at two sizes."""
        return not self.missing

    def family_finding(self) -> str:
        """Finding (a) in a sentence with its numbers; empty when not measured."""
        if self.family_order_changes is None:
            return ""
        lo, hi = self.sizes
        gaps = ", ".join(f"{100 * self.family_gap[s]:+.2f} points at {s} px" for s in self.sizes)
        return (f"Backbone models minus U-Net family (mean Dice of the models run at both "
                f"sizes): {gaps}; the ordering "
                f"{'changes' if self.family_order_changes else 'is the same'} between {lo} and "
                f"{hi} px.")

    def stride8_family_finding(self) -> str:
        """Finding (a) again with DANet's stride-8 runs in place of its default-stride ones:
        evidence beside the verdicts (their rules read :attr:`family_gap` only), since the
        default stride is the study's choice (stride 32 matches the paper's operation count,
        ``models/danet.py``); empty when not measured at both sizes, or when the default is 8."""
        if len(self.family_gap_stride8) < 2:
            return ""
        lo, hi = self.sizes
        gaps = ", ".join(f"{100 * self.family_gap_stride8[s]:+.2f} points at {s} px"
                         for s in self.sizes)
        changes = np.sign(self.family_gap_stride8[lo]) != np.sign(self.family_gap_stride8[hi])
        return (f"With DANet at output stride 8 in place of its default stride, the same gap "
                f"is {gaps}; the ordering {'changes' if changes else 'is the same'} between "
                f"{lo} and {hi} px.")

    def rank_finding(self) -> str:
        """Finding (b) in a sentence with its numbers; empty when not measured."""
        if self.deeplab_rank_changes is None:
            return ""
        lo, hi = self.sizes
        n = len(self.table)
        return (f"DeepLabv3+ ranks {self.deeplab_rank[lo]} of {n} at {lo} px and "
                f"{self.deeplab_rank[hi]} of {n} at {hi} px: its place "
                f"{'changes' if self.deeplab_rank_changes else 'is the same'}.")

    def summary(self) -> list[str]:
        """The findings in sentences, with their numbers (Dice in points)."""
        if len(self.sizes) < 2:
            return [f"The resolution check has not run: {'; '.join(self.missing)}."]
        out = [t for t in (self.family_finding(), self.stride8_family_finding(),
                           self.rank_finding()) if t]
        if self.stride8_gain:
            gains = ", ".join(f"{100 * g:+.2f} points at {s} px"
                              for s, g in sorted(self.stride8_gain.items()))
            out.append(f"DANet at output stride 8 minus stride 32: {gains}.")
        if self.missing:
            out.append(f"Missing: {'; '.join(self.missing)}.")
        return out


def _family_gap(table: pd.DataFrame, size: int) -> float:
    """Mean Dice of the backbone models minus that of the U-Net family at ``size``."""
    means = table.groupby("family")[f"dice_{size}"].mean()
    return float(means[str(Family.BACKBONE)] - means[str(Family.UNET)])


def _rank(dice: pd.Series) -> pd.Series:
    """Rank 1 = highest Dice; ties share the better rank."""
    return dice.rank(ascending=False, method="min").astype(int)


def resolution_check(variants: pd.DataFrame | None, main_group: str,
                     models: Sequence[str] = RESOLUTION_MODELS) -> ResolutionCheck:
    """The check from ``variants.csv`` (:func:`spineseg_core.study.aggregate.variants_table`).

    Each model's default output stride is that of its runs in ``main_group`` (the profile's own
    runs); at each image size its runs at that stride and at the seeds run at both sizes count
    (mean Dice over them). (a) The family gap is the mean Dice of the backbone models minus
    that of the U-Net family, over the models run at both sizes; the ordering changes when the
    gap's sign differs between the smallest and largest size. (b) DeepLabv3+'s rank among the
    same models (1 = best, ties share the better rank) changes when it differs. DANet's gain
    from stride 8 (same seeds and size) is reported beside, and so is gap (a) with DANet's
    stride-8 runs (mean over the seeds run at stride 8 at both sizes) in its place. Missing
    runs are named in ``missing``, never raised.
    """
    if variants is None or not len(variants):
        return ResolutionCheck(missing=("no side-study runs yet: variants.csv is absent",))
    lacking = [c for c in REQUIRED if c not in variants]
    if lacking:
        return ResolutionCheck(missing=(f"variants.csv lacks the columns {lacking}",))
    v = variants.dropna(subset=["dice", "image_size"])
    main = v[v["group"] == main_group]
    default = main.groupby("model")["output_stride"].agg(lambda s: s.mode().iloc[0])
    sizes = sorted({int(s) for s in v["image_size"]})
    if len(sizes) < 2:
        return ResolutionCheck(sizes=tuple(sizes),
                               missing=(f"runs at one image size only ({sizes})",))
    lo, hi = sizes[0], sizes[-1]
    missing, rows = [], []
    for model in models:
        if model not in default.index:
            missing.append(f"{model} has no run in {main_group}")
            continue
        runs = v[(v["model"] == model) & (v["output_stride"] == default[model])]
        seeds = (set(runs.loc[runs["image_size"] == lo, "seed"])
                 & set(runs.loc[runs["image_size"] == hi, "seed"]))
        if not seeds:
            missing.append(f"{model} was not run at both {lo} and {hi} px with one seed")
            continue
        both = runs[runs["seed"].isin(seeds)]
        dice = both.groupby("image_size")["dice"].mean()
        rows.append({"model": model, "family": both["family"].iloc[0],
                     "seeds": ",".join(str(int(s)) for s in sorted(seeds)),
                     f"dice_{lo}": float(dice[lo]), f"dice_{hi}": float(dice[hi])})
    table = pd.DataFrame(rows, columns=["model", "family", "seeds", f"dice_{lo}", f"dice_{hi}"])

    gap: dict[int, float] = {}
    changes = None
    fams = set(table["family"])
    if {str(Family.UNET), str(Family.BACKBONE)} <= fams:
        gap = {s: _family_gap(table, s) for s in (lo, hi)}
        changes = bool(np.sign(gap[lo]) != np.sign(gap[hi]))
    else:
        missing.append("no model of one of the two families at both sizes")

    rank: dict[int, int] = {}
    rank_changes = None
    if BEST_CANDIDATE in set(table["model"]):
        for s in (lo, hi):
            rank[s] = int(_rank(table.set_index("model")[f"dice_{s}"])[BEST_CANDIDATE])
        rank_changes = rank[lo] != rank[hi]

    gap8: dict[int, float] = {}
    os8 = v[(v["model"] == STRIDE_MODEL) & (v["output_stride"] == 8)]
    seeds8 = (set(os8.loc[os8["image_size"] == lo, "seed"])
              & set(os8.loc[os8["image_size"] == hi, "seed"]))
    if gap and STRIDE_MODEL in set(table["model"]) and default[STRIDE_MODEL] != 8 and seeds8:
        dice8 = os8[os8["seed"].isin(seeds8)].groupby("image_size")["dice"].mean()
        table8 = table.set_index("model")
        table8.loc[STRIDE_MODEL, [f"dice_{lo}", f"dice_{hi}"]] = [dice8[lo], dice8[hi]]
        gap8 = {s: _family_gap(table8, s) for s in (lo, hi)}

    gain: dict[int, float] = {}
    if STRIDE_MODEL in default.index:
        runs = v[v["model"] == STRIDE_MODEL]
        for s in (lo, hi):
            at = runs[runs["image_size"] == s]
            base = at[at["output_stride"] == default[STRIDE_MODEL]].set_index("seed")["dice"]
            eight = at[at["output_stride"] == 8].set_index("seed")["dice"]
            seeds = sorted(set(base.index) & set(eight.index))
            if seeds:
                gain[s] = float(eight.groupby(level=0).mean()[seeds].mean()
                                - base.groupby(level=0).mean()[seeds].mean())
            else:
                missing.append(_stride_missing(int(default[STRIDE_MODEL]), s, base, eight))
    return ResolutionCheck((lo, hi), table, gap, changes, rank, rank_changes, gain, gap8,
                           tuple(missing))


def _stride_missing(stride: int, size: int, base: pd.Series, eight: pd.Series) -> str:
    """What the stride comparison lacks at one image size, named for the page: the stride not
    run there, or a seed common to both strides."""
    from spineseg_core.models import model_info

    name = model_info(STRIDE_MODEL).display_name
    absent = [str(o) for o, runs in ((8, eight), (stride, base)) if runs.empty]
    if absent:
        return f"{name} at output stride {' and '.join(absent)} at {size} px"
    return f"{name} at output strides 8 and {stride} at {size} px with a seed in common"


def resolution_table(check: ResolutionCheck) -> pd.DataFrame:
    """The check's models for the page: name, family, the seeds run at both sizes and the Dice
    (percent, two decimals) at each size."""
    from spineseg_core.models import model_info

    t = check.table
    out = pd.DataFrame({"model": [model_info(m).display_name for m in t["model"]],
                        "family": t["family"], "seeds": t["seeds"]})
    for size in check.sizes:
        out[f"Dice at {size} px (%)"] = (100 * t[f"dice_{size}"]).round(2)
    return out
