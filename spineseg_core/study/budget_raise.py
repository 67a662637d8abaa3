"""Raising the budget once (issue 24): the budget in force, and the moves that let a doubled
budget spend nothing twice.

The budget seed labels every model from its runs at B (group ``<profile>``) and at B/2
(``<profile>-half``). When :func:`spineseg_core.study.plateau.budget_verdict` says B does not
stand, B is raised once, by doubling it: the runs at the old B are then exactly the new B/2
runs (same pinned code, same seed, a complete schedule of their own), so

- the old B/2 runs move aside to ``<profile>-quarter`` (:data:`QUARTER_VARIANT`; kept for the
  rank-versus-budget curve),
- the old B runs become the half group, ``<profile>-half``,
- their hard-case scores go with them (``<profile>-hard-<set>`` to
  ``<profile>-half-hard-<set>``), and their group's test set loses its display images (a side
  group's form: the new main group's records carry them),

in the committed records and in the checkpoints' folder alike: a finished run folder or a record
left under ``<profile>`` would be taken by the study runner, and a hard-case score by ``spineseg
hardcases``, for the new B's and skipped. The new B, the old one and the reason are written to
:data:`BUDGET_FILE` beside the pin (``results/plateau/CODE``), so that every later start of the
seed, the re-run and the GPU study uses the new B without being told (:func:`budget_in_force`),
the book can say why, and a second raise is refused.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from spineseg_core import io
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.plateau import HALF_VARIANT, QUARTER_VARIANT

BUDGET_FILE = "budget.json"
"""The file, beside the pin, that records a raised budget: ``steps`` (the new B),
``raised_from``, ``reason``, ``date``; absent while B is the pinned code's ``CPU_STEPS``."""


def read_raise(plateau_dir: str | Path) -> dict[str, Any] | None:
    """The raise recorded in ``<plateau_dir>/budget.json``, or None when B was not raised.
    Raises :class:`DataError` for a file without a budget of at least 2 steps."""
    path = Path(plateau_dir) / BUDGET_FILE
    if not path.is_file():
        return None
    record = io.read_json(path)
    steps = record.get("steps") if isinstance(record, dict) else None
    if not isinstance(steps, int) or steps < 2:
        raise DataError(path, f"expected 'steps', a budget of at least 2 steps, got {steps!r}")
    return record


def budget_in_force(plateau_dir: str | Path, pinned: int, given: int | None = None) -> int:
    """The budget B of the seed and re-run: the raised one of ``<plateau_dir>/budget.json`` if
    any, else the pinned code's ``pinned``. ``given`` (a ``--steps``) must agree with it: a run
    at another budget would not belong to the study, so it is refused with the reason."""
    raised = read_raise(plateau_dir)
    steps = int(raised["steps"]) if raised else pinned
    if given is not None and given != steps:
        where = (f"{Path(plateau_dir) / BUDGET_FILE} raised it to" if raised
                 else "the pinned code's CPU_STEPS is")
        raise ConfigError(f"--steps {given}: the study's budget is {steps} steps ({where} "
                          f"{steps}); runs at another budget would not belong to it")
    return steps


def at_budget(plateau: pd.DataFrame | None, raised: dict[str, Any] | None) -> pd.DataFrame | None:
    """The rows of ``plateau.csv`` that speak of the budget in force: after a raise
    (``raised``, ``budget.json``), those measured at its steps and those not measured (no
    steps); a bundle aggregated before the raise holds the old budget's labels, which say
    nothing of the new one."""
    if plateau is None or not raised or "steps" not in plateau:
        return plateau
    return plateau[plateau["steps"].isna() | (plateau["steps"] == int(raised["steps"]))]


@dataclass(frozen=True)
class Move:
    """One folder renamed by the raise."""

    source: Path
    target: Path


def doubling_moves(root: str | Path, profile: str = "cpu") -> list[Move]:
    """The renames, in order, that make the groups under ``root`` (a records or a runs folder)
    ready for a doubled budget (module doc); only the folders that exist. Raises
    :class:`ConfigError` when a target is there already (a raise half done, or done before)."""
    from spineseg_core.study.hard_cases import HardSet, hard_group  # it loads torch

    root = Path(root)
    half, quarter = f"{profile}-{HALF_VARIANT}", f"{profile}-{QUARTER_VARIANT}"
    pairs = [(half, quarter), (profile, half)]
    pairs += [(hard_group(profile, h), hard_group(half, h)) for h in HardSet]
    moves = [Move(root / a, root / b) for a, b in pairs if (root / a).exists()]
    # the half group's target is freed by the first move, so only it may exist beforehand
    freed = {root / half} if (root / half).exists() else set()
    taken = [m.target for m in moves if m.target.exists() and m.target not in freed]
    if taken:
        raise ConfigError(f"{root}: {', '.join(t.name for t in taken)} already there; the "
                          "budget was raised before, or a raise stopped half way: look before "
                          "moving anything by hand")
    return moves


def raise_budget(plateau_dir: str | Path, runs_dir: str | Path, old: int, new: int,
                 reason: str, profile: str = "cpu", dry_run: bool = False) -> list[Move]:
    """Raise the budget from ``old`` to ``new`` steps for ``reason``: the moves of
    :func:`doubling_moves` in the records (``<plateau_dir>/runs``) and in the checkpoints'
    folder ``runs_dir``, then ``budget.json`` written (atomically). Only a doubling is done here
    (any other B reuses no run: move both groups aside by hand), and only once. ``dry_run``
    checks and returns the moves without making them."""
    plateau_dir = Path(plateau_dir)
    if (raised := read_raise(plateau_dir)) is not None:
        raise ConfigError(f"{plateau_dir / BUDGET_FILE}: the budget was raised once already "
                          f"(to {raised['steps']} steps); the protocol raises it once")
    if not reason.strip():
        raise ConfigError("--reason: say why the budget is raised (the plateau labels that "
                          "decided it); the book shows it")
    if new != 2 * old:
        raise ConfigError(f"--to {new}: only doubling the budget ({2 * old} steps) turns the "
                          "runs at the old budget into the new half-budget runs; for another "
                          "budget, move both groups aside by hand (docs/protocol.md)")
    records = plateau_dir / "runs"
    if not (records / profile).is_dir():
        raise DataError(records / profile, "no runs at the old budget to reuse")
    moves = doubling_moves(records, profile) + doubling_moves(runs_dir, profile)
    if dry_run:
        return moves
    for move in moves:
        move.source.rename(move.target)
    from spineseg_core.study.records import TEST_SET, as_side_group

    if (shared := records / f"{profile}-{HALF_VARIANT}" / TEST_SET).is_file():
        as_side_group(shared)  # no longer the main group: its images are the new main's
    io.write_json(plateau_dir / BUDGET_FILE, {
        "steps": new, "raised_from": old, "reason": reason.strip(),
        "date": _dt.date.today().isoformat()})
    return moves


def recorded_budget(group_dir: str | Path) -> int:
    """The budget in steps of the runs recorded in ``group_dir`` (their ``params.json``'s
    ``steps``), which must be one. Raises :class:`DataError` with none or several."""
    from spineseg_core.study.runner import made_for_steps

    group_dir = Path(group_dir)
    found = {made_for_steps(params.parent)
             for params in group_dir.glob("*/seed_*/fold_*/params.json")}
    if len(found) != 1 or None in found:
        raise DataError(group_dir, "expected runs of one budget in steps (params.json 'steps'), "
                                   f"found {sorted(map(str, found)) or 'no run'}")
    return found.pop()
