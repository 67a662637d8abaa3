"""The runs at the plateau budget, in order (issues 24 and 25), and what each costs.

:func:`seed_plan` is the budget seed (every model at B/2 and B, seed 0, cheapest first: the part
``seed`` of ``scripts/plateau_rerun.py``, which ``scripts/budget_seed.sh`` runs);
:func:`rerun_plan` is everything after it (the script's later parts); ``scripts/gpu_study.py``
takes both, in that order, on a lent GPU.

A sitting of this project lasts a few hours on whatever processor it is given, so a re-run that
makes a whole seed per sitting lets one processor type make all of one family's runs of that
seed. :func:`interleave` orders the runs so that the families alternate and a model's seeds are
several runs apart (each pass starts at a different place in the order). :func:`plan_cost`
prices the runs from measured seconds per optimiser step: :func:`wall_rates` those the runs
at the budget have measured so far (validation included), :func:`wall_priced` the rest.
:data:`HOLDS` names the models whose runs the pinned code cannot make right (:func:`held`):
the plan lists them and starts none until such a model has a pin of its own at a commit with
the mend (:func:`mend_pins`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING

from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.records import has_record
from spineseg_core.study.runner import RunSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ScheduledRun:
    """One run of a re-run: the part of the plan it belongs to, the study's run and the
    parameters it changes (``-p``), and what ``spineseg study`` is given to make it alone."""

    part: str
    spec: RunSpec
    steps: int
    params: Mapping[str, str] = field(default_factory=dict)

    def study_args(self) -> list[str]:
        """``spineseg study`` arguments that make this run alone."""
        args = ["--profile", self.spec.profile, "--models", self.spec.model,
                "--seeds", str(self.spec.seed), "--folds", str(self.spec.fold)]
        if self.spec.variant:
            args += ["--variant", self.spec.variant]
        if self.spec.loss:
            args += ["--losses", self.spec.loss]
        for key, value in self.params.items():
            args += ["-p", key, value]
        return args

    def recorded(self, records_dir: str | Path) -> bool:
        """Whether its record is in ``records_dir`` (the re-run skips it)."""
        return has_record(self.spec.run_dir(records_dir))


def alternate(models: Sequence[str], family: Callable[[str], str]) -> list[str]:
    """``models`` with their families taken in turn (round robin, each family in its given
    order; families in order of first appearance)."""
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(family(model), []).append(model)
    return [m for row in zip_longest(*groups.values()) for m in row if m is not None]


def interleave(models: Sequence[str], seeds: Sequence[int],
               family: Callable[[str], str]) -> list[tuple[str, int]]:
    """Every ``(model, seed)`` pair, one pass of :func:`alternate`'s order per seed, each pass
    rotated by ``shift``, about ``len(models) / len(seeds)`` (a whole number of turns of the
    families, so that they still alternate across the seam of two passes), more than the last.
    What it guarantees: the families alternate while both have models left in a pass (with
    unequal families the larger one ends each pass with a short run of its own), and a model's
    consecutive seeds are at least ``shift`` runs apart (6 for the twelve and two seeds: a
    sitting that makes more than 6 runs can still make both seeds of a model)."""
    if len(set(models)) != len(models) or len(set(seeds)) != len(seeds):
        raise ConfigError("interleave: models and seeds must not repeat")
    order = alternate(models, family)
    if not order or not seeds:
        return []
    turn = len({family(m) for m in order})
    shift = max(turn, len(order) // len(seeds) // turn * turn)
    runs = []
    for i, seed in enumerate(seeds):
        start = (i * shift) % len(order)
        runs += [(m, seed) for m in order[start:] + order[:start]]
    return runs


def plan_cost(runs: Sequence[ScheduledRun], seconds_per_step: Mapping[str, float],
              image_size: int, done_steps: Sequence[int] | None = None) -> dict[str, float]:
    """Hours per part of ``runs`` at ``seconds_per_step`` (per model, measured at
    ``image_size``; a run given another ``image_size`` scales with its pixels), each run priced
    by :func:`run_hours` for the steps after its ``done_steps`` (one per run, made before an
    interruption; none by default). A model without a measured rate raises: an unpriced run
    would make the plan look cheaper than it is."""
    missing = sorted({r.spec.model for r in runs} - set(seconds_per_step))
    if missing:
        raise ConfigError(f"plan_cost: no measured seconds per step for {', '.join(missing)}")
    done = [0] * len(runs) if done_steps is None else list(done_steps)
    if len(done) != len(runs):
        raise ConfigError(f"plan_cost: {len(done)} done_steps for {len(runs)} runs")
    hours: dict[str, float] = {}
    for run, steps in zip(runs, done, strict=True):
        hours[run.part] = hours.get(run.part, 0.0) + run_hours(run, seconds_per_step,
                                                               image_size, steps)
    return hours


def run_hours(run: ScheduledRun, seconds_per_step: Mapping[str, float], image_size: int,
              done_steps: int = 0) -> float:
    """Hours ``run`` still needs: its steps after ``done_steps`` (made before an interruption,
    resumed from its checkpoint) at its model's ``seconds_per_step``, measured at
    ``image_size`` and scaled by pixels for a run at another size; infinite for a model
    without a rate (an unpriced run never looks cheap)."""
    rate = seconds_per_step.get(run.spec.model)
    if rate is None:
        return math.inf
    scale = (int(run.params.get("image_size", image_size)) / image_size) ** 2
    return rate * max(run.steps - done_steps, 0) * scale / 3600


def fits_in_turn(hours_needed: Sequence[float], hours: float) -> list[bool]:
    """Which runs, taken in order, a sitting of ``hours`` starts when it skips any run that
    would not finish in the time left and tries the next: a sitting that ends inside a run
    leaves a checkpoint that only the same machine can resume. The live loop
    (``scripts/plateau_rerun.py --hours``) applies the same test to the clock. Infinite
    ``hours`` (no limit) takes every run, an unpriced (infinite) one too, as the live loop does
    without ``--hours``."""
    if math.isinf(hours):
        return [True] * len(hours_needed)
    left, taken = hours, []
    for need in hours_needed:
        taken.append(need <= left)
        left -= need if taken[-1] else 0.0
    return taken


SEED_ORDER: tuple[str, ...] = (
    "miniseg", "unet", "denseaspp", "pspnet", "resunetpp", "deeplabv3plus", "danet",
    "attention_unet", "emanet", "transunet", "infnet", "psanet",
    "unet_25d3", "unet_25d5", "deeplabv3plus_25d3", "deeplabv3plus_25d5", "unet3d")
"""The budget seed's models in the order fixed when it started: the twelve, the cheap MiniSeg
and U-Net first so that plateau labels land early, then the context models."""

@dataclass(frozen=True)
class Hold:
    """The runs of ``model`` that the plan does not start while the study's code is pinned at
    a commit beginning with ``commit``, because that code measures them wrongly (``reason``).
    A pin of the model's own (:func:`mend_pin_path`) at a commit that holds the mend (``mend``,
    a commit prefix) lifts it: that model's runs are made from its pin, every other model's
    still from the study's."""

    model: str
    commit: str
    mend: str
    reason: str


HOLDS: tuple[Hold, ...] = (
    Hold("unet3d", "ae16a7c963d1", "24c005424b9f",
         "the pinned code scores a volume alone at its own depth, not padded with zero slices "
         "to the depth it trained at (mended in 24c0054, after the pin; what it cost: "
         "results/plateau/unet3d_depth.csv), so its runs wait for a pin of their own at a "
         "commit with the mend (scripts/plateau_rerun.py --mend unet3d)"),
)
"""The holds in force (issue 24's closing notes say why each was put)."""


def mend_pin_path(folder: str | Path, model: str) -> Path:
    """The pin of ``model``'s own code version beside the study's ``CODE`` in ``folder``
    (``CODE.<model>``, the same one line ``<commit> <fingerprint>``:
    :func:`~spineseg_core.fingerprint.read_pin`), written by ``scripts/plateau_rerun.py
    --mend``."""
    return Path(folder) / f"CODE.{model}"


def mend_pins(folder: str | Path,
              holds: Sequence[Hold] | None = None) -> dict[str, tuple[str, str]]:
    """The models of ``holds`` (default :data:`HOLDS`) that have a pin of their own in
    ``folder``, each with its ``(commit, fingerprint)``."""
    from spineseg_core.fingerprint import read_pin

    return {h.model: read_pin(path) for h in (HOLDS if holds is None else holds)
            if (path := mend_pin_path(folder, h.model)).is_file()}


SUPERSEDED = "superseded"
"""The folder beside ``runs`` in the plateau bundle where ``scripts/plateau_rerun.py --mend``
moves a model's records made from the study's pin (``superseded/<its commit[:12]>/<group>/
<model>/...``)."""


def rate_stamps(folder: str | Path) -> pd.DataFrame:
    """The records that price the plan (:func:`wall_rates`): those of ``folder/runs`` and the
    superseded ones (:data:`SUPERSEDED`), whose training a model's own pin repeats step for
    step (``scripts/check_mend.py``), so they measured its step rate all the same."""
    import pandas as pd

    from spineseg_core.study.machines import record_stamps

    found = [record_stamps(Path(folder) / "runs"),
             *(record_stamps(d) for d in sorted((Path(folder) / SUPERSEDED).glob("*")))]
    return pd.concat([f for f in found if len(f)] or found[:1], ignore_index=True)


def held(commit: str, holds: Sequence[Hold] | None = None,
         mended: Collection[str] = ()) -> dict[str, str]:
    """The models of ``holds`` (default :data:`HOLDS`) held while the code is pinned at
    ``commit`` (full, or its first 12 hex digits: the pinned checkout's folder name), each with
    its reason; a model in ``mended`` (:func:`mend_pins`) runs from its own pin and is not
    held."""
    return {h.model: h.reason for h in (HOLDS if holds is None else holds)
            if len(commit) >= len(h.commit) and commit.startswith(h.commit)
            and h.model not in mended}


RERUN_PARTS: tuple[str, ...] = ("main", "loss", "res256", "context", "more")
"""The re-run's parts in priority order (:func:`rerun_plan`)."""

SEED_PART = "seed"
"""The part of the budget seed (:func:`seed_plan`)."""

PARTS: tuple[str, ...] = (SEED_PART, *RERUN_PARTS)
"""Every part at the plateau budget, in the order they are made."""

REQUIRED_PARTS: tuple[str, ...] = (SEED_PART, "main", "loss", "res256")
"""The parts the re-run needs before it is done (issue 25: three seeds of the twelve, the loss
runs, the resolution check and the context study at seed 0, which the seed makes); the context
models' seeds 1-2 and seeds 3-4 of the twelve come as the cost allows."""

PART_TEXT: dict[str, str] = {
    SEED_PART: "the budget seed: seed 0 of every model at B and at B/2",
    "main": "the twelve models, seeds 1 and 2",
    "loss": "the loss runs, seeds 0-2",
    "res256": "the resolution check at 256 px, seed 0",
    "context": "the context models, seeds 1 and 2",
    "more": "the twelve models, seeds 3 and 4",
}
"""What each part makes, in words (the book's plan table)."""


def rerun_losses() -> tuple[str, ...]:
    """The losses of the re-run's loss runs: every loss but the profile's own (Dice +
    cross-entropy, the main group's)."""
    from spineseg_core.losses import LossName
    from spineseg_core.training.config import TrainConfig

    return tuple(str(loss) for loss in LossName if loss != TrainConfig.loss)


def priced_rates(bench_rates: Mapping[str, float], models: Sequence[str]) -> dict[str, float]:
    """Seconds per step for ``models`` from measured ``bench_rates`` (model-only, e.g.
    :func:`spineseg_core.measure.speed.bench_seconds_per_step` of ``bench.csv``); a 2.5D model
    (its 2D base with 3 or 5 input channels, the same convolutions after the first) is priced
    at its base's rate. A model with neither (the 3D U-Net, whose step is a volume) is left
    out: callers name it as unpriced."""
    rate = {m: bench_rates[m] for m in models if m in bench_rates}
    for model in set(models) - set(rate):
        base = model.split("_25d")[0]
        if base != model and base in bench_rates:
            rate[model] = bench_rates[base]
    return rate


def wall_rates(stamps: pd.DataFrame, image_size: int = 128) -> dict[str, float]:
    """Wall-clock seconds per optimiser step per model, training and validation together, as
    the records of ``stamps`` (:func:`spineseg_core.study.machines.record_stamps`) measured
    them: per run, the median over its epochs of the epoch's seconds over its steps (its
    ``history.csv``; the median, so that an epoch paused or slowed by another process does not
    price the rest), scaled to ``image_size`` by pixels; per model, the median over its runs.
    Hard-case records are left out (a run's scores on other test sets, with that run's
    history); no records, no rates."""
    import pandas as pd

    per_model: dict[str, list[float]] = {}
    for row in stamps[~stamps["hard"]].itertuples():
        path = Path(row.record) / "history.csv"
        try:
            history = pd.read_csv(path, usecols=["step", "epoch_seconds"])
        except (OSError, ValueError) as e:
            raise DataError(path, f"not a readable run history ({e})") from e
        made = history["step"].diff().fillna(history["step"])
        rate = (history["epoch_seconds"] / made)[made > 0].dropna()
        if len(rate):
            size = image_size if pd.isna(row.image_size) else int(row.image_size)
            per_model.setdefault(row.model, []).append(
                float(rate.median()) * (image_size / size) ** 2)
    return {m: statistics.median(v) for m, v in per_model.items()}


def wall_priced(bench_rates: Mapping[str, float], measured: Mapping[str, float],
                models: Sequence[str]) -> tuple[dict[str, float], float | None]:
    """Wall-clock seconds per step for ``models``, and the factor used: a model's own
    ``measured`` rate (:func:`wall_rates`) where it has one, else its model-only
    ``bench_rates`` (:func:`priced_rates`) times the median, over every model with both
    (not only ``models``), of measured over bench rate, so that a model not yet trained is
    priced with validation and the training machine's speed too. The factor is ``None``
    (bench rates unchanged) when no model has both; a 2.5D model takes its base's rates,
    the 3D U-Net stays unpriced."""
    own, bench = priced_rates(measured, models), priced_rates(bench_rates, models)
    both = [measured[m] / bench_rates[m] for m in measured if bench_rates.get(m, 0) > 0]
    factor = statistics.median(both) if both else None
    rate = {m: r * (factor or 1.0) for m, r in bench.items()}
    return rate | own, factor


def relative_rates(rate: Mapping[str, float], older: pd.DataFrame | None,
                   models: Sequence[str]) -> dict[str, float]:
    """Seconds per step for the ``models`` that ``rate`` lacks (the 3D U-Net before its first
    run at the budget), from an older study's records (``older``: one row per run with
    ``model``, ``processor``, ``train_seconds``, ``epochs_completed`` and ``steps_per_epoch``,
    such as the 6-epoch bundle's ``context.csv``): on each processor of those records, the
    model's median seconds per step over that of each model ``rate`` prices, times that
    model's rate; the median over those products. A model absent from ``older`` stays out."""
    missing = [m for m in models if m not in rate]
    if older is None or older.empty or not missing:
        return {}
    runs = older.assign(s=older["train_seconds"] / (older["epochs_completed"]
                                                    * older["steps_per_epoch"]))
    median = runs.groupby(["processor", "model"])["s"].median()
    out = {}
    for model in missing:
        products = [median[(proc, model)] / median[(proc, ref)] * rate[ref]
                    for proc, ref in median.index if ref in rate and (proc, model) in median]
        if products:
            out[model] = float(statistics.median(products))
    return out


def plan_rates(bench_rates: Mapping[str, float], measured: Mapping[str, float],
               older: pd.DataFrame | None, models: Sequence[str]
               ) -> tuple[dict[str, float], float | None]:
    """The rates a plan is priced at, and :func:`wall_priced`'s factor: :func:`wall_priced`
    (measured, else bench times the factor), then :func:`relative_rates` for a model neither
    prices, by its ratio to every model with a rate of its own (benchmarked or measured), not
    to those ``models`` happens to hold: a model's price does not hang on which others the
    plan holds (the 3D U-Net alone is priced as in the whole plan)."""
    rate, factor = wall_priced(bench_rates, measured, models)
    every, _ = wall_priced(bench_rates, measured, sorted({*bench_rates, *measured}))
    return rate | relative_rates(every, older, [m for m in models if m not in rate]), factor


def plan_status(runs: Sequence[ScheduledRun], records_dir: str | Path,
                rate: Mapping[str, float], image_size: int = 128,
                holds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per part of ``runs`` (in :data:`PARTS` order): what it makes, whether the re-run needs
    it (:data:`REQUIRED_PARTS`), its runs, how many are recorded in ``records_dir``, how many
    are to do, how many of those are held (their model in ``holds``: :func:`held`), the hours
    of the others at ``rate`` (:func:`plan_cost`) and the models of those left unpriced (no
    rate)."""
    import pandas as pd

    holds = holds or {}
    rows = []
    for part in [p for p in PARTS if any(r.part == p for r in runs)]:
        mine = [r for r in runs if r.part == part]
        todo = [r for r in mine if not r.recorded(records_dir)]
        free = [r for r in todo if r.spec.model not in holds]
        priced = [r for r in free if r.spec.model in rate]
        rows.append({"part": part, "what": PART_TEXT.get(part, part),
                     "required": part in REQUIRED_PARTS, "runs": len(mine),
                     "recorded": len(mine) - len(todo), "to_do": len(todo),
                     "held": len(todo) - len(free),
                     "hours_left": plan_cost(priced, rate, image_size).get(part, 0.0),
                     "unpriced": ", ".join(sorted({r.spec.model for r in free} - set(rate)))})
    return pd.DataFrame(rows, columns=["part", "what", "required", "runs", "recorded", "to_do",
                                       "held", "hours_left", "unpriced"])


def _run(part: str, model: str, seed: int, steps: int, params: Mapping[str, str],
         profile: str, **kw: str | None) -> ScheduledRun:
    return ScheduledRun(part, RunSpec(profile, model, seed, 0, **kw), steps, dict(params))


def seed_plan(steps: int, steps_given: bool = False, profile: str = "cpu",
              models: Sequence[str] = SEED_ORDER) -> list[ScheduledRun]:
    """The budget seed: each model of ``models`` at B/2 (group ``<profile>-half``, its own
    complete schedule) and then at B (``steps``; passed as a parameter only when
    ``steps_given``, a budget raised from the pinned code's), seed 0."""
    from spineseg_core.study.plateau import HALF_VARIANT, half_steps

    full = {"steps": str(steps)} if steps_given else {}
    half = half_steps(steps)
    runs = []
    for model in models:
        runs.append(_run(SEED_PART, model, 0, half, {"steps": str(half)}, profile,
                         variant=HALF_VARIANT))
        runs.append(_run(SEED_PART, model, 0, steps, full, profile))
    return runs


def rerun_plan(steps: int, steps_given: bool = False, profile: str = "cpu"
               ) -> list[ScheduledRun]:
    """Every run of the re-run after the seed, in :data:`RERUN_PARTS` order: seeds 1-2 of the
    twelve (:func:`interleave`), the loss runs of ``study.loss_study.LOSS_MODELS`` (seeds 0-2),
    the resolution check's models at 256 px (seed 0), the context models' seeds 1-2, seeds 3-4
    of the twelve."""
    from spineseg_core.models import CONTEXT_MODEL_NAMES, list_models, model_info
    from spineseg_core.report.resolution import RESOLUTION_MODELS
    from spineseg_core.study.loss_study import LOSS_MODELS

    params = {"steps": str(steps)} if steps_given else {}

    def family(model: str) -> str:
        return str(model_info(model).family)

    def run(part: str, model: str, seed: int, extra: Mapping[str, str] | None = None,
            **kw: str | None) -> ScheduledRun:
        return _run(part, model, seed, steps, {**params, **(extra or {})}, profile, **kw)

    twelve = list_models()
    runs = [run("main", m, s) for m, s in interleave(twelve, [1, 2], family)]
    runs += [run("loss", m, s, loss=loss) for s in (0, 1, 2) for loss in rerun_losses()
             for m in LOSS_MODELS]
    runs += [run("res256", m, 0, {"image_size": "256"}, variant="res256")
             for m in RESOLUTION_MODELS]
    runs += [run("context", m, s) for m, s in interleave(list(CONTEXT_MODEL_NAMES), [1, 2],
                                                          family)]
    runs += [run("more", m, s) for m, s in interleave(twelve, [3, 4], family)]
    return runs
