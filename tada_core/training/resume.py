"""What ``--resume`` needs beyond the weights: optimizer momentum, RNG state, step, history.

What a resumed run redoes, by the phase it was interrupted in:

* encode (frozen backbone, before the first checkpoint): there is no ``last.safetensors`` yet,
  so the run starts again (with or without ``--resume``; ``--resume`` is accepted when the run's
  ``cache/`` folder exists) and encodes again every domain except those whose maps were complete
  in ``cache/`` (:mod:`tada_core.training.map_store`: domains too large for memory, above
  ≈ 4,000 Lite0 images; smaller ones take seconds to a minute).
* steps: the steps since ``last.safetensors`` was written (at each evaluation, and every
  ``train.save_minutes`` between them), exactly as they would have run; the frozen-backbone
  cache is encoded again first, except the maps stored in ``cache/``.
* an evaluation: the steps since the previous checkpoint and the evaluation; its
  ``metrics.jsonl`` line, if written, is dropped and written again.
* the shift localiser's fit, after the last step: only the fit, without encoding the cache
  again (:func:`finished`); a localiser already stored in the checkpoints is not fitted again.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TADAConfig
from tada_core.errors import ConfigError

# train.* options that may change when a run is resumed (they do not change what is learned)
RESUMABLE = {"iters", "device", "workers", "eval_every", "eval_max", "out", "amp", "compile", "localiser"}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Momentum buffers as flat named tensors (safetensors stores no nested objects)."""
    state = optimizer.state_dict()["state"]
    return {
        f"optim.{index}.momentum_buffer": s["momentum_buffer"] for index, s in state.items() if "momentum_buffer" in s
    }


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state = optimizer.state_dict()
    for key, value in tensors.items():
        if key.startswith("optim."):
            state["state"][int(key.split(".")[1])] = {"momentum_buffer": value}
    optimizer.load_state_dict(state)


def check_resume_config(saved: TADAConfig, wanted: TADAConfig) -> None:
    """Refuse to resume when anything but the budget, device or bookkeeping options changed."""
    a, b = saved.to_dict(), wanted.to_dict()
    sa, sb = a.pop("train"), b.pop("train")
    diffs = [k for k in a if a[k] != b[k]] + [f"train.{k}" for k in sa if k not in RESUMABLE and sa[k] != sb[k]]
    if diffs:
        raise ConfigError(
            f"--resume continues the run as it was configured, but {', '.join(diffs)} differ; "
            "drop those flags or start a new run with another --out"
        )


def read_history(path: Path, up_to_step: int, rewrite: bool) -> list[dict]:
    """Evaluation records up to ``up_to_step``; later lines (written after the checkpoint) are dropped."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in records if r.get("step", 0) <= up_to_step]
    if rewrite and len(kept) != len(records):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept


def finished(info: CheckpointInfo, history: list[dict], iters: int) -> bool:
    """Whether a run whose last checkpoint is ``info`` (evaluations ``history``) has no step and no
    evaluation left for ``iters`` steps: its rest (the shift localiser's fit) needs no cache."""
    step = int(info.extra["step"])
    return step >= iters and bool(history) and history[-1].get("step") == step
