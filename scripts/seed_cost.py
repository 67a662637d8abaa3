"""What the budget seed costs, per machine type: measured seconds per optimiser step x steps.

Per model, the seconds a training step took (validation included) in the committed runs of
each processor (``runs.csv``: train_seconds / steps) and, for this machine, in the model-only
benchmark (``bench.csv``: batch / train_img_s, validation not included); times the steps of the
budget seed (B, ``CPU_STEPS`` or the budget raised in ``results/plateau/budget.json``, and
B/2, one seed). Prints hours per processor and writes the
table.

Usage: python scripts/seed_cost.py [--runs results/cpu/runs.csv] [--bench results/cpu/bench.csv]
                                   [--out results/probes/seed_cost.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.envinfo import cpu_model
from spineseg_core.io import write_with
from spineseg_core.measure.speed import bench_seconds_per_step
from spineseg_core.study.budget_raise import budget_in_force
from spineseg_core.study.plateau import half_steps
from spineseg_core.training.config import CPU_STEPS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("results/cpu/runs.csv"))
    ap.add_argument("--bench", type=Path, default=Path("results/cpu/bench.csv"))
    ap.add_argument("--out", type=Path, default=Path("results/probes/seed_cost.csv"))
    args = ap.parse_args()
    budget = budget_in_force(Path("results/plateau"), CPU_STEPS)
    steps = budget + half_steps(budget)
    runs = pd.read_csv(args.runs)
    runs["s_per_step"] = runs["train_seconds"] / (runs["steps_per_epoch"]
                                                  * runs["epochs_completed"])
    table = runs.pivot_table(index="model", columns="processor", values="s_per_step",
                             aggfunc="median")
    table.columns = [f"{c} (records, with validation)" for c in table.columns]
    if args.bench.is_file():
        name = f"{cpu_model() or 'this machine'} (bench, model only)"
        table[name] = pd.Series(bench_seconds_per_step(pd.read_csv(args.bench)))
    table = table.reset_index()
    hours = (table.set_index("model") * steps / 3600).sum()
    out = pd.concat([table, pd.DataFrame([{"model": f"hours for B = {budget} and B/2, one seed",
                                           **hours.to_dict()}])], ignore_index=True)
    write_with(args.out, lambda p: out.to_csv(p, index=False))
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()
