"""The app's one data folder: what survives a restart, who owns it, and how much each visitor may keep.

    <data dir>/                   ``tada app --data-dir`` (default ``runs/app``; the Docker volume)
      secret                      the key that encrypts each browser's visitor token (made once)
      runs/<run>/                 runs everyone sees (e.g. ``tada train --out <data dir>/runs/x``)
      visitors/<owner>/runs/<timestamp>-<variant>/      a visitor's training runs
      visitors/<owner>/checkpoints/<sha256>/<name>.safetensors   a visitor's uploaded checkpoints
      visitors/<owner>/data/<zip name>-<hash>/          a visitor's uploaded domains (extracted zips)

``owner`` is a hash of the visitor's token, never the token itself. Everything is found again by
scanning these folders, so a restart loses nothing. Each visitor's folder is bounded by a quota
(checked before a training job or an upload is accepted) and expires: an item not modified for
``max_age_s`` is deleted by :meth:`Storage.expire` (at start-up and then at most once an hour).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from tada_core.errors import TadaError

DEFAULT_QUOTA_BYTES = 500 * 2**20
DEFAULT_MAX_AGE_S = 7 * 24 * 3600
EXPIRE_EVERY_S = 3600


class StorageFullError(TadaError):
    """A visitor's storage on the server is full."""


def owner_key(identity: str) -> str:
    """The folder name of a visitor: 16 hex digits of the SHA-256 of their token or session."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files below ``folder`` (0 when it does not exist)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                continue
    return total


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir():
        for parent, _, files in os.walk(path):
            for name in files:
                try:
                    newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
                except OSError:
                    continue
    return newest


class Storage:
    """The data folder's layout, per-visitor quota and expiry."""

    def __init__(
        self, root: str | Path, *, quota_bytes: int = DEFAULT_QUOTA_BYTES, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.quota_bytes = quota_bytes
        self.max_age_s = max_age_s
        self.shared_runs = self.root / "runs"
        self.visitors = self.root / "visitors"
        self._lock = threading.Lock()
        self._expired_at = 0.0

    def secret(self) -> str:
        """The key of the visitors' browser tokens, made on first use and kept in the data folder."""
        path = self.root / "secret"
        with self._lock:
            if not path.is_file():
                self.root.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_hex(32))
            return path.read_text().strip()

    def visitor(self, owner: str) -> Path:
        return self.visitors / owner

    def runs(self, owner: str) -> Path:
        return self.visitor(owner) / "runs"

    def checkpoints(self, owner: str) -> Path:
        return self.visitor(owner) / "checkpoints"

    def data(self, owner: str) -> Path:
        return self.visitor(owner) / "data"

    def usage(self, owner: str) -> int:
        return folder_bytes(self.visitor(owner))

    def check_room(self, owner: str, incoming: int = 0) -> None:
        """Raise :class:`StorageFullError` when ``owner``'s folder cannot take ``incoming`` more bytes."""
        self.expire()
        used = self.usage(owner)
        if used + incoming > self.quota_bytes:
            days = self.max_age_s / 86400
            raise StorageFullError(
                f"your storage on this server is full ({used / 2**20:.0f} of {self.quota_bytes / 2**20:.0f} MiB: "
                f"your runs, uploaded checkpoints and data); what you have not used for {days:g} days is deleted "
                "automatically. Download the checkpoints you want to keep and try again later, or run TADA "
                "Studio on your own machine (no limits)"
            )

    def expire(self, now: float | None = None, force: bool = False) -> int:
        """Delete every visitor item (a run, an uploaded checkpoint or domain) unused for ``max_age_s``;
        at most once an hour unless ``force``. Returns how many were deleted."""
        now = time.time() if now is None else now
        with self._lock:
            if not force and now - self._expired_at < EXPIRE_EVERY_S:
                return 0
            self._expired_at = now
        deleted = 0
        if not self.visitors.is_dir():
            return 0
        for owner in self.visitors.iterdir():
            for kind in ("runs", "checkpoints", "data"):
                folder = owner / kind
                if not folder.is_dir():
                    continue
                for item in folder.iterdir():
                    try:
                        stale = now - _newest_mtime(item) > self.max_age_s
                    except OSError:
                        continue
                    if stale:
                        shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
                        deleted += 1
        return deleted
