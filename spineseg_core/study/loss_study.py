"""Which reading of the paper's Dice loss trains a sane model? The protocol's loss experiment.

The paper's eq. 1 is the plain Dice ``2|A∩B| / (|A| + |B|)``; it does not say whether the
background class counts, whether the sums run over the batch or per image, or what smoothing
keeps an absent class finite. :data:`VARIANTS` spans those choices, ordered from the most
literal reading to the least (then the two references, ``ce`` and nnU-Net's ``dice_ce``), and
:func:`choose_default` is the rule that picked the study's default loss from the experiment's
*validation* scores (``scripts/loss_variants.py`` writes them, with the test scores beside):
the most literal pure-Dice variant that is sane; if none is, ``dice_ce``.

The default is then chosen over several models, not on one U-Net seed
(:func:`select_loss`): the loss runs cover :data:`LOSS_MODELS` (U-Net, MiniSeg and a backbone
model), and the loss with the highest mean best-validation Dice over them wins, the paper's
loss first among those within a point of it.

"Sane" is asked of every validated epoch in the second half of the budget
(:func:`late_scores`), not of the best epoch alone: a loss whose model is sane only at its last
epoch is one epoch, one seed or one slower model away from an insane one. (This was tightened
after the first experiment, on its validation curves: the most literal reading was sane at its
sixth and last epoch only, after 6-14 % of pixels painted as absent levels at epochs 2-5.)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

BG_RECALL_MIN = 0.98
"""A sane model predicts background on at least this share of background pixels..."""
ABSENT_MAX = 0.01
"""...and labels under this share of pixels as structures the case does not contain."""
FALLBACK = "dice_ce"
"""The default when no pure Dice variant is sane (nnU-Net's loss)."""

LOSS_MODELS: tuple[str, ...] = ("unet", "miniseg", "deeplabv3plus")
"""The models trained with every loss (the study's loss runs, ``<profile>-loss-<loss>``) and
over which the default loss is chosen: a U-Net, the light MiniSeg (whose own recipe is a
weighted cross-entropy) and a backbone model, the paper's best (issue 24, part 5)."""

LOSS_PREFERENCE: tuple[str, ...] = ("dice", "dice_ce", "ce", "weighted_ce")
"""On a tie, the first of these wins: the paper's loss, then the study's default so far."""

LOSS_TIE = 0.01
"""Mean validation Dice within which two losses count as tied (one point)."""

LOSS_NAMES: dict[str, str] = {"dice": "Dice loss", "ce": "cross-entropy",
                              "weighted_ce": "weighted cross-entropy",
                              "dice_ce": "Dice + cross-entropy"}
"""Each loss of :class:`spineseg_core.losses.LossName` as a reader names it: the book's text,
tables and legends say these; the code names belong to the reproducibility chapter."""


def loss_name(loss: str | None) -> str:
    """A loss's name for readers (``dice_ce`` reads "Dice + cross-entropy"); an unknown name as
    it is, and "unrecorded" for none."""
    return LOSS_NAMES.get(str(loss), str(loss)) if loss else "unrecorded"


@dataclass(frozen=True)
class Variant:
    """One loss of the experiment: its name in the tables, the loss and its Dice options."""

    name: str
    loss: str
    kwargs: dict[str, Any] | None
    reading: str

    @property
    def pure_dice(self) -> bool:
        return self.loss == "dice"


def _dice(bg: bool, pooling: str, nr: float, dr: float) -> dict[str, Any]:
    return dict(include_background=bg, pooling=pooling, smooth_nr=nr, smooth_dr=dr)


VARIANTS: tuple[Variant, ...] = (
    Variant("dice_bg_batch_s0", "dice", _dice(True, "batch", 0, 1e-5),
            "every class, sums over the batch, no smoothing (eq. 1 as printed)"),
    Variant("dice_bg_image_s1e5", "dice", _dice(True, "image", 1e-5, 1e-5),
            "every class, per image, smoothing 1e-5 (MONAI's default)"),
    Variant("dice_bg_batch_s1", "dice", _dice(True, "batch", 1, 1),
            "every class, sums over the batch, smoothing 1"),
    Variant("dice_bg_image_s1", "dice", _dice(True, "image", 1, 1),
            "every class, per image, smoothing 1"),
    Variant("dice_fg_batch_s1", "dice", _dice(False, "batch", 1, 1),
            "foreground only, sums over the batch, smoothing 1 (the first bundle's)"),
    Variant("ce", "ce", None, "cross-entropy"),
    Variant("dice_ce", "dice_ce", None,
            "Dice (every class, sums over the batch, no smoothing) + cross-entropy (nnU-Net)"),
)
"""Most literal reading of eq. 1 first; ``ce`` and ``dice_ce`` are the references."""

BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}


def is_sane(bg_recall: float, absent_fraction: float) -> bool:
    """Background predicted as background, no absent structure painted in."""
    return bg_recall >= BG_RECALL_MIN and absent_fraction < ABSENT_MAX


SANITY_METRICS: tuple[str, ...] = ("bg_recall", "absent_fraction")
"""The check's inputs, as ``metrics.json`` and the bundle's run tables name them."""


def sane_runs(runs: pd.DataFrame | None) -> pd.Series | None:
    """:func:`is_sane` of each run of ``runs`` (``bg_recall``, ``absent_fraction`` columns),
    on its index; ``None`` when the table lacks them."""
    if runs is None or not len(runs) or not set(SANITY_METRICS) <= set(runs):
        return None
    return pd.Series([is_sane(b, a) for b, a in zip(runs["bg_recall"], runs["absent_fraction"])],
                     index=runs.index, dtype=bool)


def late_scores(history: pd.DataFrame) -> dict[str, float]:
    """The worst background recall and the worst absent fraction over the validated epochs of
    the second half of a run (``history.csv``: ``epoch, bg_recall, absent_fraction``; rows
    without validation are skipped), and how many epochs that window holds."""
    done = history.dropna(subset=["bg_recall", "absent_fraction"])
    if done.empty:
        raise ValueError("history has no validated epoch")
    last = int(history["epoch"].max())
    late = done[done["epoch"] > last - math.ceil(last / 2)]
    return {"val_late_bg_recall_min": float(late["bg_recall"].min()),
            "val_late_absent_max": float(late["absent_fraction"].max()),
            "late_epochs": int(len(late))}


def choose_default(table: pd.DataFrame) -> tuple[str, str]:
    """``(variant name, reason)`` from a table with ``variant, val_late_bg_recall_min,
    val_late_absent_max`` rows (:func:`late_scores`): the first pure-Dice variant of
    :data:`VARIANTS`' order that is sane over the second half of its validated epochs, else
    :data:`FALLBACK`. Test columns are never read."""
    missing = {"variant", "val_late_bg_recall_min", "val_late_absent_max"} - set(table.columns)
    if missing:
        raise ValueError(f"loss-variant table lacks {sorted(missing)}")
    rows = table.set_index("variant")
    tried = [v for v in VARIANTS if v.pure_dice and v.name in rows.index]
    for v in tried:
        r = rows.loc[v.name]
        if is_sane(float(r["val_late_bg_recall_min"]), float(r["val_late_absent_max"])):
            return v.name, f"the most literal sane pure-Dice variant ({v.reading})"
    return FALLBACK, (f"none of the {len(tried)} pure-Dice variants was sane on validation "
                      f"over the second half of its epochs (background recall >= "
                      f"{BG_RECALL_MIN:.0%} and absent structures < {ABSENT_MAX:.0%} at "
                      f"every one)")


def select_loss(runs: pd.DataFrame, models: tuple[str, ...] = LOSS_MODELS,
                tie: float = LOSS_TIE) -> tuple[str, str, pd.DataFrame]:
    """The default loss chosen on validation over ``models``.

    From loss-run records (``model, loss, seed, val_dice``: each run's best validation Dice,
    e.g. ``runs.csv`` of the main and loss groups stacked): each loss's mean over the models of
    the mean over seeds (per model, the seeds every loss of it was run with); only a loss run
    for every model competes. The highest wins; among the losses within ``tie`` of it, the
    first of :data:`LOSS_PREFERENCE`. With the columns ``val_late_bg_recall_min`` and
    ``val_late_absent_max`` (:func:`late_scores` of each run), a loss competes only if every one
    of its runs is sane (:func:`is_sane`) over the second half of its validated epochs: a loss
    that paints the background with absent levels is not chosen for its Dice. Test columns are
    never read. Returns the loss, the reason in words, and the table (``loss``, ``val_dice``,
    ``models``, ``sane``, ``eligible``), best first."""
    lacking = {"model", "loss", "seed", "val_dice"} - set(runs.columns)
    if lacking:
        raise ValueError(f"loss runs: lack the columns {sorted(lacking)}")
    own = runs[runs["model"].isin(models)]
    # per model, only the seeds every loss of it was run with: the losses meet on equal terms
    common = own.groupby(["model", "loss"])["seed"].agg(frozenset).groupby("model").agg(
        lambda sets: frozenset.intersection(*sets))
    own = own[[seed in common[m] for m, seed in zip(own["model"], own["seed"])]]
    per_model = own.groupby(["loss", "model"])["val_dice"].mean().unstack("model")
    per_model = per_model.reindex(columns=list(models))
    table = pd.DataFrame({"loss": per_model.index,
                          "val_dice": per_model.mean(axis=1, skipna=False).to_numpy(),
                          "models": per_model.notna().sum(axis=1).to_numpy()})
    if {"val_late_bg_recall_min", "val_late_absent_max"} <= set(own.columns):
        sane = pd.Series([is_sane(b, a) for b, a in zip(own["val_late_bg_recall_min"],
                                                        own["val_late_absent_max"])],
                         index=own.index).groupby(own["loss"]).all()
        table["sane"] = table["loss"].map(sane).fillna(False).astype(bool)
    else:
        table["sane"] = True
    table["eligible"] = (table["models"] == len(models)) & table["sane"]
    table = table.sort_values(["eligible", "val_dice"], ascending=False, ignore_index=True)
    eligible = table[table["eligible"]]
    if not len(eligible):
        raise ValueError(f"loss runs: no loss was run for every model of {list(models)} "
                         f"and sane on validation")
    best = float(eligible["val_dice"].max())
    tied = list(eligible.loc[eligible["val_dice"] >= best - tie, "loss"])
    rank = {name: i for i, name in enumerate(LOSS_PREFERENCE)}
    chosen = min(tied, key=lambda name: (rank.get(name, len(rank)), name))
    top = eligible["loss"].iloc[0]
    reason = (f"highest mean best-validation Dice over {', '.join(models)} "
              f"({100 * best:.1f} %)" if chosen == top and len(tied) == 1 else
              f"within {100 * tie:.0f} point of the highest mean best-validation Dice over "
              f"{', '.join(models)} ({', '.join(tied)}), and first in the order "
              f"{', '.join(LOSS_PREFERENCE)}")
    return chosen, reason, table


def variants_table(table: pd.DataFrame) -> pd.DataFrame:
    """The experiment's table for the book, every score in percent: the reading, validation
    (best epoch) and test scores, the worst validation scores of the second half, and whether
    the loss is sane, in :data:`VARIANTS`' order."""
    order = {v.name: i for i, v in enumerate(VARIANTS)}
    t = table.assign(_o=table["variant"].map(order)).sort_values("_o")
    out = pd.DataFrame({"loss": t["variant"].map(lambda n: BY_NAME[n].reading)})
    for part, label in (("val", "val."), ("test", "test")):
        out[f"{label} Dice"] = (100 * t[f"{part}_dice"]).round(1)
        out[f"{label} bg recall"] = (100 * t[f"{part}_bg_recall"]).round(1)
        out[f"{label} absent"] = (100 * t[f"{part}_absent_fraction"]).round(2)
    out["worst val. bg recall, 2nd half"] = (100 * t["val_late_bg_recall_min"]).round(1)
    out["worst val. absent, 2nd half"] = (100 * t["val_late_absent_max"]).round(2)
    out["sane"] = ["yes" if is_sane(b, a) else "no"
                   for b, a in zip(t["val_late_bg_recall_min"], t["val_late_absent_max"])]
    return out.reset_index(drop=True)


def kwargs_json(variant: Variant) -> str:
    return json.dumps(variant.kwargs or {})
