#!/usr/bin/env bash
# Validation runs that choose k of the one stride rule (spineseg_core/models/stride.py, issue 24
# part 4): every model whose encoder takes an output_stride, at every stride it accepts, seed 0,
# on the profile's step budget. Each stride is a side group <profile>-os<s> of the study, so the
# runs land in variants.csv with their best validation Dice; then, in Python,
#   k, table = spineseg_core.models.stride.choose_k(pd.read_csv("results/cpu/variants.csv"), 128, 0.5)
# gives k (validation only: no test column is read), to be set as MIN_MAP_PX.
# Usage: scripts/stride_runs.sh [--dry-run]   (PROFILE=cpu by default; extra args go to study)
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-cpu}
PY=${PYTHON:-python}
"$PY" - <<'PYEOF' > /tmp/stride_runs.$$ 
from spineseg_core.models import list_models
from spineseg_core.models.stride import stride_options
for model in list_models():
    for stride in stride_options(model):
        print(model, stride)
PYEOF
while read -r model stride; do
  "$PY" -m spineseg_core study --profile "$PROFILE" --models "$model" --seeds 0 \
    --variant "os$stride" -p model_kwargs "{\"output_stride\": $stride}" \
    --records-dir "results/$PROFILE/runs" --no-aggregate "$@"
done < /tmp/stride_runs.$$
rm -f /tmp/stride_runs.$$
[[ " $* " == *" --dry-run "* ]] && exit 0
"$PY" -m spineseg_core aggregate --profile "$PROFILE" --runs-dir "results/$PROFILE/runs"
