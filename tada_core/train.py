"""The training loop: a function with callbacks that the CLI, the tests and the app all drive.

    result = train(config, callbacks=[PrintCallback()], should_stop=event.is_set)

One step (:func:`train_step`) draws B source and B target images, runs one forward over both
(BatchNorm sees both domains), builds the variant's losses with λ_p from the progress p, and
takes an SGD step with lr_p = lr·(1 + α·p)^(−β) (METHOD.md). Every ``eval_every`` steps and at
the end the model is evaluated on the target (and source), a line goes to ``metrics.jsonl``,
``last.safetensors`` (with what ``--resume`` needs) and, when the target accuracy improved,
``best.safetensors`` are written atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tada_core.checkpoint import CheckpointInfo, read_checkpoint, save_checkpoint
from tada_core.config import TADAConfig
from tada_core.errors import ConfigError, TadaError
from tada_core.evaluate import evaluate
from tada_core.model import TADAModel, build_model
from tada_core.run_data import RunData, load_run_data
from tada_core.sampling import BatchStream
from tada_core.step import build_optimizer, lr_factor, train_step


class TrainingError(TadaError):
    """Training cannot go on (NaN loss, out of memory, a run folder in the way)."""


@dataclass
class Run:
    """What callbacks can see of a running job."""

    config: TADAConfig
    model: TADAModel
    data: RunData
    out_dir: Path
    step: int = 0
    best_accuracy: float = -1.0
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainResult:
    out_dir: Path
    last: Path
    best: Path | None
    steps: int
    stopped: bool
    final: dict
    best_accuracy: float


class Callback:
    """Hooks called by :func:`train`; override the ones you need."""

    def on_start(self, run: Run) -> None: ...

    def on_step(self, run: Run, logs: dict[str, float]) -> None: ...

    def on_eval(self, run: Run, record: dict) -> None: ...

    def on_end(self, run: Run, result: TrainResult) -> None: ...


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    state = optimizer.state_dict()["state"]
    return {
        f"optim.{index}.momentum_buffer": s["momentum_buffer"] for index, s in state.items() if "momentum_buffer" in s
    }


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state = optimizer.state_dict()
    for key, value in tensors.items():
        if key.startswith("optim."):
            index = int(key.split(".")[1])
            state["state"][index] = {"momentum_buffer": value}
    optimizer.load_state_dict(state)


_RESUMABLE = {"iters", "device", "workers", "eval_every", "eval_max", "out", "amp", "compile"}


def _check_resume_config(saved: TADAConfig, wanted: TADAConfig) -> None:
    a, b = saved.to_dict(), wanted.to_dict()
    sa, sb = a.pop("train"), b.pop("train")
    diffs = [k for k in a if a[k] != b[k]] + [f"train.{k}" for k in sa if k not in _RESUMABLE and sa[k] != sb[k]]
    if diffs:
        raise ConfigError(
            f"--resume continues the run as it was configured, but {', '.join(diffs)} differ; "
            "drop those flags or start a new run with another --out"
        )


def train(
    config: TADAConfig,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    data: RunData | None = None,
) -> TrainResult:
    """Train ``config`` (its ``train`` section says which domains, budget and output folder).

    Args:
        config: the run's configuration; ``num_classes`` is set from the data.
        resume: continue from ``<out>/last.safetensors`` (same config), exactly where it stopped.
        callbacks: :class:`Callback` objects notified of start, steps, evaluations and the end.
        should_stop: polled every step; when it returns True the run saves ``last`` and returns.
        data: already loaded domains (otherwise loaded from ``config.train.source/target``).

    Raises:
        TadaError: bad domains or classes, an existing run without ``resume``, NaN loss, OOM.
    """
    tc = config.train
    out_dir = Path(tc.out)
    last_path, best_path = out_dir / "last.safetensors", out_dir / "best.safetensors"
    if last_path.exists() and not resume:
        raise TrainingError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not last_path.exists():
        raise TrainingError(f"nothing to resume in {out_dir} (no last.safetensors); start it without --resume")
    if tc.iters < 1 or tc.batch_size < 1 or tc.eval_every < 1:
        raise ConfigError("iters, batch_size and eval_every must be positive integers")

    data = data or load_run_data(config)
    config = config.replace(num_classes=len(data.class_names))
    torch.manual_seed(tc.seed)
    model = build_model(config).to(tc.device)
    optimizer = build_optimizer(model, config)
    run = Run(config=config, model=model, data=data, out_dir=out_dir)
    tensors: dict[str, torch.Tensor] = {}
    if resume:
        info, tensors = read_checkpoint(last_path)
        _check_resume_config(info.config, config)
        run.step = int(info.extra["step"])
        run.best_accuracy = float(info.extra.get("best_accuracy", -1.0))
        run.history = _read_history(out_dir / "metrics.jsonl", run.step)
    # the loaders draw from the global RNG when created: make them before restoring its state
    streams = [
        BatchStream(d.dataset, tc.batch_size, tc.seed + offset, start=run.step, workers=tc.workers)
        for offset, d in ((0, data.source), (1, data.target))
    ]
    if resume:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimizer(optimizer, tensors)
        torch.set_rng_state(tensors["rng.torch"])
    out_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(out_dir / "config.yaml")
    for callback in callbacks:
        callback.on_start(run)

    def info_for(metrics: dict, step: int) -> CheckpointInfo:
        return CheckpointInfo(
            config=config,
            class_names=data.class_names,
            source=tc.source,
            target=tc.target,
            metrics=metrics,
            extra={"step": step, "best_accuracy": run.best_accuracy, "iters": tc.iters},
        )

    def checkpoint(record: dict) -> None:
        save_checkpoint(
            last_path,
            model,
            info_for(record, run.step),
            {**_optimizer_tensors(optimizer), "rng.torch": torch.get_rng_state()},
        )

    def evaluate_now(running: dict[str, list[float]], started: float) -> dict:
        target = evaluate(model, data.target_eval.dataset, data.class_names, max_items=tc.eval_max, device=tc.device)
        source = evaluate(model, data.source_eval.dataset, data.class_names, max_items=tc.eval_max, device=tc.device)
        record = {
            "step": run.step,
            "target_accuracy": target["accuracy"],
            "source_accuracy": source["accuracy"],
            **{k: round(sum(v) / len(v), 5) for k, v in running.items() if v},
            "seconds": round(time.time() - started, 2),
        }
        improved = record["target_accuracy"] > run.best_accuracy
        if improved:
            run.best_accuracy = record["target_accuracy"]
        record["best_target_accuracy"] = run.best_accuracy
        run.history.append(record)
        with open(out_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        checkpoint(record)
        if improved:
            save_checkpoint(best_path, model, info_for(record, run.step))
        for callback in callbacks:
            callback.on_eval(run, record)
        return record

    started = time.time()
    running: dict[str, list[float]] = {}
    stopped = False
    record = run.history[-1] if run.history else {}
    try:
        while run.step < tc.iters:
            if should_stop is not None and should_stop():
                stopped = True
                break
            progress = run.step / tc.iters
            lr = tc.optim.lr * lr_factor(progress, tc.optim.lr_alpha, tc.optim.lr_beta)
            source_batch = [t.to(tc.device) for t in next(streams[0])]
            target_batch = [t.to(tc.device) for t in next(streams[1])]
            logs = train_step(model, optimizer, source_batch, target_batch, progress, lr)
            if not math.isfinite(logs["total"]):
                raise TrainingError(
                    f"the loss became {logs['total']} at step {run.step + 1}; training stopped. "
                    f"Try a smaller --lr. The last good checkpoint is {last_path if last_path.exists() else 'not written yet'}"
                )
            run.step += 1
            for key in ("total", "classification", "global_adversarial", "local_adversarial", "entropy"):
                if key in logs:
                    running.setdefault(key, []).append(logs[key])
            for callback in callbacks:
                callback.on_step(run, logs)
            if run.step % tc.eval_every == 0 or run.step == tc.iters:
                record = evaluate_now(running, started)
                running = {}
    except torch.OutOfMemoryError:
        raise TrainingError(
            f"out of memory at step {run.step + 1}; use a smaller --batch-size. "
            f"The last good checkpoint is {last_path if last_path.exists() else 'not written yet'}"
        ) from None
    if record.get("step") != run.step:
        record = evaluate_now(running, started)
    result = TrainResult(
        out_dir=out_dir,
        last=last_path,
        best=best_path if best_path.exists() else None,
        steps=run.step,
        stopped=stopped,
        final=record,
        best_accuracy=run.best_accuracy,
    )
    for callback in callbacks:
        callback.on_end(run, result)
    return result


def _read_history(path: Path, up_to_step: int) -> list[dict]:
    """Evaluation records up to ``up_to_step``; later lines (written after the checkpoint) are dropped."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in records if r.get("step", 0) <= up_to_step]
    if len(kept) != len(records):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept
