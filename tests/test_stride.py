"""One output-stride rule for every encoder (issue 24, part 4)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from spineseg_core.errors import ConfigError
from spineseg_core.models import build_model
from spineseg_core.models.stride import (
    default_stride,
    rule_stride,
    stride_for,
    stride_options,
    stride_table,
    training_short_side,
)


def test_rule_by_hand():
    every = (8, 16, 32)
    assert rule_stride(64, every, 32, k=8) == 8  # 2 px at 32, 4 at 16, 8 at 8
    assert rule_stride(64, every, 32, k=4) == 16
    assert rule_stride(64, every, 32, k=2) == 32  # the default keeps 2 px: kept
    assert rule_stride(64, every, 8, k=2) == 8  # never coarser than the authors'
    assert rule_stride(16, (8, 16), 16, k=8) == 8  # none keeps 8 px: the finest offered
    assert rule_stride(880, every, 32, k=8) == 32  # the paper's grid: 28 px at 32
    with pytest.raises(ConfigError, match="stride rule: the model takes no output_stride"):
        rule_stride(64, (), 32)
    with pytest.raises(ConfigError, match="expected a positive short side and k"):
        rule_stride(64, every, 32, k=0)


def test_models_and_the_cpu_grid():
    assert training_short_side(128, 0.5) == 64 and training_short_side(128, None) == 128
    assert stride_options("unet") == () and stride_for("unet", 128, 0.5) is None
    assert stride_options("pspnet") == ()  # its dilated encoder is fixed at 8
    assert stride_options("infnet") == (8, 16, 32) and default_stride("infnet") == 32
    assert stride_options("deeplabv3plus") == (8, 16) and default_stride("deeplabv3plus") == 16
    table = {r["model"]: r for r in stride_table(["unet", "danet", "infnet", "emanet"], 128,
                                                 0.5, k=4)}
    assert set(table) == {"danet", "infnet", "emanet"}
    assert (table["danet"]["stride"], table["infnet"]["stride"], table["emanet"]["stride"]) == \
        (16, 16, 8)
    assert table["danet"]["map_px"] == 4


def test_infnet_passes_its_stride_to_the_encoder():
    for stride in (8, 16, 32):
        with torch.device("meta"):
            net = build_model("infnet", output_stride=stride)
        assert net.net.backbone.output_stride == stride
        assert net.init_kwargs().get("output_stride") == stride
    with pytest.raises((ValueError, ConfigError)):
        build_model("infnet", output_stride=4)


@pytest.mark.slow
@pytest.mark.parametrize("stride", [8, 32])
def test_infnet_feature_maps_follow_its_stride(stride):
    torch.manual_seed(0)
    net = build_model("infnet", output_stride=stride).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        feats = net.net.backbone(x)
        out = net(x)
    # Stages 2-4 (c2, c3, c4): stride 8 throughout when dilated, else 8, 16, 32.
    assert [f.shape[-1] for f in feats[2:]] == [8, 64 // min(16, stride), 64 // stride]
    assert net.net.backbone.output_stride == stride
    assert tuple(out.shape) == (1, 20, 64, 64)


def test_k_chosen_on_validation_by_hand():
    from spineseg_core.models.stride import choose_k

    # DANet and Inf-Net at 8/16/32 on the 64 px band; validation Dice rises as the stride falls.
    rows = [dict(model=m, output_stride=s, val_dice=d, image_size=128)
            for m in ("danet", "infnet") for s, d in ((32, 0.05), (16, 0.50), (8, 0.555))]
    pair = ("danet", "infnet")
    k, table = choose_k(pd.DataFrame(rows), 128, 0.5, candidates=(2, 4, 8), models=pair)
    assert table["val_dice"].tolist() == pytest.approx([0.05, 0.50, 0.555])
    assert k == 8  # 5.5 points above k=4
    rows = [dict(r, val_dice=0.505) if r["output_stride"] == 8 else r for r in rows]
    assert choose_k(pd.DataFrame(rows), 128, 0.5, candidates=(2, 4, 8), models=pair)[0] == 4
    # every model the candidates move counts: without DeepLabv3+'s and DenseASPP's runs (the
    # default, every registered model) no candidate that moves them is scored
    with pytest.raises(ConfigError, match="no candidate k has runs"):
        choose_k(pd.DataFrame(rows), 128, 0.5, candidates=(2, 4, 8))


def test_table_d_states_the_rule():
    from spineseg_core.report.deviations import deviations

    row = next(d for d in deviations() if d.aspect == "Output stride of the dilatable encoders")
    assert "Inf-Net 32" in row.paper and "Inf-Net 8" in row.ours and "k = 8" in row.ours
    assert "U-Net" not in row.ours


def _stride_record(root, model, stride, val, fp="a" * 64):
    from fake_runs import write_fake_record

    write_fake_record(root / f"cpu-os{stride}" / model / "seed_0" / "fold_0", model, val,
                      model_kwargs={"output_stride": stride}, fingerprint=fp)


def test_stride_decision_reads_the_stride_runs_records(tmp_path):
    from spineseg_core.study.decisions import stride_decision

    for m in ("danet", "infnet"):
        for s, d in ((32, 0.30), (16, 0.62), (8, 0.60)):
            _stride_record(tmp_path, m, s, d)
    pair = ("danet", "infnet")
    k, table, runs = stride_decision(tmp_path, 128, 0.5, models=pair)
    assert len(runs) == 6 and set(runs["output_stride"]) == {8, 16, 32}
    # k=4 gives both models stride 16 (0.62), k=8 stride 8 (0.60), k<=2 their default 32
    assert k == 4  # the best: 2 points above k=8 and far above the defaults
    assert table.set_index("k").loc[4, "val_dice"] == pytest.approx(0.62)
    # the default model set is every model the candidates move: these records lack two
    with pytest.raises(ConfigError, match="no candidate k has runs"):
        stride_decision(tmp_path, 128, 0.5)
    _stride_record(tmp_path, "deeplabv3plus", 8, 0.5, fp="b" * 64)
    with pytest.raises(ConfigError, match="2 code versions"):
        stride_decision(tmp_path, 128, 0.5, models=pair)


def test_decide_command_writes_both_decisions(tmp_path, capsys):
    from fake_runs import write_fake_record
    from spineseg_core.cli import main

    losses, strides = tmp_path / "loss", tmp_path / "stride"
    for m, a, b in (("unet", 0.7, 0.6), ("miniseg", 0.2, 0.3), ("deeplabv3plus", 0.6, 0.5)):
        write_fake_record(losses / "cpu" / m / "seed_0" / "fold_0", m, a)
        write_fake_record(losses / "cpu-loss-ce" / m / "seed_0" / "fold_0", m, b, loss="ce")
    for m, options in (("danet", (32, 16, 8)), ("infnet", (32, 16, 8)),
                       ("deeplabv3plus", (16, 8)), ("denseaspp", (16, 8))):
        for s in options:
            _stride_record(strides, m, s, {32: 0.3, 16: 0.62, 8: 0.6}[s])
    out = tmp_path / "decisions"
    assert main(["decide", "--loss-records", str(losses), "--stride-records", str(strides),
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "chosen: dice_ce" in said and "chosen: k = 4" in said
    assert pd.read_csv(out / "loss.csv").set_index("loss")["chosen"].to_dict() == {
        "dice_ce": True, "ce": False}
    assert pd.read_csv(out / "stride.csv").query("chosen")["k"].tolist() == [4]
    assert len(pd.read_csv(out / "stride_runs.csv")) == 10
