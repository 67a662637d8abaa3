"""The default loss trains a sane model: background predicted as background, no absent level
painted in (the protocol's first check; see ``book/losses.md``). Slow: a few hundred training
steps per loss on phantom slices."""

from __future__ import annotations

import pytest

from spineseg_core.losses import LossName
from spineseg_core.profiles import TrainConfig, resolve_config
from spineseg_core.train import run_training

BG_RECALL_MIN = 0.98
ABSENT_MAX = 0.01
STEPS = 300


def _config(loss: str, out_dir) -> TrainConfig:
    # 8 phantom cases at 64 px (6 train, 2 validation) and 4 fresh test cases; 64 slices an
    # epoch in batches of 4 = 16 steps, so STEPS // 16 epochs.
    return resolve_config("smoke", model="unet", model_kwargs={"base_width": 8, "depth": 3},
                          loss=loss, phantom_cases=8, test_cases=4,
                          max_train_slices_per_epoch=64, epochs=STEPS // 16, out_dir=out_dir,
                          threads=2, hd95=False, val_every=STEPS // 16)


@pytest.mark.slow
@pytest.mark.parametrize("loss", list(LossName))
def test_loss_sanity_on_the_test_set(loss, tmp_path, record_property):
    default = TrainConfig.loss
    metrics = run_training(_config(loss, tmp_path / loss))
    record_property("bg_recall", metrics["bg_recall"])
    record_property("absent_fraction", metrics["absent_fraction"])
    print(f"{loss}: background recall {metrics['bg_recall']:.4f}, absent structures "
          f"{metrics['absent_fraction']:.4%}, Dice {metrics['dice']:.4f}")
    assert metrics["evaluated_on"] == "test"
    if loss == default:
        assert metrics["bg_recall"] >= BG_RECALL_MIN
        assert metrics["absent_fraction"] < ABSENT_MAX
