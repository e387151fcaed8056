#!/usr/bin/env bash
# Trains every model shipped in checkpoints/ (see checkpoints/README.md), one after the
# other, on the 2-core CPU budget: small backbone, 64 px, 10 epochs, seed 0.
# Usage: scripts/train_checkpoints.sh [DATA_DIR] [RUNS_DIR]   (defaults: ../shared/data runs)
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs}
MCVIZ=${MCVIZ:-mcviz}
COMMON=(--backbone small --image-size 64 --epochs 10 --batch-size 32 --lr 0.1 --schedule cosine
        --seed 0 --workers 1 --eval-every 5 --save-dtype float16)

train() {  # name dataset root variant [extra args]
  local name=$1 dataset=$2 root=$3 variant=$4; shift 4
  if [ -f "checkpoints/$name.safetensors" ]; then echo "skip $name (exists)"; return; fi
  if [ -f "$RUNS/$name/state.pt" ]; then
    $MCVIZ train --resume "$RUNS/$name"
  else
    $MCVIZ train --dataset "$dataset" --root "$root" --variant "$variant" --out "$RUNS/$name" "${COMMON[@]}" "$@"
  fi
  cp "$RUNS/$name/last.safetensors" "checkpoints/$name.safetensors"
}

train cub-mc          cub    "$DATA/CUB_200_2011"  mc
train cub-ce          cub    "$DATA/CUB_200_2011"  ce
train cub-mc-no-div   cub    "$DATA/CUB_200_2011"  mc-no-div
train cars-mc         folder "$DATA/stanford_cars" mc
train cars-ce         folder "$DATA/stanford_cars" ce
train cub-mc-no-cwa   cub    "$DATA/CUB_200_2011"  mc-no-cwa
train cub-mc-v2       cub    "$DATA/CUB_200_2011"  mc-v2
