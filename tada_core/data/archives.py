"""Zips of images, extracted safely: what an uploaded or a ``--target data.zip`` domain goes through.

:func:`extract_zip` refuses entries that would land outside its folder (``../``, absolute paths,
symbolic links), too many entries and too many bytes (checked while writing, not only from the
header), damaged or encrypted members; it extracts into a staging folder renamed into place, so
a half-extracted zip is never seen. The folder is named by the zip's content hash, so the same zip
given twice is extracted once.

    >>> name, folder = extract_zip("camera_b.zip", "~/.cache/tada/unzipped")
    >>> name                     # '<zip stem>-<8 hex digits of its sha256>'
    'camera_b-1f2e3d4c'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tada_core.data.images import is_image_file
from tada_core.errors import DataError

MAX_ZIP_BYTES = 200 * 2**20  # the zip itself
MAX_EXTRACTED_BYTES = 1 * 2**30  # everything inside it, uncompressed
MAX_ZIP_ENTRIES = 50_000
_UNZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _member_parts(name: str) -> tuple[str, ...]:
    """The path parts of a zip entry; raises for absolute paths and ``..``."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise DataError(f"the zip holds an absolute path ('{name}'); refusing to extract it")
    parts = tuple(p for p in PurePosixPath(unified).parts if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"the zip holds a path that leaves its folder ('{name}'); refusing to extract it")
    return parts


def domain_root(folder: Path) -> Path:
    """Descend through lone wrapper folders (a zip of ``amazon/<class>/…`` → ``amazon``)."""
    for _ in range(3):
        visible = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(visible) == 1 and visible[0].is_dir():
            folder = visible[0]
        else:
            break
    return folder


def extract_zip(zip_path: str | Path, dest_root: str | Path) -> tuple[str, Path]:
    """Safely extract a zip of images; return ``(name, domain folder)``.

    The zip is extracted to ``<dest_root>/<name>``, ``name`` = ``<zip stem>-<content hash>``; the
    domain folder is that folder, or the lone folder it wraps (a zip of ``amazon/<class>/…``).

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
    dest_root = Path(dest_root).expanduser().resolve()
    dest = dest_root / name
    if dest.is_dir():
        return name, domain_root(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"'{zip_path.name}' is not a readable zip file ({err}); give a .zip of images") from None
    staging = dest_root / f".{name}.partial"
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
            raise DataError(
                "the zip holds no images; it should contain one folder of images per class (labelled) or "
                "just the images (unlabelled)"
            )
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return name, domain_root(dest)


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
