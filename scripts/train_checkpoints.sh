#!/usr/bin/env bash
# Trains the models shipped in checkpoints/ (see checkpoints/README.md) on the 2-core CPU
# budget: small backbone, 64 px, 10 epochs, batch 32, SGD lr 0.1 cosine. Every model of a
# table shares that budget; only the variant, its options and the seed change.
#
# Usage: scripts/train_checkpoints.sh [NAME ...]     (default: every model, one after the other)
#   DATA=../shared/data RUNS=runs MCVIZ=mcviz      (environment, defaults shown)
# A killed run resumes from RUNS/NAME; a model already in checkpoints/ is skipped.
# Two streams can share the machine: OMP_NUM_THREADS=1 scripts/train_checkpoints.sh a b & ...
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
MCVIZ=${MCVIZ:-mcviz}
COMMON=(--backbone small --image-size 64 --epochs 10 --batch-size 32 --lr 0.1 --schedule cosine
        --workers 1 --eval-every 5 --save-dtype float16)
CUB=(--dataset cub --root "$DATA/CUB_200_2011")
CARS=(--dataset folder --root "$DATA/stanford_cars")

# name -> training arguments (dataset, variant, options, seed)
declare -A MODELS=(
  [cub-mc]="${CUB[*]} --variant mc --seed 0"
  [cub-ce]="${CUB[*]} --variant ce --seed 0"
  [cub-mc-no-div]="${CUB[*]} --variant mc-no-div --seed 0"
  [cub-mc-no-cwa]="${CUB[*]} --variant mc-no-cwa --seed 0"
  [cub-mc-v2]="${CUB[*]} --variant mc-v2 --seed 0"
  [cub-mc-soft]="${CUB[*]} --variant mc-soft --seed 0"
  [cars-mc]="${CARS[*]} --variant mc --seed 0"
  [cars-ce]="${CARS[*]} --variant ce --seed 0"
  # Issue 7: diversity terms that should spread channels over parts (docs/diversity.md)
  [cub-mc-object]="${CUB[*]} --variant mc --div-region object --seed 0"
  [cub-mc-norm]="${CUB[*]} --variant mc --normalize-div --temperature 2 --seed 0"
  [cub-mc-warmup]="${CUB[*]} --variant mc --lam-warmup 5 --seed 0"
  [cub-mc-class]="${CUB[*]} --variant mc --div-region class --seed 0"
  [cub-mc-class-warmup]="${CUB[*]} --variant mc --div-region class --lam-warmup 5 --seed 0"
  [cub-mc-anchor]="${CUB[*]} --variant mc --div-anchor 5 --seed 0"
  [cub-mc-anchor-tight]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --seed 0"
  [cub-mc-anchor-tight-ramp]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --lam-warmup 3 --seed 0"
  [cub-mc-anchor-tight-lam2]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --lam 2 --seed 0"
  # Second seeds
  [cub-mc-s1]="${CUB[*]} --variant mc --seed 1"
  [cub-ce-s1]="${CUB[*]} --variant ce --seed 1"
  [cub-mc-no-div-s1]="${CUB[*]} --variant mc-no-div --seed 1"
  [cub-mc-object-s1]="${CUB[*]} --variant mc --div-region object --seed 1"
  [cub-mc-norm-s1]="${CUB[*]} --variant mc --normalize-div --temperature 2 --seed 1"
  [cub-mc-warmup-s1]="${CUB[*]} --variant mc --lam-warmup 5 --seed 1"
  [cub-mc-class-s1]="${CUB[*]} --variant mc --div-region class --seed 1"
  [cub-mc-class-warmup-s1]="${CUB[*]} --variant mc --div-region class --lam-warmup 5 --seed 1"
  [cub-mc-anchor-s1]="${CUB[*]} --variant mc --div-anchor 5 --seed 1"
  [cub-mc-anchor-tight-s1]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --seed 1"
  [cub-mc-anchor-tight-ramp-s1]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --lam-warmup 3 --seed 1"
  [cub-mc-anchor-tight-lam2-s1]="${CUB[*]} --variant mc --div-anchor 5 --div-anchor-sd 1 --lam 2 --seed 1"
)
ORDER=(cub-mc cub-ce cub-mc-no-div cub-mc-soft cub-mc-no-cwa cub-mc-v2 cars-mc cars-ce
       cub-mc-object cub-mc-norm cub-mc-warmup cub-mc-class cub-mc-class-warmup cub-mc-anchor
       cub-mc-anchor-tight cub-mc-anchor-tight-ramp cub-mc-anchor-tight-lam2
       cub-mc-s1 cub-ce-s1 cub-mc-no-div-s1 cub-mc-object-s1 cub-mc-norm-s1 cub-mc-warmup-s1
       cub-mc-class-s1 cub-mc-class-warmup-s1 cub-mc-anchor-s1 cub-mc-anchor-tight-s1
       cub-mc-anchor-tight-ramp-s1 cub-mc-anchor-tight-lam2-s1)

train() {  # name
  local name=$1
  [ -n "${MODELS[$name]:-}" ] || { echo "unknown model $name; known: ${ORDER[*]}" >&2; exit 2; }
  if [ -f "checkpoints/$name.safetensors" ]; then echo "skip $name (exists)"; return; fi
  if [ -f "$RUNS/$name/state.pt" ]; then
    $MCVIZ train --resume "$RUNS/$name"
  else
    # shellcheck disable=SC2086  # MODELS entries are word lists
    $MCVIZ train ${MODELS[$name]} --out "$RUNS/$name" "${COMMON[@]}"
  fi
  cp "$RUNS/$name/last.safetensors" "checkpoints/$name.safetensors"
}

for name in "${@:-${ORDER[@]}}"; do train "$name"; done
