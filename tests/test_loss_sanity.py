"""The default loss trains a sane model: background predicted as background, no absent level
painted in (the protocol's first check; see ``book/losses.md``). Slow: a few hundred training
steps per loss on phantom slices."""

from __future__ import annotations

import pytest

from spineseg_core.losses import LossName
from spineseg_core.study.loss_study import ABSENT_MAX, BG_RECALL_MIN
from spineseg_core.training.config import TrainConfig, resolve_config
from spineseg_core.training.loop import run_training

STEPS = 304
DICE_MIN = 0.1
"""...and it learns: a model predicting only background would pass the two checks above."""


def _config(loss: str, out_dir) -> TrainConfig:
    # U-Net on 8 phantom cases (6 train, 2 validation) and 4 fresh test cases at the cpu
    # profile's grid (128 px, training slices cropped to a random 64 px band); 64 slices an
    # epoch in the cpu profile's batches of 4 = 16 steps, so STEPS // 16 epochs; validated
    # once, at the end.
    epochs = STEPS // 16
    return resolve_config("smoke", model="unet", loss=loss, phantom_cases=8, test_cases=4,
                          phantom_size=128, image_size=128, crop_width=0.5, batch_size=4,
                          max_train_slices_per_epoch=64, epochs=epochs, out_dir=out_dir,
                          threads=2, hd95=False, val_every=epochs)


@pytest.mark.slow
@pytest.mark.parametrize("loss", list(LossName))
def test_loss_sanity_on_the_test_set(loss, tmp_path, record_property):
    default = TrainConfig.loss
    metrics = run_training(_config(loss, tmp_path / loss))
    record_property("bg_recall", metrics["bg_recall"])
    record_property("absent_fraction", metrics["absent_fraction"])
    record_property("dice", metrics["dice"])
    print(f"{loss}: background recall {metrics['bg_recall']:.4f}, absent structures "
          f"{metrics['absent_fraction']:.4%}, Dice {metrics['dice']:.4f}")
    assert metrics["evaluated_on"] == "test"
    if loss == default:
        assert metrics["bg_recall"] >= BG_RECALL_MIN
        assert metrics["absent_fraction"] < ABSENT_MAX
        assert metrics["dice"] > DICE_MIN
