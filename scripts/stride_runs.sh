#!/usr/bin/env bash
# Validation runs that choose k of the one stride rule (spineseg_core/models/stride.py, issue 24
# part 4): every model whose encoder takes an output_stride, at every stride that some candidate
# k (stride.K_CANDIDATES) gives it on the profile's grid, seed 0, at the decision scale of
# STEPS optimiser steps (588 by default: the committed 6-epoch records' budget, a complete
# cosine schedule each). Each stride is a side group <profile>-os<s>; the records land in
# results/<profile>-stride/runs/ (decision runs, not the study's), from which `spineseg decide`
# (study.decisions.stride_decision, then models.stride.choose_k) gives k on validation Dice only
# (no test column is read), set as models.stride.MIN_MAP_PX.
# Resumable: a recorded run is skipped. Cost on 2 AMX Xeon cores: about 60 min (10 runs); checkpoints in runs/stride/.
# Usage: scripts/stride_runs.sh [--dry-run]   (PROFILE=cpu, STEPS=588; extra args go to study)
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-cpu}
STEPS=${STEPS:-588}
PY=${PYTHON:-python}
OUT=${OUT:-results/$PROFILE-stride}
plan=$("$PY" - "$PROFILE" <<'PYEOF'
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
while read -r model stride; do
  "$PY" -m spineseg_core study --profile "$PROFILE" --models "$model" --seeds 0 \
    --variant "os$stride" -p steps "$STEPS" -p model_kwargs "{\"output_stride\": $stride}" \
    --runs-dir "${RUNS:-runs/stride}" --records-dir "$OUT/runs" --no-aggregate "$@"
done <<< "$plan"
