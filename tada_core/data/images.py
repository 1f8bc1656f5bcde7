"""Robust image decoding for dataset files and uploads: anything in, an 8-bit RGB PIL image out.

Limits are checked before the expensive work: the byte size before the file is read in full, the
pixel count from the header before the pixels are decoded. Transparent images are composited on
**white** (how browsers show them, and the background of product photos such as Office-31's
``amazon``). 16-bit and 32-bit images are scaled to 8 bits proportionally, never clipped.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tada_core.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""File extensions read as images (lower case); other files in a folder are ignored."""

ImageSource = str | os.PathLike | bytes | bytearray | BinaryIO

DECODERS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")  # JPEG covers MPO camera files
"""The only PIL decoders tried (the formats of :data:`IMAGE_EXTENSIONS`), whatever a file's name says:
PIL's other plug-ins (EPS runs Ghostscript, and many rarely used parsers) never see an upload."""

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_ALPHA_MODES = ("LA", "La", "PA", "P", "RGBA", "RGBa")
_HINT = "upload a PNG or JPEG"


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible file name with an image extension (:data:`IMAGE_EXTENSIONS`)."""
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _unreadable(label: str, why: object) -> DataError:
    return DataError(f"{label} is not a readable image ({why}); {_HINT}")


def _read_bounded(source: ImageSource, max_bytes: int) -> tuple[bytes, str]:
    """Return the encoded bytes and a label for messages, refusing more than ``max_bytes``."""
    too_big = f"is larger than {max_bytes / 2**20:.4g} MiB; {_HINT} under that size"
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > max_bytes:
            raise DataError(f"the upload {too_big}")
        return bytes(source), "the upload"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        label = f"'{path}'"
        if not path.is_file():
            raise DataError(f"image {label} not found; check the path")
        if path.stat().st_size > max_bytes:
            raise DataError(f"{label} {too_big}")
        try:
            return path.read_bytes(), label
        except OSError as err:
            raise DataError(f"cannot read {label} ({err.strerror}); check its permissions") from err
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = f"'{name}'" if isinstance(name, str) else "the upload"
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise TypeError("load_image needs a file opened in binary mode ('rb')")
        if len(data) > max_bytes:
            raise DataError(f"{label} {too_big}")
        return data, label
    raise TypeError(f"load_image takes a path, bytes or a binary file object, not {type(source).__name__}")


def _scale_to_uint8(image: Image.Image) -> np.ndarray:
    """Map a 16-bit, 32-bit integer or float image to uint8 0..255 proportionally.

    ``I;16*``: ``v · 255 / 65535``. ``I``: the same when all values are in 0..65535 (how 16-bit
    files are often stored), else min–max. ``F``: ``v · 255`` when values are in [0, 1], else
    min–max. NaN and infinities become 0.
    """
    a = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and lo >= 0 and hi <= 65535):
        scaled = a / 65535
    elif image.mode == "F" and lo >= 0 and hi <= 1:
        scaled = a
    else:
        scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB.

    Grey is replicated, palettes are expanded, transparency is composited on white, CMYK and
    YCbCr are converted by PIL, deep images go through :func:`_scale_to_uint8`.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_scale_to_uint8(image)).convert("RGB")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _exif_upright(image: Image.Image) -> Image.Image:
    """Rotate a camera photo upright from its EXIF orientation; keep it as is if EXIF is broken."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image


def load_image(source: ImageSource, *, max_pixels: int = 40_000_000, max_bytes: int = 50 * 2**20) -> Image.Image:
    """Decode an image file, upload or byte string into an 8-bit RGB PIL image.

    Args:
        source: a path, the encoded bytes, or a binary file object (read from its position).
        max_pixels: largest width × height accepted, checked from the header before decoding.
        max_bytes: largest encoded size accepted, checked before the data is read in full.

    Returns:
        A loaded PIL image in mode ``"RGB"`` (values 0..255), upright per EXIF; the first frame
        of an animation; transparency composited on white.

    Raises:
        DataError: missing, too large, empty, truncated or not an image; the message names the
            file and says what to do.
    """
    data, label = _read_bounded(source, max_bytes)
    if not data:
        raise _unreadable(label, "empty file")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below is the policy; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=DECODERS)
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(
                    f"{label} is {width}×{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,}; resize it and try again"
                )
            if width == 0 or height == 0:
                raise _unreadable(label, f"size {width}×{height}")
            image.load()
            return to_rgb(_exif_upright(image))
    except Image.DecompressionBombError as err:
        raise DataError(f"{label} has too many pixels to decode safely ({err}); resize it and try again") from err
    except UnidentifiedImageError as err:
        raise _unreadable(label, "not a recognised image format") from err
    except _DECODE_ERRORS as err:
        raise _unreadable(label, err) from err


def probe_image(path: str | os.PathLike, *, max_pixels: int = 40_000_000, max_bytes: int = 50 * 2**20) -> str | None:
    """Why the image file at ``path`` cannot be used, or None when it looks readable.

    Cheap: reads the header and checks the file's structure (PIL's ``verify``: chunk checksums for
    PNG) without decoding the pixels, so a folder of thousands of images is checked in seconds.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        if size > max_bytes:
            return f"larger than {max_bytes / 2**20:.4g} MiB"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=DECODERS) as image:
                width, height = image.size
                if width == 0 or height == 0 or width * height > max_pixels:
                    return f"size {width}×{height}"
                image.verify()
    except Image.DecompressionBombError:
        return "too many pixels"
    except UnidentifiedImageError:
        return "not a recognised image format"
    except _DECODE_ERRORS as err:
        return str(err) or type(err).__name__
    return None
