"""Context across slices: the 2.5D and 3D baselines beside the 2D U-Net.

The page function of ``book/context.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd

from spineseg_core.report.bundle import Bundle, pct
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.tables import (
    DASH,
    Column,
    HTMLTable,
    Kind,
    cell_text,
    fold_constant,
    table_html,
)

if TYPE_CHECKING:
    from spineseg_core.report.claims import Claim


@page("context")
def context_page(b: Bundle) -> Page:
    """The context study (its group: :func:`~spineseg_core.report.context.study_group`): what
    the bundle holds of it, what each
    model is fed, its scores over seeds, the rule's verdict per context model, and its level
    identification beside its 2D baseline's (:mod:`spineseg_core.report.context`)."""
    from spineseg_core.levels.study import Metric, bundle_folder
    from spineseg_core.report.claims import comparisons_figure, verdict_table
    from spineseg_core.report.context import (
        ARMS,
        DEPTH_RESCORE,
        context_claims,
        context_level_claims,
        context_levels,
        context_summary,
        depth_sentence,
        levels_command,
        status_sentence,
        study_group,
    )
    from spineseg_core.report.pages.convergence import plateau_bundle
    from spineseg_core.study.aggregate import study_per_case
    from spineseg_core.study.schedule import mend_pins

    bundle = b.json("bundle.json") or {}
    profile = b.profile()
    study = (bundle.get("studies") or {}).get("context") or {}
    name = study_group(profile, study)
    levels = bundle_folder(name).as_posix()
    table, per_case = b.csv("context.csv"), b.csv(study_per_case("context"))
    about = b.json(f"{levels}/about.json")
    convergence = b.csv("context_convergence.csv")
    claims = context_claims(per_case, convergence=convergence, runs=table)
    level_claims = context_level_claims(b.csv(f"{levels}/subjects.csv"),
                                        n_boot=int((about or {}).get("n_boot", 1000)),
                                        convergence=convergence, runs=table)
    seed = plateau_bundle(b)
    own = (mend_pins(seed.folder).get("unet3d") or (None,))[0] if seed.folder else None
    out: Page = {"cx_status": MarkdownText(status_sentence(profile, study, about)),
                 "cx_verdicts": _verdicts_sentence(claims, "no context model has been run"),
                 "cx_level_verdicts": _verdicts_sentence(
                     level_claims, "no context model's levels have been measured"),
                 "cx_depth": MarkdownText(depth_sentence(seed.csv(DEPTH_RESCORE), own))}
    summary = context_summary(table)
    if summary is None:
        out["cx_table"] = Missing(f"context.csv ({name}: scripts/context_study.sh, "
                                  "then spineseg aggregate)")
    else:
        kinds = {"slice": "one slice", "stack": "slices as channels", "volume": "whole volume"}

        def spread(metric: str, digits: int = 1):
            """The mean and, lighter under it, the sd over seeds (none for one seed), so
            that the table keeps to the page's width."""
            def write(r: pd.Series) -> str:
                mean, sd = r[f"{metric}_mean"], r[f"{metric}_std"]
                if pd.isna(mean):
                    return DASH
                return (f"{100 * mean:.{digits}f}" if pd.isna(sd)
                        else f'<span class="spineseg-num">{100 * mean:.{digits}f}</span><br>'
                             f'<span class="spineseg-ci">± {100 * sd:.{digits}f}</span>')
            return write

        columns, same = fold_constant(summary, [
            Column("display_name", "Model"),
            Column("input_kind", "Input", write=lambda r: kinds.get(r["input_kind"], DASH)),
            Column("context", "Slices seen", write=lambda r: (
                "all" if r["input_kind"] == "volume" else str(int(r["context"])))),
            Column("n_seeds", "Seeds", Kind.INTEGER),
            Column("dice", "Dice, slices (%)", write=spread("dice")),
            Column("dice3d", "Dice, subjects in 3D (%)", write=spread("dice3d_mean")),
            Column("bg", "Background recall (%)", write=spread("bg_recall")),
            Column("absent", "Absent labels (% of pixels)", write=spread("absent_fraction", 2)),
            Column("time", "Training (min)", write=lambda r: cell_text(
                r["train_seconds_mean"] / 60, Kind.NUMBER, 1)),
            Column("curve", "Validation Dice at the end", write=lambda r: curve_state(
                convergence, r["model"]))])
        out["cx_table"] = table_html(summary, columns, notes=[
            *same, "Mean over seeds with, under it, ± the sd (none for one seed). Dice, "
                   "slices: the paper's Dice, over every test slice; Dice, subjects in 3D: "
                   "per test subject over its volume, mean over subjects. Training time is wall clock, so it "
                   "includes any other load on the machine that ran it. "
                   "Validation Dice at the end: whether the "
                   "mean validation curve had left its steep part when the budget ran out "
                   "(the convergence chapter's rule); a verdict on a model still steep is "
                   "not resolved."])
    if any(c.comparisons for c in claims):
        out["cx_verdicts_table"] = _context_verdicts(
            verdict_table(claims, caveats=True),
            "not measured: the model or its baseline has no run yet")
        fig = comparisons_figure(claims)
        out["cx_forest"] = fig
        plt.close(fig)
    else:
        out["cx_verdicts_table"] = out["cx_forest"] = Missing(
            f"{study_per_case('context')} (runs of a context model and its baseline in "
            f"{name})")

    rates = context_levels(b.csv(f"{levels}/summary.csv"))
    if rates is None:
        out["cx_levels_table"] = Missing(
            f"{levels}/summary.csv ({levels_command(profile, study)})")
    else:
        def rate(metric: str, arm: str):
            def write(r: pd.Series) -> str:
                point, low, high = (r[f"{metric}_{arm}_{k}"] for k in ("point", "ci_low",
                                                                        "ci_high"))
                if pd.isna(point):
                    return DASH
                return f"{pct(point)} ({pct(low)} to {pct(high)})"
            return write

        label = {Metric.IDENTIFICATION: "Levels named right (%)",
                 Metric.ALL_RIGHT: "Subjects with every level right (%)"}
        out["cx_levels_table"] = table_html(rates, [
            Column("display_name", "Model"), Column("baseline_name", "2D baseline")] + [
            Column(f"{metric}_{arm}", f"{label[metric]}, "
                   f"{'context model' if arm == 'model' else '2D baseline'}",
                   write=rate(metric, arm)) for metric in label for arm in ARMS],
            notes=["As each model predicts (no relabelling): point estimate (95 % CI over seeds "
                   "and test subjects), from spineseg levels. Levels: the vertebrae and discs "
                   "present in each subject's reference, each named by the label the model "
                   "gives most of its voxels."],
            dash_note="not measured: the model has no level tables yet")
    out["cx_level_verdicts_table"] = (
        _context_verdicts(verdict_table(level_claims, unit="points", caveats=True),
                          "not measured: the model or its baseline has no level tables yet")
        if any(c.comparisons for c in level_claims) else
        Missing(f"{levels}/subjects.csv (level tables of a context model and its baseline: "
                f"{levels_command(profile, study)})"))
    return out


def _verdicts_sentence(claims: Sequence[Claim], none: str) -> str:
    """The verdicts of a context rule (one claim per model of
    :data:`~spineseg_core.report.context.BASELINES`, in its order) in one sentence, "model:
    verdict, ...", or when no comparison could be made, ``none`` and what that leaves."""
    from spineseg_core.models import model_info
    from spineseg_core.report.claims import Verdict
    from spineseg_core.report.context import BASELINES

    if not any(c.comparisons for c in claims):
        return f"{none} yet, so each comparison is {Verdict.UNRESOLVED}"
    return ", ".join(f"{model_info(m).display_name}: {c.verdict}"
                     for m, c in zip(BASELINES, claims, strict=True))


def curve_state(convergence: pd.DataFrame | None, model: str) -> str:
    """How ``model``'s mean validation curve ended (``convergence_table``'s ``past_steep``):
    "still steep", "levelling off", or a dash when it was not measured."""
    rows = (convergence[convergence["model"] == model]
            if convergence is not None and len(convergence) else None)
    if rows is None or not len(rows):
        return DASH
    return "levelling off" if bool(rows["past_steep"].iloc[0]) else "still steep"


def _context_verdicts(verdicts: pd.DataFrame, dash_note: str) -> HTMLTable:
    """A context rule's :func:`~spineseg_core.report.claims.verdict_table` as shown, each
    claim a comparison: its verdict with the caveats lighter under it, the difference with its
    interval under it, and the seeds (the bound, always 0 here, and the test subjects, the
    same for every row, are said in the caption)."""
    import html

    verdicts = verdicts.rename(columns={"claim": "comparison"})
    diff = next(c for c in verdicts.columns if c.startswith("difference"))
    ci = next(c for c in verdicts.columns if c.startswith("95 % CI"))

    def verdict(r: pd.Series) -> str:
        caveats = str(r.get("caveats", DASH))
        if caveats in (DASH, "\u2014", "", "nan"):
            return html.escape(str(r["verdict"]))
        return (f'{html.escape(str(r["verdict"]))}<br><span class="spineseg-ci spineseg-note">'
                f"{html.escape(caveats)}</span>")

    def difference(r: pd.Series) -> str:
        if str(r[ci]) in (DASH, "\u2014"):
            return str(r[diff])
        return (f'<span class="spineseg-num">{r[diff]}</span><br>'
                f'<span class="spineseg-ci">{r[ci]}</span>')

    return table_html(verdicts, [
        Column("comparison", "Comparison"), Column("verdict", "Verdict", write=verdict),
        Column(diff, diff[:1].upper() + diff[1:] + ", 95 % CI", write=difference),
        Column("seeds", "Seeds")], dash_note=dash_note)
