"""Training profiles and the one resolved configuration of a run.

A *profile* is a named set of defaults sized for a kind of machine:

* ``smoke`` — a few phantom cases at 64 px, one epoch: checks that everything runs (seconds).
* ``cpu`` — the study's miniature on the embedded phantom, sized for a 2-core CPU: phantom
  cases written at 256 px and trained at 128 px, the architectures unchanged.
* ``paper`` — the paper's protocol for a GPU and the real MRSpineSeg data: 1x880x880 inputs,
  Dice loss, Adam at 5e-4. The paper states no batch size (4 is our choice) and no learning
  rate schedule (only the initial rate), so the rate is kept constant.

:func:`resolve_config` overlays user overrides on a profile and validates every value (names,
types, ranges, paths) before any training starts, raising a
:class:`~spineseg_core.errors.ConfigError` that names the parameter and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError


class Profile(StrEnum):
    """Named default sets (see the module docstring)."""

    SMOKE = "smoke"
    CPU = "cpu"
    PAPER = "paper"


class DeviceChoice(StrEnum):
    """Where to train: ``auto`` takes CUDA when present, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Scheduler(StrEnum):
    """Learning-rate schedule per epoch. ``constant`` is the paper's (it gives only the initial
    rate) and the default; ``cosine`` anneals to zero over ``epochs``."""

    CONSTANT = "constant"
    COSINE = "cosine"


@dataclass(frozen=True)
class TrainConfig:
    """Every parameter of one training run (resolved: no ``None`` meaning "default" left).

    ``data_dir=None`` trains on the procedural phantom (``phantom_cases`` cases written at
    ``phantom_size`` px, generated once into the cache). ``out_dir=None`` uses
    ``runs/<profile>/<model>/seed_<s>/fold_<f>/``. ``model_kwargs`` are build overrides of the
    architecture (e.g. ``{"base_width": 8}`` for a small U-Net in tests); ``None`` keeps the
    paper's architecture. ``k_folds=None`` is the paper's single 8:2
    split (``fold`` must then be 0). ``max_train_slices_per_epoch=None`` uses every training
    slice each epoch; a number draws that many at random per epoch. ``crop_width`` crops
    training and validation slices to a full-height band of that fraction of the width around
    the spine (a speed knob of the miniature profiles; prediction uses the full field of view).
    ``gpu_augment`` chooses where the augmentation runs
    (:func:`spineseg_core.train_step.augment_path`): ``None`` batches it on the device when
    that is a GPU (:mod:`spineseg_core.data.batch_augment`) and keeps TorchIO's per-slice
    transforms on the CPU; ``True`` batches it on any device, ``False`` never. ``compile`` trains
    through ``torch.compile``: off by default, since on a CPU it cost 80-120 s per new input
    shape for at most ~10 % (measured on 2 cores with torch 2.13); the first epoch's
    ``epoch_seconds`` in ``history.csv`` then includes the compile time. ``amp`` runs the
    forward pass under bf16 autocast where the device runs bf16 faster than fp32 (a CUDA GPU
    with bf16 units, or a CPU with AMX-bf16 or AVX512-BF16) and in fp32 elsewhere (:mod:`spineseg_core.precision`); the run's
    ``params.json`` records which (``precision``).
    """

    model: str = "unet"
    model_kwargs: dict[str, Any] | None = None
    profile: Profile = Profile.CPU
    data_dir: Path | None = None
    phantom_cases: int = 40
    phantom_size: int = 256
    phantom_seed: int = 0
    image_size: int = 128
    epochs: int = 30
    batch_size: int = 8
    lr: float = 5e-4
    scheduler: Scheduler = Scheduler.CONSTANT
    loss: str = "dice"
    seed: int = 0
    fold: int = 0
    k_folds: int | None = None
    max_cases: int | None = None
    out_dir: Path | None = None
    device: DeviceChoice = DeviceChoice.AUTO
    num_workers: int = 0
    threads: int | None = None
    resume: bool = True
    augment: bool = True
    p_noise: float = 0.25
    p_blur: float = 0.25
    p_motion: float = 0.25
    p_ghosting: float = 0.25
    max_train_slices_per_epoch: int | None = None
    crop_width: float | None = None
    gpu_augment: bool | None = None
    compile: bool = False
    val_every: int = 1
    channels_last: bool = True
    amp: bool = True
    hd95: bool = True
    skip_bad: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths and enums as strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, (Path, StrEnum)) else v
        return out


PROFILE_DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.SMOKE: dict(phantom_cases=6, phantom_size=64, image_size=64, epochs=1,
                        batch_size=4, max_train_slices_per_epoch=32, hd95=False),
    # The study's miniature for a 2-core CPU (twelve models, one seed, within ~60 min): 40
    # phantom cases (32 train / 8 val) written at 256 px (1.2 mm), resampled to 128 px
    # (2.4 mm) and cropped to a 64 px band around the spine; six epochs of every slice in
    # batches of 4 (twice the steps of batch 8 for ~1.25x the time per epoch: U-Net reached
    # validation Dice 0.77 instead of 0.71 in six epochs; the backbone models keep batch 8:
    # FAMILY_DEFAULTS), bf16 autocast where the CPU has AMX.
    Profile.CPU: dict(phantom_cases=40, phantom_size=256, image_size=128, crop_width=0.5,
                      epochs=6, batch_size=4),
    Profile.PAPER: dict(phantom_cases=200, phantom_size=880, image_size=880, epochs=120,
                        batch_size=4),
}
"""Per-profile values; everything else comes from the :class:`TrainConfig` defaults."""

MODEL_DEFAULTS: dict[Profile, dict[str, dict[str, Any]]] = {
    # MiniSeg (83K parameters) learns slowest per epoch — the paper's Figure 19 also has it
    # among the models that need 100-120 epochs — but an epoch costs it ~10 s on 2 cores, so
    # the miniature gives it the epochs to pass its steep part (Dice still rising ~0.04 per
    # epoch after six). Its depthwise convolutions ran 0.75x as fast under CPU bf16
    # autocast, so it trains in fp32.
    # PSPNet's ResNet-34 is light: batch 4 cost it only 1.35x batch 8's time per epoch (26 s
    # against 19 s) and took it to validation Dice 0.58 in six epochs against 0.48, still
    # rising, at batch 8; so it keeps the profile's batch 4, unlike the other backbone models.
    # PSANet was the one model still steep after six epochs by the convergence rule
    # (results.convergence_table: Dice .43 -> .51 -> .52 over epochs 4-6), so it gets eight.
    Profile.CPU: {"miniseg": dict(epochs=24, amp=False), "pspnet": dict(batch_size=4),
                  "psanet": dict(epochs=8)},
}
"""Per-profile, per-model values applied over :data:`FAMILY_DEFAULTS` (user overrides win)."""

FAMILY_DEFAULTS: dict[Profile, dict[str, dict[str, Any]]] = {
    # The backbone models (ResNet-101, Res2Net-101, DenseNet-169 encoders, mostly dilated)
    # ran up to 1.7x slower per image at batch 4 than at 8 on 2 cores (DeepLabv3+: 57 s
    # against 35 s per epoch), the U-Net family only ~1.2x; so on the CPU they keep batch 8
    # (PSPNet excepted: MODEL_DEFAULTS).
    Profile.CPU: {"backbone models": dict(batch_size=8)},
}
"""Per-profile values for every model of a family (the registry's ``Family`` value), applied
over :data:`PROFILE_DEFAULTS` and under :data:`MODEL_DEFAULTS`."""

_HINTS = typing.get_type_hints(TrainConfig)
PARAMETERS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
"""Names :func:`resolve_config` accepts."""

_POSITIVE = {"epochs", "phantom_cases", "phantom_size", "image_size", "batch_size", "val_every",
             "k_folds", "max_cases", "max_train_slices_per_epoch", "threads"}
_NON_NEGATIVE = {"seed", "fold", "num_workers", "phantom_seed"}
_PROBABILITIES = {"p_noise", "p_blur", "p_motion", "p_ghosting"}


def _from_text(value: Any, hint: Any) -> Any:
    """A parameter typed as text (papermill's ``-p``/``-r``, a shell) where ``hint`` is no text
    type: its JSON value (``'{"epochs": 2}'``, ``'[1, 2]'``, ``'true'``, ``'3'``), or the text
    itself when it is not JSON (the type check then names the parameter)."""
    if not isinstance(value, str) or hint in (str, Path) or (
            isinstance(hint, type) and issubclass(hint, StrEnum)):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_mapping(name: str, value: Any) -> dict[str, Any]:
    """``value`` as a mapping of parameter names: a dict, ``None`` (empty), or its JSON text
    (how ``papermill -p overrides '{"epochs": 2}'`` delivers it); anything else is a
    :class:`ConfigError` naming ``name``."""
    if value is None:
        return {}
    parsed = _from_text(value, dict)
    if isinstance(parsed, dict) and all(isinstance(k, str) for k in parsed):
        return dict(parsed)
    raise ConfigError(f"{name}: expected a mapping of parameter names to values (a dict, or "
                      f"JSON text such as '{{\"epochs\": 2}}'), got {value!r} "
                      f"({type(value).__name__})")


def resolve_with_overrides(profile: str | Profile, overrides: Any = None,
                           **parameters: Any) -> TrainConfig:
    """:func:`resolve_config` of the notebook: its own ``parameters`` plus ``overrides`` (a
    mapping or its JSON text, :func:`parse_mapping`). A name in ``overrides`` that is also
    given as a parameter (not ``None``) is a :class:`ConfigError`: it must be given once."""
    extra = parse_mapping("overrides", overrides)
    twice = sorted(k for k in extra if parameters.get(k) is not None)
    if twice:
        raise ConfigError(f"overrides: {', '.join(twice)} also given as a parameter of its own "
                          f"({', '.join(f'{k}={parameters[k]!r}' for k in twice)}); give each "
                          "once")
    return resolve_config(profile, **{**parameters, **extra})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the annotation ``hint``; parse JSON text where ``hint`` is no
    text type; convert str->Path/enum, int->float."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    value = _from_text(value, hint)
    want = getattr(hint, "__name__", str(hint))
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{name}: expected one of {', '.join(m.value for m in hint)}, "
                              f"got {value!r}") from None
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(hint) is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
        want = "a mapping with text keys (a dict, or JSON text such as '{\"base_width\": 8}')"
    elif hint is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value).expanduser()
        want = "a path"
    raise ConfigError(f"{name}: expected {want}, got {value!r} ({type(value).__name__})")


def _check_ranges(cfg: TrainConfig) -> None:
    for name in _POSITIVE | _NON_NEGATIVE:
        v = getattr(cfg, name)
        if v is None:
            continue
        if name in _POSITIVE and v < 1:
            raise ConfigError(f"{name}: expected a positive integer, got {v}")
        if name in _NON_NEGATIVE and v < 0:
            raise ConfigError(f"{name}: expected an integer >= 0, got {v}")
    for name in _PROBABILITIES:
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name}: expected a probability in [0, 1], got {v}")
    if cfg.crop_width is not None and not 0.0 < cfg.crop_width <= 1.0:
        raise ConfigError(f"crop_width: expected a fraction of the slice width in (0, 1] "
                          f"(or None for no crop), got {cfg.crop_width}")
    if not (0.0 < cfg.lr < 1.0):
        raise ConfigError(f"lr: expected a learning rate in (0, 1), got {cfg.lr}")
    if cfg.k_folds is None:
        if cfg.fold != 0:
            raise ConfigError(f"fold: the single 8:2 split (k_folds=None) has only fold 0, "
                              f"got {cfg.fold}")
    else:
        if cfg.k_folds < 2:
            raise ConfigError(f"k_folds: expected >= 2 (or None for the 8:2 split), "
                              f"got {cfg.k_folds}")
        if cfg.fold >= cfg.k_folds:
            raise ConfigError(f"fold: expected 0..{cfg.k_folds - 1} for k_folds={cfg.k_folds}, "
                              f"got {cfg.fold}")
    if cfg.data_dir is None and cfg.phantom_cases < 2:
        raise ConfigError(f"phantom_cases: need at least 2 cases to split, got "
                          f"{cfg.phantom_cases}")


def _check_names(cfg: TrainConfig) -> None:
    from .losses import LossName
    from .models import model_info

    try:
        model_info(cfg.model)
    except ConfigError as exc:
        raise ConfigError(f"model: {exc}") from None
    if cfg.model_kwargs:
        from .models import build_model

        with torch.device("meta"):
            try:
                build_model(cfg.model, **cfg.model_kwargs)
            except (ConfigError, TypeError, ValueError) as exc:
                raise ConfigError(f"model_kwargs: {exc}") from None
    try:
        LossName(cfg.loss)
    except ValueError:
        raise ConfigError(f"loss: expected one of {', '.join(m.value for m in LossName)}, "
                          f"got {cfg.loss!r}") from None
    if cfg.data_dir is not None and not cfg.data_dir.is_dir():
        raise ConfigError(f"data_dir: expected an existing folder, got {str(cfg.data_dir)!r}")
    if cfg.device is DeviceChoice.CUDA and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available "
                          "(use 'auto' or 'cpu')")


def _family(model: Any) -> str | None:
    """The registry family of ``model``, or None for a name the registry does not know (the
    name check of :func:`resolve_config` reports it)."""
    from .models import model_info  # the registry imports every model: only when needed

    try:
        return str(model_info(model).family) if isinstance(model, str) else None
    except ConfigError:
        return None


def resolve_config(profile: str | Profile = Profile.CPU, **overrides: Any) -> TrainConfig:
    """The validated :class:`TrainConfig` of ``profile`` with ``overrides`` applied.

    An override of ``None`` keeps the profile's value (so notebook and command-line parameters
    can default to ``None``). Unknown names, wrong types and out-of-range values raise
    :class:`ConfigError` naming the parameter.
    """
    prof = _coerce("profile", profile, Profile)
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(PARAMETERS)}")
    values: dict[str, Any] = {**PROFILE_DEFAULTS[prof], "profile": prof}
    model = overrides.get("model") or TrainConfig.model
    values.update(FAMILY_DEFAULTS.get(prof, {}).get(_family(model) or "", {}))
    values.update(MODEL_DEFAULTS.get(prof, {}).get(model, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    checked = {k: _coerce(k, v, _HINTS[k]) for k, v in values.items()}
    cfg = TrainConfig(**checked)
    _check_ranges(cfg)
    _check_names(cfg)
    return cfg

