#!/usr/bin/env bash
# The budget seed (issue 24): seed 0 of the twelve models and the context models, each at the
# study's step budget B (the pinned code's CPU_STEPS, or the budget raised once in
# results/plateau/budget.json; group cpu) and at B/2 (group cpu-half,
# a complete cosine schedule of its own), so that study.plateau labels every model and the runs
# at B become seed 0 of the re-run. Cheapest models first, B/2 before B (study.schedule.SEED_ORDER
# and seed_plan). It is the part `seed` of scripts/plateau_rerun.py, which says how (pinned code
# in results/plateau/CODE, checked out into .study-code/; records committed as they land); this
# wrapper turns the environment below into its options.
#
#   scripts/budget_seed.sh              # RUNS=runs/plateau: checkpoints, never committed
#   COMMIT=0 scripts/budget_seed.sh     # do not commit the records as they land (--no-commit)
#   scripts/budget_seed.sh --dry-run    # list the runs, their status and the hours
#   B=5880 scripts/budget_seed.sh       # must agree with results/plateau/budget.json
#   MODELS="unet miniseg" scripts/budget_seed.sh   # these models only (--models)
#   PYTHON=python3 scripts/budget_seed.sh          # another interpreter than .venv/bin/python
#   scripts/budget_seed.sh --no-aggregate          # do not remake results/plateau's bundle
#                                                  # after each record (it does by default)
#
# Raising B (once, by doubling, with the seed stopped): scripts/raise_budget.py moves the old
# records and checkpoints (cpu-half to cpu-quarter, cpu and its hard-case scores to cpu-half)
# and records the new B in results/plateau/budget.json, which this seed then reads.
set -u
cd "$(dirname "$0")/.."
args=(--parts seed)
[ -z "${B:-}" ] || args+=(--steps "$B")
# shellcheck disable=SC2206  # MODELS is a list of names separated by spaces
[ -z "${MODELS:-}" ] || args+=(--models $MODELS)
[ -z "${RUNS:-}" ] || args+=(--runs-dir "$RUNS")
[ "${COMMIT:-1}" = 1 ] || args+=(--no-commit)
exec "${PYTHON:-.venv/bin/python}" scripts/plateau_rerun.py "${args[@]}" "$@"
