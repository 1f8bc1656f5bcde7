"""What every tab shares: the checkpoint registry, the domain catalog, the job manager, folders."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from app.serving.checkpoints import CheckpointRegistry, default_shipped_dir
from app.serving.domains import DomainCatalog
from app.serving.images import ImageStore
from app.serving.jobs import JobManager
from app.serving.storage import DEFAULT_MAX_AGE_S, DEFAULT_QUOTA_BYTES, Storage
from app.serving.visitors import Visitors

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
SCRATCH_MAX_AGE_S = 3600


def example_images(folder: Path = EXAMPLES_DIR) -> dict[str, list[str]]:
    """The example PNGs by role: ``{"source": [...], "target": [...]}`` (file names start with the role)."""
    return {role: [str(p) for p in sorted(folder.glob(f"{role}_*.png"))] for role in ("source", "target")}


@dataclass(frozen=True)
class ServerLimits:
    """What one server allows each visitor (``tada app`` flags; the hosted demo's defaults)."""

    max_running: int = 1  # training jobs at once
    max_queued: int = 4  # more waiting for a slot
    max_steps: int | None = 20_000  # iterations per job
    max_minutes: float | None = 30.0  # training time per job
    quota_mib: float = DEFAULT_QUOTA_BYTES / 2**20  # a visitor's runs, uploads and data
    keep_days: float = DEFAULT_MAX_AGE_S / 86400  # unused items are deleted after this

    def job_manager(self) -> JobManager:
        seconds = self.max_minutes * 60 if self.max_minutes else None
        return JobManager(self.max_running, self.max_queued, self.max_steps, seconds)


@dataclass
class AppContext:
    """The app's shared, process-wide pieces (no per-visitor state, no models)."""

    registry: CheckpointRegistry
    domains: DomainCatalog
    jobs: JobManager
    storage: Storage  # the data folder: runs, uploads, per-visitor quota (app/serving/storage.py)
    scratch_dir: Path
    images: ImageStore  # result PNGs, written once under their content hash
    examples: dict[str, list[str]]
    visitors: Visitors = field(default_factory=Visitors)  # page session → the visitor's owner key
    notices: list[str] = field(default_factory=list)  # problems found at start-up, shown on top
    device: str = "cpu"
    selected: str | None = None  # the checkpoint given with --checkpoint, selected at start

    @classmethod
    def create(
        cls,
        *,
        data_dir: str | Path = "runs/app",
        data_root: str | Path = "data",
        checkpoints: list[str | Path] | None = None,
        shipped_dir: str | Path | None = None,
        jobs: JobManager | None = None,
        limits: ServerLimits | None = None,
    ) -> AppContext:
        limits = limits or ServerLimits()
        quota = int(limits.quota_mib * 2**20)
        storage = Storage(data_dir, quota_bytes=quota, max_age_s=limits.keep_days * 86400)
        storage.expire(force=True)
        shipped_dir = Path(shipped_dir) if shipped_dir else default_shipped_dir()
        registry = CheckpointRegistry(shipped_dir=shipped_dir, storage=storage)
        context = cls(
            registry=registry,
            domains=DomainCatalog(data_root, storage),
            jobs=jobs or limits.job_manager(),
            storage=storage,
            scratch_dir=Path(tempfile.gettempdir()) / "tada-app",
            images=ImageStore(Path(tempfile.gettempdir()) / "tada-app-images", max_age_s=SCRATCH_MAX_AGE_S),
            examples=example_images(),
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
        for path in checkpoints or []:
            try:
                entry = registry.add(path)
                context.selected = context.selected or entry.name
            except Exception as err:
                context.notices.append(f"Could not open checkpoint {path}: {err}")
        if not registry.names():
            context.notices.append(
                "No checkpoint found (none shipped, none given with --checkpoint). Train one on the Train tab, "
                "or start the app with --checkpoint FILE.safetensors."
            )
        return context

    def default_checkpoint(self) -> str | None:
        """The checkpoint selected at start: ``--checkpoint``, else the shipped TADA model, else the first."""
        names = self.registry.names()
        return self.selected if self.selected in names else (names[0] if names else None)

    def compare_checkpoint(self) -> str | None:
        """The checkpoint shown beside the default one at start: the first source-only model, if any."""
        default = self.default_checkpoint()
        return next((n for n in self.registry.names() if n.startswith("source_only") and n != default), None)

    def scratch(self, prefix: str) -> Path:
        """A fresh folder for one request's output files; folders older than an hour are removed."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in self.scratch_dir.iterdir():
            try:
                stale = now - old.stat().st_mtime > SCRATCH_MAX_AGE_S
            except OSError:
                continue
            if stale:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.scratch_dir))
