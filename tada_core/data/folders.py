"""Domains on disk: an ImageFolder tree or an image-list file, turned into ``(path, label)`` samples.

* **Folder** (ImageFolder layout, e.g. Office-31 ``amazon/images``, Office-Home ``Art``): one
  sub-folder per class, searched recursively. Class names are the sorted sub-folder names; hidden
  files and folders, files without an image extension and classes without images are ignored.
* **Flat folder** (an unlabelled domain, as a real target is): images directly in the folder and
  no class sub-folders; :func:`scan_unlabelled` reads every image below a folder, ignoring its
  sub-folders' names.
* **Image list** (TLlib's format): one ``path label`` per line; blank lines and ``#`` comments
  are skipped. Relative paths are read from the list's folder, or from its parent when the first
  one is only found there (TLlib keeps lists in ``<root>/image_list/``). Integer labels are class
  indices named ``"0"`` … ``"max"``, or by the lines of a ``classes.txt`` beside the list; any
  other labels are class names (sorted, or in ``classes.txt`` order). A list whose every line is
  just the path of an image is **unlabelled**.

Every problem is a :class:`~tada_core.errors.DataError` naming the folder, or the ``file:line``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from tada_core.data.images import IMAGE_EXTENSIONS, is_image_file
from tada_core.errors import DataError

Samples = list[tuple[str, int]]
UNLABELLED = -1
"""The label of every image of an unlabelled domain."""

_EXTENSIONS = " ".join(IMAGE_EXTENSIONS)
_INT = re.compile(r"[+-]?\d+")


def _images_under(folder: Path) -> list[str]:
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, f) for f in sorted(files) if is_image_file(f)]
    return found


def _class_folders(root: Path) -> dict[str, list[str]]:
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {folder.name: files for folder in subfolders if (files := _images_under(folder))}


def is_flat_folder(root: Path) -> bool:
    """True when ``root`` holds images directly and none in class sub-folders (an unlabelled domain)."""
    return not _class_folders(root) and any(is_image_file(p) for p in root.iterdir() if p.is_file())


def scan_unlabelled(root: Path) -> Samples:
    """Every image below ``root`` (sub-folders included, their names ignored), labelled ``UNLABELLED``."""
    files = _images_under(root)
    if not files:
        raise DataError(f"folder '{root}' has no images ({_EXTENSIONS})")
    return [(path, UNLABELLED) for path in files]


def scan_image_folder(root: Path) -> tuple[Samples, list[str]]:
    """Read an ImageFolder tree; return its samples and its class names (sorted folder names)."""
    per_class = _class_folders(root)
    if not per_class:
        if any(is_image_file(p) for p in root.iterdir() if p.is_file()):
            raise DataError(
                f"folder '{root}' holds images but no class sub-folders, so it has no labels; put each class's "
                "images in its own sub-folder (ImageFolder layout: <domain>/<class>/<image>)"
            )
        raise DataError(
            f"folder '{root}' has no images ({_EXTENSIONS}) in class sub-folders; "
            "a domain folder needs one sub-folder of images per class"
        )
    if len(per_class) == 1:
        (only,) = per_class
        nested = [p.name for p in sorted((root / only).iterdir()) if p.is_dir() and _images_under(p)]
        if len(nested) > 1:
            raise DataError(
                f"folder '{root}' has a single class folder '{only}' whose sub-folders ({', '.join(nested[:3])}, …) "
                f"hold the images; did you mean '{root / only}'?"
            )
    class_names = list(per_class)
    samples = [(path, index) for index, name in enumerate(class_names) for path in per_class[name]]
    return samples, class_names


def _read_lines(path: Path) -> list[str]:
    if is_image_file(path):
        raise DataError(
            f"'{path}' is an image, not a domain; a domain is a built-in name, a folder of class "
            "sub-folders, or a text file of 'path label' lines"
        )
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"'{path}' is not a text image list ('path label' per line): {err.reason}") from err
    except OSError as err:
        raise DataError(f"cannot read image list '{path}' ({err.strerror}); check its permissions") from err


def _classes_txt(list_path: Path) -> list[str] | None:
    path = list_path.parent / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in _read_lines(path) if line.strip()]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(f"'{path}' lists class(es) {', '.join(duplicates)} more than once; keep one line per class")
    return names


def _base_folder(list_path: Path, first: str) -> Path:
    folder = list_path.parent
    if Path(first).is_absolute() or (folder / first).is_file() or not (folder.parent / first).is_file():
        return folder
    return folder.parent


def _unlabelled_list(list_path: Path, lines: list[tuple[int, str]]) -> Samples | None:
    """The samples of a list whose every line is the path of an existing image; else None."""
    if not all(is_image_file(line) for _, line in lines):
        return None
    base = _base_folder(list_path, lines[0][1])
    paths = [base / line for _, line in lines]
    if not all(path.is_file() for path in paths):
        return None
    return [(os.fspath(path), UNLABELLED) for path in paths]


def read_image_list(list_path: Path) -> tuple[Samples, list[str] | None]:
    """Read an image-list file; return its samples and class names (see the module docstring).

    The class names are None for an unlabelled list (every line just an image path).
    """
    lines = [(number, raw.strip()) for number, raw in enumerate(_read_lines(list_path), start=1)]
    lines = [(number, line) for number, line in lines if line and not line.startswith("#")]
    if lines and (unlabelled := _unlabelled_list(list_path, lines)) is not None:
        return unlabelled, None
    entries = []  # (line number, path, label text)
    for number, line in lines:
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DataError(
                f"{list_path}:{number}: expected 'path label', got {line!r} (a list of unlabelled images has "
                "only paths, every one an existing image)"
            )
        entries.append((number, parts[0], parts[1]))
    if not entries:
        raise DataError(f"image list '{list_path}' has no 'path label' lines")

    base = _base_folder(list_path, entries[0][1])
    names = _classes_txt(list_path)
    int_labels = all(_INT.fullmatch(label) for _, _, label in entries)
    if not int_labels:
        names = names if names is not None else sorted({label for _, _, label in entries})
        index_of = {name: i for i, name in enumerate(names)}
    samples: Samples = []
    for number, path_text, label in entries:
        where = f"{list_path}:{number}"
        path = base / path_text
        if not path.is_file():
            raise DataError(f"{where}: image '{path}' not found (relative paths are read from {base})")
        if int_labels:
            index = int(label)
            if index < 0:
                raise DataError(f"{where}: label {index} is negative; labels are class indices 0, 1, …")
            if names is not None and index >= len(names):
                raise DataError(f"{where}: label {index} but classes.txt lists only {len(names)} classes")
        elif label in index_of:
            index = index_of[label]
        else:
            raise DataError(f"{where}: class '{label}' is not in classes.txt; add it there or fix the label")
        samples.append((os.fspath(path), index))
    if names is None:
        names = [str(i) for i in range(max(index for _, index in samples) + 1)]
    return samples, names
