"""Build any of the twelve models by its stable name.

Each architecture module registers a factory with :func:`register_model`; :func:`build_model`
looks it up, calls it with the overrides and wraps the result in
:class:`~spineseg_core.models.base.SegmentationModel`. The stable names are used everywhere:
notebooks, run folders, results and the book.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from torch import nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.base import SegmentationModel


class Family(StrEnum):
    """The paper's two groups of models."""

    UNET = "U-Net family"
    BACKBONE = "backbone models"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model."""

    name: str
    display_name: str
    family: Family
    factory: Callable[..., nn.Module]
    pad_multiple: int
    backbone: str = ""
    description: str = ""


_REGISTRY: dict[str, ModelInfo] = {}

MODEL_NAMES: tuple[str, ...] = (
    "unet", "attention_unet", "resunetpp", "transunet", "miniseg", "pspnet",
    "deeplabv3plus", "denseaspp", "danet", "emanet", "infnet", "psanet",
)
"""The twelve models of the study, in the order of the paper's review."""


def register_model(name: str, *, display_name: str, family: Family, pad_multiple: int,
                   backbone: str = "", description: str = "") -> Callable:
    """Decorator registering ``factory(in_channels, num_classes, **overrides) -> nn.Module``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, display_name, family, factory, pad_multiple,
                                    backbone, description or (factory.__doc__ or "").strip())
        return factory

    return deco


def _load_all() -> None:
    # Importing the package imports every architecture module, which registers it.
    from spineseg_core.models import zoo  # noqa: F401


def list_models() -> list[str]:
    """Stable names of the registered models, in the study's order."""
    _load_all()
    known = [n for n in MODEL_NAMES if n in _REGISTRY]
    return known + sorted(n for n in _REGISTRY if n not in MODEL_NAMES)


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name``; an unknown name lists the valid ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(list_models())}") \
            from None


def build_model(name: str, in_channels: int = 1, num_classes: int = 20,
                **overrides: Any) -> SegmentationModel:
    """Build model ``name`` with fresh (untrained) weights, wrapped for any input size."""
    info = model_info(name)
    try:
        net = info.factory(in_channels=in_channels, num_classes=num_classes, **overrides)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad override ({exc})") from None
    pad = int(getattr(net, "pad_multiple", info.pad_multiple))
    model = SegmentationModel(net, name=name, pad_multiple=pad, num_classes=num_classes,
                              in_channels=in_channels)
    model._build_kwargs = dict(name=name, in_channels=in_channels, num_classes=num_classes,
                               **overrides)
    return model
