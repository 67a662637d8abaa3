"""Model names in any spelling find their model; an unknown one suggests the closest."""

from __future__ import annotations

import pytest

from spineseg_core.errors import ConfigError
from spineseg_core.models import canonical_name, model_info
from spineseg_core.training.config import resolve_config


@pytest.mark.parametrize("spelling, stable", [
    ("transunet", "transunet"), ("TransUNet", "transunet"), ("TRANSUNET", "transunet"),
    ("ResUNet++", "resunetpp"), ("DeepLabv3+", "deeplabv3plus"),
    ("attention-unet", "attention_unet"), ("Attention U-Net", "attention_unet"),
    ("Unet3D", "unet3d"), ("3D U-Net", "unet3d"),
])
def test_any_spelling_gives_the_stable_name(spelling, stable):
    assert canonical_name(spelling) == stable
    assert model_info(spelling).name == stable


def test_resolved_config_and_run_folder_use_the_stable_name():
    cfg = resolve_config("smoke", model="TransUNet")
    assert cfg.model == "transunet"


@pytest.mark.parametrize("typo, closest", [("transunett", "transunet"), ("psannet", "psanet"),
                                           ("deeplab", "deeplabv3plus")])
def test_unknown_name_suggests_the_closest(typo, closest):
    with pytest.raises(ConfigError) as err:
        resolve_config("smoke", model=typo)
    message = str(err.value)
    assert message.startswith(f"model: unknown model {typo!r}; did you mean {closest}? "
                              "(valid models: unet, ")
    assert "\n" not in message


def test_a_name_far_from_every_model_gets_no_suggestion():
    with pytest.raises(ConfigError, match=r"^unknown model 'xyzzy' \(valid models: "):
        canonical_name("xyzzy")
