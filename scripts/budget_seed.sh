#!/usr/bin/env bash
# The budget seed (issue 24): seed 0 of the twelve models and the context models, each at the
# cpu profile's step budget B (training.config.CPU_STEPS, group cpu) and at B/2 (group cpu-half,
# a complete cosine schedule of its own), so that study.plateau labels every model and the runs
# at B become seed 0 of the re-run. Cheapest models first, B/2 before B (study.schedule.SEED_ORDER
# and seed_plan). It is the part `seed` of scripts/plateau_rerun.py, which says how (pinned code
# in results/plateau/CODE, checked out into .study-code/; records committed as they land); this
# wrapper turns the environment below into its options.
#
#   scripts/budget_seed.sh              # RUNS=runs/plateau: checkpoints, never committed
#   COMMIT=0 scripts/budget_seed.sh     # do not commit the records as they land (--no-commit)
#   scripts/budget_seed.sh --dry-run    # list the runs, their status and the hours
#   B=5880 scripts/budget_seed.sh       # the budget raised once (issue 24), same pinned code
#   MODELS="unet miniseg" scripts/budget_seed.sh   # these models only (--models)
#   PYTHON=python3 scripts/budget_seed.sh          # another interpreter than .venv/bin/python
#
# Raising B: a recorded run is skipped, so first move the old records out of the way. When the
# new B is twice the old, the runs at the old B are the new B/2 runs: move results/plateau/runs/
# cpu-half to cpu-quarter (kept for the rank-versus-budget curve), then cpu to cpu-half. Any
# other new B: move both groups aside (e.g. to cpu-b<old B> and cpu-half-b<old B>).
set -u
cd "$(dirname "$0")/.."
args=(--parts seed)
[ -z "${B:-}" ] || args+=(--steps "$B")
# shellcheck disable=SC2206  # MODELS is a list of names separated by spaces
[ -z "${MODELS:-}" ] || args+=(--models $MODELS)
[ -z "${RUNS:-}" ] || args+=(--runs-dir "$RUNS")
[ "${COMMIT:-1}" = 1 ] || args+=(--no-commit)
exec "${PYTHON:-.venv/bin/python}" scripts/plateau_rerun.py "${args[@]}" "$@"
