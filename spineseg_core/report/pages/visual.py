"""Figure 18: example segmentations of one test slice.

The page function of ``book/visual.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, pct
from spineseg_core.report.pages.base import Missing, Page, page


@page("visual")
def visual_page(b: Bundle) -> Page:
    from spineseg_core.report.figures import figure18_slice
    from spineseg_core.study.aggregate import SPINE_SHARE

    fig18 = b.npz("figure18.npz")
    out: Page = {"v_spine_share": f"{SPINE_SHARE:.0%}"}
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
