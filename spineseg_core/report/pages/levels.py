"""The values the book's level chapter (``book/levels.md``) glues, from ``<bundle>/levels/``.

Registered as the page ``levels`` of :data:`spineseg_core.report.pages.PAGES`; like every page
it gives a placeholder naming the missing file instead of failing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spineseg_core.levels.hard import HARD_CASES
from spineseg_core.levels.identify import OUTCOME_TEXT, Outcome
from spineseg_core.levels.relabel import MERGE_RATIO, SPECK_SHARE, STATUS_TEXT, Status
from spineseg_core.levels.study import EXAMPLE, FILES, REFERENCE, Metric
from spineseg_core.report.bundle import MISSING, Bundle, num, pct
from spineseg_core.report.level_verdict import model_verdicts, relabelling_verdict
from spineseg_core.report.pages.base import Missing, Page, page
from spineseg_core.report.tables import Column, Kind, cell_text, table_html
from spineseg_core.study.hard_cases import HardSet

FOLDER = "levels"
"""Where ``spineseg levels`` writes inside a results bundle (``results/<profile>/levels/``)."""

PAPER_BEST = "deeplabv3plus"


def heatmap_models(predicted: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The (up to three) models of the level-confusion heatmaps: the best identification as
    predicted, DeepLabv3+ (the paper's best), and the model whose answers are most often a
    one-level shift; each once, in that order. ``predicted``: ``confusion.csv``'s predicted
    rows."""
    ident = summary[(summary["metric"] == str(Metric.IDENTIFICATION))
                    & (summary["stage"] == "predicted")].set_index("model")["point"]
    chosen = [str(ident.idxmax())] if len(ident) else []
    if PAPER_BEST in ident.index:
        chosen.append(PAPER_BEST)
    shift = predicted["outcome"].isin([str(Outcome.SHIFT_UP), str(Outcome.SHIFT_DOWN)])
    shares = (predicted.assign(s=predicted["n"] * shift).groupby("model")[["s", "n"]].sum())
    shares = (shares["s"] / shares["n"]).sort_values(ascending=False, kind="stable")
    chosen += [m for m in shares.index if m not in chosen][:1]
    return list(dict.fromkeys(chosen))[:3]


def _file(key: str) -> str:
    return f"{FOLDER}/{FILES[key]}"


def paper_rows(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of a level table that belong to this chapter: the main group's, without the
    context models (``models.CONTEXT_MODEL_NAMES``), which the plateau re-run trains in the
    main group and the context chapter reads from the same tables."""
    from spineseg_core.models import CONTEXT_MODEL_NAMES

    if frame is None or "model" not in frame.columns:
        return frame
    return frame[~frame["model"].isin(CONTEXT_MODEL_NAMES)].reset_index(drop=True)


def paper_about(about: dict[str, Any]) -> dict[str, Any]:
    """``about.json`` of the level tables with the context models left out of its model
    lists and record count (as :func:`paper_rows`)."""
    from spineseg_core.models import CONTEXT_MODEL_NAMES

    seeds = {m: v for m, v in (about.get("seeds_per_model") or {}).items()
             if m not in CONTEXT_MODEL_NAMES}
    if len(seeds) == len(about.get("seeds_per_model") or {}):
        return about
    return {**about, "seeds_per_model": seeds,
            "models": [m for m in about.get("models") or [] if m not in CONTEXT_MODEL_NAMES],
            "records": sum(len(v) for v in seeds.values())}


def two_lines(point: str, low: str, high: str) -> str:
    """A table cell: the point estimate and, lighter under it, its 95 % interval (HTML), so a
    wide table of intervals still fits the page."""
    return (f'<span class="spineseg-num">{point}</span><br>'
            f'<span class="spineseg-ci">{low} to {high}</span>')


def hard_cell(default: float, hard: float, change: float, low: float, high: float) -> str:
    """A hard-case table cell: the share on the default twins → on the hard twins (percent)
    and, lighter under it, the change in points with its 95 % interval (HTML)."""
    return (f'<span class="spineseg-num">{cell_text(default, Kind.PERCENT)} → '
            f"{cell_text(hard, Kind.PERCENT)}</span><br>"
            f'<span class="spineseg-ci">{_signed(change)} ({_signed(low)} to {_signed(high)})'
            "</span>")


def _ci(row: pd.Series, digits: int = 1) -> str:
    return two_lines(pct(row["point"], digits), pct(row["ci_low"], digits),
                     pct(row["ci_high"], digits))


def _signed(x: float, digits: int = 1) -> str:
    """A difference (fraction) as signed points; one that rounds to zero is "+0.0", never
    "-0.0"."""
    if not np.isfinite(x):
        return MISSING
    points = round(100 * float(x), digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{points:+.{digits}f}"


def seed_span(counts: list[int]) -> str:
    """Seeds per model as text: ``"3"``, ``"1 to 3"``, ``"No"`` (``counts``: the distinct
    numbers of seeds of the models)."""
    if not counts:
        return "No"
    return str(counts[0]) if len(counts) == 1 else f"{min(counts)} to {max(counts)}"


def level_caveats(about: dict[str, Any] | None,
                  dataset: dict[str, Any] | None = None) -> list[str]:
    """What every number of the chapter stands on, first on the page: the data, the seeds,
    the scale (from the bundle's ``dataset.json``) and the relabelling's own limits."""
    about = paper_about(about or {})  # the paper's models: the context models have their chapter
    counts = sorted({len(s) for s in (about.get("seeds_per_model") or {}).values()})
    d = dataset or {}
    if d.get("data_kind", "phantom") == "phantom":
        data = ("The data are the study's default phantom: its field of view always holds the "
                "sacrum, and its transitional anatomy changes the image, not the number of "
                "levels. The hard cases of real scans (no sacrum in view, a complete "
                "transitional vertebra) are scored separately, in the last section.")
    else:
        data = (f"The data are real scans ({d.get('data_dir')}): whether each field of view "
                "holds the sacrum, and how a transitional vertebra is labelled, are the data's.")
    seeds = (f"{seed_span(counts)} seed{'s' if counts != [1] else ''} per model"
             + (": where a model has one, its intervals cover the test subjects, not the "
                "randomness of training." if 1 in counts else ".")) if counts else \
        "No run measured yet (`spineseg levels`)."
    size, epochs = d.get("image_size"), d.get("epochs")
    budget = f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "a few epochs"
    scale = (f"Images at {f'{size} px' if size else 'a reduced size'} and {budget}: thoracic "
             "discs are a few pixels high, so a missed or merged disc, which stops the count, "
             "is to be expected (the relabelling's table below counts them).")
    return [data, seeds, scale,
            f"The relabelling leaves specks (components under {SPECK_SHARE:.0%} of the largest "
            "of their kind) as predicted, and a subject it cannot count keeps its prediction: "
            "its two stages then agree."]


def runs_note(about: dict[str, Any] | None, runs: pd.DataFrame | None) -> str:
    """One sentence on which runs the chapter measures against those of the bundle's setup
    paragraph (``runs.csv``): the level tables are made from the records directly, so they can
    be ahead of the last aggregation."""
    measured = {(m, int(s)) for m, seeds in ((about or {}).get("seeds_per_model") or {}).items()
                for s in seeds}
    if not measured:
        return "No run has been measured yet."
    n = len(measured)
    bundled = ({(str(m), int(s)) for m, s in zip(runs["model"], runs["seed"])}
               if runs is not None and {"model", "seed"} <= set(runs.columns) else set())
    if measured == bundled:
        return f"They are the {n} runs of the setup above."
    k = len(measured - bundled)
    if k == 0:
        return (f"They are {n} of the {len(bundled)} runs of the setup above (the others have "
                "no level tables yet).")
    return (f"They are the {n} runs whose records hold predictions now; the setup above "
            f"describes the results bundle as last aggregated ({len(bundled)} runs), "
            f"{k} of these runs {'is' if k == 1 else 'are'} not in it yet.")


@page("levels")
def levels_page(b: Bundle) -> Page:
    summary, status = paper_rows(b.csv(_file("summary"))), paper_rows(b.csv(_file("status")))
    subjects, conf = paper_rows(b.csv(_file("subjects"))), paper_rows(b.csv(_file("confusion")))
    about = paper_about(b.json(f"{FOLDER}/about.json") or {})
    example = b.npz(f"{FOLDER}/{EXAMPLE}")
    claim = relabelling_verdict(subjects, n_boot=int(about.get("n_boot", 1000)))
    out: Page = {
        "lv_runs_note": runs_note(about, b.csv("runs.csv")),
        "lv_speck": f"{SPECK_SHARE:.0%}", "lv_merge": f"{MERGE_RATIO:g}",
        "lv_verdict": str(claim.verdict), "lv_v_diff": _signed(claim.difference),
        "lv_v_lo": _signed(claim.ci_low), "lv_v_hi": _signed(claim.ci_high),
        "lv_v_rule": claim.rule,
        "lv_n_models": str(len(claim.comparisons)) if claim.comparisons else MISSING,
        "lv_n_seeds": seed_span(sorted({len(v) for v in
                                        (about.get("seeds_per_model") or {}).values()}))
        if about.get("seeds_per_model") else MISSING,
        "lv_n_subjects": str(claim.n_subjects) if claim.comparisons else MISSING,
        "lv_n_boot": str(about.get("n_boot", MISSING)),
        "lv_verdicts": (table_html(model_verdicts(claim), [
            Column("model", "Model"),
            Column("difference", "Difference (points)", write=lambda r: _signed(r["difference"])),
            Column("ci_low", "95 % CI (points)",
                   write=lambda r: f"{_signed(r['ci_low'])} to {_signed(r['ci_high'])}"),
            Column("verdict", "Verdict for this model")],
            notes=["All-levels-right share relabelled minus as predicted; the interval is "
                   "paired on seeds and subjects."])
            if claim.comparisons else Missing(_file("subjects"))),
    }
    if summary is None or not len(summary):
        out.update({k: MISSING for k in ("lv_best", "lv_best_before", "lv_best_after",
                                         "lv_ident_down",
                                         "lv_ident_lo", "lv_ident_hi", "lv_dice_lo",
                                         "lv_dice_hi")})
        out.update(lv_right_dots=Missing(_file("summary")), lv_table=Missing(_file("summary")),
                   lv_changes=Missing(_file("summary")))
    else:
        out.update(_summary_values(summary))
    out.update(_status_values(status))
    out.update(_confusion_values(conf, summary))
    out.update(_example_values(example))
    out.update(_hard_values(paper_rows(b.csv(f"{FOLDER}/{HARD_CASES}")), about))
    return out


HARD_TEXT: dict[HardSet, str] = {
    HardSet.SACRALISED_L5: "sacralised L5",
    HardSet.LUMBARISED_S1: "lumbarised S1",
    HardSet.FOV_CUT: "field cut through or above the sacrum",
}
"""How the chapter names each hard-case set."""


def _hard_values(hard: pd.DataFrame | None, about: dict[str, Any]) -> Page:
    """The hard-case section: ``hard_cases.csv`` (:mod:`spineseg_core.levels.hard`)."""
    if hard is None or not len(hard):
        return {"lv_hard_text": (
            "No run has been scored on the hard cases yet: `spineseg hardcases` scores the "
            "runs whose checkpoints are on the machine (the study scripts do it after each "
            "seed) and `spineseg levels` then writes this section's table."),
            "lv_hard_table": Missing(f"{FOLDER}/{HARD_CASES}")}
    right = hard[hard["metric"] == "all_levels_right"]
    wide = hard.pivot_table(index=["display_name", "set", "n_seeds", "n_subjects"],
                            columns=["metric", "stage"],
                            values=["default", "hard", "difference", "difference_low",
                                    "difference_high"], sort=False)
    shown = (("identification", "predicted", "Levels named right, as predicted"),
             ("all_levels_right", "predicted", "Every level right, as predicted"),
             ("all_levels_right", "relabelled", "Every level right, relabelled"))
    rows = []
    for (model, hset, n_seeds, n_subjects), r in wide.iterrows():
        row = {"display_name": model, "set": HARD_TEXT[HardSet(hset)], "n_seeds": n_seeds,
               "n_subjects": n_subjects}
        for metric, stage, _ in shown:
            row[f"{metric}_{stage}"] = hard_cell(*(r[(k, metric, stage)] for k in (
                "default", "hard", "difference", "difference_low", "difference_high")))
        rows.append(row)
    cols = [Column("display_name", "Model"), Column("set", "Hard case"),
            Column("n_seeds", "Seeds", Kind.INTEGER),
            Column("n_subjects", "Subjects", Kind.INTEGER)]
    cols += [Column(f"{metric}_{stage}", f"{label} (%)") for metric, stage, label in shown]
    models = right["display_name"].nunique()
    seeds = sorted(set(right["n_seeds"]))
    return {
        "lv_hard_text": (
            f"{models} model{'s' * (models != 1)} {'were' if models != 1 else 'was'} scored on "
            f"the hard cases, with {seed_span(seeds)} seed{'s' * (seeds != [1])} each and the "
            f"{int(right['n_subjects'].max())} test subjects; runs trained before the hard "
            "cases existed have no hard-case scores (their checkpoints are not kept), and the "
            "table compares only the seeds that have them."),
        "lv_hard_table": table_html(pd.DataFrame(rows), cols, notes=[
            "Share of the reference levels named right, and of subjects with every level "
            "right: on the default test subjects (their default twins) → on the same subjects "
            "with the hard case; under it, lighter, the change (hard minus default, points), "
            "paired on seeds and subjects, with its 95 % CI over seeds and subjects."]),
    }


def _pivot(summary: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    sub = summary[summary["metric"] == str(metric)]
    wide = sub.pivot(index="display_name", columns="stage", values=["point", "ci_low", "ci_high"])
    return wide.reindex(list(dict.fromkeys(sub["display_name"])))


def _summary_values(summary: pd.DataFrame) -> Page:
    from spineseg_core.report.level_figures import stage_dots

    ident, right, dice = (_pivot(summary, m) for m in Metric)
    best = right[("point", "predicted")].idxmax()
    gain = ident[("point", "difference")]
    dgain = dice[("point", "difference")]
    rows = []
    for model in right.index:
        row = {"display_name": model}
        for metric, wide in ((Metric.IDENTIFICATION, ident), (Metric.ALL_RIGHT, right),
                             (Metric.DICE, dice)):
            for stage in ("predicted", "relabelled", "difference"):
                row[f"{metric}_{stage}"] = pd.Series(
                    {k: wide.loc[model, (k, stage)] for k in ("point", "ci_low", "ci_high")})
        rows.append(row)
    table = pd.DataFrame(rows)

    def cell(key: str, signed: bool = False):
        def write(r: pd.Series) -> str:
            v = r[key]
            if signed:
                return two_lines(_signed(v["point"]), _signed(v["ci_low"]), _signed(v["ci_high"]))
            return _ci(v)
        return write

    # Two tables that each fit the page: the scores at both stages, and the paired changes.
    cols, changes = [Column("display_name", "Model")], [Column("display_name", "Model")]
    for metric, label in ((Metric.IDENTIFICATION, "Levels named right (%)"),
                          (Metric.ALL_RIGHT, "Subjects with every level right (%)"),
                          (Metric.DICE, "Dice (%)")):
        cols += [Column(f"{metric}_predicted", f"{label}, as predicted",
                        write=cell(f"{metric}_predicted")),
                 Column(f"{metric}_relabelled", f"{label}, relabelled",
                        write=cell(f"{metric}_relabelled"))]
        changes.append(Column(f"{metric}_difference", f"{label.split(' (')[0]}: change (points)",
                              write=cell(f"{metric}_difference", signed=True)))
    down = [m for m in ident.index if round(100 * gain[m], 1) < 0]
    return {
        "lv_ident_down": ", ".join(down) if down else "none of the models",
        "lv_best": best, "lv_best_before": pct(right.loc[best, ("point", "predicted")]),
        "lv_best_after": pct(right.loc[best, ("point", "relabelled")]),
        "lv_ident_lo": num(100 * gain.min(), 1), "lv_ident_hi": num(100 * gain.max(), 1),
        "lv_dice_lo": num(100 * dgain.min(), 1), "lv_dice_hi": num(100 * dgain.max(), 1),
        "lv_right_dots": stage_dots(summary, str(Metric.ALL_RIGHT),
                                    "subjects with every level right (%), 95 % CI"),
        "lv_table": table_html(table, cols, notes=[
            "Point estimate (95 % CI over seeds and test subjects). Levels: the vertebrae and "
            "discs present in each subject's reference, each named by the label the model gives "
            "most of its voxels. Dice: the pooled counts of each seed, mean over the 19 "
            "classes, then over seeds."]),
        "lv_changes": table_html(table, changes, notes=[
            "Relabelled minus as predicted, in points (95 % CI over seeds and test subjects), "
            "paired: the same runs and subjects at both stages."]),
    }


def _status_values(status: pd.DataFrame | None) -> Page:
    if status is None or not len(status):
        return {"lv_ref_ok": MISSING, "lv_count_share": MISSING,
                "lv_status": Missing(_file("status"))}
    ref = status[status["model"] == REFERENCE]
    models = status[status["model"] != REFERENCE]
    ok = models[models["status"] == str(Status.OK)]
    n_ref = int(ref["n"].sum())
    wide = models.pivot(index="display_name", columns="status", values="share")
    wide = wide.reindex(list(dict.fromkeys(models["display_name"])))
    shown = [s for s in Status if wide[str(s)].sum() > 0] if len(wide) else []
    return {
        "lv_ref_ok": (f"{int(ref.loc[ref['status'] == str(Status.OK), 'n'].sum())} of {n_ref}"
                      if n_ref else MISSING),
        "lv_count_share": pct(ok["n"].sum() / models["n"].sum()) if len(models) else MISSING,
        "lv_status": table_html(wide.reset_index(), [Column("display_name", "Model")] + [
            Column(str(s), f"{STATUS_TEXT[s]} (%)", Kind.PERCENT, 0) for s in shown],
            notes=["Share of subjects (over seeds) per outcome of the relabelling; statuses "
                   "no model met are not shown."]),
    }


def _confusion_values(conf: pd.DataFrame | None, summary: pd.DataFrame | None) -> Page:
    from spineseg_core.report.level_figures import confusion_heatmaps

    if conf is None or not len(conf) or summary is None:
        return {"lv_shift_text": f"The share of one-level shifts needs {_file('confusion')}.",
                "lv_heat_models": MISSING,
                "lv_heatmaps": Missing(_file("confusion")),
                "lv_outcomes": Missing(_file("confusion"))}
    pred = conf[conf["stage"] == "predicted"]
    wrong = pred[pred["outcome"] != str(Outcome.CORRECT)]
    shifts = wrong["outcome"].isin([str(Outcome.SHIFT_UP), str(Outcome.SHIFT_DOWN)])
    by = (pred.groupby(["display_name", "outcome"], sort=False)["n"].sum().unstack(fill_value=0))
    order = list(dict.fromkeys(summary["display_name"]))
    by = by.reindex(index=[m for m in order if m in by.index],
                    columns=[str(o) for o in Outcome], fill_value=0)
    by = by.div(by.sum(axis=1), axis=0).rename_axis("display_name").reset_index()
    chosen = heatmap_models(pred, summary)
    names = summary.drop_duplicates("model").set_index("model")["display_name"]
    return {
        "lv_shift_text": (
            f"Of all wrong answers (every model, seed, subject and level), "
            f"{pct(wrong.loc[shifts, 'n'].sum() / wrong['n'].sum())} % are one-level shifts: "
            "the error Dice hides." if wrong["n"].sum() else
            "No answer is wrong, so there is no shift to count."),
        "lv_heat_models": ", ".join(names[m] for m in chosen),
        "lv_heatmaps": confusion_heatmaps(conf, chosen),
        "lv_outcomes": table_html(by, [Column("display_name", "Model")] + [
            Column(str(o), f"{OUTCOME_TEXT[o]} (%)", Kind.PERCENT, 1) for o in Outcome],
            notes=["As predicted: share of all reference levels (over seeds and subjects) per "
                   "outcome. One level up or down: the label of the next structure of the same "
                   "kind."]),
    }


def _example_values(example: dict[str, np.ndarray] | None) -> Page:
    """The example figure and its caption's sentence (one sentence either way, so that a
    bundle without an example shows no placeholder text in the caption)."""
    from spineseg_core.report.level_figures import example_figure

    if example is None:
        return {"lv_ex_caption": "No subject of these runs has a one-level shift that the "
                                 "relabelling turns into the right name, so there is none to "
                                 "show.",
                "lv_example": Missing(f"{FOLDER}/{EXAMPLE} (no subject whose shift the "
                                      "relabelling fixes)")}
    n = int(example["n_levels"])
    right = (f"; relabelled, {int(example['n_right'])} of the {n} are right"
             if "n_right" in example else "")
    return {"lv_ex_caption": (
        f"{example['case_id']}, predicted by {example['display_name']} (seed "
        f"{int(example['seed'])}), the slice with the most labelled pixels. Counting from the "
        f"sacrum turns {int(example['n_fixed'])} of its {n} levels from a one-level shift into "
        f"the right name{right} (of the subjects the relabelling leaves with every level "
        "right, the one where it fixes the most)."),
        "lv_example": example_figure(example)}
