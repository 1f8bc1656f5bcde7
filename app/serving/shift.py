"""A checkpoint's shift localiser for the app: the app's trust policy and wording over the one home of
localisers, :class:`tada_core.explain.shift.LocaliserStore` (stored in the file, cached beside it,
or fitted here; kept in memory per file once ready).

    localiser_for(ctx, entry, fit=...)   (localiser, None) or (None, why the shift view is missing)
    default_view_for(ctx, entry)         the view a checkpoint's images open on

Fitting needs the checkpoint's domains on this server. Only domains the server already trusts are
read: a built-in name, or — for checkpoints the server itself holds (shipped, given at start, its own
training runs) — the folders their metadata name. An uploaded checkpoint is a stranger's file: the
paths in its metadata are never opened, so its shift view is fitted only on built-in domains.
"""

from __future__ import annotations

from app.serving.checkpoints import Entry
from app.serving.context import AppContext
from tada_core.checkpoint import read_info
from tada_core.data.builtin import builtin_names
from tada_core.explain.shift import CheckpointLocaliser, LocaliserStore, ShiftError, store_for

INLINE_FIT_S = 10.0  # a fit expected to take longer runs in the background; the request does not wait


def _store(ctx: AppContext) -> LocaliserStore:
    return store_for(str(ctx.domains.data_root))


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
    saying why there is no shift map yet. The domains of an unreadable upload are never opened."""
    store = _store(ctx)
    found = store.ready(entry.path)  # from memory after the first request: no file is read
    if found is not None:
        return found, None
    if not fit:
        return None, "its shift localiser is not fitted yet; choose the shift view to fit it"
    if not readable(entry):
        return None, (
            "this uploaded checkpoint stores no shift localiser and its domains are not built-in here, so it "
            "cannot be fitted; train it with this version of tada (it stores one) or choose another view"
        )
    status = store.status(entry.path)
    if not status.ready and not status.fittable:
        return None, status.reason or "the shift view cannot be fitted for this checkpoint"
    if not status.ready and status.seconds is not None and status.seconds > INLINE_FIT_S:
        store.fit_in_background(entry.path)
        return None, (
            f"its shift localiser is being fitted in the background (about {status.seconds:.0f} s on this "
            "machine, once for this checkpoint); show it again in a moment"
        )
    try:
        return store.get(entry.path), None
    except ShiftError as err:
        return None, str(err)


def default_view_for(ctx: AppContext, entry: Entry) -> str:
    """``shift`` when the checkpoint's localiser is ready (stored or cached: no request waits for a
    fit), else ``gap`` when its domains load here, else ``attention``. Choosing the shift view of a
    checkpoint that can be fitted fits it then (once; ``tada train`` stores it, so only older files)."""
    store = _store(ctx)
    if readable(entry):
        return store.default_view(entry.path, fit=False)
    return "shift" if store.ready(entry.path) is not None else "attention"
