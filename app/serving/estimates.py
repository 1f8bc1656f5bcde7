"""A checkpoint's accuracy estimate for the app: the one stored at training, or one computed on demand.

    estimate_line_for(entry)          one line for a page header (stored estimate, or why there is none)
    stored_for(entry)                 the Estimate recorded at training time on the training target, or None
    compute_for(ctx, entry)           the estimate on the training target, computed now (cached per file)

Computing needs the training target's images on this server and, for a checkpoint written before
estimates existed, its source's. Only domains the server already trusts are read: a built-in name,
or — for checkpoints the server itself holds (shipped, given at start, its own training runs) — the
folder its metadata names. An uploaded checkpoint is a stranger's file: the paths in its metadata
are never opened, so it is estimated only on built-in domains.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from app.serving.checkpoints import Entry, load_model
from app.serving.context import AppContext
from tada_core.data.builtin import builtin_names
from tada_core.errors import DataError
from tada_core.explain.estimate import Estimate, estimate_accuracy, estimate_line, stored_estimate, uncertain_text

CACHE_SIZE = 16
_cache: OrderedDict[tuple[str, int], Estimate] = OrderedDict()
_lock = threading.Lock()


def estimate_line_for(entry: Entry) -> str:
    """One line for a page header (e.g. the Attention tab): the estimate stored in the checkpoint,
    its interval, the method and the caveat; or a line saying there is none."""
    return estimate_line(load_model(entry.path)[1])


def stored_for(entry: Entry) -> Estimate | None:
    return stored_estimate(load_model(entry.path)[1])


def readable_spec(entry: Entry, spec: str) -> str | None:
    """``spec`` when the app may read it for ``entry`` (see the module docstring), else None."""
    if spec in builtin_names():
        return spec
    if entry.kind != "upload" and spec and Path(spec).exists():
        return spec
    return None


def compute_for(ctx: AppContext, entry: Entry) -> Estimate:
    """The estimate of ``entry``'s checkpoint on its training target, computed now (seconds; a
    frozen-backbone checkpoint without stored calibration: a minute or two), cached per file.

    Raises:
        DataError: the training target (or, for an older checkpoint, its source) is not on this server.
        EstimateError: see :func:`tada_core.explain.estimate.estimate_accuracy`.
    """
    key = (str(entry.path), entry.path.stat().st_mtime_ns)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model, info = load_model(entry.path)
    target = readable_spec(entry, info.target)
    if target is None:
        raise DataError(
            f"the training target of this checkpoint ('{Path(info.target).name or '?'}') is not on this server, so "
            "its accuracy cannot be estimated here; run `tada estimate --checkpoint FILE --domain DOMAIN` where it is"
        )
    source = None if "calibration" in info.extra else readable_spec(entry, info.source)
    if "calibration" not in info.extra and source is None:
        raise DataError(
            "this checkpoint stores no calibration (an older file) and its source is not on this server; "
            "retrain it with this version or run `tada estimate … --source DIR` where its source is"
        )
    result = estimate_accuracy(model, info, target, source=source, device=ctx.device)
    with _lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def estimate_markdown(result: Estimate | None, *, computed: bool = False) -> str:
    """The Model tab's estimate box: value, interval, what makes it uncertain, the target's estimated
    class mix, method, caveat (and the measured accuracy)."""
    if result is None:
        return (
            "**Target accuracy estimated without labels:** none stored in this checkpoint (trained before "
            "estimates existed). Press **Estimate now** to compute it on the training target, when it is on "
            "this server."
        )
    low, high = result.interval
    lines = [
        f"**Target accuracy estimated without labels: {result.estimated_accuracy:.1f}%** "
        f"(interval {low:.1f}–{high:.1f}){uncertain_text(result).replace('uncertain', '**uncertain**', 1)}"
        + (" · computed now" if computed else ""),
    ]
    lines += [f"*Uncertain —* {reason}" for reason in result.uncertain_reasons]
    if result.class_mix:
        largest = sorted(result.class_mix.items(), key=lambda item: -item[1])
        shares = ", ".join(f"{name}: {share:.0%}" for name, share in largest[:20]) + (" …" if len(largest) > 20 else "")
        lines.append(
            f"*Estimated class mix of the target:* {shares} ({result.mix_shift:.2f} from the source's mix, total "
            f"variation{'; the estimate uses the source mix' if result.mix_used == 'source' else ''})"
        )
    else:
        lines.append("*Class mix:* not estimated (stored before issue 34); the estimate assumes the source's mix")
    lines.append(f"*Method:* {result.method}. *Assumes:* {result.assumption}.")
    if result.measured_accuracy is not None:
        lines.append(f"*Measured with the target's labels (not used by the estimate):* {result.measured_accuracy:.1f}%")
    lines += [f"*Note:* {note}" for note in result.notes]
    return "  \n".join(lines)
