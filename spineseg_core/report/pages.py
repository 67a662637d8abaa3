"""What each chapter of the book shows, computed from a bundle: ``{glue name: value}``.

A page function reads a :class:`~spineseg_core.report.bundle.Bundle` and returns every value
its chapter glues: text (``{glue:text}``), a matplotlib figure or an
:class:`~spineseg_core.report.tables.HTMLTable` (``{glue:figure}`` with a caption). The chapter
itself is prose around those names, so the analysis is here, tested
(``tests/test_pages.py`` builds every page from a fake bundle and from none, and checks that
each name a chapter uses is given). Missing results give a placeholder that names the file,
never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import pandas as pd

from spineseg_core.fingerprint import REPO
from spineseg_core.report.bundle import MISSING, Bundle, missing, num, pct
from spineseg_core.report.tables import (DASH, Column, HTMLTable, Kind, cell_text, columns_for,
                                          table_html)

if TYPE_CHECKING:
    from spineseg_core.report.claims import Claim

Page = dict[str, Any]


class Missing:
    """A figure or table a page cannot make: the chapter shows which file it needs."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"Missing({self.what!r})"


class MarkdownText(str):
    """Text a chapter glues with ``{glue:md}`name:myst` `` (glued as Markdown): a command in
    backticks shows as code and keeps its ``--``, which Sphinx's smart quotes turn into a dash
    in plain text (``{glue:text}``)."""


PAGES: dict[str, Callable[[Bundle], Page]] = {}


def page(name: str) -> Callable[[Callable[[Bundle], Page]], Callable[[Bundle], Page]]:
    """Register the page function of chapter ``book/<name>.md``."""
    def register(fn: Callable[[Bundle], Page]) -> Callable[[Bundle], Page]:
        PAGES[name] = fn
        return fn
    return register


def build_page(name: str, bundle: Bundle) -> Page:
    """The values of chapter ``name``; an unknown chapter is a ``KeyError`` naming them all."""
    if name not in PAGES:
        raise KeyError(f"no page function for chapter {name!r}; known: {sorted(PAGES)}")
    return PAGES[name](bundle)


# --- Table 1 -------------------------------------------------------------------------------

@page("results")
def results_page(b: Bundle) -> Page:
    from scipy.stats import spearmanr

    from spineseg_core.report.figures import paired_bars
    from spineseg_core.report.overall import table1, table1_columns
    from spineseg_core.report.resolution import alt_stride_text
    from spineseg_core.study.paper import table1_overall

    models, runs, bundle = b.csv("models.csv"), b.csv("runs.csv"), b.json("bundle.json") or {}
    paper = table1_overall()
    both = table1(models) if models is not None and len(models) else None
    fnr_recall = paper["fn_rate"] + paper["recall"]
    out: Page = {
        "t1_nboot": str(bundle.get("n_boot", MISSING)),
        "t1_n_ours": str(0 if both is None else len(both)), "t1_n_paper": str(len(paper)),
        "t1_fnr_recall_lo": num(fnr_recall.min(), 1), "t1_fnr_recall_hi": num(fnr_recall.max(), 1),
        "t1_rho": "not computed (fewer than three models)",
    }
    if both is not None and len(both) >= 3 and both["dice_mean"].nunique() > 1:
        ok = both.dropna(subset=["dice"])
        out["t1_rho"] = num(spearmanr(ok["dice"], ok["dice_mean"]).statistic)
    if both is None:
        for k in ("best", "best_dice", "best_lo", "best_hi", "worst", "worst_dice"):
            out[f"t1_{k}"] = MISSING
        out.update(t1_bars=Missing("models.csv"), t1_overlap=Missing("models.csv"),
                   t1_errors=Missing("models.csv"))
    else:
        best, worst = both.loc[both.dice_mean.idxmax()], both.loc[both.dice_mean.idxmin()]
        out.update(t1_best=best.display_name, t1_best_dice=pct(best.dice_mean),
                   t1_best_lo=pct(best.dice_ci_low), t1_best_hi=pct(best.dice_ci_high),
                   t1_worst=worst.display_name, t1_worst_dice=pct(worst.dice_mean))
        order = both.sort_values("dice", na_position="first")
        out["t1_bars"] = paired_bars(order.display_name, order["dice"], 100 * order.dice_mean,
                                     100 * order.dice_ci_low, 100 * order.dice_ci_high,
                                     "Dice (%)")
        out["t1_overlap"] = table_html(
            both, table1_columns(["dice", "miou"]),
            notes=["Ours: mean ± sd over seeds (n = 1: one seed, spread not measured); 95 % CI "
                   "over seeds and test subjects."], dash_note="the paper has no such model")
        out["t1_errors"] = table_html(both, table1_columns(["fnr", "fpr", "recall"]),
                                      dash_note="the paper has no such model")
    off = None
    if runs is not None and "budget_exceptions" in runs:
        off = runs[runs["budget_exceptions"].astype("string").fillna("").ne("")]
    out.update(_sanity_values(runs))
    out["t1_n_off"] = str(0 if off is None else len(off))
    out["t1_alt_stride"] = alt_stride_text(b.csv("variants.csv"),
                                           str(bundle.get("profile", "cpu")),
                                           b.csv("resolution.csv")) or (
        "No run of DANet at another output stride is in this bundle.")
    out["t1_off"] = (table_html(off, [Column("display_name", "Model"),
                                      Column("seed", "Seed", Kind.INTEGER),
                                      Column("budget_exceptions", "Differs from the profile")])
                     if off is not None and len(off)
                     else HTMLTable("<p>Every run kept the profile's budget.</p>"))
    return out


def _sanity_values(runs: pd.DataFrame | None) -> Page:
    """The protocol's check of each run (:func:`sanity_check`) for the results chapter."""
    from spineseg_core.study.loss_study import ABSENT_MAX, BG_RECALL_MIN

    out: Page = {"t1_bg_min": f"{BG_RECALL_MIN:.0%}", "t1_absent_max": f"{ABSENT_MAX:.0%}"}
    checked = sanity_check(runs)
    if checked is None:
        out.update(t1_sane_text="No run is in the bundle yet.",
                   t1_sanity=Missing("runs.csv"))
        return out
    out["t1_sane_text"], out["t1_sanity"] = checked
    return out


def sanity_check(runs: pd.DataFrame | None) -> tuple[str, HTMLTable] | None:
    """The protocol's check of each run of ``runs`` (``display_name, seed, bg_recall,
    absent_fraction``; :func:`spineseg_core.study.loss_study.is_sane`): background predicted
    as background on at least ``BG_RECALL_MIN`` of its pixels, under ``ABSENT_MAX`` of the
    pixels labelled as a structure the case does not contain. A sentence saying which runs fail,
    and the table of every run; ``None`` when ``runs`` lacks the columns."""
    from spineseg_core.study.loss_study import ABSENT_MAX, BG_RECALL_MIN, sane_runs

    sane = sane_runs(runs)
    if sane is None:
        return None
    t = runs.assign(sane=sane)
    bad = t[~t["sane"]]
    failing = "; ".join(f"{m} (seed{'s' if len(g) > 1 else ''} "
                        f"{', '.join(str(int(x)) for x in g['seed'])})"
                        for m, g in bad.groupby("display_name", sort=False))
    one = len(bad) == 1
    text = (
        f"All {len(t)} runs pass it." if bad.empty else
        f"{len(t) - len(bad)} of {len(t)} runs pass it; {failing} {'does' if one else 'do'} "
        f"not, and {'its' if one else 'their'} scores above measure a model that has not "
        "learned to leave background alone.")
    table = table_html(t, [
        Column("display_name", "Model"), Column("seed", "Seed", Kind.INTEGER),
        Column("bg_recall", "Background predicted as background (%)", Kind.PERCENT, 2),
        Column("absent_fraction", "Pixels labelled as an absent structure (%)",
               Kind.PERCENT, 3),
        Column("sane", "Passes", write=lambda r: "yes" if bool(r["sane"]) else "no")],
        notes=[f"Held-out test set, full field of view. A run passes with at least "
               f"{BG_RECALL_MIN:.0%} background recall and under {ABSENT_MAX:.0%} of the "
               "pixels labelled as a structure the case does not contain."])
    return text, table


# --- Figure 18 -----------------------------------------------------------------------------

@page("visual")
def visual_page(b: Bundle) -> Page:
    from spineseg_core.report.figures import figure18_slice

    fig18 = b.npz("figure18.npz")
    out: Page = {}
    kinds = list(fig18["kind"]) if fig18 is not None else []
    for kind in ("best", "median", "worst"):
        if kind in kinds:
            row = kinds.index(kind)
            out[f"v_fig_{kind}"] = figure18_slice(fig18, row)
            out[f"v_{kind}_dice"] = pct(fig18["mean_dice"][row])
            out[f"v_{kind}_where"] = f"{fig18['case_id'][row]}, slice {fig18['slice_index'][row]}"
        else:
            out[f"v_fig_{kind}"] = Missing("figure18.npz")
            out[f"v_{kind}_dice"] = out[f"v_{kind}_where"] = MISSING
    if fig18 is not None and "worst" in kinds:
        worst = pd.Series(fig18["dice"][:, kinds.index("worst")], index=fig18["display_names"])
        out.update(v_n_models=str(len(fig18["models"])), v_worst_best_model=worst.idxmax(),
                   v_worst_best_model_dice=pct(worst.max()))
    else:
        out.update(v_n_models=MISSING, v_worst_best_model=MISSING,
                   v_worst_best_model_dice=MISSING)
    return out


# --- Figure 19 -----------------------------------------------------------------------------

@page("convergence")
def convergence_page(b: Bundle) -> Page:
    from spineseg_core.report.figures import learning_curves
    from spineseg_core.study.aggregate import STEEP_RATIO, STEEP_WINDOW

    history, conv, runs = b.csv("history.csv"), b.csv("convergence.csv"), b.csv("runs.csv")
    out: Page = {"cv_window": str(STEEP_WINDOW), "cv_ratio": num(STEEP_RATIO, 2),
                 "cv_curves": learning_curves(history) if history is not None and len(history)
                 else Missing("history.csv"), "cv_budget": MISSING}
    if runs is not None and len(runs):
        epochs = sorted(runs["epochs_completed"].dropna().astype(int).unique())
        budget = " or ".join(str(e) for e in epochs) + " epochs"
        if "steps_per_epoch" in runs and runs["steps_per_epoch"].notna().any():
            steps = sorted(runs["steps_per_epoch"].dropna().astype(int).unique())
            budget += f" of {' or '.join(map(str, steps))} optimiser steps each"
        out["cv_budget"] = budget
    if conv is None or not len(conv):
        out.update(cv_n_past=MISSING, cv_n_models=MISSING, cv_still_steep=MISSING,
                   cv_table=Missing("convergence.csv"))
        return out
    past = conv["past_steep"].astype(bool)
    def gain(key: str) -> Callable[[pd.Series], str]:  # a dash (footnoted) for a short curve
        return lambda r: DASH if missing(r[key]) else num(100 * r[key], 2)
    out.update(
        cv_n_past=str(int(past.sum())), cv_n_models=str(len(conv)),
        cv_still_steep=", ".join(conv.loc[~past, "display_name"]) or "none",
        cv_table=table_html(conv, [
            Column("display_name", "Model"), Column("epochs", "Epochs", Kind.INTEGER),
            Column("first_dice", "Dice after epoch 1 (%)", Kind.PERCENT),
            Column("best_dice", "Best Dice (%)", Kind.PERCENT),
            Column("best_epoch", "Best epoch", Kind.INTEGER),
            Column("steepest_gain", "Steepest gain (points/epoch)", write=gain("steepest_gain")),
            Column("last_gain", "Last gain (points/epoch)", write=gain("last_gain")),
            Column("past_steep", "Past the steep part",
                   write=lambda r: "yes" if bool(r["past_steep"]) else "no")],
            notes=["Validation Dice, mean over each model's seeds."],
            dash_note="the curve is too short to measure a gain"))
    return out


# --- Table 2 -------------------------------------------------------------------------------

RARE_CLASSES = ("T10", "T9", "T10/T11", "T9/T10")


BOOK_DATA = REPO / "book" / "data"
"""Facts about MRSpineSeg the book shows (from the project's dataset notes)."""


@page("per_class")
def per_class_page(b: Bundle) -> Page:
    import seaborn as sns

    from spineseg_core.study.paper import table2_per_class_dice

    paper = table2_per_class_dice().set_index("model")
    per_class, classes = b.csv("per_class.csv"), b.csv("classes.csv")
    out: Page = {"pc_paper": table_html(paper.reset_index(), [Column("model", "Model")] + [
        Column(c, c, Kind.NUMBER, 2) for c in paper.columns])}
    t9 = paper["T9"].mode()[0]
    out["pc_paper_t9_same"] = str(int((paper["T9"] == t9).sum()))
    out["pc_paper_t9_value"] = f"{t9:.2f}"
    real = pd.read_csv(BOOK_DATA / "mrspineseg_presence.csv").set_index("class_name")
    out["pc_real_t9"] = str(int(real.loc["T9", "cases_present"]))
    out["pc_real_n"] = str(int(real.loc["T9", "n_cases"]))
    ours = None
    if per_class is not None:
        fg = per_class[per_class.class_value > 0]
        ours = 100 * fg.pivot(index="display_name", columns="class_name", values="dice")
        ours = ours[[c for c in paper.columns if c in ours.columns]]
    if ours is None or not len(ours):
        for k in ("hardest", "hardest_dice", "easiest", "easiest_dice", "rare_mean",
                  "common_mean"):
            out[f"pc_{k}"] = MISSING
        out["pc_heatmaps"] = out["pc_ours"] = Missing("per_class.csv")
    else:
        rare = [c for c in RARE_CLASSES if c in ours]
        out.update(pc_hardest=ours.mean().idxmin(), pc_hardest_dice=num(ours.mean().min(), 1),
                   pc_easiest=ours.mean().idxmax(), pc_easiest_dice=num(ours.mean().max(), 1),
                   pc_rare_mean=num(ours[rare].stack().mean(), 1),
                   pc_common_mean=num(ours.drop(columns=rare).stack().mean(), 1))
        rows = [m for m in paper.index if m in ours.index]
        fig, axes = plt.subplots(1, 2, figsize=(16, 0.45 * len(paper) + 1.8))
        sns.heatmap(paper.drop(columns="mDice"), annot=True, fmt=".0f", cmap="viridis",
                    vmin=0, vmax=100, ax=axes[0], cbar=False, annot_kws={"fontsize": 7})
        axes[0].set(title="paper (Table 2, Dice %)", xlabel="", ylabel="")
        sns.heatmap(ours.reindex(paper.index), annot=True, fmt=".0f", cmap="viridis", vmin=0,
                    vmax=100, ax=axes[1], annot_kws={"fontsize": 7},
                    cbar_kws={"label": "Dice (%)"})
        axes[1].set(title="ours (Dice %)", xlabel="", ylabel="")
        fig.tight_layout()
        out["pc_heatmaps"] = fig
        shown = ours.loc[rows].assign(mean=ours.loc[rows].mean(axis=1)).reset_index()
        cols = [Column("display_name", "Model")] + [
            Column(c, c, Kind.NUMBER, 1) for c in shown.columns if c not in ("display_name", "mean")]
        out["pc_ours"] = table_html(shown, cols + [Column("mean", "Mean", Kind.NUMBER, 1)],
                                    dash_note="the class was never scored in this model's runs")
    if classes is not None:
        c = classes.set_index("class_name")
        out["pc_t9_present"] = pct(c.loc["T9", "subjects_present"], 0)
        out["pc_n_subjects"] = str(int(c["n_subjects"].iloc[0]))
    else:
        out["pc_t9_present"] = out["pc_n_subjects"] = MISSING
    return out


# --- Table 3 -------------------------------------------------------------------------------

@page("efficiency")
def efficiency_page(b: Bundle) -> Page:
    from spineseg_core.measure.efficiency import CARD_24GB_MIB, CARD_RESERVE_MIB
    from spineseg_core.report.figures import cost_scatter
    from spineseg_core.study.paper import table3_efficiency

    paper = table3_efficiency()
    eff, models, bench = b.csv("efficiency.csv"), b.csv("models.csv"), b.csv("bench.csv")
    out: Page = {"ef_card_gib": num(CARD_24GB_MIB / 1024, 0),
                 "ef_reserve_gib": num(CARD_RESERVE_MIB / 1024, 0)}
    both = None
    if eff is not None:
        both = paper.merge(eff, left_on="model", right_on="display_name", how="inner",
                           suffixes=("_paper", ""))
    if both is None or not len(both):
        for k in ("big", "big_params", "small", "small_params", "size", "params_max_diff"):
            out[f"ef_{k}"] = MISSING
        out["ef_table3"] = out["ef_scatter"] = Missing("efficiency.csv")
    else:
        big, small = both.loc[both.params_m.idxmax()], both.loc[both.params_m.idxmin()]
        out.update(ef_big=big.display_name, ef_big_params=num(big.params_m, 1),
                   ef_small=small.display_name, ef_small_params=num(small.params_m, 3),
                   ef_size=str(int(eff["size"].iloc[0])) if "size" in eff else MISSING,
                   ef_params_max_diff=num((both.params_m - both.params_m_paper).abs().max(), 1))
        out["ef_table3"] = table_html(both, [
            Column("display_name", "Model"), Column("backbone_paper", "Backbone paper"),
            Column("backbone", "Backbone ours"),
            Column("params_m_paper", "Params paper (M)", Kind.NUMBER, 3),
            Column("params_m", "Params ours (M)", Kind.NUMBER, 3),
            Column("flops_g_reported", "GMACs paper", Kind.NUMBER, 1),
            Column("gmacs_880", "GMACs ours", Kind.NUMBER, 1),
            Column("memory_gb", "Memory paper (GB)", Kind.NUMBER, 2),
            Column("train_peak_mem_mb", "Memory ours (GB)",
                   write=lambda r: cell_text(r.get("train_peak_mem_mb", None) / 1024
                                             if r.get("train_peak_mem_mb") is not None else None,
                                             Kind.NUMBER, 2)),
            Column("fits_24gb", "Fits 24 GB",
                   write=lambda r: {True: "yes", False: "no"}.get(r.get("fits_24gb"), DASH))],
            notes=["Memory ours: a CPU estimate unless the device is a GPU (see below)."],
            dash_note="no backbone (U-Net family)")
        out["ef_scatter"] = (cost_scatter(both.merge(models[["display_name", "dice_mean"]],
                                                     on="display_name"))
                             if models is not None and len(models) else Missing("models.csv"))
    out["ef_bench"] = Missing("bench.csv") if bench is None else table_html(
        bench, columns_for(bench, {
            "display_name": "Model", "precision": "Precision", "size": "Size (px)",
            "batch": "Batch", "train_img_s": "Train (img/s)", "infer_img_s": "Inference (img/s)",
            "achieved_gflop_s": "Achieved (GFLOP/s)", "peak_gflop_s": "Peak (GFLOP/s)",
            "peak_ratio": "Fraction of peak", "data_ratio": "Data path / model only",
            "peak_mem_mb": "Peak memory (MB)"}))
    monai = b.csv("bench_monai.csv")
    out["ef_monai"] = Missing("bench_monai.csv (spineseg bench --monai)") if monai is None else \
        table_html(monai, columns_for(monai, {c: c.replace("_", " ") for c in monai}, 3))
    return out


# --- the introduction ----------------------------------------------------------------------

@page("intro")
def intro_page(b: Bundle) -> Page:
    from spineseg_core.report.deviations import deviations_table
    from spineseg_core.report.facts import precision_text, read_setup
    from spineseg_core.study.paper import table1_overall

    bundle, models = b.json("bundle.json") or {}, b.csv("models.csv")
    paper = table1_overall()
    setup = read_setup(b.folder) if b.has_bundle() else None
    out: Page = {
        "profile": b.folder.name if b.folder is not None and b.has_bundle() else MISSING,
        "data_kind": bundle.get("data_kind", "no results yet"),
        "n_runs": str(bundle.get("n_runs", 0)), "n_models": str(len(bundle.get("models", []))),
        "devices": ", ".join(bundle.get("devices", [])) or MISSING,
        "precisions": (precision_text(setup) if setup and setup.precisions
                       else "an unrecorded precision"),
        "processors": ", ".join(setup.processors) if setup and setup.processors else MISSING,
        "paper_best": paper.loc[paper["dice"].idxmax(), "model"],
        "paper_best_dice": f"{paper['dice'].max():.2f}",
        "our_best": MISSING, "our_best_dice": MISSING,
        "deviations": table_html(deviations_table(setup), [
            Column("aspect", "Aspect"), Column("paper", "The paper"),
            Column("ours", "This study"), Column("reason", "Why")]),
    }
    if models is not None and len(models):
        best = models.loc[models["dice_mean"].idxmax()]
        out.update(our_best=best["display_name"], our_best_dice=pct(best["dice_mean"]))
    return out


def glue_names(chapter_text: str) -> set[str]:
    """The glue names a chapter's Markdown uses (``{glue:text}`name` ``, ``{glue:md}`name` ``
    and ``{glue:figure} name``)."""
    import re

    inline = re.findall(r"\{glue:(?:text|any|md)\}`([^`:]+)", chapter_text)
    blocks = re.findall(r"^```\{glue:figure\}\s+(\S+)", chapter_text, flags=re.M)
    return set(inline) | set(blocks)


def markdown_glue_names(chapter_text: str) -> set[str]:
    """The names a chapter glues as Markdown (``{glue:md}``): their values must be
    :class:`MarkdownText`, and only theirs."""
    import re

    return set(re.findall(r"\{glue:md\}`([^`:]+)", chapter_text))


def placeholder(what: str) -> HTMLTable:
    """What a figure or table that cannot be made shows: a line naming the missing file (text,
    not an image, so nothing is left without a caption's alt text)."""
    import html

    return HTMLTable(f'<p class="spineseg-missing">Not available yet: {html.escape(what)} is '
                     "missing from this results bundle.</p>")


def as_glue_value(value: Any) -> Any:
    """What to glue for a page value (:func:`placeholder` for :class:`Missing`, a Markdown
    display object for :class:`MarkdownText`)."""
    if isinstance(value, Missing):
        return placeholder(value.what)
    if isinstance(value, MarkdownText):
        from IPython.display import Markdown

        return Markdown(str(value))
    return value


# --- the data ------------------------------------------------------------------------------

RARE_KEYS = (("T10", "t10"), ("T9", "t9"), ("T10/T11", "t10t11"), ("T9/T10", "t9t10"))


@page("dataset")
def dataset_page(b: Bundle) -> Page:
    import seaborn as sns

    from spineseg_core.report.figures import label_key, show_labels

    ds, classes, fig18 = b.json("dataset.json") or {}, b.csv("classes.csv"), b.npz("figure18.npz")
    facts = pd.read_csv(BOOK_DATA / "mrspineseg_facts.csv")
    real = pd.read_csv(BOOK_DATA / "mrspineseg_presence.csv")
    scored = "test" if ds.get("evaluated_on") == ["test"] else "validation"
    short = "test" if scored == "test" else "val"
    out: Page = {
        "ds_kind": ds.get("data_kind", MISSING),
        "ds_cases": str(ds.get("phantom_cases", MISSING)) if ds.get("data_kind") == "phantom"
        else str(ds.get("max_cases") or "all"),
        "ds_size": str(ds.get("image_size", MISSING)),
        "ds_phantom_size": str(ds.get("phantom_size", MISSING)),
        "ds_scored": scored,
        "ds_scored_cases": str(ds.get(f"n_{short}_cases", MISSING)),
        "ds_scored_slices": str(ds.get(f"n_{short}_slices", MISSING)),
        "ds_folds": ", ".join(map(str, ds.get("folds", []))) or MISSING,
        "ds_kfolds": str(ds.get("k_folds") or "a single 8:2 split"),
        "real_cases": str(int(facts.loc[facts.quantity == "labelled training cases",
                                        "value"].iloc[0])),
        "ds_facts": table_html(facts, columns_for(facts, {c: c.replace("_", " ").capitalize()
                                                          for c in facts.columns})),
    }
    share = real.set_index("class_name")
    for name, key in RARE_KEYS:
        out[f"real_{key}"] = pct(share.loc[name, "cases_present"] / share.loc[name, "n_cases"], 0)
    # The phantom against a real T2 scan (spineseg calibrate), kept beside the bundles.
    cal_path = (b.root / "phantom_vs_real.csv") if b.root is not None else None
    cal = pd.read_csv(cal_path) if cal_path is not None and cal_path.is_file() else None
    if cal is None:
        out.update(cal_summary="The table of spineseg calibrate (phantom_vs_real.csv, kept "
                               "beside the results bundles) is not in this results folder, so "
                               "its figures are not shown here.",
                   ds_calibration=Missing("phantom_vs_real.csv (spineseg calibrate)"))
    else:
        c = cal.set_index("statistic")
        out.update(cal_summary=(
                       f"spineseg calibrate writes the table over "
                       f"{int(c.phantom_cases.max())} phantom cases: disc/body "
                       f"{num(c.loc['disc_body_ratio', 'real'])} on the real sample (its dark "
                       f"discs), CSF/body {num(c.loc['csf_body_ratio', 'real'])} real vs "
                       f"{num(c.loc['csf_body_ratio', 'phantom_mean'])} phantom, marrow "
                       f"coefficient of variation {num(c.loc['marrow_cv', 'real'])} vs "
                       f"{num(c.loc['marrow_cv', 'phantom_mean'])}."),
                   ds_calibration=table_html(cal, columns_for(cal, {
                       "description": "Statistic", "real": "Real T2 sample",
                       "phantom_mean": "Phantom mean", "phantom_sd": "Phantom sd",
                       "phantom_min": "Phantom min", "phantom_max": "Phantom max"}, 3)))
    if classes is None:
        out.update({f"ph_{k}": MISSING for _, k in RARE_KEYS}, fg_pixels=MISSING,
                   ds_presence=Missing("classes.csv"), ds_classes=Missing("classes.csv"))
    else:
        fg = classes[classes.class_value > 0].copy()
        rare = fg.set_index("class_name")
        out["fg_pixels"] = pct(fg.pixel_fraction.sum(), 2)
        for name, key in RARE_KEYS:
            out[f"ph_{key}"] = pct(rare.loc[name, "subjects_present"], 0)
        shares = real.assign(share=real.cases_present / real.n_cases)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        sns.barplot(data=fg, x="class_name", y="subjects_present", color="tab:blue",
                    ax=axes[0], label=f"ours ({scored} subjects)")
        axes[0].scatter(shares.class_name.map(lambda n: list(fg.class_name).index(n)),
                        shares.share, color="tab:red", zorder=3,
                        label=f"MRSpineSeg ({int(shares.n_cases.iloc[0])} cases)")
        axes[0].set(ylabel="share of subjects with the class", xlabel="", ylim=(0, 1.05))
        axes[0].legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                       frameon=False)
        sns.barplot(data=fg, x="class_name", y="pixel_fraction", color="tab:green", ax=axes[1])
        axes[1].set(yscale="log", ylabel=f"share of {scored} pixels", xlabel="")
        for ax in axes:
            ax.tick_params(axis="x", rotation=90)
        fig.tight_layout()
        out["ds_presence"] = fig
        out["ds_classes"] = table_html(classes, [
            Column("class_name", "Class"), Column("kind", "Kind"),
            Column("subjects_present", "Subjects with it (%)", Kind.PERCENT, 1),
            Column("pixel_fraction", "Pixels (%)", Kind.PERCENT, 3)])
    if fig18 is None:
        out["ds_slices"] = Missing("figure18.npz")
    else:
        n = len(fig18["kind"])
        fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 6.4), squeeze=False)
        for j in range(n):
            title = f"{fig18['kind'][j]}: {fig18['case_id'][j]} slice {fig18['slice_index'][j]}"
            show_labels(axes[0, j], fig18["image"][j], None, title)
            show_labels(axes[1, j], fig18["image"][j], fig18["mask"][j], "reference labels")
        label_key(fig, ncol=7)
        fig.subplots_adjust(bottom=0.18, top=0.93, wspace=0.05)
        out["ds_slices"] = fig
    return out


# --- reproducibility -----------------------------------------------------------------------

BOOK_PACKAGES = ("spineseg", "torch", "numpy", "pandas", "scipy", "torchio", "nibabel",
                 "SimpleITK", "matplotlib", "seaborn", "papermill", "jupyter-book", "myst-nb",
                 "submitit")
"""The packages whose versions the reproducibility chapter lists for the book's build."""


def studies_text(studies: dict[str, Any]) -> str | None:
    """``bundle.json``'s separate studies in words, for Table R1: each one's group, runs,
    models and code version (None when there are none: a dash on the page)."""
    from spineseg_core.fingerprint import describe

    parts = []
    for name, st in (studies or {}).items():
        code = (describe(st["source_fingerprints"]) if st.get("source_fingerprints")
                else "code not recorded")
        parts.append(f"{name}: group {st.get('group', name)}, {st.get('n_runs', 0)} runs of "
                     f"{len(st.get('models', []))} models ({', '.join(st.get('models', []))}), "
                     f"code {code}")
    return "; ".join(parts) or None


@page("reproducibility")
def reproducibility_page(b: Bundle) -> Page:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from spineseg_core.fingerprint import describe, short

    bundle, runs = b.json("bundle.json") or {}, b.csv("runs.csv")
    name = b.folder.name if b.folder is not None else None
    versions = bundle.get("source_fingerprints") or {}
    out: Page = {
        "rp_sha": bundle.get("bundle_sha256", MISSING),
        "rp_commit": bundle.get("git_commit") or MISSING,
        "rp_created": bundle.get("created", MISSING),
        "rp_profile": name or MISSING,
        "rp_path": f"results/{name}/" if name else MISSING,
        "rp_nfiles": str(len(bundle.get("files", {}))),
        "rp_run_commits": ", ".join(c[:10] for c in bundle.get("run_commits", [])) or MISSING,
        "rp_fingerprint": describe(versions) if versions else "not recorded (an older bundle)",
    }
    if bundle:
        info = [(k, (", ".join(map(str, v)) or None) if isinstance(v, list)
                 else describe(v) if k == "source_fingerprints"
                 else studies_text(v) if k == "studies" else str(v))
                for k, v in bundle.items() if k != "files"]
        fields = pd.DataFrame(info, columns=["field", "value"])
        out["rp_bundle"] = table_html(fields, [Column("field", "Field"), Column("value", "Value")])
        files = pd.DataFrame(bundle.get("files", {}).items(), columns=["file", "sha256"])
        out["rp_files"] = table_html(files, [Column("file", "File"), Column("sha256", "SHA-256")])
    else:
        out["rp_bundle"] = out["rp_files"] = Missing("bundle.json")
    if runs is not None and len(runs):
        runs = runs.assign(code=runs["source_fingerprint"].map(short)) \
            if "source_fingerprint" in runs else runs
        out["rp_runs"] = table_html(runs, columns_for(runs, {
            "display_name": "Model", "seed": "Seed", "fold": "Fold", "device": "Device",
            "precision": "Precision", "processor": "Processor", "code": "Code",
            "epochs_completed": "Epochs",
            "train_seconds": "Training (s)", "run_dir": "Record"}, 0))
    else:
        out["rp_runs"] = Missing("runs.csv")
    vers = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in BOOK_PACKAGES:
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = "not installed"
    out["rp_env"] = table_html(pd.DataFrame(vers.items(), columns=["package", "version"]),
                               [Column("package", "Package"),
                                Column("version", "Version (book build)")])
    return out


# --- the losses ----------------------------------------------------------------------------

LOSS_SCRIPT = "scripts/rerun_cpu_study.sh"
"""What makes the loss-comparison runs of the cpu profile (U-Net and MiniSeg, every loss)."""


def loss_runs_sentence(profile: str, table: pd.DataFrame | None,
                       passing: Sequence[str] | None = None) -> MarkdownText:
    """What the loss comparison holds, as one sentence of Markdown: the models trained with
    two losses or more, the losses and the best by mean Dice (``table``: mean Dice per model
    and loss, a row per model trained with two or more), and, when some loss has a run that
    fails the background check, the best of the ``passing`` losses (those whose every run
    passes); or, when there is no comparison, that the runs are not there yet and which command
    makes them."""
    from spineseg_core.models import model_info
    from spineseg_core.report.claims import LOSS_MODELS

    if table is None or not len(table):
        names = " and ".join(model_info(m).display_name for m in LOSS_MODELS)
        return MarkdownText(
            f"No model of this bundle has been trained with two of the losses yet (groups "
            f"`{profile}-loss-<loss>` hold no run), so the figure and table below are empty: "
            f"`{LOSS_SCRIPT}` trains {names} with each loss on the cpu profile (`spineseg main "
            "--loss-models` on any profile), and `spineseg aggregate` tables them.")
    n = len(table)
    best = table.mean().idxmax()
    text = (f"Here {n} model{'s were' if n != 1 else ' was'} trained with at least two of the "
            f"losses ({', '.join(f'`{c}`' for c in table.columns)}); `{best}` gave the best "
            "mean Dice over them")
    kept = [c for c in table.columns if passing is None or c in passing]
    if len(kept) == len(table.columns):
        return MarkdownText(text + ".")
    if not kept:
        return MarkdownText(text + ", but every loss has a run that fails the background check "
                            "(Table L3).")
    return MarkdownText(text + f"; of the losses whose every run passes the background check "
                        f"(Table L3), `{table[kept].mean().idxmax()}` did.")


@page("losses")
def losses_page(b: Bundle) -> Page:
    from spineseg_core.report.claims import check_claim, load_results, named_by_loss
    from spineseg_core.report.figures import loss_bars
    from spineseg_core.study.loss_study import (ABSENT_MAX, BG_RECALL_MIN, choose_default,
                                                sane_runs, variants_table)
    from spineseg_core.training.config import TrainConfig

    variants, losses = b.csv("loss_variants.csv"), b.csv("losses.csv")
    out: Page = {"default_loss": str(TrainConfig.loss), "bg_recall_min": f"{BG_RECALL_MIN:.0%}",
                 "absent_max": f"{ABSENT_MAX:.0%}"}
    if variants is None:
        out.update(variants_rule="This bundle has no loss_variants.csv, the experiment's table "
                                 "(scripts/loss_variants.py writes it), so the rule's answer "
                                 "cannot be shown here.",
                   variants_budget="its budget is recorded in loss_variants.csv, which this "
                                   "bundle lacks",
                   lo_variants=Missing("loss_variants.csv (scripts/loss_variants.py)"))
    else:
        chosen, reason = choose_default(variants)
        shown = variants_table(variants)
        epochs = int(variants["epochs"].iloc[0])
        out.update(variants_rule=f"The rule gave {chosen}: {reason}.",
                   variants_budget=f"{epochs} epoch{'s' * (epochs != 1)}",
                   lo_variants=table_html(shown, [Column("loss", "Loss")] + [
                       Column(c, c.replace("absent", "absent (%)").replace("Dice", "Dice (%)")
                              .replace("bg recall", "bg recall (%)"), Kind.NUMBER,
                              2 if "absent" in c else 1)
                       for c in shown.columns if c not in ("loss", "sane")]
                       + [Column("sane", "Sane")],
                       notes=["absent: pixels labelled as a structure the case does not "
                              "contain; val.: the best validation epoch; 2nd half: the worst "
                              "validated epoch of the second half of the budget."]))
    out["loss_verdict"] = str(check_claim(load_results(b.folder), "loss").verdict) \
        if b.folder is not None and b.has_bundle() else "not resolved at this scale"
    table = sub = sane = None
    if losses is not None:
        per = losses.groupby(["display_name", "loss"])["dice"].mean().reset_index()
        table = per.pivot(index="display_name", columns="loss", values="dice")
        table = table[table.notna().sum(axis=1) >= 2]
        sub = losses[losses["display_name"].isin(table.index)]
        sane = sane_runs(sub)  # None for a bundle whose losses.csv lacks the check
    passing = None if sane is None else [
        str(loss) for loss, ok in sane.groupby(sub["loss"]).all().items() if ok]
    profile = b.profile()
    out["loss_runs"] = loss_runs_sentence(profile, table, passing)
    if table is None or not len(table):
        groups = f"{profile}-loss-<loss>: {LOSS_SCRIPT}"
        out.update(lo_bars=Missing(f"losses.csv ({groups})"), lo_table=Missing("losses.csv"),
                   lo_sane_text="There are no loss runs to check yet.",
                   lo_sanity=Missing("losses.csv"))
        return out
    out["lo_bars"] = loss_bars(sub, sane if sane is not None
                               else pd.Series(True, index=sub.index))
    shown = (table.reset_index())
    out["lo_table"] = table_html(shown, [Column("display_name", "Model")] + [
        Column(c, f"{c} (%)", Kind.PERCENT, 2) for c in table.columns],
        dash_note="not trained with this loss")
    runs = sub.sort_values(["display_name", "loss", "seed"], kind="stable")
    checked = sanity_check(named_by_loss(runs))
    out["lo_sane_text"], out["lo_sanity"] = checked or (
        "The loss runs of this bundle do not record the check.", Missing("losses.csv"))
    return out


# --- Context across slices -----------------------------------------------------------------

@page("context")
def context_page(b: Bundle) -> Page:
    """The context study (group ``<profile>-context``): what the bundle holds of it, what each
    model is fed, its scores over seeds, the rule's verdict per context model, and its level
    identification beside its 2D baseline's (:mod:`spineseg_core.report.context`)."""
    from spineseg_core.levels.study import Metric, bundle_folder
    from spineseg_core.report.claims import comparisons_figure, verdict_table
    from spineseg_core.report.context import (ARMS, context_claims, context_level_claims,
                                              context_levels, context_summary, group,
                                              levels_command, status_sentence)

    bundle = b.json("bundle.json") or {}
    profile = b.profile()
    levels = bundle_folder(group(profile)).as_posix()
    study = (bundle.get("studies") or {}).get("context") or {}
    table, per_case = b.csv("context.csv"), b.csv("context_per_case.csv")
    about = b.json(f"{levels}/about.json")
    convergence = b.csv("context_convergence.csv")
    claims = context_claims(per_case, convergence=convergence, runs=table)
    level_claims = context_level_claims(b.csv(f"{levels}/subjects.csv"),
                                        n_boot=int((about or {}).get("n_boot", 1000)),
                                        convergence=convergence, runs=table)
    out: Page = {"cx_status": MarkdownText(status_sentence(profile, study, about)),
                 "cx_verdicts": _verdicts_sentence(claims, "no context model has been run"),
                 "cx_level_verdicts": _verdicts_sentence(
                     level_claims, "no context model's levels have been measured")}
    summary = context_summary(table)
    if summary is None:
        out["cx_table"] = Missing(f"context.csv ({group(profile)}: scripts/context_study.sh, "
                                  "then spineseg aggregate)")
    else:
        kinds = {"slice": "one slice", "stack": "slices as channels", "volume": "whole volume"}

        def spread(metric: str, digits: int = 1):
            def write(r: pd.Series) -> str:
                mean, sd = r[f"{metric}_mean"], r[f"{metric}_std"]
                if pd.isna(mean):
                    return DASH
                return (f"{100 * mean:.{digits}f}" if pd.isna(sd)
                        else f"{100 * mean:.{digits}f} ± {100 * sd:.{digits}f}")
            return write

        out["cx_table"] = table_html(summary, [
            Column("display_name", "Model"),
            Column("input_kind", "Input", write=lambda r: kinds.get(r["input_kind"], DASH)),
            Column("context", "Slices seen", write=lambda r: (
                "all" if r["input_kind"] == "volume" else str(int(r["context"])))),
            Column("n_seeds", "Seeds", Kind.INTEGER),
            Column("dice", "Dice, slices (%)", write=spread("dice")),
            Column("dice3d", "Dice, subjects in 3D (%)", write=spread("dice3d_mean")),
            Column("bg", "Background recall (%)", write=spread("bg_recall")),
            Column("absent", "Absent labels (% of pixels)", write=spread("absent_fraction", 2)),
            Column("time", "Training (min, wall clock)", write=lambda r: cell_text(
                r["train_seconds_mean"] / 60, Kind.NUMBER, 1)),
            Column("curve", "Validation Dice at the end", write=lambda r: curve_state(
                convergence, r["model"]))],
            notes=["Mean ± sd over seeds (no sd for one seed). Dice, slices: the paper's "
                   "Dice, over every test slice; Dice, subjects in 3D: per test subject over "
                   "its volume, mean over subjects. Training time is wall clock, so it "
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
            f"context_per_case.csv (runs of a context model and its baseline in "
            f"{group(profile)})")

    rates = context_levels(b.csv(f"{levels}/summary.csv"))
    if rates is None:
        out["cx_levels_table"] = Missing(f"{levels}/summary.csv ({levels_command(profile)})")
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
                f"{levels_command(profile)})"))
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
    claim a comparison."""
    verdicts = verdicts.rename(columns={"claim": "comparison"})
    return table_html(verdicts, columns_for(
        verdicts, {c: c[0].upper() + c[1:] for c in verdicts.columns}), dash_note=dash_note)


# --- level identification (its page function lives with its package) ----------------------

from spineseg_core.levels import page as _levels_page  # noqa: E402,F401  registers "levels"
