"""A checkpoint's shift localiser for the app: stored in the file, cached beside it, or fitted here.

    localiser_for(ctx, entry, fit=...)   (localiser, None) or (None, why the shift view is missing)
    default_view_for(ctx, entry)         the view a checkpoint's images open on

Fitting needs the checkpoint's domains on this server. Only domains the server already trusts are
read: a built-in name, or — for checkpoints the server itself holds (shipped, given at start, its own
training runs) — the folders their metadata name. An uploaded checkpoint is a stranger's file: the
paths in its metadata are never opened, so its shift view is fitted only on built-in domains.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from app.serving.checkpoints import Entry
from app.serving.context import AppContext
from tada_core.checkpoint import read_info
from tada_core.data.builtin import builtin_names
from tada_core.explain.shift import (
    CheckpointLocaliser,
    ShiftError,
    checkpoint_default_view,
    checkpoint_localiser,
    fit_in_background,
    shift_status,
)

INLINE_FIT_S = 10.0  # a fit expected to take longer runs in the background; the request does not wait
READY_CACHE_SIZE = 8  # checkpoints whose ready localiser is kept (one small network each)

_ready: OrderedDict[tuple[str, int, int, str], CheckpointLocaliser] = OrderedDict()
_ready_lock = threading.Lock()


def _file_key(path: Path, data_root: str) -> tuple[str, int, int, str] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_mtime_ns, stat.st_size, data_root


def _remember(key: tuple[str, int, int, str] | None, localiser: CheckpointLocaliser) -> CheckpointLocaliser:
    if key is not None:
        with _ready_lock:
            _ready[key] = localiser
            while len(_ready) > READY_CACHE_SIZE:
                _ready.popitem(last=False)
    return localiser


def readable(entry: Entry) -> bool:
    """Whether the app may open the domains ``entry``'s metadata names (see the module docstring)."""
    if entry.kind != "upload":
        return True
    info = read_info(entry.path)
    names = builtin_names()
    return bool(info.source and info.target) and info.source in names and info.target in names


def localiser_for(ctx: AppContext, entry: Entry, *, fit: bool) -> tuple[CheckpointLocaliser | None, str | None]:
    """The localiser when it is stored or cached (or, with ``fit``, fitted now when that takes at most
    :data:`INLINE_FIT_S` seconds, else started in the background), else None and one sentence
    saying why there is no shift map yet."""
    data_root = str(ctx.domains.data_root)
    key = _file_key(Path(entry.path), data_root)
    with _ready_lock:  # every request after the first: no file is read (the file's stat is the key)
        if key in _ready:
            _ready.move_to_end(key)
            return _ready[key], None
    status = shift_status(entry.path, data_root)
    if not status.ready:
        if not fit:
            return None, "its shift localiser is not fitted yet; choose the shift view to fit it"
        if not readable(entry):
            return None, (
                "this uploaded checkpoint stores no shift localiser and its domains are not built-in here, so it "
                "cannot be fitted; train it with this version of tada (it stores one) or choose another view"
            )
        if not status.fittable:
            return None, status.reason or "the shift view cannot be fitted for this checkpoint"
        if status.seconds is not None and status.seconds > INLINE_FIT_S:
            fit_in_background(entry.path, data_root)
            return None, (
                f"its shift localiser is being fitted in the background (about {status.seconds:.0f} s on this "
                "machine, once for this checkpoint); show it again in a moment"
            )
    try:
        return _remember(key, checkpoint_localiser(entry.path, data_root)), None
    except ShiftError as err:
        return None, str(err)


def default_view_for(ctx: AppContext, entry: Entry) -> str:
    """``shift`` when the checkpoint's localiser is ready (stored or cached: no request waits for a
    fit), else ``gap`` when its domains load here, else ``attention``. Choosing the shift view of a
    checkpoint that can be fitted fits it then (once; ``tada train`` stores it, so only older files)."""
    data_root = str(ctx.domains.data_root)
    status = shift_status(entry.path, data_root)
    if status.ready:
        return "shift"
    if not readable(entry):
        return "attention"
    return "gap" if checkpoint_default_view(entry.path, data_root) in ("shift", "gap") else "attention"
