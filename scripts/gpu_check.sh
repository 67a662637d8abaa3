#!/usr/bin/env bash
# The package on one GPU, checked on a machine that reaches no package registry, in under
# 8 minutes on one H100 by design. Every part prints its elapsed time; any failure stops the
# check with one line (exit 1):
#   0. probe    the machine's torch sees CUDA and runs a kernel on it (else one line, at once);
#   1. install  a venv (.venv-gpu) over the machine's own Python and torch (never replaced),
#               with the wheels of scripts/gpu_wheels.py (.gpu-wheels/: NiBabel, no TorchIO,
#               since every part augments whole batches on the device) installed offline under
#               their constraints.txt pins, and this tree installed editable;
#   2. tests    pytest -m cuda (tests/test_cuda.py, tests/test_metrics.py); a skipped test
#               fails the check, as does finding none;
#   3. train    STEPS timed paper-profile training steps per model at 880 px, each model as
#               the training configuration resolves it (batch, precision, model_kwargs):
#               img/s, TFLOP/s, MFU, max_memory_reserved, the 24 GB check  -> $OUT/train_880.csv
#   4. data     the batched augmentation against the model alone, on CASES phantom cases
#               written at 880 px (all of them read: train, validation, test) -> data_880.csv
#   5. predict  a smoke-profile U-Net (batched augmentation, as on the GPU, also in the dry
#               run), then `spineseg predict` on one of those cases
#                                                                           -> predict.csv
#
# Time on one H100 (estimate from published throughput, not a measurement; the check prints
# the real one). A training step of all twelve models at 880 px and batch 4 is about
# 120 TFLOP (results/cpu/bench.csv's step_flops at 128x64 px scaled by the pixel count, x94.5).
# At 100 TFLOP/s, a tenth of the H100's 989 TFLOP/s dense bf16 peak, that is 1.2 s, so
# STEPS=20 timed + 5 warm-up/memory steps of every model cost about 30 s of compute.
#   probe 0.2 min, install 0.5 (4.4 MB of wheels, offline), tests 1.5 (an inductor compile of
#   PSANet's attention: 0.5-1 min), train 3.0 (model building on the CPU and cuDNN's autotuning,
#   up to 10 s a model, dominate), data 1.0 (4 cases of 880 px written at 3-7 s each),
#   predict 0.5                                                          total about 6.7 min.
# The train part measures no model that would take it past TRAIN_S (210 s) and names those it
# left out, so a wrong estimate of that part costs models, not the limit: at most 7.2 min.
# The machine's timing of each part replaces this estimate in docs/gpu.md once it has run.
#
#   scripts/gpu_wheels.py                   # here, once: the wheels into .gpu-wheels/
#   scripts/gpu_check.sh                    # on the GPU machine (PYTHON: its python3)
#   scripts/gpu_check.sh --dry-run          # every part on the CPU at tiny sizes, with .venv
#                                           # (or VENV), into $OUT (/tmp/spineseg-gpu-check)
#   scripts/gpu_check.sh --install-only     # parts 0 and 1 alone
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
last=$start
say() { echo "gpu_check [$(( $(date +%s) - start )) s]: $*"; }
part() {  # the part just finished and its elapsed time
    local now; now=$(date +%s)
    echo "gpu_check [$(( now - start )) s]: part $1 done in $(( now - last )) s"
    last=$now
}
fail() { echo "gpu_check: $*" >&2; exit 1; }

DRY=0 INSTALL_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        --install-only) INSTALL_ONLY=1 ;;  # parts 0 and 1 (scripts/gpu_study.sh)
        *) fail "unknown option ${arg}: expected --dry-run and/or --install-only" ;;
    esac
done
if [ "$DRY" = 1 ]; then
    DEVICE=cpu SIZE=${SIZE:-64} BATCH=${BATCH:-2} STEPS=${STEPS:-2} CASES=${CASES:-4}
    MODELS=${MODELS:-"unet miniseg"} OUT=${OUT:-/tmp/spineseg-gpu-check} VENV=${VENV:-.venv}
    TRAIN_S=${TRAIN_S:-600}
    PYTHON=${PYTHON:-$VENV/bin/python}
    export SPINESEG_TEST_DEVICE=cpu
else
    DEVICE=cuda SIZE=${SIZE:-880} BATCH=${BATCH:-} STEPS=${STEPS:-20} CASES=${CASES:-4}
    MODELS=${MODELS:-} OUT=${OUT:-results/gpu} VENV=${VENV:-.venv-gpu} PYTHON=${PYTHON:-python3}
    TRAIN_S=${TRAIN_S:-210}
fi
WHEELS=${WHEELS:-.gpu-wheels}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export SPINESEG_CACHE=${SPINESEG_CACHE:-$WORK/cache} PYTHONUNBUFFERED=1

# 0. The machine's torch on the device: CUDA seen and a kernel run, or one line now.
probe=$("$PYTHON" - "$DEVICE" 2>/dev/null <<'PY'
import os, sys
try:
    import torch
except Exception as exc:
    print(f"{sys.executable} cannot import torch ({type(exc).__name__}: {exc}); set PYTHON "
          "to the interpreter that holds the machine's CUDA torch")
    sys.exit(1)
device = sys.argv[1]
if device == "cuda" and not torch.cuda.is_available():
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    print(f"CUDA is not usable: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no "
          "GPU" + ("" if seen is None else f" (CUDA_VISIBLE_DEVICES={seen!r})")
          + "; this check needs one (--dry-run runs it on the CPU)")
    sys.exit(1)
try:
    x = torch.ones(64, 64, device=device)
    total = float((x @ x).sum())  # a kernel, then a read back: the device answered
except Exception as exc:
    print(f"CUDA is not usable: a 64x64 matmul on {device} failed: "
          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    sys.exit(1)
if total != 64 ** 3:
    print(f"CUDA is not usable: a 64x64 matmul of ones on {device} gave {total}, not {64 ** 3}")
    sys.exit(1)
name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {name}")
PY
) || fail "${probe:-$PYTHON failed before it could say why}"
say "$probe"
part probe

# 1. Install, offline. A venv over the machine's Python sees the machine's packages through a
#    .pth file (so its torch is reused, also where that Python is itself a venv, whose
#    --system-site-packages would be the base interpreter's); the wheels fill in the rest.
if "$VENV/bin/python" -c 'import nibabel, spineseg_core' 2>/dev/null; then
    say "reusing $VENV"
else
    [ -f "$WHEELS/requirements.txt" ] || fail "no wheels in $WHEELS: run scripts/gpu_wheels.py \
on a machine that reaches PyPI and bring the folder along"
    "$PYTHON" -m venv --without-pip "$VENV" || fail "$PYTHON -m venv $VENV failed"
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$PYTHON" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith("-packages")))' \
        > "$site/_machine_site.pth"
    pip=("$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS")
    "${pip[@]}" -c "$WHEELS/constraints.txt" -r "$WHEELS/requirements.txt" > "$WORK/pip.log" \
        2>&1 || fail "offline install from $WHEELS failed: $(grep -m1 ERROR "$WORK/pip.log")"
    "$VENV/bin/python" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 68)' \
        2>/dev/null || "${pip[@]}" -r "$WHEELS/setuptools.txt" > "$WORK/pip.log" 2>&1 \
        || fail "setuptools from $WHEELS: $(grep -m1 ERROR "$WORK/pip.log")"
    "${pip[@]}" --no-deps --no-build-isolation -e . > "$WORK/pip.log" 2>&1 \
        || fail "editable install of this tree failed: $(grep -m1 ERROR "$WORK/pip.log")"
    "$VENV/bin/python" -c 'import torch, nibabel, spineseg_core' \
        || fail "$VENV cannot import the package after the install"
fi
PY="$VENV/bin/python"
"$PY" -c "import torch; assert torch.__version__ == '${probe#torch }'.split(',')[0], torch.__version__" \
    2>/dev/null || fail "$VENV's torch is not the machine's (${probe%%,*})"
part install
[ "$INSTALL_ONLY" = 1 ] && exit 0

# 2. The device's own tests; on the GPU a skipped one is a failure.
"$PY" scripts/gpu_check.py tests $([ "$DRY" = 1 ] && echo --allow-skips) \
    tests/test_cuda.py tests/test_metrics.py
part tests

# 3. Training steps per model at the paper's size.
# shellcheck disable=SC2086  # MODELS is a list of names
"$PY" scripts/gpu_check.py train --device "$DEVICE" --size "$SIZE" ${BATCH:+--batch $BATCH} \
    --steps "$STEPS" --budget-s "$TRAIN_S" --out "$OUT" ${MODELS:+--models $MODELS}
part train

# 4. The data path on CASES phantom cases written at SIZE px, all of them read.
"$PY" -m spineseg_core phantom --out "$WORK/data" --cases "$CASES" --size "$SIZE" \
    --test-cases 0 --quiet
"$PY" scripts/gpu_check.py data --device "$DEVICE" --size "$SIZE" ${BATCH:+--batch $BATCH} \
    --steps "$(( STEPS < 10 ? STEPS : 10 ))" --data-dir "$WORK/data" --out "$OUT"
part data

# 5. A smoke-trained U-Net predicts one of those cases.
"$PY" -m spineseg_core train --profile smoke --model unet --device "$DEVICE" --gpu-augment \
    --out-dir "$WORK/run" --no-hd95 > "$WORK/train.log" 2>&1 \
    || fail "smoke training failed: $(tail -1 "$WORK/train.log")"
volume=$(find "$WORK/data" -path '*/MR/Case*.nii.gz' | sort | head -1)
[ -n "$volume" ] || fail "no case image under $WORK/data"
t0=$EPOCHREALTIME
"$PY" -m spineseg_core predict --run "$WORK/run" "$volume" -o "$WORK/pred.nii.gz" \
    --device "$DEVICE"
t1=$EPOCHREALTIME
"$PY" scripts/gpu_check.py predict-result --device "$DEVICE" --run "$WORK/run" \
    --input "$volume" --output "$WORK/pred.nii.gz" \
    --seconds "$("$PY" -c "print($t1 - $t0)")" --out "$OUT"
part predict
say "passed; results in $OUT"
