#!/usr/bin/env bash
# The budget seed (issue 24): seed 0 of the twelve models and the context models, each at the
# cpu profile's step budget B (training.config.CPU_STEPS, group cpu) and at B/2 (group cpu-half,
# a complete cosine schedule of its own), so that study.plateau labels every model and the runs
# at B become seed 0 of the re-run. Cheapest models first, B/2 before B, so labels land early
# (study.schedule.SEED_ORDER and seed_plan; scripts/gpu_study.py makes the same runs on a GPU).
#
#   scripts/budget_seed.sh              # RUNS=runs/plateau: checkpoints, never committed
#   COMMIT=0 scripts/budget_seed.sh     # do not commit the records as they land
#   scripts/budget_seed.sh --dry-run    # list the runs and their status
#   B=5880 scripts/budget_seed.sh       # the budget raised once (issue 24), same pinned code
#
# Raising B: a recorded run is skipped, so first move the old records out of the way. When the
# new B is twice the old, the runs at the old B are the new B/2 runs: move results/plateau/runs/
# cpu-half to cpu-quarter (kept for the rank-versus-budget curve), then cpu to cpu-half. Any
# other new B: move both groups aside (e.g. to cpu-b<old B> and cpu-half-b<old B>).
#
# Records land in results/plateau/runs/ and, unless COMMIT=0, each new one is committed at once
# (only that folder; a lock keeps it off a commit made by hand at the same moment), so a seed
# that outlasts a sitting goes on from git. Stop it at any time; run it again to go on.
#
# One code version: the first start writes the commit it runs from to results/plateau/CODE
# (the fingerprinted files must be committed and clean); later starts, on any machine, check
# that commit out into .study-code/ and run from there, so that later changes to this checkout
# do not split the seed.
set -u
cd "$(dirname "$0")/.."
here=$PWD
PY=$here/.venv/bin/python
OUT=results/plateau
RECORDS=$here/$OUT/runs
RUNS=$(realpath -m "${RUNS:-runs/plateau}")
mkdir -p "$RECORDS"
fingerprint() { (cd "$1" && PYTHONPATH="$1" "$PY" -c \
    'from spineseg_core.fingerprint import source_fingerprint as f; print(f())'); }
dry=0; [[ " $* " == *" --dry-run "* ]] && dry=1
if [ ! -f "$OUT/CODE" ] && [ $dry = 1 ]; then
    head=$(git rev-parse HEAD)
    code=$here/.study-code/${head:0:12}
    [ -d "$code" ] || git worktree add --detach "$code" "$head" >/dev/null || exit 1
    printf '%s %s\n' "$head" "$(fingerprint "$code")" > /tmp/budget_seed_code.$$
    CODE_FILE=/tmp/budget_seed_code.$$
elif [ ! -f "$OUT/CODE" ]; then
    head=$(git rev-parse HEAD)
    code=$here/.study-code/${head:0:12}
    [ -d "$code" ] || git worktree add --detach "$code" "$head" >/dev/null || exit 1
    if [ "$(fingerprint "$code")" != "$(fingerprint "$here")" ]; then
        echo "budget_seed: the fingerprinted code has uncommitted changes; commit them first" >&2
        exit 1
    fi
    printf '%s %s\n' "$head" "$(fingerprint "$code")" > "$OUT/CODE"
fi
read -r CODE_COMMIT FINGERPRINT < "${CODE_FILE:-$OUT/CODE}"
code=$here/.study-code/${CODE_COMMIT:0:12}
[ -d "$code" ] || git worktree add --detach "$code" "$CODE_COMMIT" >/dev/null || exit 1
if [ "$(fingerprint "$code")" != "$FINGERPRINT" ]; then
    echo "budget_seed: $code does not have the seed's fingerprint ${FINGERPRINT:0:12}" >&2
    exit 1
fi
B_CODE=$(cd "$code" && PYTHONPATH="$code" "$PY" -c \
    'from spineseg_core.training.config import CPU_STEPS; print(CPU_STEPS)')
B=${B:-$B_CODE}
full=(); [ "$B" = "$B_CODE" ] || full=(-p steps "$B")
MODELS=${MODELS:-$(PYTHONPATH="$here" "$PY" -c \
    'from spineseg_core.study.schedule import SEED_ORDER; print(*SEED_ORDER)')}
[ -n "$MODELS" ] || { echo "budget_seed: no model to run (study.schedule.SEED_ORDER)" >&2; exit 1; }
commit() {
    [ "${COMMIT:-1}" = 1 ] || return 0
    (cd "$here" && flock /tmp/spineseg-git.lock sh -c 'git add "$2" && \
        { git diff --cached --quiet -- "$2" || git commit -q -m "$1" -- "$2"; }' sh "$1" "$OUT") \
        || true
}
[ $dry = 1 ] || commit "Budget seed: the code version it runs from (results/plateau/CODE)"
study() { (cd "$code" && PYTHONPATH="$code" "$PY" -m spineseg_core study --profile cpu \
    --runs-dir "$RUNS" --records-dir "$RECORDS" --no-aggregate --poll-s 30 --seeds 0 "$@"); }
for model in $MODELS; do
    study --models "$model" --variant half -p steps $((B / 2)) "$@"
    [ $dry = 1 ] || commit "Budget seed: $model at B/2 = $((B / 2)) steps, seed 0"
    study --models "$model" "${full[@]}" "$@"
    [ $dry = 1 ] && continue
    (cd "$code" && PYTHONPATH="$code" "$PY" -m spineseg_core hardcases --runs-dir "$RUNS" \
        --groups cpu --records-dir "$RECORDS" | tail -1)
    commit "Budget seed: $model at B = $B steps, seed 0"
done
