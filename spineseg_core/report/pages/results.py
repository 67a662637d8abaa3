"""Table 1: overall scores, ours beside the paper's, and the protocol's check of each run.

The page function of ``book/results.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, num, pct
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.tables import Column, HTMLTable, Kind, table_html


@page("results")
def results_page(b: Bundle) -> Page:

    from spineseg_core.report.figures import rank_slopes
    from spineseg_core.report.overall import table1, table1_columns
    from spineseg_core.report.pages.intro import rank_correlation
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
    rho = rank_correlation(models)
    if rho is not None:
        out["t1_rho"] = num(rho)
    if both is None:
        for k in ("best", "best_dice", "best_lo", "best_hi", "worst", "worst_dice"):
            out[f"t1_{k}"] = MISSING
        out.update(t1_ranks=Missing("models.csv"), t1_overlap=Missing("models.csv"),
                   t1_errors=Missing("models.csv"))
    else:
        best, worst = both.loc[both.dice_mean.idxmax()], both.loc[both.dice_mean.idxmin()]
        out.update(t1_best=best.display_name, t1_best_dice=pct(best.dice_mean),
                   t1_best_lo=pct(best.dice_ci_low), t1_best_hi=pct(best.dice_ci_high),
                   t1_worst=worst.display_name, t1_worst_dice=pct(worst.dice_mean))
        ranked = both.dropna(subset=["dice", "dice_mean"])
        out["t1_ranks"] = (rank_slopes(ranked.display_name, ranked["dice"], ranked.dice_mean)
                           if len(ranked) >= 2 else Missing("models.csv (two models or more)"))
        out["t1_overlap"] = table_html(
            both, table1_columns(["dice", "miou"]),
            notes=["Sorted by our mean Dice. Ours: mean ± sd over seeds (n = 1: one seed, spread "
                   "not measured), and under it the 95 % CI over seeds and test subjects. "
                   "Paper's rank: the model's place by Dice in the paper's Table 1."],
            dash_note="the paper has no such model")
        out["t1_errors"] = table_html(both, [c for c in table1_columns(["fnr", "fpr", "recall"])
                                             if c.key not in ("paper_rank", "n_seeds")],
                                      dash_note="the paper has no such model")
    out.update({k: MarkdownText(v) for k, v in baseline_values(b.csv("baseline.csv"),
                                                                runs).items()})
    out["t1_val_gap"] = MarkdownText(validation_gap_text(runs, b.csv("per_class.csv"),
                                                        b.csv("validation_classes.csv")))
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
                                      Column("budget_exceptions", "Differs from the profile",
                                             write=lambda r: exception_words(
                                                 r["budget_exceptions"]))])
                     if off is not None and len(off)
                     else HTMLTable("<p>Every run kept the profile's budget.</p>"))
    return out


def validation_gap_text(runs: pd.DataFrame | None, per_class: pd.DataFrame | None,
                        validation: pd.DataFrame | None) -> str:
    """Why validation Dice exceeds test Dice, in words
    (:func:`spineseg_core.study.validation.gap_parts`): the mean gap over the models and the
    part that the classes most validation subjects lack account for."""
    from spineseg_core.labels import FOREGROUND, LABELS
    from spineseg_core.study.validation import gap_parts, held_classes

    if runs is None or per_class is None or validation is None or "val_dice" not in runs:
        return ("Why validation Dice exceeds test Dice is not measured in this bundle (it needs "
                "validation_classes.csv).")
    parts = gap_parts(runs, per_class, validation)
    held = set(held_classes(validation))
    names = {lab.value: lab.name for lab in LABELS}
    lacking = [names[v] for v in FOREGROUND if v not in held]
    n_val = int(validation["n_subjects"].iloc[0]) if "n_subjects" in validation else None
    gap, comp = parts["gap"].mean(), parts["composition"].mean()
    lacking_values = [v for v in FOREGROUND if v not in held]
    on_lacking = per_class[per_class["class_value"].isin(lacking_values)]["dice"].mean()
    who = "Every model scores" if (parts["gap"] > 0).all() else "The models score"
    share = "Most" if comp > gap / 2 else "Part"
    return (f"{who} higher on validation than on test: by {num(100 * gap, 1)} Dice points on "
            f"average. {share} of that is which classes are scored: Dice skips a class absent "
            f"from a subject, and {', '.join(lacking) or 'no class'} "
            f"{'is' if len(lacking) == 1 else 'are'} absent from most of the "
            f"{n_val if n_val is not None else ''} validation subjects, while the test "
            f"subjects hold them and the models score them at {num(100 * on_lacking, 1)} % "
            f"Dice on average. Scored on the classes most validation subjects hold, test Dice "
            f"rises by {num(100 * comp, 1)} points on average; the rest of the gap is the "
            f"validation score's own optimism (it chose the checkpoint) and the difference of "
            f"the subjects.")


def baseline_values(baseline: pd.DataFrame | None, runs: pd.DataFrame | None) -> Page:
    """The no-learning baseline beside Table 1 (:mod:`spineseg_core.study.baseline`), in
    words: its Dice and the main runs that do not beat it by the protocol's margin."""
    from spineseg_core.study.baseline import MARGIN, baseline_dice, weak_runs

    if baseline is None or not len(baseline):
        return {"t1_baseline": "The no-learning baseline (a training subject's mask pasted on "
                               "every test subject) is not in this bundle."}
    dice = baseline_dice(baseline)
    text = (f"A model that learned nothing can still score: pasting the mask of one training "
            f"subject onto every test subject gives {pct(dice)} % Dice for the best of "
            f"the {len(baseline)} training and validation subjects, chosen on the test set itself. "
            f"The protocol asks every run to beat that by "
            f"{100 * MARGIN:.0f} points.")
    if runs is None or not {"model", "seed", "dice"} <= set(runs):
        return {"t1_baseline": text}
    weak = weak_runs(runs, dice)
    if not len(weak):
        return {"t1_baseline": text + f" All {len(runs)} runs do."}
    names = dict(zip(runs["model"], runs.get("display_name", runs["model"]), strict=True))
    parts = []
    for model, rows in weak.groupby("model", sort=False):
        seeds = ", ".join(str(int(x)) for x in rows["seed"])
        lo, hi = pct(rows["dice"].min()), pct(rows["dice"].max())
        score = f"{lo} %" if lo == hi else f"{lo}–{hi} %"
        parts.append(f"{names.get(model, model)} (seed{'s' * (len(rows) > 1)} {seeds}: {score})")
    return {"t1_baseline": text + f" {len(weak)} of {len(runs)} runs do not: "
                           f"{'; '.join(parts)}. Their scores say little about what the "
                           f"architecture can learn."}


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


def exception_words(text: str) -> str:
    """A run's recorded departures from its profile (``runs.csv``'s ``budget_exceptions``,
    ``name=value (profile: default)`` joined by ``; ``) in reader words: ``amp=False`` reads
    "fp32 instead of bf16 autocast", ``model_kwargs={'output_stride': 8}`` reads "output
    stride 8 instead of the model's default"."""
    import ast
    import re

    words = []
    for part in str(text).split("; "):
        m = re.match(r"(\w+)=(.*?)(?: \(profile: (.*)\))?$", part.strip())
        if m is None:
            words.append(part)
            continue
        key, value, default = m.groups()
        if key == "amp":
            words.append("fp32 instead of bf16 autocast" if value == "False"
                         else "bf16 autocast instead of fp32")
        elif key == "model_kwargs":
            try:
                kwargs = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                kwargs = {}
            words += [f"{k.replace('_', ' ')} {v} instead of the model's default"
                      for k, v in kwargs.items()] or [part]
        else:
            words.append(f"{key.replace('_', ' ')} {value}"
                         + (f" instead of {default}" if default else ""))
    return "; ".join(words)
