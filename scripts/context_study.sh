#!/usr/bin/env bash
# The context study (issue 13): does context across slices help? U-Net and DeepLabv3+ in 2D,
# their 2.5D variants (3 and 5 slices as channels) and a 3D U-Net over whole volumes, 3 seeds,
# on the cpu profile, all in one group (cpu-context) made by one code version: this checkout's.
# The 2D runs are in the group too, so every comparison of the context chapter is between runs
# of one fingerprint (the main study's records are from an older commit, see
# scripts/rerun_cpu_study.sh). Records land in results/cpu/runs/cpu-context/ as runs finish;
# stop it at any time and run it again to go on.
#
#   scripts/context_study.sh            # RUNS=runs by default: checkpoints, never committed
set -u
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
.venv/bin/spineseg study --profile cpu --runs-dir "$RUNS" --records-dir results/cpu/runs \
    --no-aggregate --poll-s 30 --variant context --seeds 0 1 2 \
    --models unet unet_25d3 unet_25d5 unet3d deeplabv3plus deeplabv3plus_25d3 deeplabv3plus_25d5
