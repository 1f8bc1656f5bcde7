#!/usr/bin/env bash
# Paper-scale reproduction: every pair of Office-31 or Office-Home with ResNet-50 on GPU(s).
#   scripts/reproduce.sh office31|officehome [VARIANT] [extra `tada train` flags…]
# Data layout (download the datasets yourself):
#   data/office31/{amazon,dslr,webcam}/images/<class>/*.jpg
#   data/officehome/{Art,Clipart,Product,Real_World}/<class>/*.jpg
# ImageNet weights: torchvision's resnet50 IMAGENET1K_V1 in $TORCH_HOME (downloaded on first use).
# PAIRS="A:W" runs a subset. Multi-GPU: TADA_LAUNCH="torchrun --standalone --nproc_per_node=4" scripts/reproduce.sh office31
# (--batch-size is per process; pass e.g. --batch-size 8 with 4 GPUs to keep 32 + 32 in total).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SUITE=${1:?usage: scripts/reproduce.sh office31|officehome [VARIANT] [flags…]}
VARIANT=${2:-tada}
shift $(( $# >= 2 ? 2 : 1 ))
LAUNCH=${TADA_LAUNCH:-$REPO/.venv/bin/python}
case "$SUITE" in
  office31)
    ROOT=${DATA_ROOT:-data/office31}
    declare -A DOM=([A]=amazon/images [D]=dslr/images [W]=webcam/images)
    PAIRS=${PAIRS:-"A:W D:W W:D A:D D:A W:A"} ;;
  officehome)
    ROOT=${DATA_ROOT:-data/officehome}
    declare -A DOM=([Ar]=Art [Cl]=Clipart [Pr]=Product [Rw]=Real_World)
    PAIRS=${PAIRS:-"Ar:Cl Ar:Pr Ar:Rw Cl:Ar Cl:Pr Cl:Rw Pr:Ar Pr:Cl Pr:Rw Rw:Ar Rw:Cl Rw:Pr"} ;;
  *) echo "unknown suite '$SUITE': use office31 or officehome" >&2; exit 2 ;;
esac
for pair in $PAIRS; do
  s=${pair%%:*}; t=${pair##*:}
  $LAUNCH -m tada_core train --config "$REPO/configs/$SUITE.yaml" --variant "$VARIANT" \
    --source "$ROOT/${DOM[$s]}" --target "$ROOT/${DOM[$t]}" \
    --out "runs/$SUITE/$VARIANT/${s}2${t}" "$@"
done
