"""The paper's published numbers (Tables 1-3 of Zhou et al., ICMR 2022).

Read from the CSV files shipped in ``spineseg_core/resources/paper`` — the one place the
project keeps them — so the book and the tests can set our results beside the paper's.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

PAPER_DOI = "10.1145/3512527.3531356"
PAPER_URL = f"https://doi.org/{PAPER_DOI}"
PAPER_CITATION = (
    "Neng Zhou, Hairu Wen, Yang Liu, Yi Wang, Zhong Wang et al. Review of Deep Learning Models "
    "for Spine Segmentation. Proceedings of the 2022 International Conference on Multimedia "
    f"Retrieval (ICMR '22), ACM, 2022. doi:{PAPER_DOI}"
)
"""The paper this study re-runs, as the book and ``CITATION.cff`` cite it."""
PAPER_SHORT = "Zhou et al. (ICMR 2022)"

PAPER_SIZE_PX = 880
PAPER_EPOCHS = "about 120"
"""The paper's image grid and training length (its Section 4 and Figure 19)."""
PAPER_MARKDOWN = (
    "Neng Zhou et al., *Review of Deep Learning Models for Spine Segmentation*, ICMR 2022, "
    f"[doi:{PAPER_DOI}]({PAPER_URL})"
)
"""The citation with its DOI as a Markdown link (the book's chapters)."""


def _read(name: str) -> pd.DataFrame:
    path = resources.files("spineseg_core") / "resources" / "paper" / name
    with resources.as_file(path) as p:
        return pd.read_csv(p)


def table1_overall() -> pd.DataFrame:
    """Table 1: Dice, mIoU, FN rate, FP rate and recall (percent) per model."""
    return _read("table1_overall.csv")


def table2_per_class_dice() -> pd.DataFrame:
    """Table 2: per-class Dice (percent) per model, classes in label order, plus mDice."""
    return _read("table2_per_class_dice.csv")


def table3_efficiency() -> pd.DataFrame:
    """Table 3: backbone, parameters (M), reported GFLOPs (really GMACs) and memory (GB)."""
    return _read("table3_efficiency.csv")
