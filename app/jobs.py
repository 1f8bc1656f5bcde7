"""One training job at a time for the whole server, run in a background thread.

The :class:`JobManager` (one per process: :func:`job_manager`) owns the job; every browser
session and API client sees the same job through :meth:`JobManager.status` and
:meth:`JobManager.view`, polled by a ``gr.Timer``. A second start while a job runs is refused
with :class:`JobBusyError`; closing the browser does not touch the thread; a stop sets the
``should_stop`` event, so :func:`tada_core.train.train` saves ``last.safetensors`` and returns.

While it runs, a :class:`tada_core.train.Callback` records the losses, the evaluations, a log
and — at every evaluation — the attention overlay of one fixed source and one fixed target
probe image, computed with the live model.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.render import overlay_array
from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TADAConfig
from tada_core.errors import TadaError
from tada_core.inference import AttentionResult, predict_attention
from tada_core.run_data import RunData, norm_for
from tada_core.train import Callback, Run, TrainResult, train
from tada_core.views import range_text, value_ranges

log = logging.getLogger(__name__)

ACTIVE = ("starting", "running", "stopping")
MAX_LOSS_POINTS = 300
MAX_LOG_LINES = 400


class JobBusyError(TadaError):
    """A training job is already running on this server."""


@dataclass
class Job:
    """The state of the current (or last) training job; read it through the manager."""

    id: str
    config: TADAConfig
    out_dir: Path
    status: str = "starting"  # starting, running, stopping, finished, stopped, failed
    step: int = 0
    started: float = field(default_factory=time.time)
    ended: float | None = None
    losses: list[dict] = field(default_factory=list)  # {"step", "total", "classification", …}
    evals: list[dict] = field(default_factory=list)  # the metrics.jsonl records
    log: list[str] = field(default_factory=list)
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # "source"/"target" → overlay RGB
    probe_notes: dict[str, str] = field(default_factory=dict)
    probes_step: int = 0
    last_logs: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    checkpoint: Path | None = None
    version: int = 0  # bumped when the curves or probes change (the UI redraws then)
    encoded: int = 0  # frozen-backbone mode: images encoded so far, of encode_total (before step 1)
    encode_total: int = 0


def probe_images(data: RunData, config: TADAConfig) -> list[Image.Image]:
    """The first evaluation image of the source and of the target, as the model sees them."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in norm_for(config))
    images = []
    for domain in (data.source_eval, data.target_eval):
        tensor, _ = domain.dataset[0]  # (3, S, S) normalised
        pixels = (tensor * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
        images.append(Image.fromarray(pixels.permute(1, 2, 0).numpy()))
    return images


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


class _Recorder(Callback):
    """Feeds the job state from inside :func:`train` (runs in the job's thread)."""

    def __init__(self, manager: JobManager, job: Job, probes: list[Image.Image]) -> None:
        self.manager, self.job, self.probes = manager, job, probes
        iters = job.config.train.iters
        self.stride = max(1, -(-iters // MAX_LOSS_POINTS))
        self.every = max(1, iters // 20)
        self.pending: dict[str, list[float]] = {}
        self.tick = time.time()

    def on_cache(self, done: int, total: int) -> None:
        self.manager._update(self.job, encoded=done, encode_total=total)
        if done == total:
            self.manager._log(self.job, f"encoded {total} images once with the frozen backbone")

    def on_start(self, run: Run) -> None:
        self.manager._update(self.job, status="running", step=run.step)
        tc = run.config.train
        self.manager._log(
            self.job,
            f"started {run.config.variant} ({run.config.backbone}) {tc.source} → {tc.target}: {tc.iters} steps, "
            f"batch {tc.batch_size}+{tc.batch_size}, lr {tc.optim.lr:g}, λ {run.config.trade_off:g}, "
            f"γ {run.config.gamma:g}, device {tc.device}; run folder {run.out_dir}",
        )
        self._probe(run)

    def on_step(self, run: Run, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.pending.setdefault(key, []).append(float(value))
        changes: dict = {"step": run.step, "last_logs": dict(logs)}
        if run.step % self.stride == 0 or run.step == run.config.train.iters:
            point = {"step": run.step, **{k: sum(v) / len(v) for k, v in self.pending.items()}}
            self.pending = {}
            with self.manager._lock:
                self.job.losses.append(point)
                self.job.version += 1
        self.manager._update(self.job, **changes)
        if run.step % self.every == 0:
            now = time.time()
            rate = self.every / max(now - self.tick, 1e-9)
            self.tick = now
            self.manager._log(
                self.job, f"step {run.step}/{run.config.train.iters}: loss {logs['total']:.4f} ({rate:.1f} steps/s)"
            )

    def on_eval(self, run: Run, record: dict) -> None:
        with self.manager._lock:
            self.job.evals.append(dict(record))
            self.job.checkpoint = run.out_dir / "best.safetensors"
            self.job.version += 1
        self.manager._log(
            self.job,
            f"evaluated at step {record['step']}: target accuracy {record['target_accuracy']:.1f}%, "
            f"source {record['source_accuracy']:.1f}% (best target {record['best_target_accuracy']:.1f}%)",
        )
        self._probe(run)

    def on_end(self, run: Run, result: TrainResult) -> None:
        best = result.best or result.last
        self.manager._update(self.job, checkpoint=best)

    def _probe(self, run: Run) -> None:
        info = CheckpointInfo(config=run.config, class_names=run.data.class_names)
        results = predict_attention(run.model, info, self.probes, top_k=3)
        ranges = value_ranges([result.grid for result in results], "shared")  # one colour scale for both
        probes, notes = {}, {}
        for role, result, value_range in zip(("source", "target"), results, ranges, strict=True):
            probes[role] = overlay_array(result, value_range=value_range, side=224)
            scale = f" · w colour scale {' – '.join(range_text(value_range))} (shared)" if value_range else ""
            notes[role] = f"**{role}** probe: {describe(result)}{scale}"
            Image.fromarray(probes[role]).save(run.out_dir / f"probe_{role}.png")
        with self.manager._lock:
            self.job.probes, self.job.probe_notes, self.job.probes_step = probes, notes, run.step
            self.job.version += 1


class JobManager:
    """Owns at most one running training job; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._job: Job | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._counter = 0

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._job is not None and self._job.status in ACTIVE

    def check_idle(self) -> None:
        """Raise :class:`JobBusyError` when a job is running."""
        with self._lock:
            job = self._job
            if job is not None and job.status in ACTIVE:
                tc = job.config.train
                raise JobBusyError(
                    f"a training job is already running ({job.config.variant} {Path(tc.source).name} → "
                    f"{Path(tc.target).name}, step {job.step}/{tc.iters}); only one job runs at a time — "
                    "stop it or wait for it to finish"
                )

    def start(self, config: TADAConfig, data: RunData) -> Job:
        """Start training ``config`` on ``data`` in a background thread.

        Raises:
            JobBusyError: another job is still running (nothing is queued).
        """
        probes = probe_images(data, config)
        with self._lock:
            self.check_idle()
            self._counter += 1
            job = Job(id=f"job-{self._counter}", config=config, out_dir=Path(config.train.out))
            self._job = job
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(job, config, data, probes, self._stop), name=f"tada-{job.id}", daemon=True
            )
            self._thread.start()
        return job

    def _run(self, job: Job, config: TADAConfig, data: RunData, probes: list, stop: threading.Event) -> None:
        try:
            result = train(config, callbacks=[_Recorder(self, job, probes)], should_stop=stop.is_set, data=data)
        except TadaError as err:
            self._finish(job, "failed", f"training failed: {err}", error=str(err))
        except Exception as err:
            log.exception("training job %s crashed", job.id)
            message = f"unexpected {type(err).__name__}: {err}"
            self._finish(job, "failed", f"training crashed: {message} (details in the server log)", error=message)
        else:
            status = "stopped" if result.stopped else "finished"
            accuracy = result.final.get("target_accuracy")
            summary = f"{status} after {result.steps} steps"
            if accuracy is not None:
                summary += f": target accuracy {accuracy:.1f}%, best {result.best_accuracy:.1f}%"
            self._finish(job, status, f"{summary}; checkpoint {result.best or result.last}")

    def _finish(self, job: Job, status: str, line: str, error: str | None = None) -> None:
        self._log(job, line)
        self._update(job, status=status, ended=time.time(), error=error)

    def _update(self, job: Job, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            if "status" in changes:
                job.version += 1

    def _log(self, job: Job, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            job.log.append(f"[{stamp}] {line}")
            del job.log[:-MAX_LOG_LINES]

    def stop(self) -> bool:
        """Ask the running job to stop (it saves a loadable checkpoint); False when none runs."""
        with self._lock:
            job = self._job
            if job is None or job.status not in ACTIVE:
                return False
            self._stop.set()
            if job.status != "stopping":
                job.status = "stopping"
                job.version += 1
        self._log(job, "stop requested; saving the last checkpoint…")
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job's thread; True when no job is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def view(self) -> Job | None:
        """A consistent copy of the current job (None before the first one)."""
        with self._lock:
            return copy.deepcopy(self._job) if self._job is not None else None

    def status(self) -> dict:
        """JSON-ready summary of the current job (``{"status": "idle"}`` before the first one)."""
        job = self.view()
        if job is None:
            return {"status": "idle", "busy": False}
        tc = job.config.train
        elapsed = (job.ended or time.time()) - job.started
        progress = job.step / tc.iters if tc.iters else 0.0
        last_eval = job.evals[-1] if job.evals else None
        return {
            "id": job.id,
            "status": job.status,
            "busy": job.status in ACTIVE,
            "step": job.step,
            "iters": tc.iters,
            "progress": round(progress, 4),
            "elapsed_s": round(elapsed, 1),
            "eta_s": round(elapsed / progress * (1 - progress), 1)
            if 0 < progress < 1 and job.status in ACTIVE
            else None,
            "variant": job.config.variant,
            "backbone": job.config.backbone,
            "source": tc.source,
            "target": tc.target,
            "out_dir": str(job.out_dir),
            "checkpoint": str(job.checkpoint) if job.checkpoint else None,
            "last_eval": last_eval,
            "best_target_accuracy": last_eval["best_target_accuracy"] if last_eval else None,
            "losses": job.last_logs,
            "probes": job.probe_notes,
            "error": job.error,
            "log_tail": job.log[-10:],
        }


_MANAGER = JobManager()


def job_manager() -> JobManager:
    """The server's one job manager."""
    return _MANAGER
