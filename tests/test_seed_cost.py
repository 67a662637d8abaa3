"""scripts/seed_cost.py: the budget seed's cost per machine type from the older records, the
committed benchmark and, once it has some, the seed's own records, on hand-made files."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from script_helpers import load_script
from spineseg_core.training.config import CPU_STEPS

AMX = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_features": "2 cores, AVX512, AMX"}


def _files(tmp_path, with_seed: bool):
    runs = pd.DataFrame({"model": ["unet", "pspnet"], "processor": ["AMD EPYC"] * 2,
                         "train_seconds": [60.0, 120.0], "steps_per_epoch": [10, 10],
                         "epochs_completed": [6, 6]})  # 1.0 and 2.0 s/step
    runs.to_csv(tmp_path / "runs.csv", index=False)
    # model only: unet 0.5, pspnet 1.0 s/step
    pd.DataFrame({"model": ["unet", "pspnet"], "batch": [4, 4],
                  "train_img_s": [8.0, 4.0]}).to_csv(tmp_path / "bench.csv", index=False)
    plateau = tmp_path / "plateau"
    if with_seed:  # the seed measured unet at 0.75 s/step: factor 1.5, pspnet 1.5 s/step
        run = plateau / "runs" / "cpu" / "unet" / "seed_0" / "fold_0"
        run.mkdir(parents=True)
        (run / "params.json").write_text(json.dumps({"image_size": 128, "env": AMX}))
        (run / "metrics.json").write_text(json.dumps({"train_seconds": 15.0}))
        pd.DataFrame({"step": [10, 20], "epoch_seconds": [7.5, 7.5]}).to_csv(
            run / "history.csv", index=False)
    return plateau


@pytest.mark.parametrize("with_seed", [False, True])
def test_the_cost_table_prices_each_source_at_b_and_b_half(tmp_path, monkeypatch, with_seed):
    plateau = _files(tmp_path, with_seed)
    out = tmp_path / "cost.csv"
    monkeypatch.setattr(sys, "argv", [
        "seed_cost.py", "--runs", str(tmp_path / "runs.csv"), "--bench",
        str(tmp_path / "bench.csv"), "--plateau", str(plateau), "--out", str(out)])
    load_script("seed_cost").main()
    table = pd.read_csv(out).set_index("model")
    steps = CPU_STEPS + CPU_STEPS // 2
    total = f"hours for B = {CPU_STEPS} and B/2, one seed"
    assert table.loc[total, "AMD EPYC (records, with validation)"] == pytest.approx(
        3.0 * steps / 3600)
    assert table.loc[total, "committed bench (model only)"] == pytest.approx(1.5 * steps / 3600)
    seeded = [c for c in table.columns if "budget seed records" in c]
    if not with_seed:
        assert seeded == []
        return
    assert seeded == ["Intel(R) Xeon(R) Processor (2 cores, AVX512, AMX) (budget seed records, "
                      "with validation; the others at bench x 1.50)"]
    assert table.loc["pspnet", seeded[0]] == pytest.approx(1.5)
    assert table.loc[total, seeded[0]] == pytest.approx(2.25 * steps / 3600)
