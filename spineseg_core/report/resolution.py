"""The resolution check: does the models' ordering at the cpu profile's 128 px hold at 256 px?

At 128 px a thoracic disc of the phantom is 2-4 px high and a stride-32 encoder sees a map of a
few pixels (``spineseg resolution``), so an ordering measured there may be an artefact of the
grid. The check trains U-Net, Attention U-Net, DeepLabv3+, PSPNet and DANet again at twice the
size (group ``<profile>-res256``, one seed) and DANet at both of :data:`STRIDES` at both sizes
(on the cpu profile its main runs use stride 8, ``<profile>-os32`` and ``<profile>-res256``
hold its stride-32 runs, ``<profile>-os8-res256`` its stride-8 run at 256 px); ``spineseg
aggregate`` puts these runs and the
profile's own runs of the same models in ``variants.csv``. :func:`resolution_check` says, with
numbers, whether (a) the U-Net family vs backbone-model ordering and (b) DeepLabv3+'s rank
among the models run at both sizes change between the two sizes. The claims of
:mod:`spineseg_core.report.claims` use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spineseg_core.models.registry import Family

RESOLUTION_MODELS: tuple[str, ...] = ("unet", "attention_unet", "deeplabv3plus", "pspnet",
                                      "danet")
"""The models the check trains at both sizes (issue 11, item 2)."""

STRIDE_MODEL = "danet"
"""The model trained at both of :data:`STRIDES`."""

STRIDES: tuple[int, int] = (8, 32)
"""DANet's two output strides: 8, its authors' dilated setting, and 32, the undilated one
that matches the paper's operation count (``models/danet.py``)."""

BEST_CANDIDATE = "deeplabv3plus"
"""The model whose rank the check follows (the paper's best)."""

REQUIRED = ("group", "model", "family", "seed", "image_size", "output_stride", "dice")


@dataclass(frozen=True)
class ResolutionCheck:
    """The check's numbers; a ``None`` verdict field means it could not be decided (``missing``
    says why). Dice values are fractions; ``table`` has one row per model run at both sizes at
    its main stride (that of its runs in the main group), with its Dice at each size (mean over
    the seeds run at both)."""

    sizes: tuple[int, ...] = ()
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    family_gap: dict[int, float] = field(default_factory=dict)
    family_order_changes: bool | None = None
    deeplab_rank: dict[int, int] = field(default_factory=dict)
    deeplab_rank_changes: bool | None = None
    stride8_gain: dict[int, float] = field(default_factory=dict)
    main_stride: int | None = None
    family_gap_alt_stride: dict[int, float] = field(default_factory=dict)
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

    @property
    def alt_stride(self) -> int | None:
        """The one of :data:`STRIDES` that DANet's main runs do not use."""
        return alt_stride(self.main_stride)

    def alt_stride_family_finding(self) -> str:
        """Finding (a) again with DANet's runs at its other stride in place of its main runs:
        evidence beside the verdicts (their rules read :attr:`family_gap` only), since the
        stride is the study's choice; empty when not measured at both sizes."""
        gap = self.family_gap_alt_stride
        if len(gap) < 2:
            return ""
        lo, hi = self.sizes
        gaps = ", ".join(f"{100 * gap[s]:+.2f} points at {s} px" for s in self.sizes)
        changes = np.sign(gap[lo]) != np.sign(gap[hi])
        return (f"With DANet at output stride {self.alt_stride} in place of its main stride "
                f"({self.main_stride}), the same gap is {gaps}; the ordering "
                f"{'changes' if changes else 'is the same'} between {lo} and {hi} px.")

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
        out = [t for t in (self.family_finding(), self.alt_stride_family_finding(),
                           self.rank_finding()) if t]
        if self.stride8_gain:
            gains = ", ".join(f"{100 * g:+.2f} points at {s} px"
                              for s, g in sorted(self.stride8_gain.items()))
            out.append(f"DANet at output stride 8 minus stride 32: {gains}.")
        if self.missing:
            out.append(f"Missing: {'; '.join(self.missing)}.")
        return out


def alt_stride(stride: int | None) -> int | None:
    """The other one of :data:`STRIDES` (``None`` for a stride outside them)."""
    return STRIDES[1 - STRIDES.index(stride)] if stride in STRIDES else None


def main_strides(variants: pd.DataFrame, main_group: str) -> pd.Series:
    """Each model's output stride in ``main_group`` (the most common one of its runs there),
    indexed by model: the stride at which the check and Table 1 count it."""
    main = variants[variants["group"] == main_group]
    return main.groupby("model")["output_stride"].agg(lambda s: int(s.mode().iloc[0]))


def _family_gap(table: pd.DataFrame, size: int) -> float:
    """Mean Dice of the backbone models minus that of the U-Net family at ``size``."""
    means = table.groupby("family")[f"dice_{size}"].mean()
    return float(means[str(Family.BACKBONE)] - means[str(Family.UNET)])


def _rank(dice: pd.Series) -> pd.Series:
    """Rank 1 = highest Dice; ties share the better rank."""
    return dice.rank(ascending=False, method="min").astype(int)


def runs_at_size(runs: pd.DataFrame, model: str, size: int, main_stride: int,
                 stride_at: Callable[[str, int], int | None] | None = None) -> pd.DataFrame:
    """``runs`` of ``model`` at ``size`` px at the stride the check counts it at there: its main
    stride where it was run so at that size, else (given ``stride_at``, the study's stride rule
    on the grid of that size, :func:`spineseg_core.models.stride.stride_for`) the stride the
    study builds it with at that size. A bundle made under the rule has DeepLabv3+ at stride 8
    on the 128 px grid and 16 on the 256 px one: both are the model as the study builds it."""
    sized = runs[(runs["model"] == model) & (runs["image_size"] == size)]
    same = sized[sized["output_stride"] == main_stride]
    if len(same) or stride_at is None:
        return same
    ruled = stride_at(model, size)
    return sized[sized["output_stride"] == ruled] if ruled is not None else same


def study_strides(profile: str) -> Callable[[str, int], int | None] | None:
    """The stride rule on ``profile``'s grid at any image size (its crop kept): what
    :func:`resolution_check` is given as ``stride_at``; None for a name that is no profile."""
    from spineseg_core.errors import ConfigError
    from spineseg_core.models.stride import stride_for
    from spineseg_core.training.config import resolve_config

    try:
        crop_width = resolve_config(profile, phantom=True).crop_width
    except ConfigError:
        return None
    return lambda model, size: stride_for(model, size, crop_width)


def resolution_check(variants: pd.DataFrame | None, main_group: str,
                     models: Sequence[str] = RESOLUTION_MODELS,
                     stride_at: Callable[[str, int], int | None] | None = None
                     ) -> ResolutionCheck:
    """The check from ``variants.csv`` (:func:`spineseg_core.study.aggregate.variants_table`).

    Each model's default output stride is that of its runs in ``main_group`` (the profile's own
    runs); at each image size its runs at that stride and at the seeds run at both sizes count
    (mean Dice over them); at a size where it has no run at that stride, ``stride_at`` gives
    the stride the study builds it with there (:func:`runs_at_size`). (a) The family gap is the
    mean Dice of the backbone models minus that of the U-Net family, over the models run at
    both sizes; the ordering changes when the gap's sign differs between the smallest and
    largest size. (b) DeepLabv3+'s rank among the
    same models (1 = best, ties share the better rank) changes when it differs. DANet's gain
    from stride 8 over stride 32 (same seeds and size; a bundle from before the rule, whose
    DANet was run at both at one size) is reported beside, and so is gap (a)
    with DANet's runs at the stride its main runs do not use (mean over the seeds run at that
    stride at both sizes) in their place. Missing runs are named in ``missing``, never
    raised.
    """
    if variants is None or not len(variants):
        return ResolutionCheck(missing=("no side-study runs yet: variants.csv is absent",))
    lacking = [c for c in REQUIRED if c not in variants]
    if lacking:
        return ResolutionCheck(missing=(f"variants.csv lacks the columns {lacking}",))
    v = variants.dropna(subset=["dice", "image_size"])
    default = main_strides(v, main_group)
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
        at = {s: runs_at_size(v, model, s, int(default[model]), stride_at) for s in (lo, hi)}
        seeds = set(at[lo]["seed"]) & set(at[hi]["seed"])
        if not seeds:
            missing.append(f"{model} was not run at both {lo} and {hi} px with one seed")
            continue
        both = pd.concat([at[lo], at[hi]])
        both = both[both["seed"].isin(seeds)]
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

    main_stride = int(default[STRIDE_MODEL]) if STRIDE_MODEL in default.index else None
    other = alt_stride(main_stride)
    gap_alt: dict[int, float] = {}
    alt = v[(v["model"] == STRIDE_MODEL) & (v["output_stride"] == other)]
    seeds_alt = (set(alt.loc[alt["image_size"] == lo, "seed"])
                 & set(alt.loc[alt["image_size"] == hi, "seed"]))
    if gap and STRIDE_MODEL in set(table["model"]) and seeds_alt:
        dice_alt = alt[alt["seed"].isin(seeds_alt)].groupby("image_size")["dice"].mean()
        table_alt = table.set_index("model")
        table_alt.loc[STRIDE_MODEL, [f"dice_{lo}", f"dice_{hi}"]] = [dice_alt[lo],
                                                                      dice_alt[hi]]
        gap_alt = {s: _family_gap(table_alt, s) for s in (lo, hi)}

    gain: dict[int, float] = {}
    danet = v[v["model"] == STRIDE_MODEL]
    stride_study = any(set(STRIDES) <= set(danet.loc[danet["image_size"] == s, "output_stride"])
                       for s in (lo, hi))  # a bundle from before the stride rule
    if main_stride is not None and stride_study:
        eight_stride, base_stride = STRIDES
        for s in (lo, hi):
            at = danet[danet["image_size"] == s]
            base = at[at["output_stride"] == base_stride].set_index("seed")["dice"]
            eight = at[at["output_stride"] == eight_stride].set_index("seed")["dice"]
            seeds = sorted(set(base.index) & set(eight.index))
            if seeds:
                gain[s] = float(eight.groupby(level=0).mean()[seeds].mean()
                                - base.groupby(level=0).mean()[seeds].mean())
            else:
                missing.append(_stride_missing(s, base, eight))
    return ResolutionCheck((lo, hi), table, gap, changes, rank, rank_changes, gain,
                           main_stride, gap_alt, tuple(missing))


def _stride_missing(size: int, base: pd.Series, eight: pd.Series) -> str:
    """What the stride comparison lacks at one image size, named for the page: the stride not
    run there, or a seed common to both strides."""
    from spineseg_core.models import model_info

    name = model_info(STRIDE_MODEL).display_name
    absent = [str(o) for o, runs in zip(STRIDES, (eight, base)) if runs.empty]
    if absent:
        return f"{name} at output stride {' and '.join(absent)} at {size} px"
    return (f"{name} at output strides {STRIDES[0]} and {STRIDES[1]} at {size} px with a seed "
            "in common")


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


def final_map(resolution: pd.DataFrame | None, stride: int) -> str | None:
    """The ``rows x cols`` of a stride's last feature map on the training band
    (``resolution.csv``'s section "map, training band"); ``None`` when not measured."""
    if resolution is None or not {"section", "stride", "rows", "cols"} <= set(resolution):
        return None
    row = resolution[(resolution["section"] == "map, training band")
                     & (resolution["stride"] == stride)]
    return f"{int(row['rows'].iloc[0])}x{int(row['cols'].iloc[0])}" if len(row) else None


def alt_stride_text(variants: pd.DataFrame | None, main_group: str,
                    resolution: pd.DataFrame | None = None) -> str:
    """DANet's runs at the profile's image size at its main stride and at the other one, in
    sentences for the page beside Table 1: the best validation Dice (the choice's evidence,
    mean and range over seeds), then the test Dice (mean ± sd) and the lowest background
    recall, and the last map each stride leaves on the training band (``resolution``); empty
    when either stride has no run."""
    from spineseg_core.models import model_info
    from spineseg_core.report.overall import mean_sd_text

    if variants is None or not len(variants) or not set(REQUIRED) <= set(variants):
        return ""
    stride = main_strides(variants, main_group).get(STRIDE_MODEL)
    v = variants[variants["model"] == STRIDE_MODEL].dropna(subset=["dice"])
    main = v[v["group"] == main_group]
    if stride is None or not len(main):
        return ""
    size = int(main["image_size"].iloc[0])
    other = v[(v["output_stride"] == alt_stride(stride)) & (v["image_size"] == size)]
    if not len(other):
        return ""

    def describe(runs: pd.DataFrame, at: int) -> str:
        where = final_map(resolution, at)
        text = f"at output stride {at}" + (f" (a last map of {where})" if where else "")
        if "val_dice" in runs and runs["val_dice"].notna().all():
            val = runs["val_dice"]
            text += (f", best validation Dice {val.mean():.2f} ({val.min():.2f}–"
                     f"{val.max():.2f})")
        seeds = ", ".join(str(int(s)) for s in sorted(runs["seed"]))
        dice = mean_sd_text(runs["dice"].mean(), runs["dice"].std(ddof=1), len(runs))
        text += f", test Dice {dice} % (seeds {seeds})"
        if "bg_recall" in runs and runs["bg_recall"].notna().any():
            text += f", background recall down to {100 * runs['bg_recall'].min():.1f} %"
        return text

    name = model_info(STRIDE_MODEL).display_name
    groups = ", ".join(sorted(set(other["group"])))
    other_text = describe(other, alt_stride(stride))
    return (f"{name}'s Table 1 runs are {describe(main, stride)}. Its runs {other_text}, "
            f"group {groups}.")
