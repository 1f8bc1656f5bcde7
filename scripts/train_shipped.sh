#!/usr/bin/env bash
# Train the three shipped digits models (TADA, DANN and their source-only twin, mnist → mnistm) with
# the default recipe of `tada train` (seed 0) and write their model cards. About 20 minutes on
# 2 CPU cores. Usage: scripts/train_shipped.sh
#   FROM=DIR scripts/train_shipped.sh   reuses the seed-0 runs that
#   `tada bench accuracy --suite digits --keep DIR` kept (DIR/<variant>_mnist_mnistm_s0): the same
#   config and seed as the command below, so the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
TADA=${TADA:-.venv/bin/tada}
COMMAND_FLAGS="--source mnist --target mnistm --seed 0 --eval-every 250"
mkdir -p runs/shipped
for variant in tada dann source_only; do
  if [ -n "${FROM:-}" ]; then
    out="$FROM/${variant}_mnist_mnistm_s0"
  else
    out=runs/shipped/$variant
    rm -rf "$out"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 "$TADA" train $COMMAND_FLAGS --variant "$variant" --out "$out" --quiet --json > "$out.json"
  fi
  # the weights and metadata of `last`, without the optimizer state that --resume needs
  .venv/bin/python -c "import sys; from tada_core.checkpoint import load_checkpoint, save_checkpoint; m, i = load_checkpoint(sys.argv[1]); save_checkpoint(sys.argv[2], m, i)" \
    "$out/last.safetensors" "checkpoints/${variant}_mnist_mnistm.safetensors"
  .venv/bin/python scripts/model_card.py "checkpoints/${variant}_mnist_mnistm.safetensors" \
    --history "$out/metrics.jsonl" --command "tada train $COMMAND_FLAGS --variant $variant"
done
