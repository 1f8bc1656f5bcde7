"""Training jobs for the whole server, each run in a child process, each visible only to its visitor.

The :class:`JobManager` (one per app, made by :class:`app.serving.context.ServerLimits`) runs at most ``max_running`` jobs at
once and keeps up to ``max_queued`` more waiting in order: a start beyond that is refused with
:class:`JobBusyError`, which says how many jobs are ahead and about how long they will take. A
visitor (their ``owner`` key, :mod:`app.serving.storage`) has at most one job running or waiting;
:meth:`JobManager.status`, :meth:`JobManager.view` and :meth:`JobManager.stop` only ever see the
caller's own job. Every job has a budget — at most ``max_steps`` steps and ``max_seconds`` of
training — so that one visitor cannot hold the CPU for days; a job that reaches its time budget
saves its checkpoint and ends as ``stopped``, with the reason in its log.

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

ACTIVE = ("queued", "starting", "running", "stopping")
MAX_LOG_LINES = 400
MAX_KEPT_JOBS = 200  # finished jobs remembered (the newest per visitor at least)
POLL_S = 0.5
CONTEXT = multiprocessing.get_context("spawn")  # torch and threads: never fork the server


class JobBusyError(TadaError):
    """The server cannot take another training job now, or the visitor already has one."""


@dataclass
class Job:
    """The state of one training job; read it through the manager."""

    id: str
    config: TADAConfig
    out_dir: Path
    owner: str = ""
    source_name: str = ""  # the domains as the visitor chose them (never a server path)
    target_name: str = ""
    status: str = "starting"  # queued, starting, running, stopping, finished, stopped, failed
    step: int = 0
    started: float = field(default_factory=time.time)  # when it was submitted, then when it started
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
    phase: dict = field(default_factory=dict)  # the current phase and its time left (PhaseProgress.to_dict())
    pid: int | None = None  # the training process
    budget_s: float | None = None  # training time allowed
    probe_inputs: list[np.ndarray] = field(default_factory=list, repr=False)


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
    """Owns the training jobs and their child processes; thread-safe.

    Args:
        max_running: jobs training at the same time (each gets half the CPU cores).
        max_queued: jobs waiting for a free slot; a start beyond that is refused.
        max_steps: the most steps one job may ask for (None: no limit).
        max_seconds: the most training time one job gets before it is stopped (None: no limit).
    """

    def __init__(
        self,
        max_running: int = 1,
        max_queued: int = 4,
        max_steps: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.max_running, self.max_queued = max(1, max_running), max(0, max_queued)
        self.max_steps, self.max_seconds = max_steps, max_seconds
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}  # by id, oldest first
        self._queue: list[str] = []  # ids waiting for a slot, in order
        self._processes: dict[str, BaseProcess] = {}
        self._monitors: dict[str, threading.Thread] = {}
        self._stops: dict[str, Event] = {}
        self._counter = 0

    # -- who may do what ---------------------------------------------------------------------
    def _latest(self, owner: str | None) -> Job | None:
        jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        return jobs[-1] if jobs else None

    def _running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.status in ACTIVE and j.status != "queued"]

    @property
    def busy(self) -> bool:
        with self._lock:
            return any(j.status in ACTIVE for j in self._jobs.values())

    def _wait_text(self, ahead: int) -> str:
        etas = [self._eta(j) for j in self._running()]
        known = [e for e in etas if e is not None]
        if not known:
            return ""
        minutes = (min(known) + ahead * (sum(known) / len(known))) / 60
        return f"; about {max(1, round(minutes))} min"

    def check_can_start(self, owner: str) -> None:
        """Raise :class:`JobBusyError` when ``owner`` already has a job, or the queue is full."""
        with self._lock:
            mine = self._latest(owner)
            if mine is not None and mine.status in ACTIVE:
                where = "waiting in the queue" if mine.status == "queued" else f"at step {mine.step}"
                raise JobBusyError(
                    f"you already have a training job ({mine.config.variant}, {where}); one job per visitor — "
                    "stop it or wait for it to finish"
                )
            if len(self._running()) >= self.max_running and len(self._queue) >= self.max_queued:
                ahead = len(self._running()) + len(self._queue)
                raise JobBusyError(
                    f"the server is busy: {ahead} training jobs ahead of you{self._wait_text(len(self._queue))} "
                    f"(at most {self.max_running} run at once and {self.max_queued} wait); try again later"
                )

    def check_budget(self, iters: int) -> None:
        """Raise :class:`JobBusyError` when ``iters`` is over this server's step budget."""
        if self.max_steps is not None and iters > self.max_steps:
            raise JobBusyError(
                f"{iters:,} iterations is over this server's budget of {self.max_steps:,} steps per job; "
                "ask for fewer, or train on your own machine with 'tada train' (no limits)"
            )

    # -- starting ----------------------------------------------------------------------------
    def start(self, config: TADAConfig, data: RunData, owner: str = "", names: tuple[str, str] | None = None) -> Job:
        """Start training ``config`` for ``owner`` in a child process now, or queue it.

        Raises:
            JobBusyError: ``owner`` already has a job, the queue is full, or ``config`` is over budget.
        """
        self.check_budget(config.train.iters)
        probes = probe_images(data, config)
        source, target = names or (Path(config.train.source).name, Path(config.train.target).name)
        with self._lock:
            self.check_can_start(owner)
            self._counter += 1
            job = Job(
                id=f"job-{self._counter}",
                config=config,
                out_dir=Path(config.train.out),
                owner=owner,
                source_name=source,
                target_name=target,
                status="queued",
                budget_s=self.max_seconds,
                probe_inputs=probes,
            )
            self._jobs[job.id] = job
            self._queue.append(job.id)
            self._forget_old()
            self._start_waiting()
        if job.status == "queued":
            self._log(job, f"queued: {self._queue.index(job.id) + 1} in line" if job.id in self._queue else "queued")
        return job

    def _forget_old(self) -> None:
        """Keep the newest finished job of every visitor and at most MAX_KEPT_JOBS in all."""
        finished = [j for j in self._jobs.values() if j.status not in ACTIVE]
        newest = {j.owner: j.id for j in finished}
        extra = len(self._jobs) - MAX_KEPT_JOBS
        for job in finished:
            if extra <= 0:
                break
            if newest.get(job.owner) != job.id:
                del self._jobs[job.id]
                extra -= 1

    def _start_waiting(self) -> None:
        """Start queued jobs while there is a free slot (called with the lock held)."""
        while self._queue and len(self._running()) < self.max_running:
            job = self._jobs[self._queue.pop(0)]
            receive, send = CONTEXT.Pipe(duplex=False)
            stop = CONTEXT.Event()
            display = {"source": job.source_name, "target": job.target_name}
            process = CONTEXT.Process(
                target=run_job,
                args=(job.config, job.probe_inputs, send, stop, os.getpid(), job.budget_s, display),
                name=f"tada-{job.id}",
                daemon=True,
            )
            process.start()
            send.close()  # the child holds the only writing end: its exit closes the pipe
            job.pid, job.status, job.started, job.probe_inputs = process.pid, "starting", time.time(), []
            job.version += 1
            self._processes[job.id], self._stops[job.id] = process, stop
            monitor = threading.Thread(
                target=self._follow, args=(job, process, receive), name=f"tada-{job.id}-monitor", daemon=True
            )
            self._monitors[job.id] = monitor
            monitor.start()

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
        with self._lock:
            self._processes.pop(job.id, None)
            self._stops.pop(job.id, None)
            self._start_waiting()

    # -- the child's events ------------------------------------------------------------------
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

    # -- what a visitor may do ---------------------------------------------------------------
    def stop(self, owner: str | None) -> bool:
        """Stop ``owner``'s running job (it saves a loadable checkpoint) or take it out of the queue;
        False when they have none. ``owner=None`` stops every job (server shutdown, tests)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.status in ACTIVE and (owner is None or j.owner == owner)]
            for job in jobs:
                if job.status == "queued":
                    self._queue.remove(job.id)
                    job.status, job.ended, job.version = "stopped", time.time(), job.version + 1
                    job.log.append(f"[{time.strftime('%H:%M:%S')}] taken out of the queue before it started")
                    continue
                if job.id in self._stops:
                    self._stops[job.id].set()
                if job.status != "stopping":
                    job.status = "stopping"
                    job.version += 1
                    job.log.append(f"[{time.strftime('%H:%M:%S')}] stop requested; saving the last checkpoint…")
        return bool(jobs)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every job's process to end and be accounted for; True when none runs any more."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            with self._lock:
                monitors = [m for m in self._monitors.values() if m.is_alive()]
            if not monitors:
                return not self.busy
            remaining = None if deadline is None else max(0.0, deadline - time.time())
            monitors[0].join(remaining)
            if deadline is not None and time.time() >= deadline:
                return not self.busy

    def view(self, owner: str | None) -> Job | None:
        """A consistent copy of ``owner``'s latest job (None before their first one);
        ``owner=None``: the latest job of anyone (tests, the server's own log)."""
        with self._lock:
            job = self._latest(owner)
            return copy.deepcopy(job) if job is not None else None

    def position(self, job_id: str) -> int | None:
        """1 for the next job to start, 2 for the one after it, …; None when not queued."""
        with self._lock:
            return self._queue.index(job_id) + 1 if job_id in self._queue else None

    @staticmethod
    def _eta(job: Job) -> float | None:
        tc = job.config.train
        elapsed = (job.ended or time.time()) - job.started
        progress = job.step / tc.iters if tc.iters else 0.0
        if 0 < progress < 1 and job.status in ACTIVE:
            left = elapsed / progress * (1 - progress)
            return min(left, job.budget_s - elapsed) if job.budget_s else left
        return None

    def server_load(self) -> dict:
        with self._lock:
            return {
                "running": len(self._running()),
                "queued": len(self._queue),
                "max_running": self.max_running,
                "max_queued": self.max_queued,
                "max_steps": self.max_steps,
                "max_minutes": round(self.max_seconds / 60, 2) if self.max_seconds else None,
            }

    def status(self, owner: str | None) -> dict:
        """JSON-ready summary of ``owner``'s latest job (``{"status": "idle"}`` before their first one).

        Nothing in it is a server path: the domains are named as the visitor chose them.
        """
        job = self.view(owner)
        if job is None:
            return {"status": "idle", "busy": False, "server": self.server_load()}
        tc = job.config.train
        elapsed = (job.ended or time.time()) - job.started
        last_eval = job.evals[-1] if job.evals else None
        queued = self.position(job.id)
        return {
            "id": job.id,
            "status": job.status,
            "busy": job.status in ACTIVE,
            "queue_position": queued,
            "step": job.step,
            "iters": tc.iters,
            "progress": round(job.step / tc.iters if tc.iters else 0.0, 4),
            "elapsed_s": round(elapsed, 1) if job.status != "queued" else 0.0,
            "eta_s": round(eta, 1) if (eta := self._eta(job)) is not None else None,
            "phase": job.phase if job.phase and job.status in ACTIVE else None,  # encode/steps/calibrate/localiser
            "budget_minutes": round(job.budget_s / 60, 2) if job.budget_s else None,
            "variant": job.config.variant,
            "backbone": job.config.backbone,
            "source": job.source_name,
            "target": job.target_name,
            "run": job.out_dir.name,
            "last_eval": last_eval,
            "target_accuracy": last_eval.get("target_accuracy") if last_eval else None,  # None when unlabelled
            "estimated_target_accuracy": last_eval.get("estimated_target_accuracy") if last_eval else None,
            "estimate_interval": last_eval.get("estimate_interval") if last_eval else None,
            "best_step": last_eval.get("best_step") if last_eval else None,
            "losses": job.last_logs,
            "probes": job.probe_notes,
            "error": job.error,
            "log_tail": job.log[-10:],
            "server": self.server_load(),
        }
