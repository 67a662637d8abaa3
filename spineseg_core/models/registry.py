"""Build any model of the study by its stable name.

Each architecture module registers a factory with :func:`register_model`; :func:`build_model`
looks it up, calls it with the overrides and wraps the result in
:class:`~spineseg_core.models.base.SegmentationModel` (a 2D model, fed one slice or a stack of
neighbouring slices as channels) or :class:`~spineseg_core.models.base.VolumeSegmentationModel`
(a 3D model, fed a whole volume). The stable names are used everywhere: notebooks, run folders,
results and the book.

Besides the paper's twelve (:data:`MODEL_NAMES`, the two families of its review) the registry
holds the *context* family (:data:`CONTEXT_MODEL_NAMES`), which goes beyond the paper: 2.5D
variants of U-Net and DeepLabv3+ that see a slice with its neighbours, and a 3D U-Net. What a
model is fed is a fact of its registry entry (:class:`InputKind`, ``context``), read by the data
pipeline, the trainer and the measurements.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from torch import nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.base import SegmentationModel, VolumeSegmentationModel


class Family(StrEnum):
    """The paper's two groups of models."""

    UNET = "U-Net family"
    BACKBONE = "backbone models"
    CONTEXT = "context models"


class InputKind(StrEnum):
    """What a model is fed: one slice ``(N, 1, H, W)``; a slice and its neighbours as channels
    ``(N, context, H, W)`` (2.5D); or whole volumes ``(N, 1, D, H, W)`` (3D)."""

    SLICE = "slice"
    STACK = "stack"
    VOLUME = "volume"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model."""

    name: str
    display_name: str
    family: Family
    factory: Callable[..., nn.Module]
    pad_multiple: int | tuple[int, ...]
    backbone: str = ""
    description: str = ""
    input_kind: InputKind = InputKind.SLICE
    context: int = 1
    """Slices a 2.5D model sees at once (the slice in the middle, ``context // 2`` on each
    side): its input channels. 1 for 2D and 3D models."""

    @property
    def in_channels(self) -> int:
        """Channels of the model's input: ``context`` for a 2.5D model, else 1."""
        return self.context if self.input_kind is InputKind.STACK else 1

    @property
    def volumetric(self) -> bool:
        """Whether the model is fed whole volumes (3D)."""
        return self.input_kind is InputKind.VOLUME


_REGISTRY: dict[str, ModelInfo] = {}

MODEL_NAMES: tuple[str, ...] = (
    "unet", "attention_unet", "resunetpp", "transunet", "miniseg", "pspnet",
    "deeplabv3plus", "denseaspp", "danet", "emanet", "infnet", "psanet",
)
"""The twelve models of the study, in the order of the paper's review."""

CONTEXT_MODEL_NAMES: tuple[str, ...] = (
    "unet_25d3", "unet_25d5", "deeplabv3plus_25d3", "deeplabv3plus_25d5", "unet3d",
)
"""The context family (issue 13): 2.5D U-Net and DeepLabv3+ with 3 and 5 slices, a 3D U-Net."""

PAPER_FAMILIES: tuple[Family, ...] = (Family.UNET, Family.BACKBONE)
"""The families of the paper's review: what the study runs by default."""


def register_model(name: str, *, display_name: str, family: Family,
                   pad_multiple: int | tuple[int, ...],
                   backbone: str = "", description: str = "",
                   input_kind: InputKind = InputKind.SLICE, context: int = 1) -> Callable:
    """Decorator registering ``factory(in_channels, num_classes, **overrides) -> nn.Module``."""
    if input_kind is InputKind.STACK and (context < 3 or context % 2 == 0):
        raise RuntimeError(f"model {name!r}: a stack's context must be odd and >= 3, "
                           f"got {context}")
    if input_kind is not InputKind.STACK and context != 1:
        raise RuntimeError(f"model {name!r}: only a stack model has a context, got {context}")

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, display_name, family, factory, pad_multiple,
                                    backbone, description or (factory.__doc__ or "").strip(),
                                    InputKind(input_kind), context)
        return factory

    return deco


ARCHITECTURE_MODULES: tuple[str, ...] = (*MODEL_NAMES, "context", "unet3d")
"""Modules of :mod:`spineseg_core.models` that register models: one per paper model, and the
context family (2.5D stacks and the 3D U-Net) in two of their own."""


@functools.cache
def _load_all() -> None:
    """Import every architecture module once, so that each registers its models. By name
    (``importlib``): the architectures import this module to register, so this module does not
    import them back."""
    for name in ARCHITECTURE_MODULES:
        importlib.import_module(f"spineseg_core.models.{name}")


def list_models(families: Iterable[Family] | None = PAPER_FAMILIES) -> list[str]:
    """Stable names of the registered models of ``families`` (default: the paper's twelve;
    ``None``: every registered model), in the study's order: the twelve, then the context
    family, then any other."""
    _load_all()
    wanted = None if families is None else {Family(f) for f in families}
    order = {n: i for i, n in enumerate(MODEL_NAMES + CONTEXT_MODEL_NAMES)}
    names = [n for n, info in _REGISTRY.items() if wanted is None or info.family in wanted]
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def _name_key(name: str) -> str:
    """How names compare: case, spaces, hyphens and underscores ignored (``TransUNet``,
    ``attention-unet`` and ``Attention U-Net`` find their models)."""
    return "".join(c for c in name.lower() if c not in " -_")


def canonical_name(name: str) -> str:
    """The stable name of the model called ``name``: its stable name or its display name
    (``ResUNet++``) in any case, spacing or hyphenation. An unknown name is a
    :class:`ConfigError` that suggests the closest names and lists the valid ones."""
    _load_all()
    if name in _REGISTRY:
        return name
    aliases: dict[str, str] = {}
    for stable, info in _REGISTRY.items():
        aliases.setdefault(_name_key(stable), stable)
        aliases.setdefault(_name_key(info.display_name), stable)
    key = _name_key(str(name))
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, aliases, n=1)
    hint = f"; did you mean {aliases[close[0]]}?" if close else ""
    raise ConfigError(f"unknown model {name!r}{hint} (valid models: "
                      f"{', '.join(list_models(None))})")


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name`` (any spelling :func:`canonical_name` accepts); an unknown
    name suggests the closest and lists the valid ones."""
    return _REGISTRY[canonical_name(name)]


def build_model(name: str, in_channels: int | None = None, num_classes: int = 20, *,
                min_depth: int | None = None, **overrides: Any) -> SegmentationModel:
    """Build model ``name`` with fresh (untrained) weights, wrapped for any input size.

    ``in_channels`` defaults to the registry's (:attr:`ModelInfo.in_channels`: the context of a
    2.5D model, else 1). ``min_depth``, for a 3D model only, is the depth its training volumes
    were padded to (:class:`~spineseg_core.models.base.VolumeSegmentationModel`); ``None``
    pads nothing beyond the multiple and is not recorded in the build arguments."""
    info = model_info(name)
    name = info.name
    if min_depth is not None and not info.volumetric:
        raise ConfigError(f"model {name!r}: min_depth is for a model fed whole volumes, and "
                          f"{name} is fed {info.input_kind.value}s")
    if in_channels is None:
        in_channels = info.in_channels
    try:
        net = info.factory(in_channels=in_channels, num_classes=num_classes, **overrides)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad override ({exc})") from None
    pad = getattr(net, "pad_multiple", info.pad_multiple)
    depth = {} if min_depth is None else {"min_depth": min_depth}
    wrapper = VolumeSegmentationModel if info.volumetric else SegmentationModel
    model = wrapper(net, name=name, pad_multiple=pad, num_classes=num_classes,
                    in_channels=in_channels, **depth)
    model._build_kwargs = dict(name=name, in_channels=in_channels, num_classes=num_classes,
                               **depth, **overrides)
    return model
