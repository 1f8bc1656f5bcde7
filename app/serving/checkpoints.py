"""The checkpoints the app can open, by name, for each visitor, and a small cache of loaded models.

Rescanned on every call (a few globs, cheap) so a run that finished a moment ago shows up in every
picker, and everything on disk comes back after a restart:

* **shipped** (everyone): ``*.safetensors`` in the checkpoints folder (``checkpoints/`` of the
  repository), named by their stem (``tada_mnist_mnistm``), with the model card ``<stem>.md``;
* **given at start** (everyone): files passed with ``tada app --checkpoint``;
* **shared runs** (everyone): run folders under ``<data dir>/runs/``, named ``runs/<folder>``;
* **a visitor's own** (only them): their training runs (``runs/<folder>``, the run's
  ``best.safetensors``, or ``last`` before the first evaluation) and the checkpoints they uploaded
  on the Model tab (named by their file name, ``-2``, ``-3``, … in upload order when taken).

Only registered names are ever opened: a client cannot make the server read an arbitrary path, nor
another visitor's files. Models are never kept in per-session state; :func:`load_model` keeps the
last few loaded ones in a module-level LRU cache keyed by ``(path, mtime)`` under a lock, so a
checkpoint rewritten by a running job is reloaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from app.serving.storage import Storage
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
    kind: str  # "shipped", "added", "run" or "upload"
    card: Path | None = None  # model-card markdown beside a shipped checkpoint
    run_dir: Path | None = None  # run folder holding metrics.jsonl, when known
    owner: str | None = None  # the visitor it belongs to; None: everyone's


def default_shipped_dir() -> Path:
    """The repository's ``checkpoints/``, else ``./checkpoints`` (an installed package has no repository)."""
    return SHIPPED_DIR if SHIPPED_DIR.is_dir() else Path("checkpoints").resolve()


def run_checkpoint(folder: Path) -> Path | None:
    """A run folder's ``best.safetensors``, else its ``last``, else None."""
    for name in ("best.safetensors", "last.safetensors"):
        if (folder / name).is_file():
            return folder / name
    return None


def _runs(folder: Path, owner: str | None) -> list[Entry]:
    if not folder.is_dir():
        return []
    runs = [d for d in folder.iterdir() if d.is_dir() and run_checkpoint(d) is not None]
    return [
        Entry(f"runs/{d.name}", run_checkpoint(d).resolve(), "run", None, d.resolve(), owner)  # type: ignore[union-attr]
        for d in sorted(runs, key=lambda d: d.name, reverse=True)
    ]


def _uploads(folder: Path, owner: str) -> list[tuple[str, Path]]:
    """(wanted name, path) of a visitor's uploaded checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    files = [
        f
        for home in folder.iterdir()
        if home.is_dir() and not home.name.startswith(".")
        for f in home.glob("*.safetensors")
    ]
    files.sort(key=lambda f: (f.stat().st_mtime_ns, f.parent.name))
    return [(f.stem, f.resolve()) for f in files]


def _unique(base: str, taken: set[str]) -> str:
    label, n = base, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    return label


class CheckpointRegistry:
    """Name → checkpoint file, for everyone (shipped, given at start, shared runs) and per visitor."""

    def __init__(self, shipped_dir: Path | None = None, storage: Storage | None = None) -> None:
        self.shipped_dir = Path(shipped_dir) if shipped_dir else None
        self.storage = storage
        self._added: dict[str, Path] = {}
        self._lock = threading.RLock()  # add() lists entries while holding it

    def add(self, path: str | Path, name: str | None = None) -> Entry:
        """Offer a checkpoint file to everyone (``tada app --checkpoint``) after checking that it reads.

        Raises:
            CheckpointError: missing, pickle-based, corrupt, or not written by TADA Studio.
        """
        path = Path(path).expanduser().resolve()
        read_checkpoint(path)  # raises a clear CheckpointError for every bad file
        for entry in self.entries():
            if entry.path == path:
                return entry
        with self._lock:
            label = _unique(name or path.stem, {e.name for e in self.entries()})
            self._added[label] = path
        return self.resolve(label)

    def entries(self, owner: str | None = None) -> list[Entry]:
        """Shipped first (the preferred one on top), then files given at start, then the visitor's
        uploads, then runs (the visitor's and the shared ones), newest first."""
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
        if self.storage is not None:
            if owner is not None:
                taken = {e.name for e in found}
                for wanted, path in _uploads(self.storage.checkpoints(owner), owner):
                    label = _unique(wanted, taken)
                    taken.add(label)
                    found.append(Entry(label, path, "upload", None, None, owner))
                found += _runs(self.storage.runs(owner), owner)
            taken = {e.name for e in found}
            found += [e for e in _runs(self.storage.shared_runs, None) if e.name not in taken]
        return found

    def names(self, owner: str | None = None) -> list[str]:
        return [e.name for e in self.entries(owner)]

    def default_name(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def resolve(self, name: str | None, owner: str | None = None) -> Entry:
        """The entry called ``name`` for ``owner``; a clear error when there is none."""
        if not name:
            raise CheckpointError("no checkpoint selected; pick one, or train one on the Train tab")
        entries = self.entries(owner)
        for entry in entries:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in entries) or "none yet"
        raise CheckpointError(f"unknown checkpoint '{name[:200]}'; available: {known}")

    def name_for(self, path: str | Path, owner: str | None = None) -> str | None:
        """The registered name of a file (e.g. a finished run's checkpoint), if any."""
        path = Path(path).resolve()
        for entry in self.entries(owner):
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
