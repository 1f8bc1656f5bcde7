#!/usr/bin/env bash
# Train the two shipped models (TADA and its source-only twin, mnist → mnistm) and write their
# model cards. Takes about 15–30 minutes on 2 CPU cores. Usage: scripts/train_shipped.sh [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-1500}
TADA=${TADA:-.venv/bin/tada}
for variant in tada source_only; do
  out=runs/shipped/$variant
  rm -rf "$out"; mkdir -p runs/shipped
  OMP_NUM_THREADS=1 "$TADA" train --source mnist --target mnistm --variant "$variant" --iters "$ITERS" \
    --batch-size 64 --eval-every 250 --seed 0 --out "$out" --quiet --json > "$out.json"
  # the weights and metadata of `last`, without the optimizer state that --resume needs
  .venv/bin/python -c "import sys; from tada_core.checkpoint import load_checkpoint, save_checkpoint; m, i = load_checkpoint(sys.argv[1]); save_checkpoint(sys.argv[2], m, i)" \
    "$out/last.safetensors" "checkpoints/${variant}_mnist_mnistm.safetensors"
  .venv/bin/python scripts/model_card.py "checkpoints/${variant}_mnist_mnistm.safetensors" \
    --history "$out/metrics.jsonl" \
    --command "tada train --source mnist --target mnistm --variant $variant --iters $ITERS --batch-size 64 --eval-every 250 --seed 0"
done
