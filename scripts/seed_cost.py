"""What the budget seed costs, per machine type: measured seconds per optimiser step x steps.

Per model, the seconds a training step took (validation included) in the committed runs of
each processor (``runs.csv``: train_seconds / steps) and in the committed model-only
benchmark (``bench.csv``: batch / train_img_s, validation not included); times the steps of the
budget seed (B, ``CPU_STEPS`` or the budget raised in ``results/plateau/budget.json``, and
B/2, one seed); and, once the seed has records, the seconds per step its own runs measured
(``study.schedule.wall_rates``, validation included; a model without a run yet at the bench
rate times the measured/bench ratio, ``wall_priced``). Prints hours per processor and writes
the table.

Usage: python scripts/seed_cost.py [--runs results/cpu/runs.csv] [--bench results/cpu/bench.csv]
                                   [--plateau results/plateau] [--out results/probes/seed_cost.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.io import write_with
from spineseg_core.measure.speed import bench_seconds_per_step
from spineseg_core.study.budget_raise import budget_in_force
from spineseg_core.study.machines import record_stamps
from spineseg_core.study.plateau import half_steps
from spineseg_core.study.schedule import wall_priced, wall_rates
from spineseg_core.training.config import CPU_STEPS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("results/cpu/runs.csv"))
    ap.add_argument("--bench", type=Path, default=Path("results/cpu/bench.csv"))
    ap.add_argument("--plateau", type=Path, default=Path("results/plateau"))
    ap.add_argument("--out", type=Path, default=Path("results/probes/seed_cost.csv"))
    args = ap.parse_args()
    budget = budget_in_force(args.plateau, CPU_STEPS)
    steps = budget + half_steps(budget)
    runs = pd.read_csv(args.runs)
    runs["s_per_step"] = runs["train_seconds"] / (runs["steps_per_epoch"]
                                                  * runs["epochs_completed"])
    table = runs.pivot_table(index="model", columns="processor", values="s_per_step",
                             aggfunc="median")
    table.columns = [f"{c} (records, with validation)" for c in table.columns]
    bench = bench_seconds_per_step(pd.read_csv(args.bench)) if args.bench.is_file() else {}
    if bench:
        table["committed bench (model only)"] = pd.Series(bench)
    stamps = record_stamps(args.plateau / "runs")
    seeded = wall_rates(stamps)
    if seeded:
        machines = sorted(set(stamps.loc[~stamps["hard"], "machine"]))
        rate, factor = wall_priced(bench, seeded, list(table.index))
        where = machines[0] if len(machines) == 1 else "mixed machines"
        name = (f"{where} (budget seed records, with validation"
                + (f"; the others at bench x {factor:.2f})" if factor is not None else ")"))
        table[name] = pd.Series(rate)
    table = table.reset_index()
    hours = (table.set_index("model") * steps / 3600).sum()
    out = pd.concat([table, pd.DataFrame([{"model": f"hours for B = {budget} and B/2, one seed",
                                           **hours.to_dict()}])], ignore_index=True)
    write_with(args.out, lambda p: out.to_csv(p, index=False))
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()
