#!/usr/bin/env bash
# A lent GPU adds finished runs to the study's re-run, within 9 minutes of training
# (scripts/gpu_study.py: which runs, how many at once, when it stops launching):
#   1. the probe and the offline install of scripts/gpu_check.sh (--install-only);
#   2. the runs at the plateau budget (the budget seed's, then the re-run's) that have no record
#      in results/plateau/runs, several at once on the card, each recorded there as it
#      finishes, and packed into $OUT/records.tar.gz. The tree must be the seed's pinned code
#      (results/plateau/CODE), else it stops with one line.
# Unpack that archive in the repository's results/plateau/runs/ here and commit the records.
#
#   scripts/gpu_study.sh                  # on the GPU machine; OUT (default results/gpu)
#   scripts/gpu_study.sh --dry-run        # on the CPU: 2 tiny smoke runs in a temp folder
#   scripts/gpu_study.sh -- --jobs 4      # anything after -- goes to gpu_study.py
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=()
if [ "${1:-}" = "--dry-run" ]; then DRY=(--dry-run); shift; fi
[ "${1:-}" = "--" ] && shift
if [ ${#DRY[@]} -eq 1 ]; then VENV=${VENV:-.venv}; else VENV=${VENV:-.venv-gpu}; fi
export VENV PYTHONUNBUFFERED=1
scripts/gpu_check.sh "${DRY[@]}" --install-only
OUT=${OUT:-results/gpu}
if [ ${#DRY[@]} -eq 1 ]; then
    exec "$VENV/bin/python" scripts/gpu_study.py --dry-run "$@"
fi
exec "$VENV/bin/python" scripts/gpu_study.py --archive "$OUT/records.tar.gz" "$@"
