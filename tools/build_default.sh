#!/usr/bin/env bash
# Rebuilds the bundled default Algorithm, bit for bit (docs/DISTILLATION.md):
#   1. sae distill: the base (vectors, token classes, hand-made rules, fitted transforms)
#      from the STS-B train split and the teacher;
#   2. the teacher file of the train sentences and their minimal pairs, for evolution;
#   3. sae evolve from that base, selecting on a fresh half of the fit pairs each generation
#      (--resample 0.5), seed 1 (chosen on train among seeds 0-2, docs/EVOLVE.md):
#      its final pick, with its rules as they are,
#   4. gets its output map (sae distill --output-map-of): the default.
# Usage: tools/build_default.sh [SHARED] [OUT]        (defaults: ../shared sae/data/default)
# The teacher runs only for what the cache (out/distill) lacks: pip install -e '.[teacher]',
# or point SAE_TEACHER_PYTHON at an interpreter that has it. About 12 minutes on 2 cores with
# a warm cache; a first run also embeds about 72,000 train texts with the teacher (~5 more).
# The shipped default is this script's output from an empty cache (docs/DISTILLATION.md).
set -euo pipefail
shared=${1:-../shared}
out=${2:-sae/data/default}
work=${SAE_BUILD_DIR:-out/default-build}
mkdir -p "$work"
python -m sae distill --shared "$shared" --cache out/distill --out "$work/base"
python tools/evolve/train_teacher.py --shared "$shared" --cache out/distill --out "$work/teacher-train.parquet"
rm -f "$work/run.sqlite"
python -m sae evolve --teacher "$work/teacher-train.parquet" --pairs "$shared/data/stsb/sts-train.csv" \
    --base "$work/base" --out "$work/evolved" --run "$work/run.sqlite" --name default --seed 1 \
    --generations 60 --population 24 --fit-pairs 0 --minimal-pairs 1000 --workers 2 --max-cost 1.2 --resample 0.5
python -m sae distill --shared "$shared" --cache out/distill --output-map-of "$work/evolved" --out "$out"
