"""Which domains the app may read: built-in names, folders under the data root, uploaded zips.

A browser user must not make the server read arbitrary paths, so a domain typed in the app is
one of: a built-in name (``mnist``, ``mnistm``, …); a folder *inside* the data root
(``--data-root``, default ``./data``), given relative to it (``office31/amazon/images``, or a flat
folder of unlabelled target images); or ``upload/<name>``, a zip uploaded on the Train tab (class
folders, or just images for an unlabelled target) and extracted by :func:`extract_zip`, which
refuses entries that would land outside its folder (``../``, absolute paths, symlinks), too many
files and too many bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.serving.storage import Storage
from tada_core.data.archives import domain_root
from tada_core.data.archives import extract_zip as extract_archive
from tada_core.data.builtin import builtin_names, list_builtin_domains
from tada_core.data.images import is_image_file
from tada_core.errors import DataError

UPLOAD_PREFIX = "upload/"
MAX_SPEC_CHARS = 1024
_SCAN_DEPTH = 3
_SCAN_LIMIT = 2_000  # folders looked at when listing the data root


def _holds_images(folder: Path, at_least: int = 1, look_at: int = 200) -> bool:
    """Whether ``folder`` itself holds ``at_least`` image files (among the first ``look_at`` entries)."""
    found = 0
    with os.scandir(folder) as entries:
        for n, entry in enumerate(entries):
            if entry.is_file() and is_image_file(entry.name):
                found += 1
                if found >= at_least:
                    return True
            if n > look_at:
                break
    return False


def _looks_like_domain(folder: Path) -> bool:
    """Two or more visible sub-folders, the first of which holds an image (a labelled domain), or
    no sub-folders and at least 10 images (an unlabelled one); a cheap check."""
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subdirs:
            return _holds_images(folder, at_least=10)
        return len(subdirs) >= 2 and _holds_images(subdirs[0])
    except OSError:
        return False


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class DomainCatalog:
    """Resolve and list the domains the app may read."""

    def __init__(self, data_root: str | Path, storage: Storage) -> None:
        self.data_root = Path(data_root).expanduser().resolve()
        self.storage = storage

    def uploads_dir(self, owner: str | None) -> Path | None:
        """Where ``owner``'s uploaded domains are extracted (None for an anonymous caller)."""
        return self.storage.data(owner) if owner else None

    def builtins(self) -> list[str]:
        """Built-in names usable now (offline ones, and downloaded torchvision ones)."""
        return [row["name"] for row in list_builtin_domains() if row["available"]]

    def folders(self, owner: str | None = None) -> list[str]:
        """Domain-like folders under the data root (relative names), then ``owner``'s uploaded zips."""
        found: list[str] = []
        if self.data_root.is_dir():
            for seen, (parent, dirs, _) in enumerate(os.walk(self.data_root)):
                if seen >= _SCAN_LIMIT:
                    break
                depth = len(Path(parent).relative_to(self.data_root).parts)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < _SCAN_DEPTH else []
                if depth and _looks_like_domain(Path(parent)):
                    found.append(Path(parent).relative_to(self.data_root).as_posix())
                    dirs[:] = []  # class folders are not domains of their own
        uploads = self.uploads_dir(owner)
        if uploads is not None and uploads.is_dir():
            found += [UPLOAD_PREFIX + d.name for d in sorted(uploads.iterdir()) if d.is_dir() and d.name[0] != "."]
        return found

    def choices(self, owner: str | None = None) -> list[str]:
        return self.builtins() + self.folders(owner)

    def resolve(self, spec: str | None, owner: str | None = None) -> str:
        """What to pass to ``load_domain``: a built-in name or an absolute folder path.

        Raises:
            DataError: empty, too long, outside the data root (or ``owner``'s uploads), missing, or
                not a folder. Messages name the domain as the visitor typed it, never a server path.
        """
        spec = (spec or "").strip()
        if not spec:
            raise DataError("no domain given; pick a built-in domain (e.g. mnist) or a folder under the data root")
        if len(spec) > MAX_SPEC_CHARS or any(len(part.encode()) > 255 for part in spec.split("/")):
            raise DataError(
                f"the domain name is {len(spec):,} characters long; give a built-in name or a folder under the data "
                f"root (at most {MAX_SPEC_CHARS} characters, 255 per folder name)"
            )
        shown = spec if len(spec) <= 80 else spec[:77] + "…"
        if spec in builtin_names():
            return spec
        uploads = self.uploads_dir(owner)
        if spec.startswith(UPLOAD_PREFIX):
            if uploads is None:
                raise DataError(f"'{shown}' is an upload of another session; upload the zip again")
            root, rel, where = uploads, spec[len(UPLOAD_PREFIX) :], "your uploaded data"
        else:
            root, rel, where = self.data_root, spec, "the data root"
        try:
            path = (root / rel).resolve()
            inside = _inside(path, root) and path != root
            is_dir = inside and path.is_dir()
        except (OSError, ValueError):
            inside = is_dir = False
        if not inside:
            raise DataError(
                f"'{shown}' is not a folder inside {where}; the app only reads built-in domains, folders under "
                "the data root (the server's --data-root) and zips uploaded on the Train tab"
            )
        if not is_dir:
            builtins = [n for n in self.builtins() if not n.startswith("shift-")]  # the 16 shift domains: one pattern
            names = ", ".join(builtins) + (
                ", shift-<kind>[-control]-source/-target" if len(builtins) < len(self.builtins()) else ""
            )
            raise DataError(
                f"'{shown}' is neither a built-in domain ({names}) nor a folder in {where}; "
                "give a folder (class sub-folders, or just images for a target) relative to it"
            )
        return str(domain_root(path) if root == uploads else path)


def extract_zip(zip_path: str | Path, uploads_dir: str | Path) -> tuple[str, Path]:
    """Safely extract an uploaded zip (:func:`tada_core.data.archives.extract_zip`); return
    ``("upload/<name>", domain folder)``."""
    name, folder = extract_archive(zip_path, uploads_dir)
    return UPLOAD_PREFIX + name, folder
