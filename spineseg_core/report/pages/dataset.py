"""The data: what the runs trained and were scored on.

The page function of ``book/dataset.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, num, pct
from spineseg_core.report.pages.base import BOOK_DATA, Missing, Page, page
from spineseg_core.report.tables import Column, Kind, columns_for, table_html

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
