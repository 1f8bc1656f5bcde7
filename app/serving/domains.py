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

from tada_core.data.archives import domain_root
from tada_core.data.archives import extract_zip as extract_archive
from tada_core.data.builtin import builtin_names, list_builtin_domains
from tada_core.data.images import is_image_file
from tada_core.errors import DataError

UPLOAD_PREFIX = "upload/"
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

    def __init__(self, data_root: str | Path, uploads_dir: str | Path) -> None:
        self.data_root = Path(data_root).expanduser().resolve()
        self.uploads_dir = Path(uploads_dir).expanduser().resolve()

    def builtins(self) -> list[str]:
        """Built-in names usable now (offline ones, and downloaded torchvision ones)."""
        return [row["name"] for row in list_builtin_domains() if row["available"]]

    def folders(self) -> list[str]:
        """Domain-like folders under the data root (relative names), then uploaded zips."""
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
        if self.uploads_dir.is_dir():
            found += [UPLOAD_PREFIX + d.name for d in sorted(self.uploads_dir.iterdir()) if d.is_dir()]
        return found

    def choices(self) -> list[str]:
        return self.builtins() + self.folders()

    def resolve(self, spec: str | None) -> str:
        """What to pass to ``load_domain``: a built-in name or an absolute folder path.

        Raises:
            DataError: empty, outside the data root, missing, or not a folder.
        """
        spec = (spec or "").strip()
        if not spec:
            raise DataError("no domain given; pick a built-in domain (e.g. mnist) or a folder under the data root")
        if spec in builtin_names():
            return spec
        if spec.startswith(UPLOAD_PREFIX):
            root, rel, where = self.uploads_dir, spec[len(UPLOAD_PREFIX) :], "uploaded data"
        else:
            root, rel, where = self.data_root, spec, f"the data root {self.data_root}"
        path = (root / rel).resolve()
        if not _inside(path, root) or path == root:
            raise DataError(
                f"'{spec}' is not a folder inside {where}; the app only reads built-in domains, folders under "
                "the data root (start it with --data-root DIR to choose another) and uploaded zips"
            )
        if not path.is_dir():
            names = ", ".join(self.builtins())
            raise DataError(
                f"'{spec}' is neither a built-in domain ({names}) nor a folder in {where}; "
                "give a folder of class sub-folders relative to it"
            )
        return str(domain_root(path) if root == self.uploads_dir else path)


def extract_zip(zip_path: str | Path, uploads_dir: str | Path) -> tuple[str, Path]:
    """Safely extract an uploaded zip (:func:`tada_core.data.archives.extract_zip`); return
    ``("upload/<name>", domain folder)``."""
    name, folder = extract_archive(zip_path, uploads_dir)
    return UPLOAD_PREFIX + name, folder
