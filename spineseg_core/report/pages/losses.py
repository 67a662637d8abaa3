"""The loss study: the default loss and the paper's three losses.

The page function of ``book/losses.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from spineseg_core.report.bundle import Bundle
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.pages.results import sanity_check
from spineseg_core.report.tables import Column, Kind, table_html

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
    from spineseg_core.study.loss_study import loss_name

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
            f"losses ({', '.join(loss_name(c) for c in table.columns)}); {loss_name(best)} gave "
            "the best mean Dice over them")
    kept = [c for c in table.columns if passing is None or c in passing]
    if len(kept) == len(table.columns):
        return MarkdownText(text + ".")
    if not kept:
        return MarkdownText(text + ", but every loss has a run that fails the background check "
                            "({numref}`tbl-loss-sanity`).")
    return MarkdownText(text + f"; of the losses whose every run passes the background check "
                        f"({{numref}}`tbl-loss-sanity`), {loss_name(table[kept].mean().idxmax())} did.")


@page("losses")
def losses_page(b: Bundle) -> Page:
    from spineseg_core.report.claims import check_claim, load_results, named_by_loss
    from spineseg_core.report.figures import loss_bars
    from spineseg_core.study.loss_study import (
        ABSENT_MAX,
        BG_RECALL_MIN,
        BY_NAME,
        choose_default,
        loss_name,
        sane_runs,
        variants_table,
    )
    from spineseg_core.training.config import TrainConfig

    variants, losses = b.csv("loss_variants.csv"), b.csv("losses.csv")
    out: Page = {"default_loss": loss_name(TrainConfig.loss), "bg_recall_min": f"{BG_RECALL_MIN:.0%}",
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
        out.update(variants_rule=f"The rule gave {loss_name(BY_NAME[chosen].loss)}: {reason}.",
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
        Column(c, f"{loss_name(c)} (%)", Kind.PERCENT, 1) for c in table.columns],
        dash_note="not trained with this loss")
    runs = sub.sort_values(["display_name", "loss", "seed"], kind="stable")
    checked = sanity_check(named_by_loss(runs))
    out["lo_sane_text"], out["lo_sanity"] = checked or (
        "The loss runs of this bundle do not record the check.", Missing("losses.csv"))
    return out
