"""Designer-style domains: the same emojis drawn by Apple, Google (Noto) and Twitter (Twemoji).

A real style shift of made-by-people images, the kind of Office-Home's Clipart ↔ Product. The
images are their makers' and are never committed: ``tada data download emoji`` fetches the npm
packages with npm's own client (``npm pack NAME@VERSION``), checks each tarball against the
integrity pinned here, and writes every style as an ImageFolder under
``<data root>/emoji/<style>/<class>/<codepoints>.png`` (64×64 RGB, composited on white). Without
npm, the tarballs can be put in ``<data root>/emoji/tarballs/`` by hand.

Classes (the documented rule, :func:`select_classes`): the Unicode subcategories of the
categories that draw *things* (Animals & Nature, Food & Drink, Travel & Places, Activities,
Objects; no people, faces, symbols or flags) with at least :data:`MIN_PER_CLASS` emojis drawn in
every one of the three benchmark styles; base images only (skin-tone variants are separate
entries of ``skin_variations`` and never read). Version 16.0.0 gives 16 classes and 511 images a
style. The unsupervised protocol: all source images labelled, all target images unlabelled,
accuracy on all target images.

Licences: Twemoji CC-BY 4.0 (Twitter, Inc. and contributors), Noto Emoji Apache 2.0 (Google);
Apple's images are not free to redistribute — train on them, ship nothing made of them.

Example:
    >>> build_emoji(tarballs_dir, out_dir)          # doctest: +SKIP
    {'classes': ['animal-bird', ...], 'styles': {'apple': 511, 'google': 511, 'twitter': 511}}
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np

from tada_core.errors import DataError

VERSION = "16.0.0"
METADATA_PACKAGE = "emoji-datasource"
# npm's published sha512 integrity of each tarball at VERSION
INTEGRITY = {
    "emoji-datasource": "sha512-/qHKqK5Nr3+8zhgO6kHmF43Fm5C8HNn0AaFRIpgw8HF3+uF0Vfc8jgLI1ZQS5ba1vBzksS8NBCjHejwLb2D/Sg==",
    "emoji-datasource-apple": "sha512-dVYjsK0FnCry9F+PBtnivhG2K0xdwlmqYaSgiUtztUdAGPYiHYhZcVKvNBqC791g2qyEcFNTBO6utg4eQ3uLTw==",
    "emoji-datasource-google": "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    "emoji-datasource-twitter": "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
    "emoji-datasource-facebook": "sha512-b9ZxJdB7nMWGckH1vyCjPSosaa6MJYuojPPFiQ0LmDIZS8vlG454XKcmTFKrXIMAA72O4MRJMYFhvWI8pjyciQ==",
}
BENCH_STYLES = ("apple", "google", "twitter")  # the classes are drawn in all three
STYLES = (*BENCH_STYLES, "facebook")
LICENCES = {
    "apple": "© Apple Inc.; not free to redistribute",
    "google": "Noto Emoji © Google, Apache License 2.0",
    "twitter": "Twemoji © Twitter, Inc. and contributors, CC-BY 4.0",
    "facebook": "© Meta Platforms, Inc.; not free to redistribute",
}
THING_CATEGORIES = ("Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects")
MIN_PER_CLASS = 20
SIZE = 64
DOMAIN_PREFIX = "emoji-"


def package_of(style: str) -> str:
    return f"{METADATA_PACKAGE}-{style}"


def tarball_name(package: str) -> str:
    return f"{package}-{VERSION}.tgz"


def integrity_of(path: Path) -> str:
    """npm's ``sha512-<base64>`` integrity string of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def class_folder(subcategory: str) -> str:
    """A subcategory as a folder name: ``sky & weather`` → ``sky-weather``."""
    return re.sub(r"[^a-z0-9]+", "-", subcategory.lower()).strip("-")


def select_classes(entries: list[dict], styles: tuple[str, ...] = BENCH_STYLES) -> dict[str, list[dict]]:
    """The rule of the module docstring: ``{class folder: [emoji entries]}``, sorted by name.

    Args:
        entries: the records of ``emoji.json`` (``category``, ``subcategory``, ``image``,
            ``has_img_<style>``).
    """
    drawn = [
        e
        for e in entries
        if e.get("category") in THING_CATEGORIES and all(e.get(f"has_img_{s}") for s in styles) and e.get("image")
    ]
    counts = Counter(class_folder(e["subcategory"]) for e in drawn)
    kept = sorted(name for name, n in counts.items() if n >= MIN_PER_CLASS)
    return {
        name: sorted((e for e in drawn if class_folder(e["subcategory"]) == name), key=lambda e: e["image"])
        for name in kept
    }


def on_white(png: bytes) -> np.ndarray:
    """A (possibly transparent) PNG as uint8 (SIZE, SIZE, 3) RGB over a white background."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
        if rgba.size != (SIZE, SIZE):
            rgba = rgba.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def _member(tar: tarfile.TarFile, name: str, what: Path) -> bytes:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise DataError(f"{what} has no '{name}'; it is not the {VERSION} package: delete it and download again")
    return handle.read()


def _verified(path: Path, package: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing {path}; run 'tada data download emoji' or put the npm tarball there by hand")
    found = integrity_of(path)
    if found != INTEGRITY[package]:
        raise DataError(
            f"{path} does not match the published integrity of {package}@{VERSION} "
            f"(expected {INTEGRITY[package][:24]}…, got {found[:24]}…); delete it and download again"
        )
    return path


def build_emoji(tarballs: Path, out: Path, styles: tuple[str, ...] = BENCH_STYLES) -> dict:
    """Write each style of ``styles`` as an ImageFolder under ``out/<style>/`` from verified tarballs.

    Returns:
        The manifest also written to ``out/manifest.json``: version, rule, classes and each
        style's image count.
    """
    from PIL import Image

    meta = _verified(tarballs / tarball_name(METADATA_PACKAGE), METADATA_PACKAGE)
    with tarfile.open(meta) as tar:
        entries = json.loads(_member(tar, "package/emoji.json", meta))
    classes = select_classes(entries)
    counts = {}
    for style in styles:
        path = _verified(tarballs / tarball_name(package_of(style)), package_of(style))
        staging = out / f".{style}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        written = 0
        with tarfile.open(path) as tar:
            for name, members in classes.items():
                (staging / name).mkdir(parents=True, exist_ok=True)
                for entry in members:
                    if not entry.get(f"has_img_{style}"):
                        continue
                    png = _member(tar, f"package/img/{style}/64/{entry['image']}", path)
                    Image.fromarray(on_white(png)).save(staging / name / entry["image"])
                    written += 1
        shutil.rmtree(out / style, ignore_errors=True)
        staging.rename(out / style)  # a style folder is whole or absent
        counts[style] = written
    manifest = {
        "version": VERSION,
        "rule": f"subcategories of {', '.join(THING_CATEGORIES)} with >= {MIN_PER_CLASS} emojis drawn in "
        f"every style of {', '.join(BENCH_STYLES)}; base images only; composited on white, {SIZE} px",
        "classes": list(classes),
        "styles": {**_read_manifest(out).get("styles", {}), **counts},
        "licences": {s: LICENCES[s] for s in styles},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def fetch_tarballs(tarballs: Path, styles: tuple[str, ...], npm: str = "npm") -> list[Path]:
    """``npm pack`` every package not already in ``tarballs`` (verified either way)."""
    tarballs.mkdir(parents=True, exist_ok=True)
    packages = [METADATA_PACKAGE, *(package_of(s) for s in styles)]
    paths = []
    for package in packages:
        path = tarballs / tarball_name(package)
        if not path.is_file() or integrity_of(path) != INTEGRITY[package]:
            path.unlink(missing_ok=True)
            _npm_pack(npm, package, tarballs)
        paths.append(_verified(path, package))
    return paths


def _npm_pack(npm: str, package: str, into: Path) -> None:
    if shutil.which(npm) is None:
        names = ", ".join(tarball_name(p) for p in (METADATA_PACKAGE, *(package_of(s) for s in BENCH_STYLES)))
        raise DataError(
            f"the emoji styles are fetched with npm's client, and '{npm}' is not installed: install Node.js "
            f"and npm (e.g. 'apt-get install npm'), or put the tarballs ({names}) in {into} by hand and run again"
        )
    command = [npm, "pack", f"{package}@{VERSION}", "--pack-destination", str(into), "--silent"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(f"'{' '.join(command)}' failed ({tail[0]}); check the registry connection and run again")


def emoji_root(root: Path) -> Path:
    return root / "emoji"


def download_emoji(root: Path, styles: tuple[str, ...] = BENCH_STYLES, npm: str = "npm") -> dict:
    """Fetch (or reuse) the tarballs under ``root/emoji/tarballs`` and build the style folders."""
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise DataError(f"unknown emoji style(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(STYLES)}")
    base = emoji_root(root)
    fetch_tarballs(base / "tarballs", styles, npm)
    return build_emoji(base / "tarballs", base, styles)


def domain_names() -> list[str]:
    return [DOMAIN_PREFIX + s for s in STYLES]


def style_folder(name: str, root: Path) -> Path:
    return emoji_root(root) / name.removeprefix(DOMAIN_PREFIX)


def is_built(name: str, root: Path) -> bool:
    return name.removeprefix(DOMAIN_PREFIX) in _read_manifest(emoji_root(root)).get("styles", {})


def manifest(root: Path) -> dict:
    return _read_manifest(emoji_root(root))


def load_style(name: str, root: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(class names, uint8 (N, 64, 64, 3) images, int64 (N,) labels)`` of a built style.

    Raises:
        DataError: the style has not been built (says how to build it).
    """
    from PIL import Image

    if not is_built(name, root):
        raise DataError(
            f"built-in domain '{name}' is made by 'tada data download emoji"
            f"{'' if name.removeprefix(DOMAIN_PREFIX) in BENCH_STYLES else ' --styles ' + name.removeprefix(DOMAIN_PREFIX)}'"
            f" (npm fetches the designers' images into {emoji_root(root)}); run it once, or set TADA_DATA_ROOT"
        )
    classes = manifest(root)["classes"]
    folder = style_folder(name, root)
    images, labels = [], []
    for index, cls in enumerate(classes):
        for path in sorted((folder / cls).glob("*.png")):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(index)
    return classes, np.stack(images), np.asarray(labels, dtype=np.int64)
