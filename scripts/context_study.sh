#!/usr/bin/env bash
# The context study (issue 13): does context across slices help? U-Net and DeepLabv3+ in 2D,
# their 2.5D variants (3 and 5 slices as channels) and a 3D U-Net over whole volumes, 3 seeds,
# on the cpu profile, all in one group (cpu-context). The 2D runs are in the group too, so every
# comparison of the context chapter is between runs of one code version (the main study's
# records are from an older commit, see scripts/rerun_cpu_study.sh). Records land in
# results/cpu/runs/cpu-context/ as runs finish; stop it at any time and run it again to go on.
#
#   scripts/context_study.sh            # RUNS=runs by default: checkpoints, never committed
#   SEEDS="0" scripts/context_study.sh   # some seeds only (default 0 1 2)
#
# One code version: the runs are made by the commit CODE_COMMIT (source fingerprint
# $FINGERPRINT), checked out once into .study-code/ (git worktree) and imported from there, so
# that later changes to this checkout do not split the group. After each seed, the finished
# runs are scored on the phantom's hard cases (spineseg hardcases, this checkout's code).
set -u
cd "$(dirname "$0")/.."
here=$PWD
CODE_COMMIT=${CODE_COMMIT:-3b659d31a6a2144291708d593440d866b5f34e87}
FINGERPRINT=fdce9a6651f9
code=$here/.study-code/${CODE_COMMIT:0:12}
if [ ! -d "$code" ]; then
    git worktree add --detach "$code" "$CODE_COMMIT" >/dev/null || exit 1
fi
got=$(cd "$code" && PYTHONPATH="$code" "$here/.venv/bin/python" -c \
    'from spineseg_core.fingerprint import source_fingerprint as f; print(f()[:12])')
if [ "$got" != "$FINGERPRINT" ]; then
    echo "context_study: $code has source fingerprint $got, the study $FINGERPRINT" >&2
    exit 1
fi
RUNS=$(realpath -m "${RUNS:-runs}")
for seed in ${SEEDS:-0 1 2}; do
    (cd "$code" && PYTHONPATH="$code" "$here/.venv/bin/python" -m spineseg_core study \
        --profile cpu --runs-dir "$RUNS" --records-dir "$here/results/cpu/runs" \
        --no-aggregate --poll-s 30 --variant context --seeds "$seed" \
        --models unet unet_25d3 unet_25d5 unet3d deeplabv3plus deeplabv3plus_25d3 \
        deeplabv3plus_25d5)
    .venv/bin/spineseg hardcases --runs-dir "$RUNS" --groups cpu-context \
        --records-dir results/cpu/runs | tail -1
done
