"""The re-run at the plateau budget (issue 25): every run after the budget seed, in priority
order, from the seed's pinned code, each record committed as it lands.

The budget seed (``scripts/budget_seed.sh``) pins the code in ``results/plateau/CODE`` and makes
seed 0 of every model at B; this script makes the rest with the same code version, so the
bundle has one fingerprint:

1. ``main``: the twelve models, seeds 1 and 2, in :func:`spineseg_core.study.schedule.interleave`
   order (families alternate, a model's seeds a pass apart: a sitting's processor does not make
   one family's seed alone), each scored on the hard cases as it finishes;
2. ``loss``: the loss runs (``study.loss_study.LOSS_MODELS`` x every other loss, seeds 0-2);
3. ``res256``: the resolution check's models at 256 px, seed 0;
4. ``context``: the context models, seeds 1 and 2 (seed 0 is in the budget seed);
5. ``more``: seeds 3 and 4 of the twelve, as the cost allows.

    python scripts/plateau_rerun.py --dry-run          # the plan, each run's status, the hours
    python scripts/plateau_rerun.py                    # go on from the committed records
    python scripts/plateau_rerun.py --parts main loss  # some parts only

Records land in ``results/plateau/runs/`` (checkpoints in ``runs/plateau/``, never committed); a
recorded run is skipped, so the script continues across sittings and machines. B is the pinned
code's ``CPU_STEPS``, or ``--steps`` where the seed raised it. Hours are priced from this
machine's ``results/cpu/bench.csv`` (model only: validation and evaluation come on top).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from spineseg_core.fingerprint import source_fingerprint
from spineseg_core.models import CONTEXT_MODEL_NAMES, list_models, model_info
from spineseg_core.report.resolution import RESOLUTION_MODELS
from spineseg_core.study.loss_study import LOSS_MODELS
from spineseg_core.study.runner import RunSpec
from spineseg_core.study.schedule import ScheduledRun, interleave, plan_cost

HERE = Path(__file__).resolve().parent.parent
PLATEAU = HERE / "results" / "plateau"
PARTS = ("main", "loss", "res256", "context", "more")
LOSSES = ("dice", "ce", "weighted_ce")  # the profile's own loss, dice_ce, is the main group's


def pinned_code() -> Path:
    """The budget seed's checkout (``.study-code/<commit>``), made if absent, checked against
    the fingerprint the seed recorded."""
    code_file = PLATEAU / "CODE"
    if not code_file.is_file():
        sys.exit(f"plateau_rerun: {code_file} is missing: start scripts/budget_seed.sh first, "
                 "it pins the code")
    commit, fingerprint = code_file.read_text().split()
    code = HERE / ".study-code" / commit[:12]
    if not code.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(code), commit], cwd=HERE,
                       check=True, stdout=subprocess.DEVNULL)
    if source_fingerprint(code) != fingerprint:
        sys.exit(f"plateau_rerun: {code} does not have the seed's fingerprint {fingerprint[:12]}")
    return code


def pinned_steps(code: Path) -> int:
    """``CPU_STEPS`` of the pinned code (B)."""
    out = subprocess.run([sys.executable, "-c", "from spineseg_core.training.config import "
                          "CPU_STEPS; print(CPU_STEPS)"], cwd=code, check=True, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(code)})
    return int(out.stdout)


def plan(steps: int, steps_given: bool) -> list[ScheduledRun]:
    """Every run of the re-run after the seed, in priority order."""
    params = {"steps": str(steps)} if steps_given else {}

    def run(part: str, model: str, seed: int, **kw: object) -> ScheduledRun:
        extra = dict(params, **kw.pop("params", {}))  # type: ignore[call-overload]
        return ScheduledRun(part, RunSpec("cpu", model, seed, 0, **kw), steps, extra)

    def family(model: str) -> str:
        return str(model_info(model).family)

    twelve = list_models()
    runs = [run("main", m, s) for m, s in interleave(twelve, [1, 2], family)]
    runs += [run("loss", m, s, loss=loss) for s in (0, 1, 2) for loss in LOSSES
             for m in LOSS_MODELS]
    runs += [run("res256", m, 0, variant="res256", params={"image_size": "256"})
             for m in RESOLUTION_MODELS]
    runs += [run("context", m, s) for m, s in interleave(list(CONTEXT_MODEL_NAMES), [1, 2],
                                                          family)]
    runs += [run("more", m, s) for m, s in interleave(twelve, [3, 4], family)]
    return runs


def seconds_per_step(models: set[str]) -> dict[str, float]:
    """This machine's measured model-only seconds per step (``results/cpu/bench.csv``); a
    model it lacks (the context models) is priced at its 2D base model's rate."""
    bench = pd.read_csv(HERE / "results" / "cpu" / "bench.csv").set_index("model")
    rate = (bench["batch"] / bench["train_img_s"]).to_dict()
    for model in models - set(rate):
        base = model.split("_25d")[0].removesuffix("3d")
        if base in rate:
            rate[model] = rate[base]
    return rate


def commit(message: str) -> None:
    """Commit ``results/plateau`` alone, under the lock the other study scripts take."""
    script = (f"git add results/plateau && {{ git diff --cached --quiet -- results/plateau "
              f"|| git commit -q -m {json.dumps(message)} -- results/plateau; }}")
    subprocess.run(["flock", "/tmp/spineseg-git.lock", "sh", "-c", script], cwd=HERE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--steps", type=int, help="B, where the seed raised it (default: the "
                    "pinned code's CPU_STEPS)")
    ap.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "plateau")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--no-commit", action="store_true")
    args = ap.parse_args()
    code = pinned_code()
    steps = args.steps or pinned_steps(code)
    runs = [r for r in plan(steps, args.steps is not None) if r.part in args.parts]
    records = PLATEAU / "runs"
    todo = [r for r in runs if not r.recorded(records)]
    hours = plan_cost(todo, seconds_per_step({r.spec.model for r in runs}), image_size=128)
    print(f"code {code.name}, B = {steps} steps; {len(runs) - len(todo)} of {len(runs)} runs "
          f"recorded; to do, model-only hours here: "
          + ", ".join(f"{p} {h:.1f}" for p, h in hours.items()))
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
        if done and r.spec.group in ("cpu", "cpu-context"):
            subprocess.run([sys.executable, "-m", "spineseg_core", "hardcases", "--runs-dir",
                            str(args.runs_dir.resolve()), "--groups", r.spec.group,
                            "--records-dir", str(records)], cwd=code, env=env)
        if not args.no_commit:
            commit(f"Plateau re-run ({r.part}): {r.spec.label()} in {r.spec.group}, "
                   f"{steps} steps")


if __name__ == "__main__":
    main()
