#!/usr/bin/env bash
# Validation runs that choose k of the one stride rule (spineseg_core/models/stride.py, issue 24
# part 4): every model whose encoder takes an output_stride, at every stride that some candidate
# k (stride.K_CANDIDATES) gives it on the profile's grid (a model every k leaves alone is not
# run), seed 0, at the decision scale of STEPS optimiser steps (588 by default: the committed
# 6-epoch records' budget, a complete cosine schedule each). Each stride is a side group
# <profile>-os<s>; the records land in results/<profile>-stride/runs/ (decision runs, not the
# study's) and each is committed as it lands (COMMIT=0: not). `spineseg decide`
# (study.decisions.stride_decision, then models.stride.choose_k) then gives k on validation Dice
# only (no test column is read), to be set as models.stride.MIN_MAP_PX with K_DECIDED = True.
#
# One code version: the runs are made by CODE_COMMIT (the commit that made the first of them),
# checked out once into .study-code/, so later changes to this checkout do not split them.
# Resumable: a recorded run is skipped; checkpoints in runs/stride/. Cost on 2 AMX Xeon cores:
# about 90 min for the 10 runs.
# Usage: scripts/stride_runs.sh [--dry-run]   (PROFILE=cpu, STEPS=588; extra args go to study)
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
PROFILE=${PROFILE:-cpu}
STEPS=${STEPS:-588}
PY=${PYTHON:-$here/.venv/bin/python}
OUT=$here/results/$PROFILE-stride
RUNS=$(realpath -m "${RUNS:-runs/stride}")
CODE_COMMIT=${CODE_COMMIT:-085715e3bdcf7189914f9d8d7d95096e1bc92c43}
code=$here/.study-code/stride-${CODE_COMMIT:0:12}
[ -d "$code" ] || git worktree add --detach "$code" "$CODE_COMMIT" >/dev/null
plan=$(cd "$code" && PYTHONPATH="$code" "$PY" - "$PROFILE" <<'PYEOF'
import sys
from spineseg_core.models import list_models
from spineseg_core.models.stride import K_CANDIDATES, stride_for, stride_options
from spineseg_core.training.config import resolve_config
cfg = resolve_config(sys.argv[1], phantom=True)
for model in list_models():
    if stride_options(model):
        strides = {stride_for(model, cfg.image_size, cfg.crop_width, k) for k in K_CANDIDATES}
        if len(strides) > 1:  # a model every k leaves alone does not tell the k apart
            for s in sorted(strides):
                print(model, s)
PYEOF
)
dry=0; [[ " $* " == *" --dry-run "* ]] && dry=1
while read -r model stride; do
  (cd "$code" && PYTHONPATH="$code" "$PY" -m spineseg_core study --profile "$PROFILE" \
    --models "$model" --seeds 0 --variant "os$stride" -p steps "$STEPS" \
    -p model_kwargs "{\"output_stride\": $stride}" --runs-dir "$RUNS" \
    --records-dir "$OUT/runs" --no-aggregate "$@")
  if [ $dry = 0 ] && [ "${COMMIT:-1}" = 1 ] && [ -d "$OUT" ]; then
    flock /tmp/spineseg-git.lock sh -c "git add '$OUT' && { git diff --cached --quiet -- '$OUT' \
      || git commit -q -m 'Stride decision run: $model at output stride $stride, seed 0, $STEPS steps' \
      -- '$OUT'; }" || true
  fi
done <<< "$plan"
