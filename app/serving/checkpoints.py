"""The checkpoints the app can open, by name, and a small cache of loaded models.

Three sources, rescanned on every call (a glob, cheap) so a run that finished a moment ago shows
up in every picker:

* **shipped**: ``*.safetensors`` in the checkpoints folder (``checkpoints/`` of the repository),
  named by their stem (``tada_mnist_mnistm``), with the model card ``<stem>.md`` beside them;
* **runs**: training runs under the runs folder (the app's Train tab writes there), named
  ``runs/<folder>`` and pointing at the run's ``best.safetensors`` (or ``last`` before the
  first evaluation), with ``metrics.jsonl`` for the curves;
* **added**: files given with ``tada app --checkpoint`` or uploaded on the Model tab.

Only registered names are ever opened: a client cannot make the server read an arbitrary path.
Models are never kept in per-session state; :func:`load_model` keeps the last few loaded ones in
a module-level LRU cache keyed by ``(path, mtime)`` under a lock, so a checkpoint rewritten by a
running job is reloaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tada_core.checkpoint import CheckpointInfo, load_checkpoint, read_checkpoint
from tada_core.errors import CheckpointError
from tada_core.model import TADAModel

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_ROOT / "checkpoints"  # the repository's; see default_shipped_dir()
PREFERRED = ("tada_mnist_mnistm",)  # opened first when present; then other tada* files
CACHE_SIZE = 4


@dataclass(frozen=True)
class Entry:
    """One checkpoint the app knows about."""

    name: str
    path: Path
    kind: str  # "shipped", "run" or "added"
    card: Path | None = None  # model-card markdown beside a shipped checkpoint
    run_dir: Path | None = None  # run folder holding metrics.jsonl, when known


def default_shipped_dir() -> Path:
    """The repository's ``checkpoints/``, else ``./checkpoints`` (an installed package has no repository)."""
    return SHIPPED_DIR if SHIPPED_DIR.is_dir() else Path("checkpoints").resolve()


def _run_checkpoint(folder: Path) -> Path | None:
    for name in ("best.safetensors", "last.safetensors"):
        if (folder / name).is_file():
            return folder / name
    return None


class CheckpointRegistry:
    """Name → checkpoint file, over the shipped folder, the runs folder and added files."""

    def __init__(self, shipped_dir: Path | None = None, runs_dir: Path | None = None) -> None:
        self.shipped_dir = Path(shipped_dir) if shipped_dir else None
        self.runs_dir = Path(runs_dir) if runs_dir else None
        self._added: dict[str, Path] = {}
        self._lock = threading.RLock()  # add() lists entries while holding it

    def add(self, path: str | Path, name: str | None = None) -> Entry:
        """Register a checkpoint file after checking that it reads; returns its entry.

        Raises:
            CheckpointError: missing, pickle-based, corrupt, or not written by TADA Studio.
        """
        path = Path(path).expanduser().resolve()
        read_checkpoint(path)  # raises a clear CheckpointError for every bad file
        for entry in self.entries():
            if entry.path == path:
                return entry
        with self._lock:
            taken = {e.name for e in self.entries()}
            base = name or path.stem
            label, n = base, 2
            while label in taken:
                label, n = f"{base}-{n}", n + 1
            self._added[label] = path
        return self.resolve(label)

    def entries(self) -> list[Entry]:
        """Shipped first (the preferred one on top), then added files, then runs, newest first."""
        found: list[Entry] = []
        if self.shipped_dir and self.shipped_dir.is_dir():
            for path in sorted(self.shipped_dir.glob("*.safetensors")):
                card = path.with_suffix(".md")
                found.append(Entry(path.stem, path.resolve(), "shipped", card if card.is_file() else None))
            found.sort(key=lambda e: (e.name not in PREFERRED, not e.name.startswith("tada"), e.name))
        with self._lock:
            added = dict(self._added)
        for label, path in added.items():
            card = path.with_suffix(".md")
            run_dir = path.parent if (path.parent / "metrics.jsonl").is_file() else None
            found.append(Entry(label, path, "added", card if card.is_file() else None, run_dir))
        if self.runs_dir and self.runs_dir.is_dir():
            runs = [d for d in self.runs_dir.iterdir() if d.is_dir() and _run_checkpoint(d) is not None]
            for folder in sorted(runs, key=lambda d: d.name, reverse=True):
                path = _run_checkpoint(folder)
                found.append(Entry(f"runs/{folder.name}", path.resolve(), "run", None, folder.resolve()))
        return found

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def default_name(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def resolve(self, name: str | None) -> Entry:
        """The entry called ``name``; a clear error when there is none."""
        if not name:
            raise CheckpointError("no checkpoint selected; pick one, or train one on the Train tab")
        for entry in self.entries():
            if entry.name == name:
                return entry
        known = ", ".join(self.names()) or "none yet"
        raise CheckpointError(f"unknown checkpoint '{name}'; available: {known}")

    def name_for(self, path: str | Path) -> str | None:
        """The registered name of a file (e.g. a finished run's checkpoint), if any."""
        path = Path(path).resolve()
        for entry in self.entries():
            if entry.path == path or (entry.run_dir is not None and entry.run_dir == path.parent):
                return entry.name
        return None


_CACHE: OrderedDict[tuple[str, int], tuple[TADAModel, CheckpointInfo]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_model(path: str | Path) -> tuple[TADAModel, CheckpointInfo]:
    """The model (eval mode, CPU) and metadata of ``path``, from the LRU cache when unchanged."""
    path = Path(path)
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        raise CheckpointError(f"checkpoint {path} does not exist any more; pick another one") from None
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        loaded = load_checkpoint(path, device="cpu")
        _CACHE[key] = loaded
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return loaded
