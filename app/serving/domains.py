"""Which domains the app may read: built-in names, folders under the data root, uploaded zips.

A browser user must not make the server read arbitrary paths, so a domain typed in the app is
one of: a built-in name (``mnist``, ``mnistm``, …); a folder *inside* the data root
(``--data-root``, default ``./data``), given relative to it (``office31/amazon/images``); or
``upload/<name>``, a zip of class folders uploaded on the Train tab and extracted by
:func:`extract_zip`, which refuses entries that would land outside its folder (``../``,
absolute paths, symlinks), too many files and too many bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tada_core.data.builtin import builtin_names, list_builtin_domains
from tada_core.data.images import is_image_file
from tada_core.errors import DataError

UPLOAD_PREFIX = "upload/"
MAX_ZIP_BYTES = 200 * 2**20  # the upload itself
MAX_EXTRACTED_BYTES = 1 * 2**30  # everything inside it, uncompressed
MAX_ZIP_ENTRIES = 50_000
_SCAN_DEPTH = 3
_SCAN_LIMIT = 2_000  # folders looked at when listing the data root
_UNZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


def _looks_like_domain(folder: Path) -> bool:
    """Two or more visible sub-folders, the first of which holds an image (cheap check)."""
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(subdirs) < 2:
            return False
        with os.scandir(subdirs[0]) as entries:
            for n, entry in enumerate(entries):
                if entry.is_file() and is_image_file(entry.name):
                    return True
                if n > 200:
                    break
    except OSError:
        return False
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
        return str(_domain_root(path) if root == self.uploads_dir else path)


def _member_parts(name: str) -> tuple[str, ...]:
    """The path parts of a zip entry; raises for absolute paths and ``..``."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise DataError(f"the zip holds an absolute path ('{name}'); refusing to extract it")
    parts = tuple(p for p in PurePosixPath(unified).parts if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"the zip holds a path that leaves its folder ('{name}'); refusing to extract it")
    return parts


def _domain_root(folder: Path) -> Path:
    """Descend through lone wrapper folders (a zip of ``amazon/<class>/…`` → ``amazon``)."""
    for _ in range(3):
        visible = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(visible) == 1 and visible[0].is_dir():
            folder = visible[0]
        else:
            break
    return folder


def extract_zip(zip_path: str | Path, uploads_dir: str | Path) -> tuple[str, Path]:
    """Safely extract an uploaded zip of class folders; return ``("upload/<name>", domain folder)``.

    The folder is ``<uploads_dir>/<zip stem>-<content hash>``, so the same zip uploaded twice is
    extracted once.

    Raises:
        DataError: not a zip, too large, too many entries, an entry escaping the folder
            (``../``, absolute path, symlink), or no images in class sub-folders.
    """
    zip_path = Path(zip_path)
    size = zip_path.stat().st_size
    if size > MAX_ZIP_BYTES:
        raise DataError(
            f"the zip is {size / 2**20:.0f} MiB, over the {MAX_ZIP_BYTES // 2**20} MiB limit; upload a smaller one"
        )
    digest = hashlib.sha256()
    with zip_path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in zip_path.stem)[:40] or "data"
    name = f"{stem}-{digest.hexdigest()[:8]}"
    uploads_dir = Path(uploads_dir).resolve()
    dest = uploads_dir / name
    if dest.is_dir():
        return UPLOAD_PREFIX + name, _domain_root(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"the upload is not a readable zip file ({err}); upload a .zip of class folders") from None
    staging = uploads_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_ENTRIES:
                raise DataError(f"the zip has {len(members)} entries, over the {MAX_ZIP_ENTRIES} limit")
            if sum(m.file_size for m in members) > MAX_EXTRACTED_BYTES:
                raise DataError(
                    f"the zip unpacks to more than {MAX_EXTRACTED_BYTES // 2**30} GiB; upload a smaller one"
                )
            staging.mkdir(parents=True)
            budget = MAX_EXTRACTED_BYTES
            for member in members:
                budget -= _extract_member(archive, member, staging, budget)
        if not any(is_image_file(f) for _, _, files in os.walk(staging) for f in files):
            raise DataError("the zip holds no images; it should contain one folder of images per class")
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return UPLOAD_PREFIX + name, _domain_root(dest)


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, staging: Path, budget: int) -> int:
    """Write one entry under ``staging``; return its size. At most ``budget`` bytes are written."""
    parts = _member_parts(member.filename)
    if stat.S_ISLNK(member.external_attr >> 16):
        raise DataError(f"the zip holds a symbolic link ('{member.filename}'); refusing to extract it")
    if not parts or parts[0] == "__MACOSX":
        return 0
    target = staging.joinpath(*parts)
    if not _inside(target.resolve(), staging.resolve()):
        raise DataError(f"the zip entry '{member.filename}' leaves its folder; refusing to extract it")
    if member.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with archive.open(member) as src, target.open("wb") as dst:
            for block in iter(lambda: src.read(2**20), b""):
                written += len(block)
                if written > budget:
                    raise DataError("the zip unpacks to more bytes than allowed; upload a smaller one")
                dst.write(block)
    except _UNZIP_ERRORS as err:  # damaged data, a password, an unsupported compression method
        raise DataError(
            f"cannot extract '{member.filename}' from the zip ({err}); upload an unencrypted zip made with a "
            "standard tool"
        ) from None
    return written
