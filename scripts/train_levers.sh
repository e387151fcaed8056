#!/usr/bin/env bash
# Trains the runs of docs/results.md's lever and MC-Loss configuration tables (issue 19) into
# RUNS/levers/NAME, measures their localisation, their top-1 with test-time mirroring and
# how many of a class's own channels its top 10 by effect holds (MC-Loss runs), and
# leaves the records where scripts/results.py copies them from.
#
# Usage: scripts/train_levers.sh [NAME ...]     (default: every run, one after the other)
#        scripts/train_levers.sh --crops            (the shipped CE and default models at larger test crops)
#   DATA=../shared/data RUNS=runs DOCS=docs MCVIZ=mcviz   (environment, defaults shown)
# A killed run resumes; a finished one is not trained again. The runs and their flags are the
# [runs.NAME] entries of recipes.toml (scripts/recipes.py reads them); the names say what changes:
# hc = body frozen through the head conv, b5 = through block 5 (block 6 and the head conv train at
# 0.2 x the lr), vN = N views, eN = epochs, sN = N px crops instead of 224, lite2 = EfficientNet-Lite2.
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
DOCS=${DOCS:-docs}
MCVIZ=${MCVIZ:-mcviz}
PYTHON=${PYTHON:-python}
export DATA
CUB=(--dataset cub --root "$DATA/CUB_200_2011")
mapfile -t ORDER < <($PYTHON scripts/recipes.py names runs)

if [ "${1:-}" = --crops ]; then
  mkdir -p "$DOCS/runs/levers"
  for model in cub-ce cub-mc-anchor; do
    for px in 224 288; do
      $MCVIZ eval "checkpoints/$model.safetensors" "${CUB[@]}" --crop $px --json | tail -1 \
        > "$DOCS/runs/levers/$model.crop$px.json"
    done
  done
  exit 0
fi

record() {  # stdin's last line -> docs/runs/levers/$1, whole or not at all (results.py may read it meanwhile)
  local f="$DOCS/runs/levers/$1"
  tail -1 > "$f.part" && mv "$f.part" "$f"
}

for name in "${@:-${ORDER[@]}}"; do
  mapfile -t args < <($PYTHON scripts/recipes.py args "$name")
  [ ${#args[@]} -gt 0 ] || exit 2  # recipes.py said which name it does not know
  out=$RUNS/levers/$name
  if [ -f "$out/state.pt" ]; then
    $MCVIZ train --resume "$out" --workers 0
  else
    $MCVIZ train "${args[@]}" --out "$out"
  fi
  mkdir -p "$DOCS/runs/levers" "$DOCS/runs/consistency"
  $MCVIZ localize "$out/last.safetensors" --root "$DATA/CUB_200_2011" --json | record "$name.localize.json"
  # the part-guided runs: part consistency and stability (docs/consistency.md reads docs/runs/consistency/)
  case $name in *guide*)
    $MCVIZ consistency "$out/last.safetensors" --root "$DATA/CUB_200_2011" --workers 1 --json | tail -1 \
      > "$DOCS/runs/consistency/$name.json.part" && mv "$DOCS/runs/consistency/$name.json.part" "$DOCS/runs/consistency/$name.json" ;;
  esac
  # the test split and its mirror through the frozen block 5 (built once, shared by every run)
  $MCVIZ cache "$out/last.safetensors" "${CUB[@]}" --flip
  $MCVIZ eval "$out/last.safetensors" "${CUB[@]}" --flip --json | record "$name.flip.json"
  # own channels in each class's top 10 by effect (issue 20; the MC-Loss runs only)
  case " ${args[*]} " in *" --variant ce "*) ;; *)
    $MCVIZ rank "$out/last.safetensors" "${CUB[@]}" --json | record "$name.rank.json" ;;
  esac
  # issue 31: the class-connected runs' deletion check (own channels against as many random ones)
  case $name in cc-*)
    $MCVIZ faithfulness "$out/last.safetensors" "${CUB[@]}" --k 3 5 10 --json | record "$name.faithfulness.json" ;;
  esac
done
