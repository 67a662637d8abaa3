"""Aggregation of run folders into results/<profile>/ (fake runs with the contract's files)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from fake_runs import make_fake_study, write_fake_run
from spineseg_core.cli import main
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.aggregate import aggregate, convergence_table, find_runs
from spineseg_core.study.stats import bootstrap_ci, seed_subject_counts, subject_counts

EXPECTED = {"convergence.csv", "runs.csv", "models.csv", "per_class.csv", "history.csv", "per_case.csv.gz",
            "classes.csv", "dataset.json", "figure18.npz", "losses.csv", "groups_per_case.csv.gz",
            "bundle.json"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("agg")
    runs = make_fake_study(root / "runs", profile="test", seeds=(0, 1))
    out = root / "results" / "test"
    bundle = aggregate("test", runs, out, n_boot=200)
    return runs, out, bundle


def test_writes_every_file(study):
    _, out, bundle = study
    assert {p.name for p in out.iterdir()} == EXPECTED
    assert bundle["n_runs"] == 6
    assert bundle["models"] == ["unet", "miniseg", "deeplabv3plus"]  # the study's order
    assert bundle["data_kind"] == "phantom" and bundle["devices"] == ["cpu"]


def test_runs_table_has_every_metrics_field(study):
    runs_dir, out, _ = study
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6
    metrics = json.loads((runs_dir / "test/unet/seed_1/fold_0/metrics.json").read_text())
    row = runs[(runs.model == "unet") & (runs.seed == 1)].iloc[0]
    for key, value in metrics.items():
        assert key in runs.columns
        if isinstance(value, float):
            assert row[key] == pytest.approx(value)
    assert row["display_name"] == "U-Net" and row["family"] == "U-Net family"
    assert row["device"] == "cpu" and row["precision"] == "fp32"  # from params.json
    assert row["processor"] == "test cpu"  # the env stamp's CPU: no GPU recorded


def test_processor_is_the_gpu_where_a_run_used_one_else_the_cpu():
    from spineseg_core.envinfo import processor

    assert processor({"cpu": "AMD EPYC", "gpu": "NVIDIA H200"}) == "NVIDIA H200"
    assert processor({"cpu": "AMD EPYC", "gpu": None}) == "AMD EPYC"
    assert processor({}) is None


def test_models_mean_std_and_ci(study):
    _, out, _ = study
    runs = pd.read_csv(out / "runs.csv")
    models = pd.read_csv(out / "models.csv").set_index("model")
    for model, grp in runs.groupby("model"):
        assert models.loc[model, "dice_mean"] == pytest.approx(grp["dice"].mean())
        assert models.loc[model, "dice_std"] == pytest.approx(grp["dice"].std(ddof=1))
        assert models.loc[model, "n_runs"] == 2 and models.loc[model, "n_seeds"] == 2
        # One fold per seed: the interval's estimate is the mean the book prints with its sd.
        for m in ("dice", "miou", "fnr", "fpr", "recall"):
            lo, point, hi = models.loc[model, [f"{m}_ci_low", f"{m}_point", f"{m}_ci_high"]]
            assert point == pytest.approx(models.loc[model, f"{m}_mean"], abs=1e-12)
            assert 0 <= lo <= point <= hi <= 1
        assert models.loc[model, "dice_ci_low"] < models.loc[model, "dice_ci_high"]


def test_pooled_equals_run_metric_for_a_single_run(tmp_path):
    run = write_fake_run(tmp_path / "runs/p/unet/seed_0/fold_0", "unet", profile="p")
    aggregate("p", tmp_path / "runs", tmp_path / "out", n_boot=50)
    models = pd.read_csv(tmp_path / "out/models.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    for m in ("dice", "miou", "fnr", "fpr", "recall"):
        assert models.loc[0, f"{m}_point"] == pytest.approx(metrics[m], abs=1e-12)
    # One seed: no spread is measured, and the table says so rather than printing 0.
    assert models.loc[0, "n_seeds"] == 1 and math.isnan(models.loc[0, "dice_std"])
    assert not (tmp_path / "out/losses.csv").exists()


def _case_rows(case, tp, fp, fn, tn=100, seed=0, classes=None):
    """One subject's 20 rows; ``classes`` maps class -> (tp, fp, fn), else class 1 gets them."""
    classes = classes or {1: (tp, fp, fn)}
    return [dict(model="m", seed=seed, case_id=case, class_value=v,
                 **dict(zip(("tp", "fp", "fn"), classes.get(v, (0, 0, 0)))), tn=tn)
            for v in range(20)]


def _dice_ab(w):
    """Dice of class 1 when subject a (tp 8, fp 2, fn 2) weighs w and b (2, 4, 4) 1 - w."""
    return (4 + 12 * w) / (12 + 8 * w)


def test_bootstrap_by_hand():
    # Two subjects, one class present: Dice 2*8/(16+2+2)=0.8 and 2*2/(4+4+4)=1/3.
    per_case = pd.DataFrame(_case_rows("a", 8, 2, 2) + _case_rows("b", 2, 4, 4))
    cases, counts = subject_counts(per_case)
    assert cases == ["a", "b"] and counts.shape == (2, 19, 4)
    ci = bootstrap_ci(per_case, n_boot=4000, seed=1)
    point, low, high = ci["dice"]
    assert point == pytest.approx(2 * 10 / (20 + 6 + 6))  # pooled counts, not mean of Dice
    # Bayesian weights (Exp(1) each): a's share w is uniform on [0, 1], pooled Dice is
    # (4 + 12w) / (12 + 8w), increasing, so the 95 % interval is its value at w = .025, .975.
    assert low == pytest.approx(_dice_ab(0.025), abs=0.01)
    assert high == pytest.approx(_dice_ab(0.975), abs=0.01)
    assert bootstrap_ci(per_case, n_boot=4000, seed=1) == ci
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_ci(per_case, n_boot=0)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci(per_case, level=95)


def test_interval_contains_its_estimate_when_rare_classes_drop_out():
    """Eight subjects share class 1 (Dice about .9); each also holds a level of its own that
    the model misses (Dice 0). The estimate is the mean over all nine classes, about .1. A
    multinomial resample leaves some subjects out, hence their levels out of the mean over
    classes: nearly every resample then scored fewer classes and sat above the estimate (the
    bug behind intervals such as 76.88 [76.22-82.12])."""
    rows = []
    for i in range(8):
        rows += _case_rows(f"s{i}", 0, 0, 0, classes={1: (80 + 2 * i, 10, 10), 2 + i: (0, 0, 20)})
    ci = bootstrap_ci(pd.DataFrame(rows), n_boot=2000, seed=0)
    for m, (point, low, high) in ci.items():
        assert low <= point <= high, (m, point, low, high)
    point, low, high = ci["dice"]
    assert point == pytest.approx(2 * 696 / (2 * 696 + 160) / 9)  # tp 696, fp 80, fn 80
    assert high <= 1 / 9  # every replicate averages all nine classes, eight of them at 0
    assert ci["fnr"][1] >= 8 / 9  # likewise: eight classes missed entirely


def test_bootstrap_identical_runs_and_subjects_collapse_to_the_point():
    rows = [r for s in (0, 1, 2) for c in "abc" for r in _case_rows(c, 5, 1, 2, seed=s)]
    point, low, high = bootstrap_ci(pd.DataFrame(rows), n_boot=200)["dice"]
    assert point == pytest.approx(10 / 13) and low == pytest.approx(point)
    assert high == pytest.approx(point)


def test_bootstrap_a_repeated_seed_adds_no_width():
    """Subjects keep one weight across the seeds that evaluated them, so a second, identical
    run gives exactly the one-seed (subject-only) interval."""
    one = _case_rows("a", 8, 2, 2) + _case_rows("b", 2, 4, 4)
    two = one + [dict(r, seed=1) for r in one]
    single, double = bootstrap_ci(pd.DataFrame(one)), bootstrap_ci(pd.DataFrame(two))
    for m in single:
        assert double[m] == pytest.approx(single[m], rel=1e-12, nan_ok=True)


def test_bootstrap_seed_level_by_hand():
    """Within each seed its two subjects are identical, so only the seeds move the interval:
    the t interval over two seeds, point +- t(0.975, 1 df) * (.8 - 1/3) / 2, clipped to
    [0, 1]; three seeds .8, .75, .78 give t(0.975, 2 df) * sd / sqrt(3)."""
    rows = (_case_rows("a", 8, 2, 2, seed=0) + _case_rows("b", 8, 2, 2, seed=0)
            + _case_rows("a", 2, 4, 4, seed=1) + _case_rows("b", 2, 4, 4, seed=1))
    seeds, cases, counts = seed_subject_counts(pd.DataFrame(rows))
    assert seeds == [0, 1] and cases == ["a", "b"] and counts.shape == (2, 2, 19, 4)
    point, low, high = bootstrap_ci(pd.DataFrame(rows), n_boot=4000, seed=3)["dice"]
    assert point == pytest.approx((0.8 + 1 / 3) / 2)
    assert (low, high) == (0.0, 1.0)  # 0.567 +- 2.96
    rows3 = [r for seed, k in enumerate(((8, 2, 2), (6, 2, 2), (7, 2, 2))) for c in "ab"
             for r in _case_rows(c, *k, seed=seed)]
    point, low, high = bootstrap_ci(pd.DataFrame(rows3), n_boot=400, seed=3)["dice"]
    values = np.array([0.8, 12 / 16, 14 / 18])
    half = 4.3027 * values.std(ddof=1) / np.sqrt(3)
    assert point == pytest.approx(values.mean())
    assert (low, high) == pytest.approx((point - half, point + half), abs=1e-4)


def test_bootstrap_subjects_of_different_folds_pool_within_their_seed():
    """Under cross-validation each fold run of a seed scores other subjects; the seed's
    estimate pools them all (one seed, so it is the pooled Dice of a and b)."""
    rows = [dict(r, fold=0) for r in _case_rows("a", 8, 2, 2)]
    rows += [dict(r, fold=1) for r in _case_rows("b", 2, 4, 4)]
    seeds, cases, counts = seed_subject_counts(pd.DataFrame(rows))
    assert seeds == [0] and cases == ["a", "b"]
    assert bootstrap_ci(pd.DataFrame(rows))["dice"][0] == pytest.approx(20 / 32)


def test_per_class_and_history(study):
    _, out, _ = study
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 3 * 20
    assert {"dice", "iou", "fnr", "fpr", "recall", "n_runs_scored"} <= set(per_class.columns)
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 6 * 3 and {"model", "seed", "fold", "epoch", "dice"} <= set(history)
    classes = pd.read_csv(out / "classes.csv")
    assert classes["pixel_fraction"].sum() == pytest.approx(1.0)
    assert classes.loc[0, "class_name"] == "background"


def test_figure18_same_slices_for_every_model(study):
    _, out, _ = study
    with np.load(out / "figure18.npz") as z:
        assert list(z["kind"]) == ["best", "median", "worst"]
        assert z["pred"].shape == (3,) + z["mask"].shape
        mean = z["dice"].mean(axis=0)
        assert mean[0] >= mean[1] >= mean[2]
        assert np.allclose(mean, z["mean_dice"])
        assert len(set(zip(z["case_id"], z["slice_index"]))) == 3
    # Ranked by hand over every slice: the mean of the models' seed-0 per-slice Dice.
    runs, _, _ = study
    per_model = []
    for model in ("unet", "miniseg", "deeplabv3plus"):
        with np.load(runs / "test" / model / "seed_0/fold_0/predictions.npz") as p:
            per_model.append(p["dice"])
    mean_all = np.sort(np.nanmean(np.stack(per_model), axis=0))[::-1]
    with np.load(out / "figure18.npz") as z:
        assert np.allclose(z["mean_dice"], [mean_all[0], mean_all[(len(mean_all) - 1) // 2],
                                            mean_all[-1]])


def test_losses_table(study):
    _, out, _ = study
    losses = pd.read_csv(out / "losses.csv")
    assert set(losses["group"]) == {"test", "test-loss-ce"}
    assert set(losses["loss"]) == {"dice", "ce"}


def test_bundle_hashes_every_file(study):
    _, out, bundle = study
    assert set(bundle["files"]) == EXPECTED - {"bundle.json"}
    assert bundle["precisions"] == ["fp32"] and bundle["devices"] == ["cpu"]
    for name, digest in bundle["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_per_subject_tables_are_gzip_and_remade_byte_for_byte(study, tmp_path):
    """The large per-subject tables are gzip-compressed CSV, with no file name or time in the
    header, so a second aggregation of the same runs gives the same bytes (and SHA-256)."""
    runs, out, bundle = study
    for name in ("per_case.csv.gz", "groups_per_case.csv.gz"):
        raw = (out / name).read_bytes()
        assert raw[:2] == b"\x1f\x8b" and raw[3] == 0 and raw[4:8] == b"\0\0\0\0", name
        table = pd.read_csv(out / name)                      # pandas reads it by its name
        assert {"model", "seed", "case_id", "tp"} <= set(table.columns) and len(table)
    assert not (out / "per_case.csv").exists() and (out / "runs.csv").read_bytes()[:5] == b"model"
    again = aggregate("test", runs, tmp_path / "again", n_boot=200)
    assert again["files"]["per_case.csv.gz"] == bundle["files"]["per_case.csv.gz"]
    assert again["files"]["groups_per_case.csv.gz"] == bundle["files"]["groups_per_case.csv.gz"]


def test_missing_runs_and_bad_files(tmp_path):
    with pytest.raises(DataError, match="no finished run"):
        aggregate("cpu", tmp_path, tmp_path / "out")
    run = write_fake_run(tmp_path / "cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    pd.read_csv(run / "per_case.csv").drop(columns="tp").to_csv(run / "per_case.csv", index=False)
    with pytest.raises(DataError, match=r"per_case.csv: missing columns \['tp'\]"):
        aggregate("cpu", tmp_path, tmp_path / "out")
    assert find_runs(tmp_path / "cpu") == [run]


def test_cli_aggregate(tmp_path, capsys):
    write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    assert main(["aggregate", "--runs-dir", str(tmp_path / "runs"), "--out",
                 str(tmp_path / "res"), "--n-boot", "20"]) == 0
    assert "1 runs of 1 models" in capsys.readouterr().out
    assert (tmp_path / "res/bundle.json").is_file()
    assert main(["aggregate", "--profile", "gpu", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_convergence_table_by_hand():
    """Two runs averaged per epoch; gains over two epochs; the rule at its boundary."""
    rows = []
    # model a: mean curve .1 .3 .5 .6 .65 -> gains (e3) .2, (e4) .15, (e5) .075: .075 <= .2/3
    # is false (.0667), so a is still steep. model b: .2 .6 .7 .72 -> gains .25, .06: past.
    for seed, off in ((0, -0.05), (1, 0.05)):
        for e, d in enumerate((0.1, 0.3, 0.5, 0.6, 0.65), 1):
            rows.append(dict(model="a", display_name="A", seed=seed, epoch=e, dice=d + off))
    for e, d in enumerate((0.2, 0.6, 0.7, 0.72), 1):
        rows.append(dict(model="b", display_name="B", seed=0, epoch=e, dice=d))
    rows.append(dict(model="c", display_name="C", seed=0, epoch=1, dice=0.5))
    rows.append(dict(model="c", display_name="C", seed=0, epoch=2, dice=float("nan")))
    table = convergence_table(pd.DataFrame(rows)).set_index("model")
    a, b, c = table.loc["a"], table.loc["b"], table.loc["c"]
    assert a.steepest_gain == pytest.approx(0.2) and a.steepest_epoch == 3
    assert a.last_gain == pytest.approx(0.075) and not a.past_steep
    assert a.first_dice == pytest.approx(0.1) and a.best_epoch == 5 and a.epochs == 5
    assert b.steepest_gain == pytest.approx(0.25) and b.last_gain == pytest.approx(0.06)
    assert b.past_steep and b.best_dice == pytest.approx(0.72)
    assert math.isnan(c.last_gain) and not c.past_steep and c.epochs == 1  # too short
    assert convergence_table(pd.DataFrame(rows), window=1).loc[1, "past_steep"]  # b, 1 epoch
    with pytest.raises(ConfigError, match="window"):
        convergence_table(pd.DataFrame(rows), window=0)


def test_book_prints_mean_sd_or_n_1():
    """The book's Table 1 cell: ``mean ± sd`` over seeds, and ``n = 1`` (never ``± 0.00``)
    for one seed or an older bundle whose std column held 0 for one run; a dash when missing."""
    from spineseg_core.report.overall import interval_text, mean_sd_text
    from spineseg_core.report.tables import DASH

    assert mean_sd_text(0.76876, 0.0052, 3) == "76.88 ± 0.52"
    assert mean_sd_text(0.76876, float("nan"), 1) == "76.88 (n = 1)"
    assert mean_sd_text(0.76876, 0.0, 1) == "76.88 (n = 1)"
    assert mean_sd_text(float("nan"), 0.1, 2) == DASH
    assert interval_text(0.5693, 0.6477) == "56.93–64.77"
    assert interval_text(None, 0.6477) == DASH


def test_figure18_picks_among_slices_that_show_the_spine(tmp_path):
    """A lateral slice that grazes the sacrum (a few pixels, Dice 0 for every model) is not
    the worst slice: the worst is the weakest of the slices with at least half the foreground
    of their case's fullest slice."""
    from spineseg_core.study.aggregate import figure18, shows_spine

    full = np.zeros((8, 8), np.uint8)
    full[1:7, 2:6] = 3  # 24 pixels
    half = np.zeros((8, 8), np.uint8)
    half[1:7, 3:5] = 3  # 12 pixels: exactly half, shows the spine
    edge = np.zeros((8, 8), np.uint8)
    edge[6, 3] = 1  # 1 pixel of sacrum
    other = np.zeros((8, 8), np.uint8)
    other[0:2, 0:3] = 2  # case B's only slice: its own fullest
    keys = [("A", 0), ("A", 1), ("A", 2), ("B", 0), ("B", 1)]
    masks = [full, half, edge, other, np.zeros((8, 8), np.uint8)]
    assert shows_spine(keys, masks) == [True, True, False, True, False]
    assert shows_spine(keys, masks, share=0.6) == [True, False, False, True, False]

    dice = {"unet": [0.9, 0.5, 0.0, 0.7, np.nan], "miniseg": [0.8, 0.3, 0.0, 0.6, np.nan]}
    runs = {}
    for model, scores in dice.items():
        folder = tmp_path / model
        folder.mkdir()
        np.savez(folder / "predictions.npz", case_id=np.array([k[0] for k in keys]),
                 slice_index=np.array([k[1] for k in keys]), image=np.zeros((5, 8, 8)),
                 mask=np.stack(masks), pred=np.stack(masks), dice=np.array(scores))
        runs[model] = [folder]
    fig = figure18(runs)
    assert list(zip(fig["case_id"], fig["slice_index"])) == [("A", 0), ("B", 0), ("A", 1)]
    assert np.allclose(fig["mean_dice"], [0.85, 0.65, 0.4])
