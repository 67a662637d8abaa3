"""Training profiles and the one resolved configuration of a run.

A *profile* is a named set of defaults sized for a kind of machine:

* ``smoke`` — a few phantom cases at 64 px, one epoch: checks that everything runs (seconds).
* ``cpu`` — the study's miniature on the embedded phantom, sized for a 2-core CPU: phantom
  cases written at 256 px and trained at 128 px, the architectures unchanged.
* ``paper`` — the paper's protocol for a GPU and the real MRSpineSeg data: 1x880x880 inputs,
  Adam at 5e-4. The paper states no batch size (4 is our choice) and no learning
  rate schedule (only the initial rate).

The study's profiles (``cpu``, ``paper``) give every model the same budget in *optimiser steps*
(``steps``), whatever a model's batch item is (a slice, a stack of slices, a volume), with the
learning rate decayed by a cosine from the paper's 5e-4 to zero at the budget
(:class:`Scheduler`), so that every run ends annealed at its budget rather than being cut on a
constant rate. ``smoke`` keeps an epoch budget: it checks that everything runs.

:func:`resolve_config` overlays user overrides on a profile and validates every value (names,
types, ranges, paths) before any training starts, raising a
:class:`~spineseg_core.errors.ConfigError` that names the parameter and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from spineseg_core.errors import ConfigError
from spineseg_core.training.budgets import model_budget


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
    """Learning-rate schedule, stepped once per optimiser step over the run's planned steps
    (``steps``, or ``epochs`` times the steps of an epoch), after ``warmup_steps`` of linear
    warm-up. ``constant`` keeps the initial rate (the paper gives only that rate);
    ``cosine`` decays it to zero at the last step: a half cosine has no parameter beyond the
    budget (poly decay needs a power), and it ends every run annealed at its budget whatever
    the budget is, which a comparison of complete runs at B and B/2 needs
    (:mod:`spineseg_core.study.plateau`). :func:`lr_factor` is the one definition."""

    CONSTANT = "constant"
    COSINE = "cosine"


@dataclass(frozen=True)
class TrainConfig:
    """Every parameter of one training run (resolved: no ``None`` meaning "default" left).

    ``steps`` is the budget in optimiser steps: when set, the run makes exactly that many
    (epochs are derived, ``ceil(steps / steps per epoch)``, the last one possibly partial) and
    ``epochs`` is not read; ``None`` trains ``epochs`` whole epochs. Giving ``epochs`` to
    :func:`resolve_config` without ``steps`` replaces a profile's step budget by that epoch
    budget (how tests and smoke runs ask for one short epoch). ``warmup_steps`` ramps the
    rate linearly from ``lr / warmup_steps`` to ``lr`` first (0: none).

    ``data_dir=None`` trains on the procedural phantom (``phantom_cases`` cases written at
    ``phantom_size`` px, generated once into the cache) and tests on ``test_cases`` fresh
    phantom cases of their own seed (``phantom_test_seed``). The paper profile is sized for the
    real data: without ``data_dir`` it asks for ``phantom=True``, the explicit choice of its
    paper-scale phantom (:data:`PAPER_PHANTOM_COST`). On real data the test set is
    ``test_dir``'s labelled cases, or else ``test_fraction`` of the patients, held out once and
    frozen (:func:`~spineseg_core.data.splits.get_or_create_test_split`); validation splits the
    rest with the run's seed. ``loss_kwargs`` are options of the Dice term
    (:data:`spineseg_core.losses.DICE_KWARGS`). The default loss, in every profile, is Dice +
    cross-entropy (nnU-Net's), not the paper's Dice: no reading of the paper's Dice loss trained
    a model that predicts background as background within the cpu profile's budget
    (:mod:`spineseg_core.study.loss_study`, ``results/cpu/loss_variants.csv``); ``loss="dice"`` runs
    the pure Dice. ``out_dir=None`` uses
    ``runs/<profile>/<model>/seed_<s>/fold_<f>/``. ``model_kwargs`` are build overrides of the
    architecture (e.g. ``{"base_width": 8}`` for a small U-Net in tests); ``None`` keeps the
    paper's architecture. ``k_folds=None`` is the paper's single 8:2
    split (``fold`` must then be 0). ``max_train_slices_per_epoch=None`` uses every training
    slice each epoch; a number draws that many at random per epoch. ``crop_width`` crops
    training slices (only) to a full-height band of that fraction of the width, placed at random
    around the spine (a speed knob of the miniature profiles); validation, test and prediction
    use the full field of view.
    ``gpu_augment`` chooses where the augmentation runs
    (:func:`spineseg_core.training.step.augment_path`): ``None`` batches it on the device when
    that is a GPU (:mod:`spineseg_core.data.batch_augment`) and keeps TorchIO's per-slice
    transforms on the CPU; ``True`` batches it on any device, ``False`` never. ``compile`` trains
    through ``torch.compile``: off by default, since on a CPU it cost 80-120 s per new input
    shape for at most ~10 % (measured on 2 cores with torch 2.13); the first epoch's
    ``epoch_seconds`` in ``history.csv`` then includes the compile time. ``amp`` runs the
    forward pass under bf16 autocast where the device runs bf16 faster than fp32 (a CUDA GPU
    with bf16 units, or a CPU with AMX-bf16 or AVX512-BF16) and in fp32 elsewhere
    (:mod:`spineseg_core.training.precision`); the run's
    ``params.json`` records which (``precision``).
    ``keep_last_checkpoint`` keeps ``checkpoint_last.pt`` (the resumable state, about three
    times the size of the best weights) once the run has finished; by default it is deleted
    then, since resuming is over (a longer run starts again).
    """

    model: str = "unet"
    model_kwargs: dict[str, Any] | None = None
    profile: Profile = Profile.CPU
    data_dir: Path | None = None
    phantom: bool = False
    phantom_cases: int = 40
    phantom_size: int = 256
    phantom_seed: int = 0
    image_size: int = 128
    epochs: int = 30
    steps: int | None = None
    warmup_steps: int = 0
    batch_size: int = 8
    lr: float = 5e-4
    scheduler: Scheduler = Scheduler.CONSTANT
    loss: str = "dice_ce"
    loss_kwargs: dict[str, Any] | None = None
    seed: int = 0
    fold: int = 0
    k_folds: int | None = None
    max_cases: int | None = None
    test_dir: Path | None = None
    test_cases: int = 40
    phantom_test_seed: int = 1000
    test_fraction: float = 0.2
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
    keep_last_checkpoint: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths and enums as strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, (Path, StrEnum)) else v
        return out


CPU_STEPS = 5880
"""The cpu profile's budget B in optimiser steps, the study's: 10x the 588 steps (6 epochs of
about 98 batches of 4) of the epoch-budget records, so that a run started with the profile's
defaults (the training notebook, ``spineseg train``) is trained as the study's runs are. The
budget seed (every model at B and B/2, ``scripts/budget_seed.sh``,
:mod:`spineseg_core.study.plateau`) started at 2940 (5x, the first budget issue 24 proposes) and
raised it once to this (``results/plateau/budget.json`` says why). Its runs and the re-run's
come from the code it pinned, where this constant is still 2940, with ``-p steps`` 5880."""

PAPER_STEPS = 52200
"""The paper profile's budget: its about 120 epochs (Figure 19) over about 1,740 training slices
at batch 4, i.e. 120 x 435 optimiser steps."""


PROFILE_DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.SMOKE: dict(phantom_cases=6, phantom_size=64, image_size=64, epochs=1,
                        batch_size=4, max_train_slices_per_epoch=32, hd95=False, test_cases=3),
    # The study's miniature for a 2-core CPU: 80 phantom cases (64 train / 16 validation, so
    # that validation holds the rare levels: study.validation) written at 256 px (1.2 mm),
    # resampled to 128 px (2.4 mm), training slices cropped to a random 64 px band around the
    # spine; 40 fresh test cases. One budget for every model (CONTRIBUTING, "Equal budgets"),
    # in optimiser steps with a cosine decay to the budget: a larger pool costs evaluation
    # time only. CPU_STEPS: the budget the budget seed settled on (see its docstring).
    Profile.CPU: dict(phantom_cases=80, phantom_size=256, image_size=128, crop_width=0.5,
                      epochs=6, steps=CPU_STEPS, batch_size=4, scheduler="cosine"),
    Profile.PAPER: dict(phantom_cases=200, phantom_size=880, image_size=880, epochs=120,
                        steps=PAPER_STEPS, batch_size=4, scheduler="cosine"),
}
"""Per-profile values; everything else comes from the :class:`TrainConfig` defaults. Every
model of a profile gets the same values, but for the few listed, with their reasons, in
:data:`~spineseg_core.training.budgets.BUDGET_EXCEPTIONS`; no per-family budget."""

_HINTS = typing.get_type_hints(TrainConfig)
PARAMETERS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
"""Names :func:`resolve_config` accepts."""

MAPPING_PARAMETERS: tuple[str, ...] = tuple(
    name for name in PARAMETERS
    if dict in (typing.get_origin(a) for a in (_HINTS[name], *typing.get_args(_HINTS[name]))))
"""Parameters whose value is a mapping (given as JSON text on a command line)."""

_POSITIVE = {"epochs", "steps", "phantom_cases", "test_cases", "phantom_size", "image_size", "batch_size",
             "val_every",
             "k_folds", "max_cases", "max_train_slices_per_epoch", "threads"}
_NON_NEGATIVE = {"warmup_steps", "seed", "fold", "num_workers", "phantom_seed", "phantom_test_seed"}
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
    why = ""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError as exc:
            why = f"; not JSON: {exc}"
    raise ConfigError(f"{name}: expected a mapping of parameter names to values (a dict, or "
                      f"JSON text such as '{{\"epochs\": 2}}'), got {value!r} "
                      f"({type(value).__name__}){why}")


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


PAPER_PHANTOM_COST = ("264 cases at 880 px, about 30 min on one core and 12 GB of RAM before "
                      "the first step")
"""What the paper profile's phantom costs to build (code review of issue 22, measured at about
7 s a case on one core): 200 training cases, 40 test cases and their unlabelled extras."""


def _check_data(cfg: TrainConfig) -> None:
    """The paper profile trains on real data; its phantom only when asked for explicitly."""
    if cfg.phantom and cfg.data_dir is not None:
        raise ConfigError(f"phantom: True trains on the procedural phantom, but data_dir "
                          f"{str(cfg.data_dir)!r} is also given; give one of them")
    if cfg.profile is Profile.PAPER and cfg.data_dir is None and not cfg.phantom:
        raise ConfigError(f"data_dir: the paper profile trains on the real data (give data_dir, "
                          f"the MRSpineSeg folder), or pass phantom=True to build its phantom "
                          f"instead ({PAPER_PHANTOM_COST})")


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
    if not 0.0 < cfg.test_fraction < 1.0:
        raise ConfigError(f"test_fraction: expected a fraction in (0, 1), got {cfg.test_fraction}")
    if cfg.data_dir is None and cfg.phantom_seed == cfg.phantom_test_seed:
        raise ConfigError(f"phantom_test_seed: must differ from phantom_seed "
                          f"({cfg.phantom_seed}), or the test cases would be training cases")
    if cfg.steps is not None and cfg.warmup_steps >= cfg.steps:
        raise ConfigError(f"warmup_steps: expected fewer than the budget's {cfg.steps} steps, "
                          f"got {cfg.warmup_steps}")
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


def _model_name(name: str) -> str:
    from spineseg_core.models import canonical_name

    try:
        return canonical_name(name)
    except ConfigError as exc:
        raise ConfigError(f"model: {exc}") from None


def _check_names(cfg: TrainConfig) -> None:
    from spineseg_core.losses import LossName
    from spineseg_core.models import model_info

    try:
        model_info(cfg.model)
    except ConfigError as exc:
        raise ConfigError(f"model: {exc}") from None
    if cfg.model_kwargs:
        from spineseg_core.models import build_model

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
    if cfg.loss_kwargs:
        from spineseg_core.losses import build_loss

        build_loss(cfg.loss, None, cfg.loss_kwargs)
    if cfg.test_dir is not None and not cfg.test_dir.is_dir():
        raise ConfigError(f"test_dir: expected an existing folder, got {str(cfg.test_dir)!r}")
    if cfg.data_dir is not None and not cfg.data_dir.is_dir():
        raise ConfigError(f"data_dir: expected an existing folder, got {str(cfg.data_dir)!r}")


def resolve_config(profile: str | Profile = Profile.CPU, *, exceptions: bool = True,
                   **overrides: Any) -> TrainConfig:
    """The validated :class:`TrainConfig` of ``profile`` with ``overrides`` applied.

    The model's budget exception on ``profile``
    (:data:`~spineseg_core.training.budgets.BUDGET_EXCEPTIONS`) overlays the profile's values,
    so every entry point resolves a model alike; an override given explicitly still wins
    (``model_kwargs`` key by key); ``exceptions=False`` leaves them out (a recorded run's
    ``params.json`` already holds every value it used, ``None`` included). An override of
    ``None`` keeps the profile's (or the model's) value (so notebook and command-line
    parameters can default to ``None``). Unknown names,
    wrong types and out-of-range values raise :class:`ConfigError` naming the parameter. The
    device is checked where the run executes
    (:func:`~spineseg_core.training.device.resolve_device`), not here, so a Slurm study can ask
    for CUDA from a login node without a GPU.
    """
    prof = _coerce("profile", profile, Profile)
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(PARAMETERS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(given.get("model"), str):  # the stable name, whatever the spelling (TransUNet)
        given["model"] = _model_name(given["model"])
    model = given.get("model", TrainConfig.model)
    budget = model_budget(model, prof) if exceptions and isinstance(model, str) else {}
    values: dict[str, Any] = {**PROFILE_DEFAULTS[prof], **budget, "profile": prof}
    if "epochs" in given and "steps" not in given:
        values["steps"] = None  # an epoch budget asked for replaces the profile's step budget
    values.update(given)
    checked = {k: _coerce(k, v, _HINTS[k]) for k, v in values.items()}
    if budget.get("model_kwargs") and "model_kwargs" in given:  # the user's keys win, key by key
        checked["model_kwargs"] = {**budget["model_kwargs"], **(checked["model_kwargs"] or {})}
    if exceptions:
        plain = TrainConfig()  # what a value the profile leaves unset takes
        checked["model_kwargs"] = _stride_rule(
            *(checked.get(k, getattr(plain, k))
              for k in ("model", "image_size", "crop_width", "model_kwargs")))
    cfg = TrainConfig(**checked)
    _check_data(cfg)
    _check_ranges(cfg)
    _check_names(cfg)
    return cfg


def _stride_rule(model: str, image_size: int, crop_width: float | None,
                 model_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """``model_kwargs`` with the one stride rule applied (:mod:`spineseg_core.models.stride`):
    a model whose encoder takes an ``output_stride`` and whose default would leave its deepest
    map too narrow on this grid gets the rule's stride; a stride the user (or a budget
    exception) gave wins, and a model the rule leaves alone keeps ``model_kwargs`` as they were
    (so ``params.json`` shows a stride only where the grid changed it)."""
    from spineseg_core.models.stride import default_stride, stride_for

    if "output_stride" in (model_kwargs or {}):
        return model_kwargs
    stride = stride_for(model, image_size, crop_width)
    if stride is None or stride == default_stride(model):
        return model_kwargs
    return {**(model_kwargs or {}), "output_stride": stride}


BUDGET_FIELDS: tuple[str, ...] = ("epochs", "steps", "warmup_steps", "batch_size", "lr",
                                  "scheduler", "amp", "image_size",
                                  "crop_width", "max_train_slices_per_epoch", "phantom_cases",
                                  "test_cases")
"""What a profile gives every model alike (the protocol's equal budgets)."""


def budget_exceptions(params: dict[str, Any],
                      base: dict[str, Any] | None = None) -> list[str]:
    """The budget fields of a run's ``params.json`` that differ from its profile's values, as
    ``"name=value (profile: default)"``, then its ``model_kwargs`` when it set any (the model
    built other than by its defaults, e.g. DANet's output stride); empty for a run on the
    profile's budget and the model's defaults. ``base`` gives the profile's values instead of
    today's code (a study's runs made by an older version: :func:`consensus_budget`)."""
    if base is None:
        try:
            profile = Profile(params.get("profile"))
        except ValueError:
            return [f"profile={params.get('profile')!r} (not a known profile)"]
        # The profile's values (phantom=True keeps the paper profile's check of its data quiet).
        base = resolve_config(profile, exceptions=False, phantom=True).to_dict()
    fields = [k for k in BUDGET_FIELDS if k in base and not (
        k == "epochs" and base.get("steps") is not None and params.get("steps") is not None)]
    out = [f"{k}={params[k]!r} (profile: {base[k]!r})" for k in fields
           if k in params and params[k] != base[k]]
    if params.get("model_kwargs"):
        out.append(f"model_kwargs={params['model_kwargs']!r} (profile: the model's defaults)")
    return out


def consensus_budget(runs_params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The budget the runs of one group share: per budget field, the value most of them
    recorded (on a tie, today's profile value when it is among the most common, else the first
    seen). Against it, a run's :func:`budget_exceptions` are its departures from its own
    study's budget, whichever code version made the study; against today's profile every run
    of an older version would differ wherever the profile has changed since."""
    out: dict[str, Any] = {}
    profiles = {p.get("profile") for p in runs_params}
    today: dict[str, Any] = {}
    if len(profiles) == 1:
        try:
            today = resolve_config(Profile(profiles.pop()), exceptions=False,
                                   phantom=True).to_dict()
        except ValueError:
            today = {}
    for field in BUDGET_FIELDS:
        values = [json.dumps(p[field], sort_keys=True, default=str) for p in runs_params
                  if field in p]
        if not values:
            continue
        counts = Counter(values)
        top = max(counts.values())
        modes = [v for v in dict.fromkeys(values) if counts[v] == top]
        now = json.dumps(today.get(field), sort_keys=True, default=str) if field in today else None
        out[field] = json.loads(now if now in modes else modes[0])
    return out


def lr_factor(step: int, total: int, scheduler: Scheduler | str, warmup: int = 0) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of a run of ``total`` steps, as a
    fraction of the initial rate: a linear warm-up over the first ``warmup`` steps
    (``(step + 1) / warmup``), then 1 (``constant``) or a half cosine that reaches 0 at
    ``total`` (``cosine``; the last step still gets a small positive rate)."""
    if step < warmup:
        return (step + 1) / warmup
    if Scheduler(scheduler) is Scheduler.CONSTANT:
        return 1.0
    span = max(total - warmup, 1)
    done = min(step - warmup, span) / span
    return 0.5 * (1.0 + math.cos(math.pi * done))


def planned_epochs(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """How many epochs ``cfg`` trains when an epoch is ``steps_per_epoch`` optimiser steps:
    ``epochs``, or with a step budget ``ceil(steps / steps_per_epoch)`` (the last partial)."""
    if cfg.steps is None:
        return cfg.epochs
    return math.ceil(cfg.steps / max(steps_per_epoch, 1))


def planned_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The optimiser steps ``cfg`` makes: ``steps``, or ``epochs`` whole epochs of
    ``steps_per_epoch``. The schedule (:func:`lr_factor`) ends here."""
    return cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
