"""The order of a long re-run's training runs (issue 25), and what each costs.

A sitting of this project lasts a few hours on whatever processor it is given, so a re-run that
makes a whole seed per sitting lets one processor type make all of one family's runs of that
seed. :func:`interleave` orders the runs so that the families alternate within every stretch of
runs and a model's seeds are a whole pass of models apart (each pass starts at a different
place in the order). :func:`plan_cost` prices the runs from measured seconds per optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from spineseg_core.errors import ConfigError
from spineseg_core.study.records import has_record
from spineseg_core.study.runner import RunSpec


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
    rotated by about ``len(models) / len(seeds)`` more than the last (a whole number of turns
    of the families, so that they still alternate across the seam of two passes): no stretch
    of runs is one family, and a model's seeds are far apart."""
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
              image_size: int) -> dict[str, float]:
    """Hours per part of ``runs`` at ``seconds_per_step`` (per model, measured at
    ``image_size``; a run given another ``image_size`` scales with its pixels). A model without
    a measured rate raises: an unpriced run would make the plan look cheaper than it is."""
    missing = sorted({r.spec.model for r in runs} - set(seconds_per_step))
    if missing:
        raise ConfigError(f"plan_cost: no measured seconds per step for {', '.join(missing)}")
    hours: dict[str, float] = {}
    for run in runs:
        scale = (int(run.params.get("image_size", image_size)) / image_size) ** 2
        hours[run.part] = hours.get(run.part, 0.0) + (
            seconds_per_step[run.spec.model] * run.steps * scale / 3600)
    return hours
