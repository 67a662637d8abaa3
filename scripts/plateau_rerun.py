"""The re-run at the plateau budget (issue 25): every run after the budget seed, in priority
order, from the seed's pinned code, each record committed as it lands.

The budget seed (``scripts/budget_seed.sh``) pins the code in ``results/plateau/CODE`` and makes
seed 0 of every model at B; this script makes the rest with the same code version, so the
bundle has one fingerprint:

The plan is :func:`spineseg_core.study.schedule.rerun_plan`:

1. ``main``: the twelve models, seeds 1 and 2, in :func:`spineseg_core.study.schedule.interleave`
   order (families alternate, a model's seeds at least 6 runs apart), each scored on the hard
   cases as it finishes;
2. ``loss``: the loss runs (``study.loss_study.LOSS_MODELS`` x every other loss, seeds 0-2);
3. ``res256``: the resolution check's models at 256 px, seed 0;
4. ``context``: the context models, seeds 1 and 2 (seed 0 is in the budget seed);
5. ``more``: seeds 3 and 4 of the twelve, as the cost allows.

    python scripts/plateau_rerun.py --dry-run          # the plan, each run's status, the hours
    python scripts/plateau_rerun.py                    # go on from the committed records
    python scripts/plateau_rerun.py --parts main loss  # some parts only

Records land in ``results/plateau/runs/`` (checkpoints in ``runs/plateau/``, never committed); a
recorded run is skipped, so the script continues across sittings and machines. B is the pinned
code's ``CPU_STEPS``, or ``--steps`` where the seed raised it. Hours are priced from the
committed benchmark, ``results/cpu/bench.csv`` (model only: validation and evaluation come on
top; its processor may not be this one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from spineseg_core.fingerprint import read_pin, verify_pin
from spineseg_core.measure.speed import bench_seconds_per_step
from spineseg_core.study.schedule import RERUN_PARTS, plan_cost, rerun_plan

HERE = Path(__file__).resolve().parent.parent
PLATEAU = HERE / "results" / "plateau"


def pinned_code() -> Path:
    """The budget seed's checkout (``.study-code/<commit>``), made if absent, checked against
    the fingerprint the seed recorded."""
    from spineseg_core.errors import ConfigError

    try:
        commit, _ = read_pin(PLATEAU / "CODE")
        code = HERE / ".study-code" / commit[:12]
        if not code.is_dir():
            subprocess.run(["git", "worktree", "add", "--detach", str(code), commit], cwd=HERE,
                           check=True, stdout=subprocess.DEVNULL)
        verify_pin(PLATEAU / "CODE", code)
    except (ConfigError, OSError) as e:
        sys.exit(f"plateau_rerun: {e}")
    return code


def pinned_steps(code: Path) -> int:
    """``CPU_STEPS`` of the pinned code (B)."""
    out = subprocess.run([sys.executable, "-c", "from spineseg_core.training.config import "
                          "CPU_STEPS; print(CPU_STEPS)"], cwd=code, check=True, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(code)})
    return int(out.stdout)


def seconds_per_step(models: set[str]) -> dict[str, float]:
    """Model-only seconds per step measured by the committed benchmark
    (``results/cpu/bench.csv``); a 2.5D model (its 2D base with 3 or 5 input channels, the
    same convolutions after the first) is priced at its base's rate. The 3D U-Net, whose step
    is a volume, has no measured rate and stays unpriced."""
    rate = bench_seconds_per_step(pd.read_csv(HERE / "results" / "cpu" / "bench.csv"))
    for model in models - set(rate):
        base = model.split("_25d")[0]
        if base != model and base in rate:
            rate[model] = rate[base]
    return rate


def commit(message: str) -> None:
    """Commit ``results/plateau`` alone, under the lock the other study scripts take (the
    message travels as an argument, never through the shell's quoting)."""
    script = ('git add results/plateau && { git diff --cached --quiet -- results/plateau '
              '|| git commit -q -m "$1" -- results/plateau; }')
    subprocess.run(["flock", "/tmp/spineseg-git.lock", "sh", "-c", script, "sh", message],
                   cwd=HERE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", choices=RERUN_PARTS, default=list(RERUN_PARTS))
    ap.add_argument("--steps", type=int, help="B, where the seed raised it (default: the "
                    "pinned code's CPU_STEPS)")
    ap.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "plateau")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--no-commit", action="store_true")
    args = ap.parse_args()
    code = pinned_code()
    steps = args.steps or pinned_steps(code)
    runs = [r for r in rerun_plan(steps, args.steps is not None) if r.part in args.parts]
    records = PLATEAU / "runs"
    todo = [r for r in runs if not r.recorded(records)]
    rate = seconds_per_step({r.spec.model for r in runs})
    unpriced = sorted({r.spec.model for r in todo} - set(rate))
    hours = plan_cost([r for r in todo if r.spec.model in rate], rate, image_size=128)
    print(f"code {code.name}, B = {steps} steps; {len(runs) - len(todo)} of {len(runs)} runs "
          f"recorded; to do, model-only hours at the committed benchmark's rates "
          f"(results/cpu/bench.csv): " + ", ".join(f"{p} {h:.1f}" for p, h in hours.items())
          + (f" (not priced: {', '.join(unpriced)})" if unpriced else ""))
    if args.dry_run:
        for r in runs:
            state = "recorded" if r.recorded(records) else "to do"
            print(f"  {r.part:8} {r.spec.group:18} {r.spec.model:20} seed {r.spec.seed}  {state}")
        return
    env = {**os.environ, "PYTHONPATH": str(code)}
    for r in todo:
        done = subprocess.run([sys.executable, "-m", "spineseg_core", "study", *r.study_args(),
                               "--runs-dir", str(args.runs_dir.resolve()), "--records-dir",
                               str(records), "--no-aggregate", "--poll-s", "30"],
                              cwd=code, env=env).returncode == 0
        if done and r.spec.group == "cpu":  # the main group (the context models' too)
            subprocess.run([sys.executable, "-m", "spineseg_core", "hardcases", "--runs-dir",
                            str(args.runs_dir.resolve()), "--groups", r.spec.group,
                            "--records-dir", str(records)], cwd=code, env=env)
        if not args.no_commit:
            commit(f"Plateau re-run ({r.part}): {r.spec.label()} in {r.spec.group}, "
                   f"{steps} steps")


if __name__ == "__main__":
    main()
