"""Table 3: the cost of each model (parameters, MACs, memory, time).

The page function of ``book/efficiency.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, num
from spineseg_core.report.pages.base import Missing, Page, page
from spineseg_core.report.tables import (
    DASH,
    Column,
    HTMLTable,
    Kind,
    cell_text,
    columns_for,
    fold_constant,
    table_html,
)


@page("efficiency")
def efficiency_page(b: Bundle) -> Page:
    from spineseg_core.measure.efficiency import CARD_24GB_MIB, CARD_RESERVE_MIB
    from spineseg_core.report.figures import cost_scatter_html
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
        out["ef_scatter_note"] = "No cost was measured (efficiency.csv is missing)."
    else:
        big, small = both.loc[both.params_m.idxmax()], both.loc[both.params_m.idxmin()]
        out.update(ef_big=big.display_name, ef_big_params=num(big.params_m, 1),
                   ef_small=small.display_name, ef_small_params=num(small.params_m, 3),
                   ef_size=str(int(eff["size"].iloc[0])) if "size" in eff else MISSING,
                   ef_params_max_diff=num((both.params_m - both.params_m_paper).abs().max(), 1))
        both = both.sort_values("params_m", ignore_index=True)
        mem = both.get("train_peak_mem_mb")
        both = both.assign(mem_gib=None if mem is None else mem / 1024)
        out["ef_table3"] = table_html(both, [
            Column("display_name", "Model"),
            Column("backbone", "Backbone", write=lambda r: ours_over_paper(
                r.get("backbone"), r.get("backbone_paper"), Kind.TEXT)),
            Column("params_m", "Parameters (M)", write=lambda r: ours_over_paper(
                r.get("params_m"), r.get("params_m_paper"))),
            Column("gmacs_880", "GMACs at 880 px", write=lambda r: ours_over_paper(
                r.get("gmacs_880"), r.get("flops_g_reported"))),
            Column("mem_gib", "Training memory", write=lambda r: ours_over_paper(
                r.get("mem_gib"), r.get("memory_gb"))),
            Column("fits_24gb", "Fits 24 GiB",
                   write=lambda r: {True: "yes", False: "no"}.get(r.get("fits_24gb"), DASH))],
            notes=["Each cell: ours, and lighter under it the paper's Table 3. Memory: ours in "
                   "GiB (1024\u00b3 bytes), a CPU estimate unless the device is a GPU (see "
                   "below); the paper's column says GB without saying which. Sorted by our "
                   "parameter count. Data: efficiency.csv and the paper's Table 3."],
            dash_note="no backbone (U-Net family)")
        paired, recounted = main_run_macs(both, b.csv("runs.csv"))
        out["ef_scatter"] = (cost_scatter_html(paired.merge(models[["display_name", "dice_mean"]],
                                                            on="display_name"))
                             if models is not None and len(models) else Missing("models.csv"))
        out["ef_scatter_note"] = (
            "Each point pairs a model's Dice with the cost of the same network: "
            + "; ".join(f"{name} at {kw}, {g:.0f} GMACs at 880 px (the cost table counts its default)"
                        for name, kw, g in recounted) + "."
            if recounted else "Each point pairs a model's Dice with the cost of the same network.")
    if bench is None:
        out["ef_bench"] = Missing("bench.csv")
    else:  # what every row shares is said once under the table, so that it fits the page
        kept, notes = fold_constant(bench, columns_for(bench, {
            "display_name": "Model", "precision": "Precision", "size": "Size (px)",
            "batch": "Batch", "train_img_s": "Train (img/s)", "infer_img_s": "Inference (img/s)",
            "achieved_gflop_s": "Achieved (GFLOP/s)", "peak_gflop_s": "Peak (GFLOP/s)",
            "peak_ratio": "Fraction of peak", "data_ratio": "Data path / model only",
            "peak_mem_mb": "Peak memory (MB)"}))
        out["ef_bench"] = table_html(bench, kept, notes=notes)
    return out


GPU_TEXT = ("**On a GPU.** " +
            "`scripts/gpu_check.sh` measures the paper's setting on one GPU (H100/H200 class, designed "
            "to finish within eight minutes): timed training steps per model at 880x880 in each "
            "model's own configuration (batch, precision, stride), the images per second, the "
            "achieved TFLOP/s and the model FLOP "
            "utilisation (MFU) against the card's dense bf16 peak, the `max_memory_reserved` peak of one "
            "step after warm-up beside the paper's Table 3 memory, the batched augmentation against the "
            "model alone at 880 px, and one `spineseg predict` of a phantom volume. Its CSV files land in"
            " `results/gpu/`.")
MONAI_TEXT = ("**Side by side with MONAI.** " +
              "The same process measures our U-Net and Attention U-Net against MONAI's `UNet` and "
              "`AttentionUnet` built with the same widths, and our metrics against MONAI's `DiceMetric` on "
              "one 20-class 12x880x880 volume pair. MONAI's networks differ in their blocks (see the "
              "`differences` column), so they do a different number of MACs: achieved FLOP/s is the fair "
              "speed comparison, images per second the practical one.")


def optional_sections(b: Bundle, gpu_dir: Path) -> list[tuple[str, HTMLTable]]:
    """The chapter's sections that exist only when their measurement was made: the GPU check's
    tables (``scripts/gpu_check.sh``, ``results/gpu/*.csv``) and the comparison with MONAI
    (``spineseg bench --monai``, ``bench_monai.csv``). A section without data is left out, not
    announced: ``(text, table)`` pairs, each text in Markdown."""
    out: list[tuple[str, HTMLTable]] = []
    files = sorted(gpu_dir.glob("*.csv")) if gpu_dir.is_dir() else []
    for i, f in enumerate(files):
        df = pd.read_csv(f)
        out.append((GPU_TEXT if i == 0 else "", table_html(
            df, columns_for(df, {c: c.replace("_", " ") for c in df}, 3),
            notes=[f"From results/gpu/{f.name}."])))
    monai = b.csv("bench_monai.csv")
    if monai is not None:
        out.append((MONAI_TEXT, table_html(
            monai, columns_for(monai, {c: c.replace("_", " ") for c in monai}, 3),
            notes=["From bench_monai.csv (spineseg bench --monai)."])))
    return out


KWARGS = re.compile(r"model_kwargs=(\{[^}]*\})")
"""How a run's ``budget_exceptions`` (``runs.csv``) records the model arguments it changed."""


def main_run_macs(both: pd.DataFrame, runs: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, list[tuple[str, str, float]]]:
    """``both`` (Table 3 rows) with ``gmacs_880`` counted for the network the main runs
    trained: a model whose runs changed its arguments (DANet at output stride 8) is counted
    again with them (:func:`~spineseg_core.measure.efficiency.count_macs`, on the meta device:
    no memory, a few seconds), so that accuracy is never paired with another network's cost.
    Also returns ``(display name, the arguments in words, GMACs)`` for each recounted model."""
    import ast

    import torch

    from spineseg_core.measure.efficiency import count_macs
    from spineseg_core.models.registry import build_model

    out, recounted = both.copy(), []
    if runs is None or "budget_exceptions" not in runs:
        return out, recounted
    for model, texts in runs.groupby("model")["budget_exceptions"]:
        found = {m.group(1) for t in texts.dropna().astype(str) for m in KWARGS.finditer(t)}
        if len(found) != 1:  # none changed, or the runs disagree: Table 3's count stands
            continue
        kwargs = ast.literal_eval(found.pop())
        name = str(runs.loc[runs["model"] == model, "display_name"].iloc[0])
        if name not in set(out["display_name"]):
            continue
        with torch.device("meta"):
            net = build_model(str(model), **kwargs)
        gmacs = count_macs(net) / 1e9
        out.loc[out["display_name"] == name, "gmacs_880"] = gmacs
        words = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in kwargs.items())
        recounted.append((name, words, gmacs))
    return out, recounted


def ours_over_paper(ours: object, paper: object, kind: Kind = Kind.NUMBER) -> str:
    """A Table 3 cell: our value and, lighter under it, the paper's (one decimal; text as it is,
    the paper's shown only where it differs)."""
    mine = cell_text(ours, kind, 1)
    theirs = cell_text(paper, kind, 1)
    if theirs == DASH or (kind is Kind.TEXT and theirs.replace("-", "") == mine.replace("-", "")):
        return mine
    return f'{mine}<br><span class="spineseg-ci">{theirs}</span>'
