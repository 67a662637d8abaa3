"""Table 3: the cost of each model (parameters, MACs, memory, time).

The page function of ``book/efficiency.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, num
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.tables import (
    DASH,
    Column,
    HTMLTable,
    Kind,
    cell_text,
    columns_for,
    fold_constant,
    is_missing,
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
            "achieved_gflop_s": "Achieved (GFLOP/s)", "data_ratio": "Data path / model only",
            "peak_mem_mb": "Peak memory (MB)"}))
        out["ef_bench"] = table_html(bench, kept, notes=notes)
    return {**out, **part8_values(b)}


FOLDED: dict[str, str] = {"ef_changes": "The trainer's step before and after part 8",
                          "ef_monai": "Side by side with MONAI"}
"""The blocks of :func:`part8_values` shown in a dropdown, with its title."""


def part8_values(b: Bundle) -> Page:
    """The chapter's blocks that exist only with their measurement, each a :class:`MarkdownText`
    the chapter pastes, with its numbered table: the step against the matrix-multiply rate
    (``ef_steps``), the trainer's step before and after part 8 of issue 24 (``ef_changes``)
    and the side-by-side with MONAI (``ef_monai``). A block without its file is
    empty: left out, not announced."""
    from spineseg_core.report.pages.convergence import figure_block

    out: Page = {}
    for key, name, (text, table), caption in (
            ("ef_steps", "tbl-step-gemm", step_rate_section(b.csv("step_settings.csv")),
             "**Each model's training step against the machine's matrix-multiply rate**, "
             "in the trainer's setting, and the fastest setting of the sweep."),
            ("ef_changes", "tbl-step-changes", step_change_section(b.csv("step_changes.csv")),
             "**The trainer's step before and after it stopped filling fresh memory**, per "
             "model, in the trainer's setting."),
            ("ef_monai", "tbl-monai", monai_section(b.csv("bench_monai.csv")),
             "**Our U-Net and Attention U-Net beside MONAI's**, one training step each.")):
        if table is not None:
            out[f"{key}_table"] = table
            text = f"{text}\n\n{figure_block(f'{key}_table', name, caption)}"
            if key in FOLDED:  # detail a reader opens, so that the chapter stays short
                text = f"::::{{dropdown}} {FOLDED[key]}\n{text}\n::::"
        out[key] = MarkdownText(text)
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
              "one volume pair. MONAI's networks differ in their blocks (the notes under the table "
              "say how), so they do a different number of MACs: the achieved FLOP/s is the fair "
              "speed comparison, images per second the practical one.")


def optional_sections(b: Bundle, gpu_dir: Path) -> list[tuple[str, HTMLTable]]:
    """The GPU check's tables (``scripts/gpu_check.sh``, ``results/gpu/*.csv``), which exist
    only when it was run: ``(text, table)`` pairs, each text in Markdown; nothing at all
    without them (the comparison with MONAI is :func:`monai_section`)."""
    out: list[tuple[str, HTMLTable]] = []
    files = sorted(gpu_dir.glob("*.csv")) if gpu_dir.is_dir() else []
    for i, f in enumerate(files):
        df = pd.read_csv(f)
        out.append((GPU_TEXT if i == 0 else "", table_html(
            df, columns_for(df, {c: c.replace("_", " ") for c in df}, 3),
            notes=[f"From results/gpu/{f.name}."])))
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


# --- issue 24, part 8: each training step against the machine's matrix-multiply rate -----------

GEMM_AIM = 0.5
"""The share of the same machine's matrix-multiply rate (in the step's precision) that issue 24
aims at for the training step of the convolutional models."""


def setting_words(row: pd.Series) -> str:
    """A step setting in words: precision and memory layout ("bf16, channels-last")."""
    precision = str(row["precision"]).removesuffix("-autocast")
    layout = "channels-last" if bool(row["channels_last"]) else "channels-first"
    return f"{precision}, {layout}"


def _flag(frame: pd.DataFrame, column: str, default: bool) -> pd.Series:
    """A boolean column of a sweep, ``default`` where an older file lacks it."""
    if column not in frame:
        return pd.Series(default, index=frame.index)
    return frame[column].astype(str).str.lower().isin(("true", "1"))


def trainer_rows(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per model, the row of ``step_settings.csv`` timed in the trainer's own setting: its
    profile's precision and layout, fresh memory not filled."""
    own = ((sweep["precision"] == sweep["profile_precision"])
           & (_flag(sweep, "channels_last", False) == _flag(sweep, "profile_channels_last", False))
           & ~_flag(sweep, "fill_memory", False))
    return sweep[own].drop_duplicates("model")


def step_rates(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per model of ``step_settings.csv``: the trainer's setting, its achieved GFLOP/s
    and share of the GEMM rate in its precision (``ratio``), the speed-up it lacks to reach
    :data:`GEMM_AIM` (1 when reached), the fastest setting of the sweep and how much faster
    than the trainer's it is (``faster``, a fraction: 0 when the trainer's is the fastest)."""
    from spineseg_core.report.pages.convergence import display_names

    mine = trainer_rows(sweep).set_index("model")
    rows = []
    for model, group in sweep.groupby("model", sort=False):
        if model not in mine.index:
            continue
        own = mine.loc[model]
        best = group.loc[group["step_s"].idxmin()]
        ratio = float(own["ratio_to_gemm"])
        rows.append({"model": model, "setting": setting_words(own),
                     "achieved": float(own["achieved_gflop_s"]), "ratio": ratio,
                     "to_aim": max(GEMM_AIM / ratio, 1.0) if ratio > 0 else float("nan"),
                     "fastest": setting_words(best),
                     "faster": float(own["step_s"]) / float(best["step_s"]) - 1})
    out = pd.DataFrame(rows, columns=["model", "setting", "achieved", "ratio", "to_aim",
                                      "fastest", "faster"])
    return out.assign(display_name=out["model"].map(display_names(list(out["model"]))))


def step_rate_section(sweep: pd.DataFrame | None) -> tuple[str, HTMLTable | None]:
    """The chapter's text (Markdown) and table of the step sweep; nothing without it."""
    if sweep is None or not len(sweep):
        return "", None
    rates = step_rates(sweep)
    if rates.empty:
        return "", None
    first = sweep.iloc[0]
    reached = rates[rates["ratio"] >= GEMM_AIM]
    fastest_own = int((rates["faster"] <= 0).sum())
    text = (
        "**Each step against the machine's matrix multiply.** The nominal FLOPs of one "
        "training step divided by its time, against the rate the same process measured for a "
        f"large matrix multiply: {first['gemm_bf16_gflop_s']:,.0f} GFLOP/s in bf16 and "
        f"{first['gemm_fp32_gflop_s']:,.0f} in fp32, on {int(first['threads'])} threads "
        "({numref}`tbl-step-gemm`). A step in bf16 is set against the bf16 rate, one in fp32 "
        f"against the fp32 rate. The study aims at {100 * GEMM_AIM:.0f} % of that rate for "
        f"the convolutional models: {len(reached)} of the {len(rates)} models "
        f"{'reaches' if len(reached) == 1 else 'reach'} it in the "
        f"trainer's setting; the column *Speed-up to {100 * GEMM_AIM:.0f} %* says how much "
        "faster each other step would have to be. Each model's step was also timed in every "
        "layout and precision, one step of each in turn, and the trainer's setting is the "
        f"fastest for {fastest_own} of them.")
    table = table_html(rates.sort_values("ratio", ascending=False), [
        Column("display_name", "Model"), Column("setting", "Trainer's setting"),
        Column("achieved", "Achieved (GFLOP/s)", Kind.INTEGER),
        Column("ratio", "Share of the GEMM rate (%)", Kind.PERCENT),
        Column("to_aim", f"Speed-up to {100 * GEMM_AIM:.0f} %",
               write=lambda r: "reached" if r["to_aim"] <= 1 else f"{r['to_aim']:.1f}×"),
        Column("fastest", "Fastest setting", write=lambda r: "the trainer's" if r["faster"] <= 0
               else f'{r["fastest"]}<br><span class="spineseg-ci">'
                    f'{100 * r["faster"]:.1f} % faster</span>')],
        notes=["Sorted by the share of the GEMM rate. Data: step_settings.csv "
               "(spineseg bench --sweep)."] + precision_note(rates))
    return text, table


def precision_note(rates: pd.DataFrame) -> list[str]:
    """A note naming the models whose fastest setting is in another precision than the
    trainer's: not a free change, since a model trains in fp32 only where bf16 failed it."""
    other = rates[rates["setting"].str.split(",").str[0] != rates["fastest"].str.split(",").str[0]]
    if other.empty:
        return []
    return [f"The fastest setting of {', '.join(other['display_name'])} is in another precision "
            "than the trainer's: a model trains in fp32 only where bf16 failed it (the "
            "deviations of the methods chapter), so that setting is not a free change."]


def step_changes(changes: pd.DataFrame) -> pd.DataFrame:
    """Per model of ``step_changes.csv``: the step before part 8 (fresh memory filled) and
    after (not), in seconds, the fraction ``faster`` after, and the after row's achieved
    GFLOP/s and share of the GEMM rate."""
    from spineseg_core.report.pages.convergence import display_names

    fill = _flag(changes, "fill_memory", False)
    before = changes[fill].drop_duplicates("model").set_index("model")
    after = changes[~fill].drop_duplicates("model").set_index("model")
    models = [m for m in dict.fromkeys(changes["model"]) if m in before.index and m in after.index]
    names = display_names(models)
    return pd.DataFrame([{
        "model": m, "display_name": names[m], "setting": setting_words(after.loc[m]),
        "before_s": float(before.loc[m, "step_s"]), "after_s": float(after.loc[m, "step_s"]),
        "faster": float(before.loc[m, "step_s"]) / float(after.loc[m, "step_s"]) - 1,
        "achieved": float(after.loc[m, "achieved_gflop_s"]),
        "ratio": float(after.loc[m, "ratio_to_gemm"])} for m in models],
        columns=["model", "display_name", "setting", "before_s", "after_s", "faster",
                 "achieved", "ratio"])


def sci(x: float) -> str:
    """A small number in words' notation: 2.8 × 10⁻⁸ (0 as 0)."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.1e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mantissa} × 10{str(int(exponent)).translate(sup)}"


def step_change_section(changes: pd.DataFrame | None) -> tuple[str, HTMLTable | None]:
    """The chapter's text (Markdown) and table of part 8's before and after; nothing without
    ``step_changes.csv``."""
    table = step_changes(changes) if changes is not None and len(changes) else None
    if table is None or table.empty:
        return "", None
    faster = table["faster"]
    gain = (f"{table['display_name'].iloc[0]}'s step is {change_words(faster.iloc[0])}"
            if len(table) == 1 else
            f"the step is {change_words(faster.median())} for the median model (from "
            f"{change_words(faster.min())} to {change_words(faster.max())})")
    text = ("**Before and after.** The trainer used to fill freshly allocated memory on every "
            "step (a side effect of its deterministic setting); it no longer does. Timed "
            "both ways in the same process, one step of each in turn "
            f"({{numref}}`tbl-step-changes`), {gain}.")
    shown = table_html(table.sort_values("faster", ascending=False), [
        Column("display_name", "Model"), Column("setting", "Setting"),
        Column("before_s", "Step before (s)", Kind.NUMBER, 2),
        Column("after_s", "Step after (s)", Kind.NUMBER, 2),
        Column("faster", "Faster (%)", Kind.PERCENT),
        Column("achieved", "Achieved after (GFLOP/s)", Kind.INTEGER),
        Column("ratio", "Share of the GEMM rate after (%)", Kind.PERCENT)],
        notes=["Before: fresh memory filled on every step; after: not. Sorted by the gain. "
               "The share is of the GEMM rate measured in the same run ("
               f"{changes['gemm_bf16_gflop_s'].iloc[0]:,.0f} GFLOP/s in bf16, "
               f"{changes['gemm_fp32_gflop_s'].iloc[0]:,.0f} in fp32), not the sweep's. "
               "Data: step_changes.csv (spineseg bench --before-after)."])
    return text, shown


def change_words(faster: float) -> str:
    """A relative change of speed in words: "3.5 % faster", "3.3 % slower"."""
    return f"{100 * abs(faster):.1f} % {'slower' if faster < 0 else 'faster'}"


def monai_rows(monai: pd.DataFrame) -> pd.DataFrame:
    """The network rows of ``bench_monai.csv`` (``comparison`` "network training step")."""
    return monai[monai["comparison"].astype(str).str.contains("network")]


def monai_section(monai: pd.DataFrame | None) -> tuple[str, HTMLTable | None]:
    """The side-by-side with MONAI in reader words: a compact table of the networks (each cell
    ours over MONAI's) and the metric comparison as one sentence; nothing without the file."""
    if monai is None or not len(monai):
        return "", None
    from spineseg_core.report.pages.convergence import display_names

    nets = monai_rows(monai)
    text = [MONAI_TEXT]
    table = None
    if len(nets):
        names = display_names(list(nets["ours"]))
        shown = nets.assign(
            network=[f'{names[o]}<br><span class="spineseg-ci">MONAI '
                     f'{str(m).rsplit(".", 1)[-1]}</span>' for o, m in zip(nets["ours"],
                                                                           nets["monai"])])

        def pair(key: str, scale: float = 1.0) -> Callable[[pd.Series], str]:
            return lambda r: ours_over_paper(r[f"{key}_ours"] / scale, r[f"{key}_monai"] / scale)

        first = nets.iloc[0]
        table = table_html(shown, [
            Column("network", "Network (ours, MONAI's)"),
            Column("params", "Parameters (M)", write=pair("params", 1e6)),
            Column("gmacs", f"GMACs at {int(first['size'])} px", write=pair("gmacs")),
            Column("img_s", "Training (img/s)", write=pair("img_s")),
            Column("gflop_s", "Achieved (GFLOP/s)", write=pair("gflop_s")),
            Column("gflop_s_ratio", "Achieved, ours ÷ MONAI's", Kind.NUMBER, 2)],
            notes=[f"Each cell: ours, and lighter under it MONAI's. One training step at "
                   f"{int(first['size'])} px, batch {int(first['batch'])}, "
                   f"{str(first['precision']).removesuffix('-autocast')}, on the "
                   f"{str(first['device']).upper()}. Data: bench_monai.csv (spineseg bench --monai)."]
                  + [f"{names[o]}: {d}." for o, d in zip(nets["ours"], nets["differences"])
                     if not is_missing(d)])
        text.append("{numref}`tbl-monai` sets them side by side.")
    metric = monai[~monai.index.isin(nets.index)]
    if len(metric):
        text.append(metric_sentence(metric.iloc[0]))
    return " ".join(text), table


def metric_sentence(row: pd.Series) -> str:
    """The metric row of ``bench_monai.csv`` as one sentence."""
    parts = [f"Our per-class Dice of one volume pair ({int(row['batch'])} slices of "
             f"{int(row['size'])} × {int(row['size'])} px) agrees with MONAI's DiceMetric"]
    if not is_missing(row.get("max_abs_diff")):
        parts.append(f" to within {sci(float(row['max_abs_diff']))}")
        if not is_missing(row.get("n_compared")):
            parts.append(f" on the {int(row['n_compared'])} classes both score")
    if not is_missing(row.get("seconds_ours")) and not is_missing(row.get("seconds_monai")):
        parts.append(f", and takes {float(row['seconds_ours']):.2f} s against MONAI's "
                     f"{float(row['seconds_monai']):.2f} s")
    return "".join(parts) + "."
