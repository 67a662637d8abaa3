"""Counting, memory and the ``spineseg efficiency`` command, on hand-computable models."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from torch import nn

from spineseg_core.cli import main
from spineseg_core.errors import ConfigError
from spineseg_core.measure.efficiency import (
    EFFICIENCY_COLUMNS,
    MemMethod,
    ParamScope,
    count_macs,
    count_params,
    efficiency_table,
    fits_24gb,
    train_step_memory,
)
from spineseg_core.measure.timing import meta_copy
from spineseg_core.models import SegmentationModel


class WithAux(nn.Module):
    """A 3x3 conv to 4 channels; in training also a 1x1 auxiliary head (2 outputs)."""

    in_channels = 1
    num_classes = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.aux = nn.Conv2d(4, 4, 1, bias=False)
        self.output_weights = [1.0, 0.4]

    def forward(self, x):
        y = self.conv(x)
        return [y, self.aux(y)] if self.training else y


def test_count_macs_single_conv() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    conv.in_channels = 3
    # MACs = Cout * Cin * k * k * H * W
    assert count_macs(conv, size=16, in_channels=3) == 8 * 3 * 3 * 3 * 16 * 16
    assert count_macs(conv, size=16, in_channels=3, batch=2) == 2 * 8 * 3 * 9 * 256
    assert conv.weight.device.type == "cpu"  # counted through a meta copy, model untouched


def test_count_params_single_conv_and_scopes() -> None:
    conv = nn.Conv2d(3, 8, 3)
    assert count_params(conv) == 8 * 3 * 9 + 8
    model = WithAux()
    assert count_params(model) == (4 * 9 + 4) + 16
    assert count_params(model, scope=ParamScope.INFERENCE) == 4 * 9 + 4
    with pytest.raises(ConfigError, match="scope"):
        count_params(model, scope="everything")


def test_shared_parameters_counted_once() -> None:
    lin = nn.Linear(5, 5)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    model.in_channels = 1
    assert count_params(model) == 30


def test_meta_copy_leaves_original() -> None:
    model = WithAux()
    meta = meta_copy(model)
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert [n for n, _ in meta.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_count_macs_by_name_unknown_lists_models() -> None:
    with pytest.raises(ConfigError, match="valid models: .*unet"):
        count_macs("no_such_net")


def test_train_step_memory_estimate_hand_computed() -> None:
    # Params + grads + two Adam moments = 4 x parameter bytes; the conv saves at least its
    # input (2*1*8*8 float32) for the weight gradient.
    model = SegmentationModel(WithAux(), name="with_aux", num_classes=4)
    report = train_step_memory(model, size=8, batch=2, device="cpu")
    assert report.method is MemMethod.SAVED_TENSORS and report.device == "meta"
    param_bytes = 4 * (4 * 9 + 4 + 16)
    floor = 4 * param_bytes + 4 * 2 * 8 * 8   # at least weights' state and the saved input
    assert report.peak_mb * 2**20 >= floor
    bigger = train_step_memory(model, size=16, batch=2, device="cpu")
    # Saved activations grow with the pixel count (4x, up to scalars); parameter state does not.
    act_small = report.peak_mb * 2**20 - 4 * param_bytes
    act_big = bigger.peak_mb * 2**20 - 4 * param_bytes
    assert act_big == pytest.approx(4 * act_small, rel=0.01)


def test_efficiency_table_columns_and_values() -> None:
    table = efficiency_table(["miniseg"], size=64, measure_size=32, batch=1,
                             with_throughput=False)
    assert list(table.columns) == list(EFFICIENCY_COLUMNS)
    row = table.iloc[0]
    assert row.model == "miniseg" and row.display_name == "MiniSeg"
    assert row.params_m == pytest.approx(0.085, rel=0.03)
    assert row.gmacs_880 == pytest.approx(1.53, rel=0.05)
    # MACs scale with the pixel count for a fully convolutional net (64 = 880 / 13.75).
    assert row.gmacs_size == pytest.approx(row.gmacs_880 * (64 / 880) ** 2, rel=0.05)
    assert math.isnan(row.train_img_s) and row.train_peak_mem_mb > 0
    assert row.fits_24gb  # MiniSeg at 64 px needs a few MB


def test_fits_24gb_leaves_room_for_the_cuda_context() -> None:
    assert fits_24gb(1000.0) and fits_24gb(23 * 1024)
    assert not fits_24gb(23 * 1024 + 1) and not fits_24gb(30_000.0)


def test_efficiency_table_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="valid models"):
        efficiency_table(["unet", "nonsense"], with_throughput=False)
    with pytest.raises(ConfigError, match="device"):
        efficiency_table(["unet"], device="gpu0", with_throughput=False)


def test_cli_writes_csv(tmp_path, capsys) -> None:
    out = tmp_path / "eff" / "efficiency.csv"
    rc = main(["efficiency", "--models", "miniseg", "unet", "--size", "64",
               "--measure-size", "32", "--batch", "1", "--steps", "1", "--warmup", "0",
               "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(EFFICIENCY_COLUMNS)
    assert list(table.model) == ["miniseg", "unet"]
    assert (table.train_img_s > 0).all() and (table.infer_img_s > 0).all()
    assert table.loc[1, "params_m"] == pytest.approx(13.40, rel=0.03)
    printed = capsys.readouterr().out
    assert "miniseg" in printed and str(out) in printed


def test_cli_unknown_model_exits_2(tmp_path, capsys) -> None:
    rc = main(["efficiency", "--models", "nope", "--no-throughput",
               "--out", str(tmp_path / "e.csv")])
    assert rc == 2
    assert "valid models" in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()
