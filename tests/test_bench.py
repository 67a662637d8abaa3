"""``spineseg bench``: the table's shape and internal consistency, FLOP counting, the MONAI
side by side. Fast: one tiny model at 32 px, one step. No timing is asserted, only that the
figures are positive and consistent with each other."""

from __future__ import annotations

import math
import os

import pandas as pd
import pytest
import torch

from spineseg_core import cli
from spineseg_core.errors import ConfigError
from spineseg_core.measure import speed, timing
from spineseg_core.measure.speed import BENCH_COLUMNS, DATA_COLUMNS, BenchSettings, bench_table
from spineseg_core.measure.timing import bench_loss, matmul_peak_flops, train_step_flops
from spineseg_core.models import build_model
from spineseg_core.training.precision import Precision

TINY = dict(size=32, batch=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache folder (phantom + volumes) for the module."""
    old = os.environ.get("SPINESEG_CACHE")
    os.environ["SPINESEG_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SPINESEG_CACHE", None)
    else:
        os.environ["SPINESEG_CACHE"] = old


@pytest.fixture(scope="module")
def cli_table(cache, tmp_path_factory) -> pd.DataFrame:
    """``spineseg bench`` for MiniSeg on the smoke phantom at 32 px, one step; the CSV read back."""
    out = tmp_path_factory.mktemp("results") / "bench.csv"
    rc = cli.main(["bench", "--profile", "smoke", "--models", "miniseg", "--size", "32",
                   "--batch", "2", "--steps", "1", "--warmup", "1", "--device", "cpu",
                   "--out", str(out)])
    assert rc == 0
    assert out.is_file()
    return pd.read_csv(out)


def test_cli_writes_every_column(cli_table):
    assert list(cli_table.columns) == list(BENCH_COLUMNS)
    (row,) = cli_table.to_dict("records")
    assert row["model"] == "miniseg" and row["display_name"] == "MiniSeg"
    assert row["device"] == "cpu" and row["size"] == 32 and row["batch"] == 2
    assert row["data_path"] == "slice" and row["num_workers"] == 0
    assert row["threads"] == torch.get_num_threads() and row["torch"] == torch.__version__
    for col in ("train_img_s", "infer_img_s", "step_flops", "achieved_gflop_s",
                "peak_gflop_s", "peak_ratio", "data_slices_s", "epoch_img_s", "data_ratio",
                "peak_mem_mb"):
        assert math.isfinite(row[col]) and row[col] > 0, col
    assert row["mem_method"].startswith("estimate")
    assert row["precision"] == "fp32"  # MiniSeg's budget exception, as it trains


def test_each_model_is_benched_in_its_profile_precision(cache, monkeypatch):
    """A model trained in fp32 (MiniSeg, by its budget exception) and one in bf16 on an AMX CPU: the
    bench times each the same way and divides by the theoretical peak of that precision; the
    matmul for scale is measured once per precision."""
    asked = []

    def fake_gemm(device, n=None, repeats=3, precision=None):
        asked.append(precision)
        return {Precision.FP32: 1e10, Precision.BF16: 1e11}[precision]

    monkeypatch.setattr(speed, "matmul_peak_flops", fake_gemm)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    # MiniSeg's fp32 comes from its budget exception (training.budgets), as in training.
    monkeypatch.setattr(timing, "_cpu_clock_hz", lambda: 2e9)
    table = bench_table("cpu", ["miniseg", "miniseg", "unet"], device="cpu", with_data=False,
                        threads=2, settings=BenchSettings(steps=1, warmup=0), **TINY)
    assert table["precision"].tolist() == ["fp32", "fp32", "bf16-autocast"]
    assert asked == [Precision.FP32, Precision.BF16]
    assert table["gemm_gflop_s"].tolist() == [10.0, 10.0, 100.0]
    # 2 threads x 2 GHz x (SSE fp32: 2 FMA units x 4 lanes x 2 | AMX: 1024) FLOP per cycle
    assert table["peak_gflop_s"].tolist() == [64.0, 64.0, 4096.0]
    assert table["peak_basis"].iloc[2] == "2 threads x 1024 bf16-autocast FLOP/cycle x 2.00 GHz"


def test_each_model_is_fed_at_its_own_batch(cache, monkeypatch):
    """A model whose profile batch differs gets a data path at that batch, not the first's."""
    from spineseg_core.training import config as profiles

    real = speed.resolve_config

    def miniseg_at_two(profile, **kw):  # a user's batch override for one model
        if kw.get("model") == "miniseg" and kw.get("batch_size") is None:
            kw["batch_size"] = 2
        return real(profile, **kw)

    monkeypatch.setattr(speed, "resolve_config", miniseg_at_two)
    settings = BenchSettings(steps=1, warmup=0, peak_size=256)
    table = bench_table("smoke", ["miniseg", "unet"], device="cpu", size=32, settings=settings)
    assert table["batch"].tolist() == [2, 4]
    assert table["data_ratio"].notna().all() and (table["epoch_img_s"] > 0).all()
    cpu = torch.device("cpu")
    pipe = speed.build_data_pipe(profiles.resolve_config("smoke", image_size=32), cpu)
    cfg = profiles.resolve_config("smoke", model="miniseg", image_size=32, batch_size=2)
    with pytest.raises(ConfigError, match="batches of 4, the model is timed at 2"):
        speed.bench_model("miniseg", cfg, cpu, settings, 1e12, pipe, 1.0)


def test_matmul_peak_in_each_precision():
    for precision in Precision:
        assert matmul_peak_flops("cpu", n=256, repeats=1, precision=precision) > 0


def test_figures_are_consistent(cli_table):
    row = cli_table.iloc[0]
    step_seconds = row["batch"] / row["train_img_s"]
    assert row["achieved_gflop_s"] * 1e9 == pytest.approx(row["step_flops"] / step_seconds,
                                                          rel=1e-6)
    assert row["peak_ratio"] == pytest.approx(row["achieved_gflop_s"] / row["peak_gflop_s"],
                                              rel=1e-6)
    assert row["data_ratio"] == pytest.approx(row["epoch_img_s"] / row["train_img_s"], rel=1e-6)


def test_no_data_leaves_data_columns_empty(cache):
    table = bench_table("smoke", ["miniseg"], device="cpu", with_data=False,
                        settings=BenchSettings(steps=1, warmup=0, peak_size=512), **TINY)
    assert list(table.columns) == list(BENCH_COLUMNS)
    assert table[list(DATA_COLUMNS)].isna().all().all()
    assert (table["train_img_s"] > 0).all() and (table["step_flops"] > 0).all()


def test_step_flops_on_meta_match_a_real_step():
    torch.manual_seed(0)
    model = build_model("miniseg")
    loss = bench_loss("dice")
    meta = train_step_flops(model, loss, 32, 2)
    from torch.utils.flop_counter import FlopCounterMode

    x, y = torch.randn(2, 1, 32, 32), torch.randint(0, 20, (2, 32, 32))
    from spineseg_core.losses import total_loss

    with FlopCounterMode(display=False) as counter:
        total_loss(model.train()(x), y, loss).backward()
    assert meta == counter.get_total_flops() > 0


def test_step_flops_are_about_three_forwards():
    """Backward costs about twice the forward (a single-output net: no training-only heads)."""
    from spineseg_core.measure.efficiency import count_macs

    model = build_model("unet", base_width=4)
    flops = train_step_flops(model, bench_loss("dice"), 32, 2)
    assert 2.5 < flops / (2 * count_macs(model, 32, batch=2)) < 3.5


def test_bad_settings_and_names_are_config_errors():
    with pytest.raises(ConfigError, match="steps"):
        BenchSettings(steps=0)
    with pytest.raises(ConfigError, match="nope"):
        bench_table("smoke", ["nope"], device="cpu")
    with pytest.raises(ConfigError, match="device"):
        bench_table("smoke", ["miniseg"], device="tpu")


def test_monai_dice_agrees_with_ours():
    pytest.importorskip("monai")
    from spineseg_core.measure.vs_monai import metric_comparison

    res = metric_comparison(slices=4, size=256, repeats=1)
    assert res["n_compared"] >= 5  # bands of fixed pixel height: few levels fit in 256 px
    assert res["max_abs_diff"] < 1e-6
    assert res["seconds_ours"] > 0 and res["seconds_monai"] > 0
    # MONAI: NaN where the reference lacks a class; ours only where both lack it
    ours, monai = res["dice_ours"], res["dice_monai"]
    assert bool((torch.isnan(ours) <= torch.isnan(monai)).all())


def test_monai_twins_and_side_by_side_table():
    pytest.importorskip("monai")
    from spineseg_core.measure.vs_monai import MONAI_COLUMNS, monai_comparison, monai_twin

    for name in ("unet", "attention_unet"):
        out = monai_twin(name).eval()(torch.randn(1, 1, 32, 32))
        assert out.shape == (1, 20, 32, 32)
    with pytest.raises(ConfigError, match="no MONAI twin"):
        monai_twin("pspnet")
    table = monai_comparison("smoke", device="cpu", networks=("unet",), metric_slices=2,
                             metric_size=48, metric_repeats=1,
                             settings=BenchSettings(steps=1, warmup=0), **TINY)
    assert list(table.columns) == list(MONAI_COLUMNS)
    net, metric = table.iloc[0], table.iloc[1]
    for col in ("params_ours", "params_monai", "gmacs_ours", "gmacs_monai", "img_s_ratio",
                "gflop_s_ratio"):
        assert net[col] > 0, col
    assert net["img_s_ratio"] == pytest.approx(net["img_s_ours"] / net["img_s_monai"])
    assert metric["max_abs_diff"] < 1e-6 and metric["speed_ratio"] > 0


def test_bench_input_size_follows_the_profile_crop():
    from spineseg_core.measure.speed import input_size
    from spineseg_core.training.config import resolve_config

    assert input_size(resolve_config("cpu", image_size=128, crop_width=0.5)) == (128, 64)
    assert input_size(resolve_config("smoke", image_size=96)) == (96, 96)


# --- the theoretical peak: a bound by construction -------------------------------------------

@pytest.mark.parametrize("caps, precision, per_cycle", [
    ({"avx512_f": True, "avx2": True}, Precision.FP32, 64),   # 2 FMA units x 16 lanes x 2
    ({"avx512_f": True, "avx512_bf16": True}, Precision.BF16, 128),
    ({"avx512_f": True, "amx_bf16": True}, Precision.BF16, 1024),
    ({"avx2": True}, Precision.FP32, 32), ({"avx2": True}, Precision.BF16, 32),
    ({}, Precision.FP32, 16)])
def test_cpu_flop_per_cycle(caps, precision, per_cycle):
    assert timing.cpu_flop_per_cycle(precision, caps) == per_cycle
    peak = timing.cpu_peak(precision, threads=2, clock_hz=3e9, capabilities=caps)
    assert peak.flops == 2 * per_cycle * 3e9
    assert peak.basis == f"2 threads x {per_cycle} {precision} FLOP/cycle x 3.00 GHz"


def test_cuda_peak_from_the_data_sheet_or_the_sms():
    h100 = timing.cuda_peak(Precision.BF16, name="NVIDIA H100 80GB HBM3", capability=(9, 0),
                            sms=132)
    assert h100.flops == pytest.approx(989.4e12)
    assert timing.cuda_peak(Precision.BF16, name="NVIDIA H100 PCIe", capability=(9, 0),
                            sms=114).flops == pytest.approx(756.5e12)
    assert timing.cuda_peak(Precision.FP32, name="NVIDIA H200", capability=(9, 0),
                            sms=132).flops == pytest.approx(989.4e12 / 2)
    other = timing.cuda_peak(Precision.BF16, name="NVIDIA Future", capability=(8, 6), sms=10,
                             clock_hz=2e9)
    assert other.flops == 10 * 1024 * 2e9 and "10 SMs x 1024" in other.basis


def test_fraction_of_peak_is_at_most_one(cli_table):
    row = cli_table.iloc[0]
    assert 0 < row["peak_ratio"] <= 1
    assert row["peak_gflop_s"] >= row["gemm_gflop_s"] > 0  # the bound holds for a GEMM too
    assert row["peak_basis"].endswith("GHz")


def test_step_settings_sweep_times_every_setting_against_the_matmul_rate():
    from spineseg_core.measure.sweep import StepSettings, step_settings_sweep
    from spineseg_core.training.precision import Precision

    sweep = (StepSettings(True, Precision.FP32), StepSettings(False, Precision.FP32, True))
    table = step_settings_sweep("smoke", ["unet", "miniseg"], sweep=sweep, rounds=1, warmup=0,
                                device="cpu", gemm_n=256)
    assert len(table) == 4 and table["model"].tolist() == ["unet"] * 2 + ["miniseg"] * 2
    assert table["settings"].tolist()[:2] == ["channels-last, fp32",
                                             "channels-first, fp32, fresh memory filled"]
    row = table.iloc[1]
    assert row["achieved_gflop_s"] == pytest.approx(row["step_flops"] / row["step_s"] / 1e9)
    assert row["ratio_to_gemm"] == pytest.approx(row["achieved_gflop_s"]
                                                 / row["gemm_fp32_gflop_s"])
    # MiniSeg's own precision on the profile is fp32 (its budget exception)
    assert set(table.loc[table["model"] == "miniseg", "profile_precision"]) == {"fp32"}
    assert torch.are_deterministic_algorithms_enabled() is False  # the backend is restored
    assert torch.utils.deterministic.fill_uninitialized_memory is True


def test_interleaved_medians_take_turns():
    from spineseg_core.measure.timing import interleaved_medians

    order: list[str] = []
    medians = interleaved_medians([lambda: order.append("a"), lambda: order.append("b")],
                                  rounds=3, warmup=1)
    assert order == ["a", "b"] * 4 and len(medians) == 2 and all(m >= 0 for m in medians)
    with pytest.raises(ConfigError, match="rounds"):
        interleaved_medians([lambda: None], rounds=0)
