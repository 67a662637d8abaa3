"""Every chapter's values come from a page function: built from a fake bundle and from none,
each glue name the chapter's Markdown uses is given, and no value shows NaN or an ellipsis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from fake_runs import make_fake_study, write_fake_efficiency
from spineseg_core.fingerprint import REPO
from spineseg_core.levels.study import level_study
from spineseg_core.report.bundle import Bundle
from spineseg_core.report.pages import PAGES, Missing, build_page, glue_names
from spineseg_core.report.tables import HTMLTable
from spineseg_core.study.aggregate import aggregate


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    runs = make_fake_study(root / "runs", profile="cpu", seeds=(0, 1),
                           variants={"context": {"models": ("unet", "unet_25d3", "unet3d")}})
    aggregate("cpu", runs, root / "results/cpu", n_boot=50)
    write_fake_efficiency(root / "results/cpu/efficiency.csv", ("unet", "deeplabv3plus", "miniseg"))
    # The level tables as `spineseg main` writes them. The fake masks are bands of labels 1..k
    # (no alternation of disc and vertebra) with random flips: a bundle as odd as a smoke
    # study's, where the relabelling can count nothing.
    level_study(runs, root / "results/cpu/levels", "cpu", n_boot=50)
    return Bundle(root / "results/cpu")


def _check(values: dict, chapter: str) -> None:
    text = (REPO / "book" / f"{chapter}.md").read_text()
    wanted = glue_names(text)
    assert wanted <= set(values), f"{chapter}: not given {sorted(wanted - set(values))}"
    for key, value in values.items():
        if isinstance(value, str):
            assert "nan" not in value.lower().split() and "…" not in value, (key, value)
        elif isinstance(value, HTMLTable):
            assert "NaN" not in value.text and "…" not in value.text, key
        else:
            assert isinstance(value, (Figure, Missing)), (key, type(value))


@pytest.mark.parametrize("chapter", sorted(PAGES))
def test_page_gives_every_name_its_chapter_uses(bundle, chapter):
    values = build_page(chapter, bundle)
    _check(values, chapter)
    plt.close("all")


@pytest.mark.parametrize("chapter", sorted(PAGES))
def test_page_without_results_names_what_is_missing(chapter, tmp_path):
    values = build_page(chapter, Bundle(tmp_path / "nothing"))
    _check(values, chapter)
    assert any(isinstance(v, Missing) for v in values.values()) or chapter == "intro"
    plt.close("all")


def test_table1_page_numbers_match_the_bundle(bundle):
    values = build_page("results", bundle)
    models = bundle.csv("models.csv")
    best = models.loc[models.dice_mean.idxmax()]
    assert values["t1_best"] == best.display_name
    assert values["t1_best_dice"] == f"{100 * best.dice_mean:.1f}"
    assert values["t1_n_ours"] == "3" and values["t1_n_paper"] == "12"
    assert (values["t1_fnr_recall_lo"], values["t1_fnr_recall_hi"]) == ("105.7", "133.2")
    plt.close("all")


def test_unknown_chapter_is_named():
    with pytest.raises(KeyError, match="known"):
        build_page("nope", Bundle(None))


def test_context_page_reads_the_context_study(bundle):
    values = build_page("context", bundle)
    assert values["cx_runs"] == "3" and values["cx_fingerprint"] == "f0f0f0f0f0f0"
    assert isinstance(values["cx_table"], HTMLTable)
    assert "U-Net 2.5D (3 slices)" in values["cx_table"].text
    assert "whole volume" in values["cx_table"].text
    # One seed each: not resolved would need a wider interval; the verdict is computed, and the
    # models never run (DeepLabv3+ and its 2.5D variants) are named as not run.
    assert values["cx_verdicts"].startswith("U-Net 2.5D (3 slices): ")
    assert "DeepLabv3+ 2.5D (5 slices): not resolved at this scale" in values["cx_verdicts"]
    plt.close("all")


def test_levels_page_reads_the_level_tables(bundle):
    """The fake masks never alternate disc and vertebra, so the relabelling refuses every
    subject, reference included: the two stages agree, every change is exactly 0, the verdict
    is not resolved, and no subject is offered as an example."""
    values = build_page("levels", bundle)
    status = bundle.csv("levels/status.csv")
    n_ref = int(status.loc[status.model == "reference", "n"].sum())
    assert values["lv_ref_ok"] == f"0 of {n_ref}" and values["lv_count_share"] == "0.0"
    assert values["lv_verdict"] == "not resolved at this scale"
    assert (values["lv_v_diff"], values["lv_v_lo"], values["lv_v_hi"]) == ("+0.0",) * 3
    assert isinstance(values["lv_table"], HTMLTable) and isinstance(values["lv_heatmaps"], Figure)
    assert isinstance(values["lv_example"], Missing)
    assert values["lv_ex_caption"].startswith("No subject of these runs has a one-level shift")
    # with results, no text value is a placeholder (the browser test's "n/a" check)
    assert not [k for k, v in values.items() if isinstance(v, str) and "n/a" in v]
    plt.close("all")


@pytest.mark.parametrize("chapter", sorted(PAGES))
def test_alt_texts_are_not_path_like(chapter):
    """The browser test's alt-text check (tests/book_checks.py) on the Markdown itself, so it
    runs without chromium: a "/" (an "L5/S" in a sentence) reads as a path there."""
    from book_checks import PATH_LIKE

    text = (REPO / "book" / f"{chapter}.md").read_text()
    alts = [line.split(":alt:", 1)[1].strip() for line in text.splitlines()
            if line.startswith(":alt:")]
    assert not [a for a in alts if not a or PATH_LIKE.search(a)], chapter
