"""The training job's own process: :func:`run_job` is the target of a ``spawn``-ed child.

The child loads the domains, runs :func:`tada_core.training.loop.train` and reports what it does as small
events on a one-way pipe; the server's :class:`app.serving.jobs.JobManager` applies them to the job every
visitor sees. An event is a tuple ``(kind, payload)``:

* ``("update", {field: value})`` — job fields such as ``status``, ``step``, ``last_logs``, in
  frozen-backbone mode ``encoded`` / ``encode_total`` while the images are encoded once, and
  ``phase``: where the current phase (encode, steps, calibrate, localiser) stands with its time
  left (:class:`tada_core.training.progress.PhaseProgress` as a dict, at most twice a second);
* ``("log", line)`` — one line of the job's log;
* ``("loss", point)`` — one point of the loss curves (``{"step", "total", …}``);
* ``("eval", (record, checkpoint path))`` — one evaluation (a ``metrics.jsonl`` record);
* ``("probes", (overlays, notes, step))`` — attention of the fixed probe images, live model;
* ``("end", (status, line, error))`` — the last event: ``finished``, ``stopped`` or ``failed``.

A child that dies without its ``end`` event (killed, out of memory, a crash in native code) is
noticed by the server through the closed pipe and its exit code. The child also stops by itself,
saving ``last.safetensors``, when the server that started it is gone.
"""

from __future__ import annotations

import logging
import os
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import numpy as np
import torch
from PIL import Image

from app.serving.redact import redact_paths
from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TADAConfig
from tada_core.errors import TadaError
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import AttentionResult
from tada_core.explain.views import range_text, value_ranges
from tada_core.explain.viz import overlay_view
from tada_core.training.loop import Callback, Run, TrainResult, train
from tada_core.training.progress import PhaseProgress
from tada_core.training.run_data import load_run_data

log = logging.getLogger(__name__)

MAX_LOSS_POINTS = 300
PHASE_EVERY_S = 0.5  # the phase's progress goes to the server at most this often (and when it changes)


def describe(result: AttentionResult) -> str:
    """One line: prediction, m and P(source)."""
    text = f"predicted {result.predicted} ({float(result.probs.max()):.0%})"
    if result.global_attention is not None:
        text += f" · m {result.global_attention:.2f}"
    if result.domain_prob is not None:
        text += f" · P(source) {result.domain_prob:.2f}"
    if result.grid is None:
        text += " · no local attention in this variant"
    return text


class Reporter(Callback):
    """Turns the training loop's callbacks into events on ``conn``."""

    def __init__(
        self, conn: Connection, config: TADAConfig, probes: list[np.ndarray], display: dict[str, str] | None = None
    ) -> None:
        self.conn, self.probes = conn, [Image.fromarray(p) for p in probes]
        self.display = display or {"source": config.train.source, "target": config.train.target}
        iters = config.train.iters
        self.stride = max(1, -(-iters // MAX_LOSS_POINTS))
        self.every = max(1, iters // 20)
        self.pending: dict[str, list[float]] = {}
        self.tick = time.time()
        self.phase_sent: tuple[str, float] = ("", 0.0)  # the phase last sent, and when

    def send(self, kind: str, payload) -> None:
        self.conn.send((kind, payload))

    def on_cache(self, done: int, total: int) -> None:
        self.send("update", {"encoded": done, "encode_total": total})
        if done == total:
            self.send("log", f"encoded {total} images once with the frozen backbone")

    def on_phase(self, progress: PhaseProgress) -> None:
        now = time.monotonic()
        phase, sent = self.phase_sent
        if progress.finished or progress.phase != phase or now - sent >= PHASE_EVERY_S:
            self.send("update", {"phase": progress.to_dict()})
            self.phase_sent = (progress.phase, now)
        if progress.finished and progress.phase in ("encode", "localiser"):
            self.send("log", f"{progress.text()}")

    def on_start(self, run: Run) -> None:
        self.send("update", {"status": "running", "step": run.step})
        tc = run.config.train
        self.send(
            "log",
            f"started {run.config.variant} ({run.config.backbone}) {self.display['source']} → "
            f"{self.display['target']}: {tc.iters} steps, batch {tc.batch_size}+{tc.batch_size}, lr {tc.optim.lr:g}, "
            f"λ {run.config.trade_off:g}, γ {run.config.gamma:g}, device {tc.device}; run {run.out_dir.name}",
        )
        self._probe(run)

    def on_step(self, run: Run, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.pending.setdefault(key, []).append(float(value))
        if run.step % self.stride == 0 or run.step == run.config.train.iters:
            self.send("loss", {"step": run.step, **{k: sum(v) / len(v) for k, v in self.pending.items()}})
            self.pending = {}
        self.send("update", {"step": run.step, "last_logs": {k: float(v) for k, v in logs.items()}})
        if run.step % self.every == 0:
            now = time.time()
            rate = self.every / max(now - self.tick, 1e-9)
            self.tick = now
            self.send("log", f"step {run.step}/{run.config.train.iters}: loss {logs['total']:.4f} ({rate:.1f} steps/s)")

    def on_eval(self, run: Run, record: dict) -> None:
        self.send("eval", (dict(record), str(run.out_dir / "best.safetensors")))
        target = record.get("target_accuracy")
        target_text = f"target accuracy {target:.1f}%" if target is not None else "target unlabelled"
        self.send(
            "log",
            f"evaluated at step {record['step']}: {target_text}, held-out source {record['source_accuracy']:.1f}% "
            f"(best so far: step {record['best_step']})",
        )
        self._probe(run)

    def on_end(self, run: Run, result: TrainResult) -> None:
        self.send("update", {"checkpoint": str(result.best or result.last)})

    def _probe(self, run: Run) -> None:
        info = CheckpointInfo(config=run.config, class_names=run.data.class_names)
        results = predict_attention(run.model, info, self.probes, top_k=3)
        ranges = value_ranges([result.grid for result in results], "shared")  # one colour scale for both
        overlays, notes = {}, {}
        for role, result, value_range in zip(("source", "target"), results, ranges, strict=True):
            overlays[role] = overlay_view(result, value_range=value_range, side=224)
            scale = f" · w colour scale {' – '.join(range_text(value_range))} (shared)" if value_range else ""
            notes[role] = f"**{role}** probe: {describe(result)}{scale}"
            Image.fromarray(overlays[role]).save(run.out_dir / f"probe_{role}.png")
        self.send("probes", (overlays, notes, run.step))


def run_job(
    config: TADAConfig,
    probes: list[np.ndarray],
    conn: Connection,
    stop: Event,
    parent: int,
    budget_s: float | None = None,
    display: dict[str, str] | None = None,
) -> None:
    """Train ``config`` in this (child) process, reporting to ``conn``; ends with an ``end`` event.

    PyTorch gets half the CPU cores (at least one): the rest is the web server's, and on a busy
    machine more threads than free cores make every operator wait for a descheduled thread. The
    job stops by itself, saving its checkpoint, after ``budget_s`` seconds of training.
    """
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    deadline = time.time() + budget_s if budget_s else None
    over_budget = False

    def should_stop() -> bool:
        nonlocal over_budget
        if deadline is not None and time.time() > deadline and not over_budget:
            over_budget = True
            conn.send(("log", f"this server's time budget of {budget_s / 60:g} min per job is used up; saving"))
        return stop.is_set() or over_budget or os.getppid() != parent  # the server is gone: save and leave

    try:
        data = load_run_data(config)
        reporter = Reporter(conn, config, probes, display)
        result = train(config, callbacks=[reporter], should_stop=should_stop, data=data)
    except TadaError as err:
        message = redact_paths(str(err))
        conn.send(("end", ("failed", f"training failed: {message}", message)))
    except Exception as err:
        log.exception("training job crashed")
        message = redact_paths(f"unexpected {type(err).__name__}: {err}")
        conn.send(("end", ("failed", f"training crashed: {message} (details in the server log)", message)))
    else:
        status = "stopped" if result.stopped else "finished"
        accuracy = result.final.get("target_accuracy")
        summary = f"{status} after {result.steps} steps" + (" (time budget used up)" if over_budget else "")
        if accuracy is not None:
            summary += f": target accuracy {accuracy:.1f}%"
        summary += f"; best chosen without target labels: step {result.best_step}"
        conn.send(
            (
                "end",
                (
                    status,
                    f"{summary}; checkpoint {(result.best or result.last).name} of run {result.out_dir.name}",
                    None,
                ),
            )
        )
    finally:
        conn.close()
