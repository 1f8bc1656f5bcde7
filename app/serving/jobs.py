"""One training job at a time for the whole server, run in a child process.

The :class:`JobManager` (one per process: :func:`job_manager`) owns the job; every browser
session and API client sees the same job through :meth:`JobManager.status` and
:meth:`JobManager.view`, polled by a ``gr.Timer``. A second start while a job runs is refused
with :class:`JobBusyError`; closing the browser does not touch the job.

The training itself runs in a ``spawn``-ed child process (:func:`app.serving.job_worker.run_job`), so a
job that runs out of memory, crashes or is killed cannot take the web server with it: a monitor
thread applies the child's events (progress, losses, evaluations, log lines, the attention of one
fixed source and one fixed target probe image) to the job, and when the child's pipe closes
without a final event the job is marked ``failed`` with the child's exit code in words. A stop
sets a shared event: the child saves ``last.safetensors`` and ends as ``stopped``.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np
import torch

from app.serving.job_worker import run_job
from tada_core.config import TADAConfig
from tada_core.errors import TadaError
from tada_core.model.inputs import norm_for
from tada_core.training.run_data import RunData

ACTIVE = ("starting", "running", "stopping")
MAX_LOG_LINES = 400
POLL_S = 0.5
CONTEXT = multiprocessing.get_context("spawn")  # torch and threads: never fork the server


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
    pid: int | None = None  # the training process


def probe_images(data: RunData, config: TADAConfig) -> list[np.ndarray]:
    """The first evaluation image of the source and of the target, as the model sees them."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in norm_for(config))
    images = []
    for domain in (data.source_eval, data.target_eval):
        tensor, _ = domain.dataset[0]  # (3, S, S) normalised
        pixels = (tensor * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
        images.append(pixels.permute(1, 2, 0).numpy())  # (S, S, 3) uint8 RGB
    return images


def exit_reason(code: int | None) -> str:
    """A child's exit code in words."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"was killed ({name}; most often the machine ran out of memory)"
        return f"was killed ({name})"
    return f"exited with code {code} without a result"


class JobManager:
    """Owns at most one training job and its child process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._job: Job | None = None
        self._process: BaseProcess | None = None
        self._monitor: threading.Thread | None = None
        self._stop: Event | None = None  # created per job
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
        """Start training ``config`` in a child process (which loads the domains of ``config`` again).

        Raises:
            JobBusyError: another job is still running (nothing is queued).
        """
        probes = probe_images(data, config)
        with self._lock:
            self.check_idle()
            self._counter += 1
            job = Job(id=f"job-{self._counter}", config=config, out_dir=Path(config.train.out))
            receive, send = CONTEXT.Pipe(duplex=False)
            self._stop = CONTEXT.Event()
            process = CONTEXT.Process(
                target=run_job,
                args=(config, probes, send, self._stop, os.getpid()),
                name=f"tada-{job.id}",
                daemon=True,
            )
            process.start()
            send.close()  # the child holds the only writing end: its exit closes the pipe
            job.pid = process.pid
            self._job, self._process = job, process
            self._monitor = threading.Thread(
                target=self._follow, args=(job, process, receive), name=f"tada-{job.id}-monitor", daemon=True
            )
            self._monitor.start()
        return job

    def _follow(self, job: Job, process: BaseProcess, receive: Connection) -> None:
        """Apply the child's events to ``job`` until its pipe closes; a silent end is a failure."""
        ended = False
        with receive:
            while True:
                try:
                    if not receive.poll(POLL_S):
                        continue
                    kind, payload = receive.recv()
                except (EOFError, OSError):
                    break
                ended = self._apply(job, kind, payload) or ended
        process.join()
        if not ended:
            reason = f"the training process {exit_reason(process.exitcode)}"
            self._finish(job, "failed", f"training failed: {reason}; the server is fine, start a new job", reason)

    def _apply(self, job: Job, kind: str, payload) -> bool:
        """Apply one event of :mod:`app.serving.job_worker`; True for the final one."""
        if kind == "log":
            self._log(job, payload)
        elif kind == "update":
            if "checkpoint" in payload:
                payload = {**payload, "checkpoint": Path(payload["checkpoint"])}
            with self._lock:
                if job.status == "stopping":  # a stop was asked for before the child said "running"
                    payload = {k: v for k, v in payload.items() if k != "status"}
                self._update(job, **payload)
        elif kind == "loss":
            with self._lock:
                job.losses.append(payload)
                job.version += 1
        elif kind == "eval":
            record, checkpoint = payload
            with self._lock:
                job.evals.append(record)
                job.checkpoint = Path(checkpoint)
                job.version += 1
        elif kind == "probes":
            overlays, notes, step = payload
            with self._lock:
                job.probes, job.probe_notes, job.probes_step = overlays, notes, step
                job.version += 1
        elif kind == "end":
            status, line, error = payload
            self._finish(job, status, line, error=error)
            return True
        return False

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
            if self._stop is not None:
                self._stop.set()
            if job.status != "stopping":
                job.status = "stopping"
                job.version += 1
        self._log(job, "stop requested; saving the last checkpoint…")
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job's process to end and be accounted for; True when no job is running any more."""
        monitor = self._monitor
        if monitor is not None:
            monitor.join(timeout)
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
            "target_accuracy": last_eval.get("target_accuracy") if last_eval else None,  # None when unlabelled
            "best_step": last_eval.get("best_step") if last_eval else None,
            "losses": job.last_logs,
            "probes": job.probe_notes,
            "error": job.error,
            "log_tail": job.log[-10:],
        }


_MANAGER = JobManager()


def job_manager() -> JobManager:
    """The server's one job manager."""
    return _MANAGER
