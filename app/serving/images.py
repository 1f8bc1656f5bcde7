"""Result images written once under their content hash, for Gradio to serve.

A handler that returns a numpy image makes Gradio encode it and write
``<cache>/<sha256 of the PNG>/image.png`` *in place, on every call*. Identical inputs give
identical overlays (the example images, the training curve every open page polls), so two
visitors' requests truncate and rewrite the very file the server is sending to a third: the
download is cut off (``h11 LocalProtocolError: Too little data for declared Content-Length``,
``RemoteProtocolError`` at the client). Handlers therefore return paths from an
:class:`ImageStore`: a PNG is written under a temporary name and renamed to ``<sha256>.png``
once; an existing file is never opened for writing again, only touched. Gradio copies such a path
into its cache with the same write-once rule (``save_file_to_cache``).

Files unused for ``max_age_s`` are removed by a sweep at most once a minute.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

SWEEP_EVERY_S = 60.0
ENCODED_CACHE_SIZE = 64
_encoded: OrderedDict[bytes, bytes] = OrderedDict()  # pixels digest → PNG: a pure memo
_encoded_lock = threading.Lock()


def png_bytes(array: np.ndarray) -> bytes:
    """``uint8`` (H, W, 3) RGB (or (H, W) grey) → PNG bytes (fast zlib level, no optimisation pass).

    The last few encodings are remembered by a digest of the pixels: a request shows each overlay
    twice (inline in its card and as a gallery file) and many visitors send the same images.
    """
    array = np.ascontiguousarray(array)
    key = hashlib.blake2b(repr((array.shape, array.dtype.str)).encode() + array.tobytes(), digest_size=20).digest()
    with _encoded_lock:
        if key in _encoded:
            _encoded.move_to_end(key)
            return _encoded[key]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    with _encoded_lock:
        _encoded[key] = data
        while len(_encoded) > ENCODED_CACHE_SIZE:
            _encoded.popitem(last=False)
    return data


class ImageStore:
    """Content-addressed, write-once PNG files in one folder; safe across threads and processes."""

    def __init__(self, folder: str | Path, max_age_s: float = 3600.0) -> None:
        self.folder = Path(folder)
        self.max_age_s = max_age_s
        self._last_sweep = 0.0
        self._lock = threading.Lock()

    def put(self, data: bytes, suffix: str = ".png") -> str:
        """The path of a file holding ``data``, written now unless an identical one exists."""
        path = self.folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
        try:
            os.utime(path)  # already there: keep it from the sweep, never rewrite it
            return str(path)
        except FileNotFoundError:
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=self.folder, prefix=".staging-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(staging, path)  # atomic: readers see no file or the whole file
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        self._sweep()
        return str(path)

    def png(self, array: np.ndarray) -> str:
        """Encode ``array`` as PNG and store it (see :meth:`put`)."""
        return self.put(png_bytes(array))

    def _sweep(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_sweep < SWEEP_EVERY_S:
                return
            self._last_sweep = now
        for path in self.folder.iterdir():
            try:
                if now - path.stat().st_mtime > self.max_age_s:
                    path.unlink()
            except FileNotFoundError:
                continue
