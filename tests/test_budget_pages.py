"""The book's parts of issue 24: the convergence chapter's budget seed (results/plateau/) and
the efficiency chapter's part-8 measurements, on hand-made bundles whose numbers can be
computed by hand; with and without their files."""

from __future__ import annotations

import html
import json
import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from book_checks import stale_problems
from fake_bench import write_fake_bench_monai, write_fake_step_changes, write_fake_step_settings
from fake_plateau import SEED_MODELS, write_plateau_bundle
from spineseg_core.report.bundle import Bundle
from spineseg_core.report.pages import MarkdownText, build_page, glue_names
from spineseg_core.report.pages.convergence import NO_SEED, paper_families
from spineseg_core.report.pages.efficiency import step_changes, step_rates
from spineseg_core.report.tables import HTMLTable

SEED_KEYS = {"cv_seed_curves", "cv_seed_plateau", "cv_seed_steps", "cv_seed_ranks",
             "cv_seed_rank_plot"}


def _epoch_runs(folder, reverse: bool = True):
    """A main bundle's runs.csv of 6-epoch runs (98 steps an epoch, 8 validation subjects,
    another code version): seed 0 of the twelve, ranked the reverse of the budget seed's B."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"model": m, "seed": s, "val_dice": (1 - at_b if reverse else at_b) + 0.01 * s,
             "epochs_completed": 6, "steps_per_epoch": 98, "n_val_cases": 8,
             "source_fingerprint": "f0" * 32}
            for m, (_, at_b, _) in SEED_MODELS.items() for s in (0, 1)]
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return Bundle(folder, folder.parent)


@pytest.fixture
def seeded(tmp_path):
    write_plateau_bundle(tmp_path / "results/plateau")
    return _epoch_runs(tmp_path / "results/cpu")


def _prose(text: str) -> str:
    """A block's text without its exhibits' directives (what a reader reads of it)."""
    import re

    return re.sub(r"```.*?```", "", text, flags=re.S)


def _cells(table: HTMLTable, first: str) -> list[str]:
    """The cells' text of the row of ``table`` whose first cell is ``first``."""
    import re

    for row in table.text.split("<tr")[1:]:
        cells = [" ".join(re.sub(r"<[^>]+>", " ", c.split(">", 1)[1].split("</td>")[0]).split())
                 for c in row.split("<td")[1:]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r}")


def test_convergence_chapter_shows_the_budget_seed(seeded):
    values = build_page("convergence", seeded)
    text = values["cv_seed"]
    assert isinstance(text, MarkdownText)
    # every exhibit the block pastes is given, numbered, and nothing else of the seed
    assert glue_names(text) == SEED_KEYS <= set(values)
    for name in ("fig-steps", "tbl-plateau", "tbl-converge-steps", "tbl-rank-budget",
                 "fig-rank-budget"):
        assert f":name: {name}" in text
    assert not stale_problems(_prose(text))
    # 2. the plateau rule: MiniSeg (+31.9) and TransUNet (+1.5) gained more than a point
    assert ("10 of the paper's 12 models plateaued; the budget B stands when at least 10 of "
            "the 12 do, so the budget stands.") in text
    plateau = values["cv_seed_plateau"]
    assert _cells(plateau, "MiniSeg")[:4] == ["MiniSeg", "not plateaued", "37.5", "69.4"]
    assert _cells(plateau, "MiniSeg")[4] == "+31.9"
    assert _cells(plateau, "PSPNet")[1:5] == ["plateaued", "60.0", "59.8", "-0.2"]
    assert plateau.text.index("MiniSeg") < plateau.text.index("TransUNet") < plateau.text.index(
        "PSPNet")  # sorted by gain
    # 3. the fifth claim, caveats first; U-Net's curve 80.5 (1 - exp(-s/300)) validated every
    # 98 steps first reaches 95 % of its best (at 2940) at 980 steps
    best = 1 - math.exp(-2940 / 300)
    first = next(s for s in range(98, 2941, 98) if 1 - math.exp(-s / 300) >= 0.95 * best)
    assert first == 980
    assert _cells(values["cv_seed_steps"], "U-Net")[:3] == ["U-Net", "U-Net family", "980"]
    assert text.index("Read first: one seed per model") < text.index(
        "Verdict here: **not resolved at this scale**")
    assert "one-sided p = " in text and "792 splits" in text  # C(12, 5)
    # 4. rank against budget: the 6-epoch ranking is B's reversed
    ranks = values["cv_seed_ranks"]
    assert _cells(ranks, "the 6-epoch runs") == ["the 6-epoch runs", "588", "12", "-1.00", "-1.00"]
    assert _cells(ranks, "B")[:3] == ["B", "2,940", "12"] and _cells(ranks, "B")[3] == "1.00"
    assert _cells(ranks, "B/2")[1] == "1,470"
    assert ("The 6-epoch runs were validated on 8 subjects (the budget seed on 16) and were "
            "made by another version of the code") in text
    plt.close("all")


def test_without_the_budget_seed_one_sentence_and_no_exhibit(tmp_path):
    for bundle in (_epoch_runs(tmp_path / "results/cpu"), Bundle(None)):
        values = build_page("convergence", bundle)
        assert values["cv_seed"] == NO_SEED and not SEED_KEYS & set(values)
    assert NO_SEED.count(".") == 1 and not stale_problems(NO_SEED)
    # a budget seed with no run yet is the same
    (tmp_path / "results/plateau").mkdir()
    pd.DataFrame(columns=["model", "seed", "val_dice"]).to_csv(
        tmp_path / "results/plateau/runs.csv", index=False)
    assert build_page("convergence", Bundle(tmp_path / "results/cpu"))["cv_seed"] == NO_SEED
    plt.close("all")


def test_runs_at_b_without_their_halves_are_not_labelled(tmp_path):
    write_plateau_bundle(tmp_path / "results/plateau", {"unet": (0.8, 0.8, 300.0)})
    (tmp_path / "results/plateau/plateau.csv").unlink()
    values = build_page("convergence", Bundle(tmp_path / "results/cpu"))
    text = values["cv_seed"]
    assert "No run at B/2 is among these results" in text and "tbl-plateau" not in text
    assert "tbl-rank-budget" not in text and "cv_seed_ranks" not in values
    assert "no plateau labels" in text and "not resolved at this scale" in text
    assert glue_names(text) <= set(values)
    # curves without their steps (runs under an epoch budget): the figure names what it lacks
    history = pd.read_csv(tmp_path / "results/plateau/history.csv").drop(columns="step")
    history.to_csv(tmp_path / "results/plateau/history.csv", index=False)
    values = build_page("convergence", Bundle(tmp_path / "results/cpu"))
    assert "optimiser step" in values["cv_seed_curves"].what
    assert "no run at the budget records the optimiser step" in values["cv_seed"]
    assert "tbl-converge-steps" not in values["cv_seed"] and "cv_seed_steps" not in values
    plt.close("all")


def test_figure19_names_each_line_in_words():
    from spineseg_core.report.figures import dice_against_steps

    history = pd.DataFrame({"model": ["unet"] * 3 + ["pspnet"] * 3, "seed": 0,
                            "step": [10, 20, 30] * 2, "dice": [0.2, 0.5, 0.6, 0.3, 0.4, 0.4]})
    fig = dice_against_steps(history, {"unet": "U-Net family", "pspnet": "backbone models"},
                             {"unet": "U-Net", "pspnet": "PSPNet"}, half=15,
                             reached={"unet": 30.0, "pspnet": 20.0})
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} >= {"U-Net", "PSPNet"}
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "U-Net family", "backbone models", "first reaches 95 % of its best"]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
    assert [list(line.get_ydata()) for line in lines] == [[20.0, 50.0, 60.0], [30.0, 40.0, 40.0]]
    plt.close(fig)


# --- the efficiency chapter ----------------------------------------------------------------


def test_step_rates_by_hand(tmp_path):
    sweep = pd.read_csv(write_fake_step_settings(tmp_path / "step_settings.csv"))
    rates = step_rates(sweep).set_index("model")
    # U-Net: 9e10 FLOPs in 0.2 s = 450 GFLOP/s, 0.3 of the 1500 bf16 GEMM; needs 0.5 / 0.3
    assert rates.loc["unet", "achieved"] == pytest.approx(450.0)
    assert rates.loc["unet", "ratio"] == pytest.approx(0.3)
    assert rates.loc["unet", "to_aim"] == pytest.approx(5 / 3)
    assert rates.loc["unet", "faster"] == 0 and rates.loc["unet", "setting"] == "bf16, channels-last"
    # MiniSeg (fp32): 75 GFLOP/s = 0.3 of the 250 fp32 GEMM; channels-first 1.0 s vs 1.2 s
    assert rates.loc["miniseg", "ratio"] == pytest.approx(0.3)
    assert rates.loc["miniseg", "fastest"] == "fp32, channels-first"
    assert rates.loc["miniseg", "faster"] == pytest.approx(0.2)
    # an older sweep, without the fill_memory column, reads the same
    assert step_rates(sweep.drop(columns="fill_memory")).equals(step_rates(sweep))


def test_step_changes_by_hand(tmp_path):
    changes = step_changes(pd.read_csv(write_fake_step_changes(tmp_path / "c.csv")))
    got = changes.set_index("model")
    assert got.loc["unet", "faster"] == pytest.approx(0.25)
    assert got.loc["miniseg", "before_s"] == 1.5 and got.loc["miniseg", "after_s"] == 1.2


def test_efficiency_chapter_blocks_with_and_without_their_files(tmp_path):
    results = tmp_path / "results"
    bare = build_page("efficiency", Bundle(results / "cpu", results))
    assert [bare[k] for k in ("ef_steps", "ef_changes", "ef_monai")] == ["", "", ""]
    assert not [k for k in bare if k.endswith("_table") and k.startswith(("ef_steps",
                                                                          "ef_changes",
                                                                          "ef_monai"))]
    write_fake_step_settings(results / "cpu/step_settings.csv")
    write_fake_step_changes(results / "cpu/step_changes.csv")
    write_fake_bench_monai(results / "cpu/bench_monai.csv")
    values = build_page("efficiency", Bundle(results / "cpu", results))
    for key, name in (("ef_steps", "tbl-step-gemm"), ("ef_changes", "tbl-step-changes"),
                      ("ef_monai", "tbl-monai")):
        assert isinstance(values[key], MarkdownText) and f":name: {name}" in values[key]
        assert glue_names(values[key]) == {f"{key}_table"}
        assert isinstance(values[f"{key}_table"], HTMLTable)
        assert not stale_problems(_prose(values[key]))
    assert "1,500 GFLOP/s in bf16 and 250 in fp32" in values["ef_steps"]
    assert "0 of the 2 models reach it" in values["ef_steps"]
    assert "fastest for 1 of them" in values["ef_steps"]
    assert _cells(values["ef_steps_table"], "MiniSeg")[1:6] == [
        "fp32, channels-last", "75", "30.0", "1.7×", "fp32, channels-first 20.0 % faster"]
    assert ("the step is 25.0 % faster for the median model (from 25.0 % faster to 25.0 % "
            "faster)") in values["ef_changes"]
    assert "(1,500 GFLOP/s in bf16, 250 in fp32), not the sweep's" in html.unescape(
        values["ef_changes_table"].text)
    assert "The fastest setting of MiniSeg" not in values["ef_steps_table"].text
    # MONAI: six columns in words, each cell ours over MONAI's, the metric row a sentence
    monai = values["ef_monai_table"].text
    head = monai.split("</thead>")[0]
    headers = [h.split(">", 1)[1].split("</th>")[0] for h in head.split("<th ")[1:]]
    assert len(headers) == 6 and not [h for h in headers if "_" in h]
    assert _cells(values["ef_monai_table"], "U-Net MONAI UNet")[1:] == [
        "13.4 14.1", "7.7 3.7", "2.7 4.0", "125.7 89.9", "1.40"]
    assert ("agrees with MONAI's DiceMetric to within 2.8 × 10⁻⁸ on the 18 classes both score, "
            "and takes 0.03 s against MONAI's 3.33 s.") in values["ef_monai"]
    plt.close("all")


def test_a_seed_under_way_leaves_the_budget_undecided(tmp_path):
    """Two models of the twelve labelled (the seed runs cheapest first): the page counts what
    is measured and neither keeps nor raises B yet."""
    write_plateau_bundle(tmp_path / "results/plateau",
                         {m: SEED_MODELS[m] for m in ("miniseg", "unet")})
    text = build_page("convergence", _epoch_runs(tmp_path / "results/cpu"))["cv_seed"]
    assert ("1 of the 2 of the paper's models measured plateaued (10 not measured); the budget "
            "B stands when at least 10 of the 12 do, so the budget is not decided until the "
            "models not yet measured are.") in text
    plt.close("all")


def test_a_raised_budget_is_said_with_its_reason(tmp_path):
    """budget.json beside the seed's bundle (study.budget_raise): the chapter says from what,
    to what and why, after the verdict."""
    from spineseg_core.report.pages.convergence import raise_sentence

    raise_text = ("The budget was raised once, from 2,940 to 5,880 steps (2026-12-06), "
                  "because 3 of 12 did not plateau: the runs at 2,940 steps became the runs "
                  "at B/2, and those at 1,470 are kept as the group at B/4.")
    # aggregated before the raise: its labels are the old budget's, and none is shown
    write_plateau_bundle(tmp_path / "results/plateau",
                         {m: SEED_MODELS[m] for m in ("miniseg", "unet")})
    (tmp_path / "results/plateau/budget.json").write_text(json.dumps(
        {"steps": 5880, "raised_from": 2940, "reason": "3 of 12 did not plateau.",
         "date": "2026-12-06"}))
    text = build_page("convergence", _epoch_runs(tmp_path / "results/cpu"))["cv_seed"]
    assert "No model has been labelled at the raised budget yet. " + raise_text in text
    assert "tbl-plateau" not in text
    # the labels at the raised budget: final, whatever they say
    write_plateau_bundle(tmp_path / "results/plateau",
                         {m: SEED_MODELS[m] for m in ("miniseg", "unet")}, steps=5880)
    text = build_page("convergence", _epoch_runs(tmp_path / "results/cpu"))["cv_seed"]
    assert ("the budget B stands when at least 10 of the 12 do, and the raised budget is final "
            "whatever the labels still to come say. " + raise_text) in text
    assert raise_sentence(None) == ""
    # three of four not plateaued at the raised budget: it cannot stand, and stays final
    write_plateau_bundle(tmp_path / "results/plateau", {
        "unet": (0.90, 0.89, 300.0), "miniseg": (0.59, 0.71, 1400.0),
        "pspnet": (0.80, 0.83, 200.0), "denseaspp": (0.68, 0.74, 220.0)}, steps=5880)
    text = build_page("convergence", _epoch_runs(tmp_path / "results/cpu"))["cv_seed"]
    assert ("1 of the 4 of the paper's models measured plateaued (8 not measured); the budget "
            "B stands when at least 10 of the 12 do, and at most 9 can now (the 1 plateaued and "
            "the 8 still to measure), so the raised budget does not stand either; the budget is "
            "raised only once, so it is final") in text
    assert "Why MiniSeg, DenseASPP and PSPNet have not plateaued" in text
    # every model measured, 3 of 12 plateaued (the seed at 5880): nothing is left to measure
    twelve = {m: (0.80, 0.80, 300.0) for m in list(paper_families())[:3]}
    twelve |= {m: (0.70, 0.75, 300.0) for m in list(paper_families())[3:]}
    write_plateau_bundle(tmp_path / "results/plateau", twelve, steps=5880)
    text = build_page("convergence", _epoch_runs(tmp_path / "results/cpu"))["cv_seed"]
    assert ("3 of the paper's 12 models plateaued; the budget B stands when at least 10 of the "
            "12 do, with every model measured, so the raised budget does not stand either"
            ) in text
    plt.close("all")


def test_the_quarter_budget_of_a_raised_b_joins_the_ranking(seeded, tmp_path):
    """A doubled budget keeps the old B/2 runs as B/4 (plateau.csv's quarter columns): the
    ranking against the budget gains a row for them, at their steps."""
    path = tmp_path / "results/plateau/plateau.csv"
    table = pd.read_csv(path)
    table["quarter_steps"] = table["half_steps"] // 2
    table["quarter_val_dice"] = -table["val_dice"]  # the reverse of B's ranking
    table.to_csv(path, index=False)
    table.drop(columns=["quarter_steps", "quarter_val_dice"]).assign(
        steps=table["half_steps"], half_steps=table["half_steps"] // 2).to_csv(
        tmp_path / "results/plateau/plateau_first.csv", index=False)
    values = build_page("convergence", seeded)
    # the first budget's labels, the evidence of the raise, as a second table
    assert glue_names(values["cv_seed"]) == SEED_KEYS | {"cv_seed_first"}
    assert "**The labels at the first budget, 1,470 steps, which raised it.**" in values["cv_seed"]
    assert "U-Net" in str(values["cv_seed_first"])
    # a model labelled at the first budget only is named as the others are
    from spineseg_core.report.pages.convergence import plateau_exhibit

    first = pd.read_csv(tmp_path / "results/plateau/plateau_first.csv")
    shown = str(plateau_exhibit(first[first["model"] == "pspnet"], {"miniseg": "MiniSeg"}))
    assert "PSPNet" in shown and "pspnet" not in shown
    row = _cells(values["cv_seed_ranks"], "B/4")
    assert row[1] == "735" and row[3] == "-1.00"  # 2940 // 4 steps; Spearman's rho
    assert _cells(values["cv_seed_ranks"], "B")[3] == "1.00"
    plt.close("all")


def test_a_gain_just_over_the_tolerance_is_shown_apart_from_it():
    # DANet's seed: +1.02 points against a tolerance of 1.0 is "not plateaued"; the table's
    # gain shows the second decimal so it does not read +1.0 beside that label
    from spineseg_core.report.pages.convergence import plateau_exhibit
    from spineseg_core.study.plateau import plateau_table

    def runs(rows):
        return pd.DataFrame(rows, columns=["model", "seed", "val_dice", "steps_completed"])

    table = plateau_table(runs([("danet", 0, 0.74613, 5880), ("unet", 0, 0.8866, 5880)]),
                          runs([("danet", 0, 0.73589, 2940), ("unet", 0, 0.9014, 2940)]))
    shown = plateau_exhibit(table, {"danet": "DANet", "unet": "U-Net"})
    assert _cells(shown, "DANet")[1:5] == ["not plateaued", "73.6", "74.6", "+1.02"]
    assert _cells(shown, "U-Net")[4] == "-1.5"
