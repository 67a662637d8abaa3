"""Trained models on the phantom's hard cases: transitional vertebrae and fields of view that
miss the sacrum (issue 13).

A hard-case set is the study's own test set with one hard case switched on for every subject:
the same ``test_cases`` subjects of the test seed, each the *twin* of its default test subject
(:mod:`spineseg_core.data.phantom.hard`: a hard case shares every other draw with its default
twin), so a model's answers on a hard case pair with its answers on the same subject without
it. :data:`HARD_SETS` names the three sets:

- ``sacralised_l5``: L5 fused into the sacrum and labelled ``S``; the levels above are labelled
  one level lower than their anatomy, as MRSpineSeg counts up from the sacrum;
- ``lumbarised_s1``: a mobile S1 labelled ``L5``, the levels above one level higher;
- ``fov_cut``: the field cut through or above the sacrum; labels keep their anatomical names.

:func:`score_hard_set` scores a finished run's best checkpoint on one set exactly as the run
scored its test set (the run's configuration, input kind, precision and evaluation code; only
the test folder differs) and writes the result as a run folder of the group
``<group>-hard-<set>`` (:func:`hard_group`) with the source run's ``params.json`` and
``history.csv`` and a ``rescored`` entry saying what was scored, by which code. Recorded like
any run (:mod:`spineseg_core.study.records`), those groups are what ``spineseg levels`` reads to
show how each model, and the relabelling from the sacrum, fare on hard cases. They are never
variants of the study (:func:`is_hard_group`).

Checkpoints are not committed, so only runs whose checkpoints are still on this machine can be
scored: ``spineseg hardcases`` says which runs it skipped and why.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from spineseg_core import io
from spineseg_core.data.cache import cache_root
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.training.config import PARAMETERS, TrainConfig, resolve_config
from spineseg_core.training.run_folder import RunFolder, find_runs, load_model


class HardSet(StrEnum):
    """The hard-case sets every finished run can be scored on."""

    SACRALISED_L5 = "sacralised_l5"
    LUMBARISED_S1 = "lumbarised_s1"
    FOV_CUT = "fov_cut"


HARD_SETS: dict[HardSet, dict[str, float]] = {
    HardSet.SACRALISED_L5: {"sacralised_l5_rate": 1.0},
    HardSet.LUMBARISED_S1: {"lumbarised_s1_rate": 1.0},
    HardSet.FOV_CUT: {"fov_cut_rate": 1.0},
}
"""The phantom's hard-case rates of each set: every subject of a set has its hard case."""

HARD_MARK = "-hard-"
"""What a hard-case group's name holds between its source group and its set."""


def hard_group(group: str, hard: HardSet | str) -> str:
    """The group of ``group``'s runs scored on ``hard`` (``cpu`` → ``cpu-hard-fov_cut``)."""
    return f"{group}{HARD_MARK}{HardSet(hard).value}"


def is_hard_group(name: str) -> bool:
    """Whether a group holds runs rescored on a hard-case set (not runs of their own)."""
    return HARD_MARK in name


def source_group(name: str) -> tuple[str, HardSet]:
    """``cpu-hard-fov_cut`` → ``("cpu", HardSet.FOV_CUT)``; a :class:`ConfigError` otherwise."""
    group, mark, hard = name.rpartition(HARD_MARK)
    if not mark or not group:
        raise ConfigError(f"group: {name!r} is not a hard-case group (<group>{HARD_MARK}<set>)")
    try:
        return group, HardSet(hard)
    except ValueError:
        raise ConfigError(f"group: {name!r} names the unknown set {hard!r}; valid: "
                          f"{', '.join(h.value for h in HardSet)}") from None


def run_config(run: RunFolder) -> TrainConfig:
    """The configuration a run trained with, from its ``params.json`` (names the current code
    no longer knows are left out; a run of any profile is rebuilt on its own profile)."""
    params = run.load_params()
    if "profile" not in params or "model" not in params:
        raise DataError(run.params, "expected the run's configuration (profile, model, ...)")
    known = {k: params[k] for k in PARAMETERS if k in params and k != "profile"}
    # The recorded values as they are: a model's budget exception of today does not rewrite
    # a run made without it (e.g. DANet's model_kwargs=None, stride 32).
    return resolve_config(params["profile"], exceptions=False, **known)


def hard_set_root(cfg: TrainConfig, hard: HardSet | str) -> Path:
    """The hard-case twin of ``cfg``'s phantom test set, generated once into the cache
    (``<cache>/phantom_hard/<set>_n<cases>_px<size>_seed<test seed>``)."""
    from spineseg_core.data.phantom import ensure_phantom
    from spineseg_core.data.phantom.params import PhantomParams

    if cfg.data_dir is not None or cfg.test_dir is not None:
        raise ConfigError("hard cases: the run was tested on real data, not on the phantom; "
                          "hard-case sets exist for phantom runs only")
    hard = HardSet(hard)
    root = (cache_root() / "phantom_hard"
            / f"{hard.value}_n{cfg.test_cases}_px{cfg.phantom_size}_seed{cfg.phantom_test_seed}")
    params = dataclasses.replace(PhantomParams(), **HARD_SETS[hard])
    return Path(ensure_phantom(root, cases=cfg.test_cases, seed=cfg.phantom_test_seed,
                               size=cfg.phantom_size, params=params, test_cases=0))


def score_hard_set(run_dir: str | Path, hard: HardSet | str, out_dir: str | Path, *,
                   device: str | torch.device = "cpu",
                   test_dir: str | Path | None = None) -> dict[str, Any]:
    """Score the best checkpoint of the finished run ``run_dir`` on the hard-case set ``hard``
    and write a run folder at ``out_dir``; return its ``metrics.json``.

    ``test_dir`` replaces the set's phantom (for tests: scoring the run's own test folder must
    give back the run's own test results). ``metrics.json`` is written last.
    """
    from spineseg_core.data.prepare import prepare_data
    from spineseg_core.fingerprint import source_fingerprint
    from spineseg_core.losses import build_loss
    from spineseg_core.models import model_info
    from spineseg_core.training.device import resolve_device
    from spineseg_core.training.evaluate import evaluate, write_final_results
    from spineseg_core.training.precision import autocast as precision_autocast
    from spineseg_core.training.predict import run_precision
    from spineseg_core.training.step import eval_loader, uses_channels_last

    hard = HardSet(hard)
    run, out = RunFolder(Path(run_dir)), RunFolder(Path(out_dir))
    if not run.is_finished():
        raise DataError(run.metrics, "missing: only a finished run can be scored on hard cases")
    if not run.checkpoint_best.is_file():
        raise DataError(run.checkpoint_best, "missing: the run's best checkpoint is needed")
    cfg = run_config(run)
    root = Path(test_dir) if test_dir is not None else hard_set_root(cfg, hard)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    data = prepare_data(dataclasses.replace(cfg, test_dir=root), model_info(cfg.model),
                        slice_augment=False)
    model = load_model(run.path, dev)
    channels_last = uses_channels_last(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = run_precision(run, dev)
    loader = eval_loader(data.test, cfg, num_workers=0)
    res = evaluate(model, loader, dev, build_loss("ce").to(dev),
                   autocast=lambda: precision_autocast(dev, precision),
                   channels_last=channels_last, keep_slices=True)
    out.path.mkdir(parents=True, exist_ok=True)
    out.metrics.unlink(missing_ok=True)
    for src, dst in ((run.params, out.params), (run.history, out.history)):
        io.write_with(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
    params = {**run.load_params(), "rescored": {
        "set": hard.value, "rates": HARD_SETS[hard], "test_dir": str(root),
        "source_run": str(run.path), "source_fingerprint": source_fingerprint(),
        "precision": precision.value}}
    io.write_json(out.params, params)
    spacing = {v.case_id: tuple(float(s) for s in v.spacing) for v in data.test_volumes}
    summary = write_final_results(out, res, spacing, with_hd95=False)
    source = run.load_metrics()
    metrics = {**io.finite_or_none(summary),
               "evaluated_on": f"hard:{hard.value}",
               **{k: source.get(k) for k in ("best_epoch", "val_dice", "epochs_completed",
                                             "train_seconds", "params", "model", "profile",
                                             "seed", "fold")},
               "n_test_cases": len(res.acc.case_ids), "n_test_slices": res.n_slices,
               "test_seconds": round(time.perf_counter() - t0, 3)}
    io.write_json(out.metrics, metrics)
    return metrics


@dataclasses.dataclass(frozen=True)
class ScoringResult:
    """What :func:`score_runs` did with one run and set."""

    run_dir: Path
    hard: HardSet
    out_dir: Path | None   # the scored run folder, None when skipped
    note: str              # "scored", "already scored", or why it was skipped


def score_runs(runs_dir: str | Path, groups: Sequence[str], out_runs: str | Path, *,
               sets: Sequence[HardSet | str] = tuple(HardSet),
               records_dir: str | Path | None = None, device: str = "cpu") -> list[ScoringResult]:
    """Score every finished run of ``groups`` under ``runs_dir`` on each set of ``sets``.

    Results go to ``out_runs/<group>-hard-<set>/<model>/seed_<s>/fold_<f>/``; with
    ``records_dir`` each is also recorded there (:func:`~spineseg_core.study.records.write_record`),
    and a set whose record is already there is not scored again. A run without its best
    checkpoint is skipped, and says so.
    """
    from spineseg_core.study.records import has_record, write_record

    runs_dir, out_runs = Path(runs_dir), Path(out_runs)
    sets = [HardSet(h) for h in sets]
    done: list[ScoringResult] = []
    for group in groups:
        if is_hard_group(group):
            raise ConfigError(f"groups: {group!r} is a hard-case group already")
        for run_dir in find_runs(runs_dir / group):
            rel = run_dir.relative_to(runs_dir / group)
            for hard in sets:
                name = hard_group(group, hard)
                out = out_runs / name / rel
                record = None if records_dir is None else Path(records_dir) / name / rel
                if RunFolder(out).is_finished() or (record is not None and has_record(record)):
                    if record is not None and not has_record(record):
                        write_record(out, record)
                    done.append(ScoringResult(run_dir, hard, out, "already scored"))
                    continue
                if not RunFolder(run_dir).checkpoint_best.is_file():
                    done.append(ScoringResult(run_dir, hard, None, "no checkpoint on this machine"))
                    continue
                score_hard_set(run_dir, hard, out, device=device)
                if record is not None:
                    write_record(out, record)
                done.append(ScoringResult(run_dir, hard, out, "scored"))
    return done
