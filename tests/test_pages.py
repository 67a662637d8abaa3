"""Every chapter's values come from a page function: built from a fake bundle and from none,
each glue name the chapter's Markdown uses is given, and no value shows NaN or an ellipsis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from book_checks import toc_chapters
from fake_bench import write_fake_bench_monai, write_fake_step_changes, write_fake_step_settings
from fake_plateau import write_plateau_bundle
from fake_runs import make_fake_study, write_fake_efficiency
from spineseg_core.fingerprint import REPO
from spineseg_core.levels.study import bundle_folder, level_study
from spineseg_core.report.bundle import MISSING, Bundle
from spineseg_core.report.pages import (
    PAGES,
    MarkdownText,
    Missing,
    build_page,
    glue_names,
    markdown_glue_names,
)
from spineseg_core.report.tables import HTMLTable
from spineseg_core.study.aggregate import aggregate
from spineseg_core.study.loss_study import loss_name


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
    level_study(runs, root / "results/cpu" / bundle_folder("cpu-context"), "cpu-context",
                n_boot=50)
    # issue 24's files: the budget seed beside the profile, part 8's and MONAI's benchmarks
    write_plateau_bundle(root / "results/plateau")
    write_fake_step_settings(root / "results/cpu/step_settings.csv")
    write_fake_step_changes(root / "results/cpu/step_changes.csv")
    write_fake_bench_monai(root / "results/cpu/bench_monai.csv")
    return Bundle(root / "results/cpu")


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A bundle as the committed one is while the study runs: the main group's runs (one
    seed) with their level tables and efficiency, no loss-comparison group, no context group."""
    root = tmp_path_factory.mktemp("partial")
    runs = make_fake_study(root / "runs", profile="cpu", seeds=(0,), losses=())
    aggregate("cpu", runs, root / "results/cpu", n_boot=50)
    write_fake_efficiency(root / "results/cpu/efficiency.csv", ("unet", "deeplabv3plus", "miniseg"))
    level_study(runs, root / "results/cpu/levels", "cpu", n_boot=50)
    return Bundle(root / "results/cpu")


def _placeholders(values: dict) -> list[str]:
    """The names whose text or table shows :data:`MISSING` (what the browser test's "n/a"
    check would find on the page)."""
    return [k for k, v in values.items()
            if (isinstance(v, str) and MISSING in v)
            or (isinstance(v, HTMLTable) and MISSING in v.text)]


def _check(values: dict, chapter: str) -> None:
    text = (REPO / "book" / f"{chapter}.md").read_text()
    wanted = glue_names(text)
    assert wanted <= set(values), f"{chapter}: not given {sorted(wanted - set(values))}"
    # {glue:md} needs Markdown, and {glue:text} of Markdown would show its repr
    markdown = {k for k in wanted if isinstance(values[k], MarkdownText)}
    assert markdown == markdown_glue_names(text), chapter
    # a block of Markdown pastes its own exhibits: each must be given with it
    for key in markdown:
        inner = glue_names(values[key])
        assert inner <= set(values), f"{chapter}: {key} pastes {sorted(inner - set(values))}"
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
    # The first and methods pages say in words that nothing has run; references reads none.
    assert any(isinstance(v, Missing) for v in values.values()) or chapter in (
        "intro", "methods", "references")
    plt.close("all")


def test_table1_page_numbers_match_the_bundle(bundle):
    values = build_page("results", bundle)
    models = bundle.csv("models.csv")
    best = models.loc[models.dice_mean.idxmax()]
    assert values["t1_best"] == best.display_name
    assert values["t1_best_dice"] == f"{100 * best.dice_mean:.1f}"
    assert values["t1_n_ours"] == "3" and values["t1_n_paper"] == "12"
    assert (values["t1_fnr_recall_lo"], values["t1_fnr_recall_hi"]) == ("105.7", "133.2")
    # each of our models shows its seed count (the fake study: 2 seeds; the paper's models
    # that we did not run get a dash)
    head = values["t1_overlap"].text.split("</thead>")[0]
    assert "Seeds (ours)" in head
    row = next(r for r in values["t1_overlap"].text.split("<tr") if "U-Net<" in r)
    assert [c.split(">", 1)[1].split("<")[0] for c in row.split("<td")[1:4]] == [
        "U-Net", "9", "2"]  # U-Net is ninth of the paper's twelve by its Table 1 Dice
    plt.close("all")


def test_unknown_chapter_is_named():
    with pytest.raises(KeyError, match="known"):
        build_page("nope", Bundle(None))


def test_context_page_reads_the_context_study(bundle):
    values = build_page("context", bundle)
    assert values["cx_status"] == ("The group (`cpu-context`) holds 3 runs of 3 models, all of "
                                   "code version `f0f0f0f0f0f0`. The level tables measure 3 of "
                                   "them on 4 test subjects.")
    assert isinstance(values["cx_table"], HTMLTable)
    assert "U-Net 2.5D (3 slices)" in values["cx_table"].text
    assert "whole volume" in values["cx_table"].text
    # One seed each: not resolved would need a wider interval; the verdict is computed, and the
    # models never run (DeepLabv3+ and its 2.5D variants) are named as not run.
    assert values["cx_verdicts"].startswith("U-Net 2.5D (3 slices): ")
    assert "DeepLabv3+ 2.5D (5 slices): not resolved at this scale" in values["cx_verdicts"]
    assert "Missing: runs of DeepLabv3+ in the context study." in values["cx_verdicts_table"].text
    assert "1 of the 3 seeds the study runs." in values["cx_verdicts_table"].text
    plt.close("all")


def test_context_page_shows_the_level_metrics_beside_the_baseline(bundle):
    """The context group's level tables: a row per context model measured (or whose baseline
    is), its rates beside U-Net's from summary.csv, and the level rule's verdicts."""
    values = build_page("context", bundle)
    table = values["cx_levels_table"]
    assert isinstance(table, HTMLTable)
    summary = bundle.csv("levels/cpu-context/summary.csv")
    right = summary[(summary.metric == "all_levels_right") & (summary.stage == "predicted")] \
        .set_index("model")
    ident = summary[(summary.metric == "identification") & (summary.stage == "predicted")] \
        .set_index("model")
    for model in ("unet_25d3", "unet3d", "unet"):
        r, i = right.loc[model], ident.loc[model]
        assert f"{100 * r.point:.1f} ({100 * r.ci_low:.1f} to {100 * r.ci_high:.1f})" in table.text
        assert f"{100 * i.point:.1f} ({100 * i.ci_low:.1f} to {100 * i.ci_high:.1f})" in table.text
    # U-Net 2.5D (5 slices) was not run but its baseline was: its row shows dashes, explained;
    # DeepLabv3+'s variants and their baseline were not run: no row.
    assert "U-Net 2.5D (5 slices)" in table.text and "not measured" in table.text
    assert "DeepLabv3+" not in table.text
    assert values["cx_level_verdicts"].startswith("U-Net 2.5D (3 slices): ")
    verdicts = values["cx_level_verdicts_table"]
    assert isinstance(verdicts, HTMLTable)
    assert "names every level right more often than U-Net (2D)" in verdicts.text
    assert "Difference (points)" in verdicts.text
    assert not _placeholders(values)
    plt.close("all")


def test_context_page_without_the_context_study_says_what_makes_it(partial):
    """The committed bundle's state: no context run yet. One sentence says so and names the
    commands; every table is a placeholder naming its file, and no value is "n/a"."""
    values = build_page("context", partial)
    status = values["cx_status"]
    assert status.startswith("This results bundle has no run of the context study yet "
                             "(group `cpu-context`)")
    assert "`scripts/context_study.sh`" in status
    assert "`spineseg levels --group cpu-context`" in status
    for key in ("cx_table", "cx_verdicts_table", "cx_forest", "cx_levels_table",
                "cx_level_verdicts_table"):
        assert isinstance(values[key], Missing), key
    assert "levels/cpu-context/summary.csv" in values["cx_levels_table"].what
    assert values["cx_verdicts"] == ("no context model has been run yet, so each comparison is "
                                     "not resolved at this scale")
    assert not _placeholders(values)
    plt.close("all")


def test_losses_page_without_the_loss_runs_says_what_makes_them(partial, bundle):
    values = build_page("losses", partial)
    assert values["loss_runs"].startswith("No model of this bundle has been trained with two "
                                          "of the losses yet (groups `cpu-loss-<loss>` hold no "
                                          "run)")
    assert "`scripts/rerun_cpu_study.sh`" in values["loss_runs"]
    assert isinstance(values["lo_bars"], Missing) and isinstance(values["lo_table"], Missing)
    assert values["variants_rule"].startswith("This bundle has no loss_variants.csv")
    assert not _placeholders(values)
    # with the loss groups, the real values (the fake study: U-Net and DeepLabv3+ with ce)
    losses = bundle.csv("losses.csv")
    best = losses.groupby(["display_name", "loss"])["dice"].mean().unstack().mean().idxmax()
    values = build_page("losses", bundle)
    assert values["loss_runs"] == (
        "Here 2 models were trained with at least two of the losses (cross-entropy, Dice "
        f"loss); {loss_name(best)} gave the best mean Dice over them.")
    # every run of the comparison takes the background check, named with its loss
    # (the fake study: U-Net and DeepLabv3+, seeds 0-1 with dice and seed 0 with ce, all sane)
    assert isinstance(values["lo_sane_text"], str) and isinstance(values["lo_sanity"], HTMLTable)
    assert values["lo_sane_text"] == "All 6 runs pass it."
    assert "U-Net, cross-entropy" in values["lo_sanity"].text
    assert "Dice loss (%)" in values["lo_table"].text and "dice_ce" not in values["lo_table"].text
    assert isinstance(build_page("losses", partial)["lo_sanity"], Missing)
    plt.close("all")


def test_loss_sentence_and_bars_set_apart_the_losses_that_fail_the_background_check():
    import pandas as pd

    from spineseg_core.report.figures import loss_bars
    from spineseg_core.report.pages import loss_runs_sentence

    table = pd.DataFrame({"ce": [0.6, 0.2], "dice": [0.7, 0.4], "dice_ce": [0.65, 0.1]},
                         index=["U-Net", "MiniSeg"])
    head = ("Here 2 models were trained with at least two of the losses (cross-entropy, "
            "Dice loss, Dice + cross-entropy); Dice loss gave the best mean Dice over them")
    assert loss_runs_sentence("cpu", table, None) == head + "."
    assert loss_runs_sentence("cpu", table, ["ce", "dice", "dice_ce"]) == head + "."
    # without dice: ce (mean .4) beats dice_ce (mean .375)
    assert loss_runs_sentence("cpu", table, ["ce", "dice_ce"]) == head + (
        "; of the losses whose every run passes the background check "
        "({numref}`tbl-loss-sanity`), cross-entropy did.")
    assert loss_runs_sentence("cpu", table, []).endswith(
        "but every loss has a run that fails the background check ({numref}`tbl-loss-sanity`).")
    runs = pd.DataFrame({"display_name": ["U-Net"] * 3 + ["MiniSeg"] * 2,
                         "loss": ["dice", "dice", "ce", "dice", "ce"],
                         "dice": [0.7, 0.6, 0.5, 0.4, 0.2]})
    fig = loss_bars(runs, pd.Series([True, False, True, True, True]))
    bars = [p for p in fig.axes[0].patches]
    assert [round(p.get_height(), 6) for p in bars] == [65.0, 40.0, 50.0, 20.0]
    assert [bool(p.get_hatch()) for p in bars] == [True, False, False, False]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Dice loss", "cross-entropy", "fails the background check"]
    plt.close(fig)


def test_every_loss_and_curve_has_its_reader_name():
    """One mapping names every loss of the registry for readers; the convergence figure's
    legend says its curves in words, not as the history's column names."""
    import pandas as pd

    from spineseg_core.losses import LossName
    from spineseg_core.report.figures import learning_curves
    from spineseg_core.study.loss_study import LOSS_NAMES, loss_name

    assert set(LOSS_NAMES) == {str(n) for n in LossName}
    assert loss_name("dice_ce") == "Dice + cross-entropy" and loss_name(None) == "unrecorded"
    history = pd.DataFrame({"display_name": ["U-Net"] * 2, "seed": [0, 0], "epoch": [1, 2],
                            "dice": [0.2, 0.4], "bg_recall": [0.9, 0.99]})
    fig = learning_curves(history)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["Dice, mean over the 19 structures",
                      "background recall: background pixels predicted as background"]
    plt.close(fig)


@pytest.mark.parametrize("chapter", sorted(PAGES))
def test_no_chapter_shows_a_placeholder_value(bundle, partial, chapter):
    """With results, complete or as partial as the committed bundle, no text or table value
    is "n/a": what is missing is said in a sentence or a placeholder naming its file."""
    for b in (bundle, partial):
        assert not _placeholders(build_page(chapter, b)), (chapter, b.folder)
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
    assert isinstance(values["lv_table"], HTMLTable) and isinstance(values["lv_heatmaps"], HTMLTable)
    assert isinstance(values["lv_example"], Missing)
    assert values["lv_ex_caption"].startswith("No subject of these runs has a one-level shift")
    # with results, no text value is a placeholder (the browser test's "n/a" check)
    assert not [k for k, v in values.items() if isinstance(v, str) and "n/a" in v]
    plt.close("all")


def test_context_models_trained_in_the_main_group_stay_in_their_chapter(tmp_path):
    """The plateau re-run's layout: the context models are runs of the main group, measured
    by the main group's level tables. The level chapter shows the paper's models only; the
    context chapter finds its runs and level tables in the main group's."""
    runs = make_fake_study(tmp_path / "runs", profile="cpu", seeds=(0,), losses=(),
                           models=("unet", "deeplabv3plus", "miniseg", "unet_25d3", "unet3d"))
    out = tmp_path / "results/cpu"
    aggregate("cpu", runs, out, n_boot=20)
    level_study(runs, out / "levels", "cpu", n_boot=20)
    b = Bundle(out)
    assert set(b.csv("levels/summary.csv")["model"]) >= {"unet_25d3", "unet3d"}  # measured
    levels = build_page("levels", b)
    shown = " ".join(str(v) for v in levels.values())
    assert "U-Net 2.5D" not in shown and "3D U-Net" not in shown
    assert "U-Net" in str(levels["lv_table"])
    assert levels["lv_n_models"] == "3"
    context = build_page("context", b)
    assert str(context["cx_status"]).startswith("The study takes 3 runs of 3 models from the "
                                                "main group (`cpu`)")
    # about.json counts the group's 5 records; the study's are 3 of them
    assert str(context["cx_status"]).endswith("The level tables measure 3 of them on 4 test "
                                              "subjects.")
    table = str(context["cx_levels_table"])
    assert "U-Net 2.5D (3 slices)" in table and "3D U-Net" in table
    plt.close("all")


def test_the_level_chapters_caveats_count_the_papers_models_only():
    from spineseg_core.report.pages.levels import level_caveats, paper_about

    about = {"records": 4, "models": ["unet", "unet3d"],
             "seeds_per_model": {"unet": [0, 1, 2], "unet3d": [0]}}
    assert paper_about(about) == {"records": 3, "models": ["unet"],
                                  "seeds_per_model": {"unet": [0, 1, 2]}}
    assert paper_about({"seeds_per_model": {"unet": [0]}}) == {"seeds_per_model": {"unet": [0]}}
    assert any(c.startswith("3 seeds per model") for c in level_caveats(about))


@pytest.mark.parametrize("chapter", toc_chapters(REPO / "book"))
def test_alt_texts_are_not_path_like(chapter):
    """The browser test's alt-text check (tests/book_checks.py) on the Markdown itself, so it
    runs without chromium, for every chapter of the table of contents: a "/" (an "L5/S" in a
    sentence) reads as a path there."""
    from book_checks import PATH_LIKE

    text = (REPO / "book" / f"{chapter}.md").read_text()
    alts = [line.split(":alt:", 1)[1].strip() for line in text.splitlines()
            if line.startswith(":alt:")]
    assert not [a for a in alts if not a or PATH_LIKE.search(a)], chapter


def test_a_curve_too_short_for_a_gain_shows_a_footnoted_dash(tmp_path):
    """One epoch (a smoke study) has no gain per epoch: the convergence table shows the dash
    with its footnote, not a placeholder."""
    import pandas as pd

    from spineseg_core.report.tables import DASH

    pd.DataFrame([{"model": "unet", "display_name": "U-Net", "epochs": 1, "first_dice": 0.1,
                   "best_dice": 0.1, "best_epoch": 1, "steepest_gain": float("nan"),
                   "last_gain": float("nan"), "past_steep": False}]).to_csv(
        tmp_path / "convergence.csv", index=False)
    table = build_page("convergence", Bundle(tmp_path))["cv_table"]
    assert DASH in table.text and "too short to measure a gain" in table.text
    assert MISSING not in table.text


def test_the_background_check_names_the_runs_that_fail_it(tmp_path):
    """A run passes with >= 98 % background recall and < 1 % of pixels labelled as an absent
    structure; the sentence names the others by model and seed."""
    import pandas as pd

    pd.DataFrame([
        {"model": "unet", "display_name": "U-Net", "seed": 0, "bg_recall": 0.99,
         "absent_fraction": 0.001},
        {"model": "danet", "display_name": "DANet", "seed": 0, "bg_recall": 0.976,
         "absent_fraction": 0.0},
        {"model": "danet", "display_name": "DANet", "seed": 1, "bg_recall": 0.99,
         "absent_fraction": 0.02}]).to_csv(tmp_path / "runs.csv", index=False)
    values = build_page("results", Bundle(tmp_path))
    assert values["t1_sane_text"] == (
        "1 of 3 runs pass it; DANet (seeds 0, 1) do not, and their scores above measure a model "
        "that has not learned to leave background alone.")
    html = values["t1_sanity"].text
    assert html.count(">no<") == 2 and html.count(">yes<") == 1 and "97.60" in html


def test_reproducibility_page_writes_the_separate_studies_in_words(bundle):
    from spineseg_core.report.pages import studies_text

    study = {"context": {"group": "cpu-context", "n_runs": 7, "models": ["unet", "unet3d"],
                         "source_fingerprint": "ab" * 32, "source_fingerprints": {"ab" * 32: 7}}}
    assert studies_text(study) == ("context: group cpu-context, 7 runs of 2 models (unet, "
                                   "unet3d), code abababababab (7 runs)")
    assert studies_text({}) is None
    table = build_page("reproducibility", bundle)["rp_bundle"].text
    assert "context: group cpu-context, 3 runs of 3 models" in table  # the fixture: seed 0
    assert "{'" not in table  # no Python dict on the page


# --- the first screen (spineseg_core.report.headline) ------------------------------------------


def test_paper_audit_finds_table1_above_its_own_table2_means():
    """Each model's Table 1 Dice against the mean of its 19 classes in Table 2, hand-checked for
    U-Net (79.87 against the mean of its row, which the paper prints as 76.59)."""
    from spineseg_core.report.headline import paper_audit
    from spineseg_core.study.paper import table2_per_class_dice

    audit = paper_audit()
    gap = audit.table_gap.set_index("model")
    row = table2_per_class_dice().set_index("model").loc["U-Net"].drop("mDice")
    assert len(row) == 19
    assert gap.loc["U-Net", "table2_mean"] == pytest.approx(row.mean())
    assert gap.loc["U-Net", "table2_mean"] == pytest.approx(76.59, abs=0.02)  # printed mDice
    assert gap.loc["U-Net", "gap"] == pytest.approx(79.87 - row.mean())
    assert len(gap) == 12 and (gap["gap"] > 0).all()
    assert (round(gap["gap"].min(), 1), round(gap["gap"].max(), 1)) == (0.1, 3.3)
    assert (round(audit.fnr_recall_low, 1), round(audit.fnr_recall_high, 1)) == (105.7, 133.2)


def _claim(verdict, diff, lo, hi, label="A - B", bound=0.0, above=True):
    from spineseg_core.report.claims import Claim, Comparison

    return Claim("k", "A beats B", "rule", verdict, diff, lo, hi, 3, 40,
                 ("why",), (Comparison(label, diff, lo, hi),), bound, above)


def test_claims_box_gives_verdict_number_and_what_the_interval_alone_says():
    from spineseg_core.report.claims import Verdict
    from spineseg_core.report.headline import claims_box

    held_open = _claim(Verdict.UNRESOLVED, -0.052, -0.083, -0.019, "U-Net: dice - weighted_ce")
    plain = _claim(Verdict.HOLDS, 0.10, 0.05, 0.15)
    text = claims_box([held_open, plain]).text
    assert "U-Net: Dice loss minus weighted cross-entropy: <b>-5.2</b> Dice points" in text
    assert "95 % CI -8.3 to -1.9" in text
    assert "the interval alone: does not hold" in text  # its interval is wholly below 0
    assert text.count("the interval alone") == 1  # not when it agrees with the verdict
    assert "<b>+10.0</b>" in text and "spineseg-verdict-holds" in text


def test_takeaway_names_the_models_tied_with_the_best():
    import pandas as pd

    from spineseg_core.report.claims import Verdict
    from spineseg_core.report.headline import takeaway, verdict_counts

    models = pd.DataFrame({"display_name": ["U-Net", "PSPNet", "MiniSeg"],
                           "dice_mean": [0.59, 0.55, 0.13], "dice_ci_low": [0.54, 0.50, 0.09],
                           "dice_ci_high": [0.64, 0.58, 0.17]})
    claims = [_claim(Verdict.UNRESOLVED, 0.0, -0.1, 0.1)]
    text = takeaway(models, claims, None)
    assert "U-Net scores highest" in text
    assert "the 95 % interval of PSPNet overlaps its own" in text and "MiniSeg" not in text
    assert "do not pick a model by these Dice scores" in text
    assert verdict_counts(claims) == "none can be confirmed or refuted at this scale"
    two = [_claim(Verdict.HOLDS, 0.1, 0.05, 0.15), _claim(Verdict.UNRESOLVED, 0, -0.1, 0.1)]
    assert verdict_counts(two) == ("1 hold, 0 do not hold and 1 cannot be decided at this "
                                   "scale")


def test_intro_first_screen_reads_the_bundle(bundle):
    """The abstract and the claims box are computed from the bundle: its best model and its
    verdicts, not typed."""
    from spineseg_core.report import claims as cl

    values = build_page("intro", bundle)
    models = bundle.csv("models.csv")
    best = models.loc[models["dice_mean"].idxmax()]
    assert f"({100 * models['dice_mean'].min():.1f}–{100 * best['dice_mean']:.1f} %)" in values[
        "abstract"]
    claims = cl.check_claims(cl.load_results(bundle.folder))
    assert f"of the paper's {len(claims)} claims" in values["abstract"]
    for c in claims:
        assert c.statement in values["claims_box"].text
    assert "Scale: every model here trained" in values["scale_caveat"]
    assert "0.1–3.3 points above the mean of its own Table 2 row" in values["abstract"]


def test_cost_figure_pairs_danet_dice_with_the_cost_of_its_own_stride():
    """DANet's main runs train at output stride 8 (runs.csv records the arguments): its point
    in the accuracy-against-cost figure must count that network, not Table 3's stride 32."""
    import pandas as pd

    from spineseg_core.report.pages.efficiency import main_run_macs

    kw = "model_kwargs={'output_stride': 8} (profile: the model's defaults)"
    runs = pd.DataFrame({"model": ["danet", "danet", "unet"],
                         "display_name": ["DANet", "DANet", "U-Net"],
                         "budget_exceptions": [kw, kw, None]})
    both = pd.DataFrame({"display_name": ["DANet", "U-Net"], "gmacs_880": [143.06, 365.42]})
    paired, recounted = main_run_macs(both, runs)
    danet = float(paired.loc[paired["display_name"] == "DANet", "gmacs_880"].iloc[0])
    assert [r[:2] for r in recounted] == [("DANet", "output stride 8")]
    assert danet == pytest.approx(recounted[0][2]) and danet > 4 * 143.06  # 16x the map area
    assert float(paired.loc[paired["display_name"] == "U-Net", "gmacs_880"].iloc[0]) == 365.42
    assert main_run_macs(both, runs.assign(budget_exceptions=None))[1] == []


def test_every_build_rereads_every_chapter():
    """The book's Sphinx hook: a build re-reads the chapters whose text did not change, so the
    pages never keep numbers from before the results changed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "spineseg_sphinx", REPO / "book/_ext/spineseg_sphinx.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)

    class Env:
        found_docs = {"intro", "results", "claims", "gone"}

    assert ext.every_chapter(None, Env(), {"claims"}, set(), {"gone"}) == ["intro", "results"]


def test_rerun_scripts_pin_the_code_of_the_committed_records():
    """The reproducibility chapter names the commit and fingerprint that made the committed
    records and the script that remakes them; the scripts' pins agree with the bundle."""
    import json

    from spineseg_core.report.pages.reproducibility import RERUN_SCRIPTS, records_text, script_pin

    bundle = json.loads((REPO / "results/cpu/bundle.json").read_text())
    main_pin = script_pin(REPO / RERUN_SCRIPTS["main"])
    assert main_pin is not None
    assert [f[:12] for f in bundle["source_fingerprints"]] == [main_pin[1]]
    assert main_pin[0][:7] in {c[:7] for c in bundle["run_commits"]}
    context_pin = script_pin(REPO / RERUN_SCRIPTS["context"])
    assert [f[:12] for f in bundle["studies"]["context"]["source_fingerprints"]] == [
        context_pin[1]]
    text = records_text(bundle)
    assert f"commit {main_pin[0][:7]} (fingerprint {main_pin[1]})" in text
    assert "NOT" not in text
    other = {**bundle, "source_fingerprints": {"0" * 64: 36}}
    assert f"expects fingerprint {main_pin[1]}, which does NOT match" in records_text(other)


def test_budget_exceptions_read_in_words():
    """Table 1c shows what a run changed in words, not Python dicts."""
    from spineseg_core.report.pages.results import exception_words

    assert exception_words("model_kwargs={'output_stride': 8} (profile: the model's defaults)"
                           ) == "output stride 8 instead of the model's default"
    assert exception_words("amp=False (profile: True); epochs=2 (profile: 6)") == (
        "fp32 instead of bf16 autocast; epochs 2 instead of 6")


def test_results_page_names_the_runs_below_the_no_learning_baseline():
    import pandas as pd

    from spineseg_core.report.pages.results import baseline_values

    base = pd.DataFrame({"atlas": ["Case1", "Case2"], "dice": [0.15, 0.184]})
    runs = pd.DataFrame({"model": ["unet", "miniseg", "miniseg", "pspnet"],
                         "display_name": ["U-Net", "MiniSeg", "MiniSeg", "PSPNet"],
                         "seed": [0, 0, 1, 0], "dice": [0.59, 0.098, 0.174, 0.383]})
    text = baseline_values(base, runs)["t1_baseline"]
    assert "gives 18.4 % Dice for the best of the 2 training and validation subjects" in text
    # 0.383 - 0.184 = 19.9 points: below the 20-point margin
    assert text.endswith("3 of 4 runs do not: MiniSeg (seeds 0, 1: 9.8–17.4 %); PSPNet (seed 0: "
                         "38.3 %). Their scores say little about what the architecture can "
                         "learn.")
    assert baseline_values(base, runs.iloc[:1])["t1_baseline"].endswith("All 1 runs do.")
    assert "not in this bundle" in baseline_values(None, runs)["t1_baseline"]


def test_results_page_explains_the_validation_test_gap():
    import pandas as pd

    from spineseg_core.report.pages.results import validation_gap_text

    val = pd.DataFrame({"class_value": [1, 2, 3], "share": [1.0, 1.0, 0.25], "n_subjects": 4})
    runs = pd.DataFrame({"model": ["unet"], "display_name": ["U-Net"], "val_dice": [0.80],
                         "dice": [0.55]})
    per_class = pd.DataFrame({"model": "unet", "class_value": [1, 2, 3],
                              "dice": [0.7, 0.8, 0.03]})
    text = validation_gap_text(runs, per_class, val)
    # gap 25 points; composition (0.75 - 0.51) = 24 points: "Most"; class 3 is L4 (labels.py)
    assert text.startswith("Every model scores higher on validation than on test: by 25.0 Dice "
                           "points on average. Most of that")
    assert "absent from most of the 4 validation subjects" in text
    assert "score them at 3.0 % Dice" in text and "rises by 24.0 points" in text
    assert "not measured in this bundle" in validation_gap_text(runs, per_class, None)


def test_reproducibility_names_the_plateau_pin_and_its_records(tmp_path):
    """The runs at the plateau budget: the pinned commit, records per group and processor, and
    whether each carries the pinned fingerprint."""
    import json

    from spineseg_core.errors import ConfigError
    from spineseg_core.report.pages.reproducibility import plateau_records_text

    assert "has not started" in plateau_records_text(tmp_path / "plateau")
    (tmp_path / "plateau").mkdir()
    (tmp_path / "plateau/CODE").write_text("ab" * 20 + " " + "cd" * 32 + "\n")
    assert "no run record yet." in plateau_records_text(tmp_path / "plateau")
    (tmp_path / "plateau/CODE").write_text("not a pin\n")
    with pytest.raises(ConfigError, match="CODE: expected '<40-hex commit> <64-hex"):
        plateau_records_text(tmp_path / "plateau")
    (tmp_path / "plateau/CODE").write_text("ab" * 20 + " " + "cd" * 32 + "\n")

    def record(group, model, fingerprint, cpu, finished=True, features=None):
        folder = tmp_path / "plateau/runs" / group / model / "seed_0/fold_0"
        folder.mkdir(parents=True)
        env = {"cpu": cpu, "gpu": None, "source_fingerprint": fingerprint,
               "cpu_features": features}
        (folder / "params.json").write_text(json.dumps({"env": env}))
        if finished:
            (folder / "metrics.json").write_text("{}")

    record("cpu", "unet", "cd" * 32, "Xeon")
    record("cpu-half", "unet", "cd" * 32, "EPYC")
    record("cpu-half", "miniseg", "cd" * 32, "Xeon")
    record("cpu-half", "pspnet", "cd" * 32, "Xeon", features="2 cores, AMX")  # another type
    record("cpu", "miniseg", "cd" * 32, "Xeon", finished=False)  # not a record yet
    record("cpu-hard-fov_cut", "unet", "cd" * 32, "Xeon")  # a score, not a run
    text = plateau_records_text(tmp_path / "plateau")
    assert text.startswith("The runs at the plateau budget (the budget seed, then the re-run) "
                           "are made by commit abababa (fingerprint cdcdcdcdcdcd)")
    assert ("4 run records so far (1 in group cpu and 3 in group cpu-half), made on EPYC (1), "
            "Xeon (2) and Xeon (2 cores, AMX) (1); every one carries that fingerprint.") in text
    assert "Beside them, 1 hard-case score." in text
    record("cpu", "pspnet", "ef" * 32, "Xeon")
    assert "1 of them does NOT carry that fingerprint." in plateau_records_text(tmp_path / "plateau")
    # a model with a pin of its own carries that pin's fingerprint
    (tmp_path / "plateau/CODE.unet3d").write_text("12" * 20 + " " + "ef" * 32 + "\n")
    record("cpu", "unet3d", "ef" * 32, "Xeon")
    old = tmp_path / "plateau/superseded" / ("ab" * 6) / "cpu-half/unet3d/seed_0/fold_0"
    old.mkdir(parents=True)
    (old / "params.json").write_text(json.dumps({"env": {"source_fingerprint": "cd" * 32}}))
    (old / "metrics.json").write_text("{}")
    text = plateau_records_text(tmp_path / "plateau")
    assert "1 of them does NOT carry its pinned fingerprint." in text  # PSPNet's, not unet3d's
    assert ("The 3D U-Net runs from a pin of its own, commit 1212121 (fingerprint efefefefefef, "
            "`results/plateau/CODE.unet3d`), a commit with the mend of a defect the study's pin "
            "has on that model's path alone (`scripts/check_mend.py`); the 1 record it "
            "superseded is kept in `results/plateau/superseded/`.") in text
