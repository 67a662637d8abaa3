"""The benchmark files of issue 24's part 8 as ``spineseg bench`` writes them, values made up:
``step_settings.csv`` (``--sweep``), ``step_changes.csv`` (``--before-after``) and
``bench_monai.csv`` (``--monai``), for the book's tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spineseg_core.measure.sweep import SWEEP_COLUMNS
from spineseg_core.measure.vs_monai import MONAI_COLUMNS

GEMM_BF16, GEMM_FP32 = 1500.0, 250.0
"""The made-up matrix-multiply rates (GFLOP/s) of every fake row."""
FLOPS = 9.0e10
"""The made-up nominal FLOPs of every fake step."""


def sweep_row(model: str, channels_last: bool, precision: str, step_s: float,
              profile_precision: str = "bf16-autocast", fill_memory: bool = False) -> dict:
    """One row of a sweep with :data:`SWEEP_COLUMNS`: achieved rate and its share of the GEMM
    rate in ``precision`` computed from ``step_s``, as the sweep computes them."""
    achieved = FLOPS / step_s / 1e9
    gemm = GEMM_BF16 if precision.startswith("bf16") else GEMM_FP32
    layout = "channels-last" if channels_last else "channels-first"
    fill = ", fresh memory filled" if fill_memory else ""
    return {"model": model, "settings": f"{layout}, {precision}{fill}",
            "channels_last": channels_last, "precision": precision,
            "fill_memory": fill_memory, "step_s": step_s, "img_s": 4 / step_s,
            "step_flops": FLOPS, "achieved_gflop_s": achieved,
            "gemm_bf16_gflop_s": GEMM_BF16, "gemm_fp32_gflop_s": GEMM_FP32,
            "ratio_to_gemm": achieved / gemm, "profile_precision": profile_precision,
            "profile_channels_last": True, "threads": 2, "rounds": 5}


def write_fake_step_settings(path: str | Path) -> Path:
    """U-Net (bf16; its trainer's setting, channels-last, is fastest) and MiniSeg (fp32;
    channels-first is 20 % faster than the trainer's channels-last)."""
    rows = [sweep_row("unet", True, "bf16-autocast", 0.2),
            sweep_row("unet", False, "bf16-autocast", 0.25),
            sweep_row("unet", True, "fp32", 1.0), sweep_row("unet", False, "fp32", 1.1),
            sweep_row("miniseg", True, "bf16-autocast", 3.0, "fp32"),
            sweep_row("miniseg", False, "bf16-autocast", 3.2, "fp32"),
            sweep_row("miniseg", True, "fp32", 1.2, "fp32"),
            sweep_row("miniseg", False, "fp32", 1.0, "fp32")]
    return _write(path, pd.DataFrame(rows, columns=list(SWEEP_COLUMNS)))


def write_fake_step_changes(path: str | Path) -> Path:
    """U-Net 0.25 s a step with fresh memory filled, 0.20 s without (25 % faster); MiniSeg
    1.5 s and 1.2 s."""
    rows = [sweep_row("unet", True, "bf16-autocast", 0.25, fill_memory=True),
            sweep_row("unet", True, "bf16-autocast", 0.20),
            sweep_row("miniseg", True, "fp32", 1.5, "fp32", fill_memory=True),
            sweep_row("miniseg", True, "fp32", 1.2, "fp32")]
    return _write(path, pd.DataFrame(rows, columns=list(SWEEP_COLUMNS)))


def write_fake_bench_monai(path: str | Path) -> Path:
    """Two networks and the metric comparison, as ``spineseg bench --monai`` writes them."""
    net = {"comparison": "network training step", "device": "cpu", "size": 128, "batch": 4,
           "precision": "bf16-autocast"}
    rows = [{**net, "ours": "unet", "monai": "monai.networks.nets.UNet",
             "params_ours": 13391444.0, "params_monai": 14114516.0, "gmacs_ours": 7.73,
             "gmacs_monai": 3.71, "img_s_ours": 2.71, "img_s_monai": 4.04,
             "img_s_ratio": 0.67, "gflop_s_ours": 125.66, "gflop_s_monai": 89.94,
             "gflop_s_ratio": 1.397, "differences": "one conv per level (ours two)"},
            {**net, "ours": "attention_unet", "monai": "monai.networks.nets.AttentionUnet",
             "params_ours": 34878656.0, "params_monai": 31740420.0, "gmacs_ours": 16.61,
             "gmacs_monai": 10.57, "img_s_ours": 1.87, "img_s_monai": 5.93,
             "img_s_ratio": 0.315, "gflop_s_ours": 186.25, "gflop_s_monai": 375.79,
             "gflop_s_ratio": 0.4956, "differences": "strided-conv downsampling"},
            {"comparison": "per-class Dice of a volume pair",
             "ours": "metrics.confusion_matrix+scores", "monai": "monai.metrics.DiceMetric",
             "device": "cpu", "size": 880, "batch": 12, "seconds_ours": 0.0304,
             "seconds_monai": 3.3347, "speed_ratio": 109.7, "max_abs_diff": 2.83e-08,
             "n_compared": 18.0, "differences": "MONAI timed without its one-hot encoding"}]
    return _write(path, pd.DataFrame(rows, columns=list(MONAI_COLUMNS)))


def _write(path: str | Path, frame: pd.DataFrame) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
