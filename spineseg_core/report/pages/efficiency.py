"""Table 3: the cost of each model (parameters, MACs, memory, time).

The page function of ``book/efficiency.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from spineseg_core.report.bundle import MISSING, Bundle, num
from spineseg_core.report.pages.base import Missing, Page, page
from spineseg_core.report.tables import DASH, Column, Kind, cell_text, columns_for, table_html


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
