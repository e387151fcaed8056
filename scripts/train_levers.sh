#!/usr/bin/env bash
# Trains the runs of docs/results.md's lever and MC-Loss configuration tables (issue 19) into
# RUNS/levers/NAME, measures their localisation, their top-1 with test-time mirroring and
# how many of a class's own channels its top 10 by effect holds (MC-Loss runs), and
# leaves the records where scripts/results.py copies them from.
#
# Usage: scripts/train_levers.sh [NAME ...]     (default: every run, one after the other)
#        scripts/train_levers.sh --crops            (the shipped CE and default models at larger test crops)
#   DATA=../shared/data RUNS=runs DOCS=docs MCVIZ=mcviz   (environment, defaults shown)
# A killed run resumes; a finished one is not trained again. Every run shares the data set, the
# backbone, 224 px, batch 64, lr 0.05 (cosine) and one of two caches of block 5's outputs (2 or 4
# views per training image); the names say what changes: hc = body frozen through the head conv,
# b5 = through block 5 (block 6 and the head conv train at 0.2 x the lr), vN = N views, eN = epochs,
# sN = N px crops instead of 224, lite2 = EfficientNet-Lite2 instead of Lite0.
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs}
DOCS=${DOCS:-docs}
MCVIZ=${MCVIZ:-mcviz}
CUB=(--dataset cub --root "$DATA/CUB_200_2011")
COMMON=(--backbone lite0 --pretrained --image-size 224 --batch-size 64 --lr 0.05 --schedule cosine --workers 0
        --save-dtype float16)
HC=(--freeze head_conv --cache-layer block5)
B5=(--freeze block5 --body-lr 0.2)
# the anchored L_div of the app's default (docs/diversity.md)
ANCHOR=(--variant mc --div-anchor 1 --div-anchor-sd 1 --lam 2)
# issue 31's class-connected heads on the shipped recipe (288 px, the block-5 cache, 2 views)
S288=(--cache-views 2 --epochs 4 --image-size 288)
CCA=(--head class-connected-avg)
CCM=(--head class-connected-max)
# distillation from the shipped CE model's probabilities (same frozen trunk; Hinton et al., 2015)
KD=(--distill checkpoints/cub-ce.safetensors --distill-temperature 4 --distill-weight)

declare -A LEVERS=(
  [hc-v4-e4]="--variant ce ${HC[*]} --cache-views 4 --epochs 4"
  [hc-v4-e8]="--variant ce ${HC[*]} --cache-views 4 --epochs 8"
  [hc-v8-e4]="--variant ce ${HC[*]} --cache-views 8 --epochs 4"
  [hc-v2-e4-s288]="--variant ce ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [lite2-s288]="--variant ce ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --backbone lite2"
  [lite2-s288-s1]="--variant ce ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --backbone lite2 --seed 1"
  [lite2-anchor-s288-mu03]="${ANCHOR[*]} --mu 0.3 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --backbone lite2"
  [mc-s288]="--variant mc ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [anchor-s288]="${ANCHOR[*]} ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [anchor-s288-mu05]="${ANCHOR[*]} --mu 0.5 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [anchor-s288-mu015]="${ANCHOR[*]} --mu 0.15 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [anchor-s288-mu03]="${ANCHOR[*]} --mu 0.3 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288"
  [anchor-s288-mu03-s1]="${ANCHOR[*]} --mu 0.3 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --seed 1"
  [anchor-s288-mu05-s1]="${ANCHOR[*]} --mu 0.5 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --seed 1"
  [anchor-s288-mu015-s1]="${ANCHOR[*]} --mu 0.15 ${HC[*]} --cache-views 2 --epochs 4 --image-size 288 --seed 1"
  [cc-avg-x3-anchor-mu03]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-max-x3-anchor-mu03]="${CCM[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x5-anchor-mu03]="${CCA[*]} --xi 5 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x10-anchor-mu03]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x10-anchor-mu03-s1]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} --seed 1"
  [cc-avg-x10-anchor-mu15]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 1.5 ${HC[*]} ${S288[*]}"
  [cc-avg-x10-mc-mu15]="${CCA[*]} --xi 10 --variant mc --mu 1.5 ${HC[*]} ${S288[*]}"
  [cc-avg-x10-mc-mu03]="${CCA[*]} --xi 10 --variant mc --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x5-mc-mu15]="${CCA[*]} --xi 5 --variant mc --mu 1.5 ${HC[*]} ${S288[*]}"
  [cc-avg-x3-anchor-mu15]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 1.5 ${HC[*]} ${S288[*]}"
  [cc-avg-x3-mc-mu03]="${CCA[*]} --xi 3 --variant mc --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x3-mc-mu15]="${CCA[*]} --xi 3 --variant mc --mu 1.5 ${HC[*]} ${S288[*]}"
  [cc-avg-x3-anchor-mu03-s1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} --seed 1"
  [cc-avg-x3-anchor-mu03-e8]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} --cache-views 2 --epochs 8 --image-size 288"
  [cc-avg-x10-ce]="${CCA[*]} --xi 10 --variant ce ${HC[*]} ${S288[*]}"
  [cc-avg-x10-h512-anchor-mu03]="${CCA[*]} --xi 10 --mc-hidden 512 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]}"
  [cc-avg-x10-h512-anchor-mu03-s1]="${CCA[*]} --xi 10 --mc-hidden 512 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} --seed 1"
  [cc-avg-x3-anchor-mu03-kd]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 1"
  [cc-avg-x3-anchor-mu03-kd-s1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 1 --seed 1"
  [cc-avg-x3-anchor-mu03-kd3]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 3"
  [cc-avg-x3-anchor-mu03-kd3-s1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 3 --seed 1"
  [cc-avg-x3-anchor-mu03-b6-kd3]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3"
  [cc-avg-x3-h512-anchor-mu03-kd3]="${CCA[*]} --xi 3 --mc-hidden 512 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 3"
  [cc-avg-x3-h512-anchor-mu03-kd3-s1]="${CCA[*]} --xi 3 --mc-hidden 512 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 3 --seed 1"
  [cc-avg-x3-anchor-mu03-b6-kd3-s1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3 --seed 1"
  [cc-avg-x10-anchor-mu03-b6-kd3]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3"
  [cc-avg-x10-anchor-mu03-b6-kd3-s1]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3 --seed 1"
  [ce-s288-b6]="--variant ce ${B5[*]} ${S288[*]}"
  [cc-avg-x3-anchor-mu03-b6]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]}"
  [cc-avg-x10-anchor-mu03-kd]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${HC[*]} ${S288[*]} ${KD[*]} 1"
  [cc-avg-x10-anchor-mu03-e8]="${CCA[*]} --xi 10 ${ANCHOR[*]} --mu 0.3 ${HC[*]} --cache-views 2 --epochs 8 --image-size 288"
  [b5-v4-e8]="--variant ce ${B5[*]} --cache-views 4 --epochs 8"
  [b5-v4-e8-ls]="--variant ce ${B5[*]} --cache-views 4 --epochs 8 --label-smoothing 0.1"
  [b5-v4-e8-mix]="--variant ce ${B5[*]} --cache-views 4 --epochs 8 --mixup 0.2"
  [mc-a-mu0005]="--variant mc ${HC[*]} --cache-views 2 --epochs 4 --mu 0.005"
  [mc-b-mu0005]="--variant mc --uneven ${B5[*]} --cache-views 4 --epochs 8 --mu 0.005"
  [mc-b-mu15]="--variant mc --uneven ${B5[*]} --cache-views 4 --epochs 8 --mu 1.5"
  [ce-s288-b6-kd3]="--variant ce ${B5[*]} ${S288[*]} ${KD[*]} 3"
  [ce-s288-b6-kd3-s1]="--variant ce ${B5[*]} ${S288[*]} ${KD[*]} 3 --seed 1"
  [cc-avg-x3-mc-mu15-b6-kd3]="${CCA[*]} --xi 3 --variant mc --mu 1.5 ${B5[*]} ${S288[*]} ${KD[*]} 3"
  [cc-avg-x5-mc-mu15-b6-kd3]="${CCA[*]} --xi 5 --variant mc --mu 1.5 ${B5[*]} ${S288[*]} ${KD[*]} 3"
  # part-guided channels (uses CUB's part annotations): the default's recipe, each own channel pulled to its part
  [cc-avg-x3-anchor-mu03-b6-kd3-guide1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3 --part-guide 1"
  [cc-avg-x3-anchor-mu03-b6-kd3-guide1-s1]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3 --part-guide 1 --seed 1"
  # ... trained also on noisy copies of the crop and its mirror (the stability protocol's noise), same targets
  [cc-avg-x3-anchor-mu03-b6-kd3-guide1-noise]="${CCA[*]} --xi 3 ${ANCHOR[*]} --mu 0.3 ${B5[*]} ${S288[*]} ${KD[*]} 3 --part-guide 1 --cache-views 4 --cache-noise 0.2"
)
ORDER=(hc-v4-e4 hc-v4-e8 hc-v8-e4 hc-v2-e4-s288 lite2-s288 lite2-s288-s1 lite2-anchor-s288-mu03 mc-s288 anchor-s288 anchor-s288-mu05 anchor-s288-mu015 anchor-s288-mu05-s1 anchor-s288-mu015-s1 anchor-s288-mu03 anchor-s288-mu03-s1 cc-avg-x10-anchor-mu03 cc-avg-x3-anchor-mu03 cc-max-x3-anchor-mu03 cc-avg-x5-anchor-mu03 cc-avg-x10-anchor-mu03-s1 cc-avg-x10-mc-mu15 cc-avg-x10-anchor-mu15 cc-avg-x10-mc-mu03 cc-avg-x5-mc-mu15 cc-avg-x3-mc-mu15 cc-avg-x3-anchor-mu15 cc-avg-x3-mc-mu03 cc-avg-x10-ce cc-avg-x3-anchor-mu03-s1 cc-avg-x3-anchor-mu03-e8 cc-avg-x10-h512-anchor-mu03 cc-avg-x10-h512-anchor-mu03-s1 cc-avg-x10-anchor-mu03-e8 cc-avg-x3-anchor-mu03-kd cc-avg-x3-anchor-mu03-kd-s1 cc-avg-x3-anchor-mu03-kd3 cc-avg-x3-anchor-mu03-kd3-s1 cc-avg-x3-anchor-mu03-b6-kd3 cc-avg-x3-anchor-mu03-b6-kd3-s1 cc-avg-x10-anchor-mu03-b6-kd3 cc-avg-x10-anchor-mu03-b6-kd3-s1 ce-s288-b6 cc-avg-x3-h512-anchor-mu03-kd3 cc-avg-x3-h512-anchor-mu03-kd3-s1 cc-avg-x3-anchor-mu03-b6 cc-avg-x10-anchor-mu03-kd b5-v4-e8 b5-v4-e8-ls b5-v4-e8-mix mc-a-mu0005 mc-b-mu0005 mc-b-mu15 ce-s288-b6-kd3 ce-s288-b6-kd3-s1 cc-avg-x3-mc-mu15-b6-kd3 cc-avg-x5-mc-mu15-b6-kd3 cc-avg-x3-anchor-mu03-b6-kd3-guide1 cc-avg-x3-anchor-mu03-b6-kd3-guide1-s1 cc-avg-x3-anchor-mu03-b6-kd3-guide1-noise)

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
  args=${LEVERS[$name]:?unknown run $name}
  out=$RUNS/levers/$name
  if [ -f "$out/state.pt" ]; then
    $MCVIZ train --resume "$out" --workers 0
  else
    # shellcheck disable=SC2086
    $MCVIZ train "${CUB[@]}" "${COMMON[@]}" $args --eval-every 4 --out "$out"
  fi
  mkdir -p "$DOCS/runs/levers"
  # the test split and its mirror through the frozen block 5 (built once, shared by every run)
  $MCVIZ cache "$out/last.safetensors" "${CUB[@]}" --flip
  $MCVIZ eval "$out/last.safetensors" "${CUB[@]}" --flip --json | record "$name.flip.json"
  $MCVIZ localize "$out/last.safetensors" --root "$DATA/CUB_200_2011" --json | record "$name.localize.json"
  # own channels in each class's top 10 by effect (issue 20; the MC-Loss runs only)
  case $args in *"--variant ce"*) ;; *)
    $MCVIZ rank "$out/last.safetensors" "${CUB[@]}" --json | record "$name.rank.json" ;;
  esac
  # issue 31: the class-connected runs' deletion check (own channels against as many random ones)
  case $name in cc-*)
    $MCVIZ faithfulness "$out/last.safetensors" "${CUB[@]}" --k 3 5 10 --json | record "$name.faithfulness.json" ;;
  esac
done
