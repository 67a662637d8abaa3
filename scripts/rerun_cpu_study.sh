#!/usr/bin/env bash
# The study's cpu-profile re-run (issue 11), in priority order, continuing from the committed
# records in results/cpu/runs/: a run whose record is there is skipped, each new run is recorded
# as it finishes (commit them as they come). Stop it at any time; run it again to go on.
#
#   scripts/rerun_cpu_study.sh            # RUNS=runs by default: checkpoints, never committed
#
# MiniSeg trains in fp32 on this profile (study.runner.BUDGET_EXCEPTIONS: it diverged in bf16),
# which the study applies itself and each run's params.json records.
set -u
cd "$(dirname "$0")/.."
S=.venv/bin/spineseg
RUNS=${RUNS:-runs}
common=(--profile cpu --runs-dir "$RUNS" --records-dir results/cpu/runs --no-aggregate --poll-s 30)

$S study "${common[@]}" --seeds 0
$S study "${common[@]}" --seeds 0 --variant res256 -p image_size 256 \
    --models unet attention_unet deeplabv3plus pspnet danet
$S study "${common[@]}" --seeds 0 --variant os8 --models danet -p model_kwargs '{"output_stride": 8}'
$S study "${common[@]}" --seeds 1
$S study "${common[@]}" --seeds 2
$S study "${common[@]}" --seeds 0 1 2 --models unet miniseg --losses dice ce weighted_ce
$S study "${common[@]}" --seeds 0 --variant os8-res256 --models danet -p image_size 256 \
    -p model_kwargs '{"output_stride": 8}'
