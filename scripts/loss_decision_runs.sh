#!/usr/bin/env bash
# The loss runs of the backbone model that the default loss is chosen over (issue 24, part 5):
# DeepLabv3+ (the paper's best) with every loss the U-Net and MiniSeg loss runs have, seed 0,
# made by the commit that made those (the records' code version, fingerprint 1c69bc18c351,
# checked out into .study-code/ as scripts/rerun_cpu_study.sh does), so that the choice
# (spineseg_core.study.loss_study.select_loss, validation Dice only) compares one code version.
# Records land in results/cpu/runs/cpu-loss-<loss>/deeplabv3plus/. Resumable: a recorded run is
# skipped. Cost on 2 AMX Xeon cores: about 3 x 7 min.
set -eu
cd "$(dirname "$0")/.."
here=$PWD
CODE_COMMIT=${CODE_COMMIT:-e28e2c125c79f082b204d353c688af596ed8d2b8}
code=$here/.study-code/${CODE_COMMIT:0:12}
[ -d "$code" ] || git worktree add --detach "$code" "$CODE_COMMIT" >/dev/null
got=$(cd "$code" && PYTHONPATH="$code" "$here/.venv/bin/python" -c \
    'from spineseg_core.fingerprint import source_fingerprint as f; print(f()[:12])')
[ "$got" = 1c69bc18c351 ] || { echo "loss_decision_runs: $code has fingerprint $got" >&2; exit 1; }
RUNS=$(realpath -m "${RUNS:-runs}")
cd "$code"
PYTHONPATH="$code" "$here/.venv/bin/python" -m spineseg_core study --profile cpu \
    --runs-dir "$RUNS" --records-dir "$here/results/cpu/runs" --no-aggregate --poll-s 30 \
    --seeds 0 --models deeplabv3plus --losses dice ce weighted_ce "$@"
