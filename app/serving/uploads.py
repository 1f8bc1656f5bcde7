"""Visitor uploads kept on the server in folders named by their content hash.

Two visitors who both upload ``model.safetensors`` get ``<sha256 A>/model.safetensors`` and
``<sha256 B>/model.safetensors``: neither overwrites the other, the file keeps the name its
visitor gave it (for cards and messages), and the same bytes uploaded again are stored once. A
copy is made in a staging folder that is renamed into place, so a half-written file is never seen.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

BLOCK = 2**20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_name(name: str, default: str = "upload") -> str:
    """A file name made of letters, digits, ``-``, ``_`` and ``.`` only (no folders, no leading dot)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name).lstrip(".")
    return cleaned[:120] or default


def keep_by_hash(source: str | Path, folder: str | Path) -> Path:
    """Copy ``source`` to ``<folder>/<sha256>/<its safe name>``, or return the copy already there."""
    folder = Path(folder)
    home = folder / file_digest(source)
    existing = sorted(home.glob("*")) if home.is_dir() else []
    if existing:
        return existing[0]
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    target = staging / safe_name(Path(source).name)
    try:
        shutil.copyfile(source, target)
        os.rename(staging, home)  # atomic; fails when a concurrent upload of the same bytes won
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        existing = sorted(home.glob("*")) if home.is_dir() else []
        if not existing:
            raise
        return existing[0]
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return home / target.name


def file_paths(files: Any) -> list[str]:
    """Paths from a ``gr.File`` value (None, a path, or a list of paths / file objects)."""
    if not files:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    return [getattr(f, "name", f) for f in files if f]
