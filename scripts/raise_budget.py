"""Raise the budget seed's B once, by doubling it (issue 24; ``study.budget_raise``).

Run it when ``study.plateau.budget_verdict`` on ``results/plateau/plateau.csv`` says the budget
does not stand, with the seed stopped:

    python scripts/raise_budget.py --reason "..." --dry-run   # the moves, nothing made
    python scripts/raise_budget.py --reason "PSPNet the third of 12 not plateaued at 2940"

The runs at the old B become the new B/2 runs (records in ``results/plateau/runs`` and
checkpoints in ``runs/plateau`` alike), the old B/2 runs move to ``cpu-quarter``, the new B is
recorded in ``results/plateau/budget.json`` and the move is committed. Then start the seed again
(``scripts/budget_seed.sh``): it reads the new B from ``budget.json``, as ``plateau_rerun.py``
and ``gpu_study.py`` do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from spineseg_core.errors import ConfigError, SpinesegError
from spineseg_core.study.budget_raise import (
    BUDGET_FILE,
    raise_budget,
    read_raise,
    recorded_budget,
)
from spineseg_core.study.commits import commit_paths

HERE = Path(__file__).resolve().parent.parent
PLATEAU = HERE / "results" / "plateau"


def seed_running() -> bool:
    """Whether a seed or re-run is training on this machine now (moving its folders under it
    would break it)."""
    found = subprocess.run(["pgrep", "-f", "budget_seed.sh|plateau_rerun.py"],
                           capture_output=True, text=True)
    return bool(found.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reason", required=True, help="why: the plateau labels that decided it")
    ap.add_argument("--to", type=int, help="the new B (default and only choice: twice the old)")
    ap.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "plateau",
                    help="the seed's checkpoints (default runs/plateau)")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--dry-run", action="store_true", help="list the moves, make none")
    ap.add_argument("--no-commit", action="store_true", help="do not commit the moved records")
    args = ap.parse_args()
    args.runs_dir = args.runs_dir.resolve()
    try:
        if (raised := read_raise(PLATEAU)) is not None:  # before the records: they moved
            raise ConfigError(f"{PLATEAU / BUDGET_FILE}: the budget was raised once already "
                              f"(to {raised['steps']} steps); the protocol raises it once")
        old = recorded_budget(PLATEAU / "runs" / args.profile)
        new = args.to or 2 * old
        if not args.dry_run and seed_running():
            sys.exit("raise_budget: a seed or re-run is training on this machine; stop it first")
        moves = raise_budget(PLATEAU, args.runs_dir, old, new, args.reason, args.profile,
                             dry_run=args.dry_run)
    except SpinesegError as e:
        sys.exit(f"raise_budget: {e}")
    for m in moves:
        print(f"{'would move' if args.dry_run else 'moved'} {os.path.relpath(m.source, HERE)} "
              f"-> {os.path.relpath(m.target, HERE)}")
    print(f"B: {old} -> {new} steps" + (" (dry run: nothing changed)" if args.dry_run else
                                         f", recorded in {os.path.relpath(PLATEAU / BUDGET_FILE, HERE)}"))
    if args.dry_run or args.no_commit:
        return 0
    paths = ["results/plateau/runs", f"results/plateau/{BUDGET_FILE}"]
    message = f"Budget raised once: B = {old} -> {new} steps. {args.reason.strip()}"
    if not commit_paths(HERE, paths, message):
        sys.exit(f"raise_budget: the move is made but its commit failed; commit {' '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
