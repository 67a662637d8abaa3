#!/usr/bin/env bash
# The study on one GPU, checked in <= 8 minutes from a bare machine with the repository copied:
#   1. install (a venv of its own: .venv-gpu; a CUDA torch already on the machine is reused);
#   2. the CUDA tests (tests/test_cuda.py, pytest -m cuda);
#   3. 30 paper-profile training steps per model at 880x880, batch 4, bf16, channels-last:
#      img/s, achieved TFLOP/s, MFU against the card's bf16 peak, max_memory_reserved, the
#      24 GB check beside the paper's Table 3 memory            -> results/gpu/train_880.csv
#   4. the batched augmentation against the model alone at 880 px -> results/gpu/data_880.csv
#   5. `spineseg predict` on a phantom volume                   -> results/gpu/predict.csv
# The efficiency chapter of the book shows results/gpu/*.csv when they are there.
#
#   scripts/gpu_check.sh              # on the GPU
#   scripts/gpu_check.sh --dry-run    # every part on the CPU, tiny sizes, the existing .venv,
#                                     # results to $OUT (default /tmp/spineseg-gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
say() { echo "gpu_check [$(( $(date +%s) - start )) s]: $*"; }

if [ "${1:-}" = "--dry-run" ]; then
    DEVICE=cpu SIZE=${SIZE:-64} BATCH=${BATCH:-2} STEPS=${STEPS:-2} CASES=${CASES:-2}
    MODELS=${MODELS:-"unet miniseg"} OUT=${OUT:-/tmp/spineseg-gpu-check} VENV=.venv
    export SPINESEG_TEST_DEVICE=cpu
else
    DEVICE=${DEVICE:-cuda} SIZE=${SIZE:-880} BATCH=${BATCH:-4} STEPS=${STEPS:-30}
    CASES=${CASES:-2} MODELS=${MODELS:-} OUT=${OUT:-results/gpu} VENV=${VENV:-.venv-gpu}
fi
WORK=$(mktemp -d)
export SPINESEG_CACHE=${SPINESEG_CACHE:-$WORK/cache} PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

# 1. Install. A machine image with a CUDA torch keeps it (--system-site-packages, the project
#    installed without its pinned torch); otherwise pip installs the pinned torch, whose Linux
#    wheel from PyPI is the CUDA build.
if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
            2>/dev/null; then
        say "reusing the machine's CUDA torch"
        "$PYTHON" -m venv --system-site-packages "$VENV"
        "$VENV/bin/python" -m pip install -q --no-deps -e .
        "$VENV/bin/python" - <<'PY' > "$WORK/deps.txt"
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = p["dependencies"] + p.get("optional-dependencies", {}).get("test", [])
print("\n".join(d for d in deps if not d.replace(" ", "").startswith("torch=")))
PY
        "$VENV/bin/python" -m pip install -q -r "$WORK/deps.txt"
    else
        say "installing the pinned dependencies (torch's CUDA wheel)"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q -e ".[test]"
    fi
fi
PY="$VENV/bin/python"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
say "installed"

# 2. The CUDA tests.
"$PY" -m pytest -q -m cuda tests/test_cuda.py
say "CUDA tests passed"

# 3. Training steps per model at the paper's size.
# shellcheck disable=SC2086  # MODELS is a list of names
"$PY" scripts/gpu_check.py train --device "$DEVICE" --size "$SIZE" --batch "$BATCH" \
    --steps "$STEPS" --out "$OUT" ${MODELS:+--models $MODELS}
say "training steps measured"

# 4. The data path: batched augmentation on the device against the model alone.
"$PY" scripts/gpu_check.py data --device "$DEVICE" --size "$SIZE" --batch "$BATCH" \
    --steps "$(( STEPS < 10 ? STEPS : 10 ))" --cases "$CASES" --out "$OUT"
say "data path measured"

# 5. Predict a phantom volume (written at SIZE px by step 4) with a smoke-trained U-Net.
"$VENV/bin/spineseg" train --profile smoke --model unet --device "$DEVICE" \
    --out-dir "$WORK/run" --no-hd95
volume=$(find "$SPINESEG_CACHE/phantom" -path "*px${SIZE}_*" -name 'Case*.nii.gz' | sort | head -1)
test -n "$volume"
t0=$EPOCHREALTIME
"$VENV/bin/spineseg" predict --run "$WORK/run" "$volume" -o "$WORK/pred.nii.gz" \
    --device "$DEVICE"
t1=$EPOCHREALTIME
"$PY" scripts/gpu_check.py predict-result --device "$DEVICE" --run "$WORK/run" \
    --input "$volume" --output "$WORK/pred.nii.gz" \
    --seconds "$("$PY" -c "print($t1 - $t0)")" --out "$OUT"
say "prediction written; results in $OUT"
rm -rf "$WORK"
