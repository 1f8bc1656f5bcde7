"""The shift localiser of a checkpoint: stored in it, cached beside it, or fitted here on demand.

``tada train`` fits the localiser (:mod:`tada_core.training.localiser_fit`) after its last step
and stores it in the checkpoint as ``localiser.*`` tensors, so the ``shift`` view costs one
forward pass. For a checkpoint without them (older, uploaded, the shipped digits models) it is
fitted here from the checkpoint's own domains when they can be loaded on this machine, once:
the result goes into a sidecar ``<stem>.localiser-<sha256[:16]>.safetensors`` next to the
checkpoint (or, when that folder is read-only, under ``<data root>/localisers/``), keyed by the
checkpoint's content hash, never pickled. Concurrent first requests for one checkpoint fit once.

One home, :class:`LocaliserStore` (one per data root, :func:`store_for`), answers every question
about a checkpoint's localiser; the CLI and the app (:mod:`app.serving.shift`) only call it:

    >>> store = store_for(data_root)
    >>> store.status("model.safetensors")             # ready? fittable, in about how long? why not?
    >>> store.ready("model.safetensors")              # stored or cached, else None: never fits
    >>> store.get("model.safetensors")                # stored → sidecar → fitted now; ShiftError: why not
    >>> store.fit_in_background("model.safetensors")  # the app: a Future of get(), one per file at a time
    >>> store.default_view("model.safetensors")       # "shift", else "gap", else "attention"

A ready localiser is kept in memory per file (path, modification time and size): after the first
request no file is read. The functions of the README call the store of their data root:

    >>> status = shift_status("model.safetensors")
    >>> future = fit_in_background("model.safetensors")
    >>> found = checkpoint_localiser("model.safetensors")
    >>> checkpoint_default_view("model.safetensors")
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tada_core.checkpoint import atomic_write, has_tensors, load_checkpoint, read_info, read_tensors
from tada_core.data import load_domain
from tada_core.data.torchvision_sets import data_root as default_data_root
from tada_core.errors import TadaError
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.model.localiser import PREFIX, Localiser, LocaliserError, Tap, tap_features, tap_for
from tada_core.training.localiser_fit import MAX_IMAGES, FitSettings, fit_for_backbone

SIDECAR_KEY = "tada-localiser"
# Measured on the development machine with one thread, as the app fits (scripts/measure_shift_costs.py,
# 2026-12-06, quiet): seconds to encode one image at the backbone's tap, and seconds per fitting step
# of 16 + 16 tap maps of (C, h, w), h·w·(STEP_PER_POSITION + C·STEP_PER_VALUE) (Lite0's 120 × 56 × 56:
# 0.58 s measured, 0.56 s by the formula; LeNet's 32 × 14 × 14: 0.009 s, 0.013 s). The estimate
# before it, a fit of Lite0 in 1/4 to 1/5 of the time it took, was measured with 2 threads.
ENCODE_SECONDS = {
    "lenet": 0.0002,
    "efficientnet_lite0": 0.21,
    "resnet18": 0.18,
    "resnet34": 0.25,
    "resnet50": 0.49,
    "resnet101": 0.49,
}
ENCODE_SECONDS_OTHER = 0.5  # a backbone not measured
STEP_PER_POSITION = 2.3e-5
STEP_PER_VALUE = 1.29e-6


class ShiftError(TadaError):
    """The shift view cannot be shown for this checkpoint (no stored localiser and its domains are not here)."""


@dataclass(frozen=True)
class ShiftStatus:
    """Whether a checkpoint's shift view is ready, and if not, whether and how fast it can be made.

    Attributes:
        ready: a localiser is stored in the checkpoint or cached beside it (the view costs a forward pass).
        fittable: not ready, but the checkpoint's domains load here, so it can be fitted.
        origin: ``stored``, ``cached``, ``fittable`` or ``unavailable``.
        seconds: estimated fitting time when fittable (encoding included), else None.
        reason: why the view cannot be shown, when it is neither ready nor fittable.
    """

    ready: bool
    fittable: bool
    origin: str
    seconds: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CheckpointLocaliser:
    """A fitted localiser and where it reads the backbone."""

    localiser: Localiser
    tap: Tap
    origin: str  # stored, cached or fitted

    @torch.no_grad()
    def logits(self, backbone: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Shift logits (B, h, w) of normalised model inputs (B, 3, S, S); high = the target differs here."""
        return self.localiser(tap_features(backbone, self.tap, images).float().cpu())


@functools.lru_cache(maxsize=64)
def _content_hash(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (cached per path, modification time and size)."""
    stat = Path(path).stat()
    return _content_hash(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def sidecar_paths(path: str | Path) -> list[Path]:
    """Where a fitted localiser of ``path`` is cached: next to it, then under the data root."""
    path = Path(path)
    name = f"{path.stem}.localiser-{content_hash(path)[:16]}.safetensors"
    return [path.parent / name, default_data_root(None) / "localisers" / name]


def _tap_of(info) -> Tap:
    try:
        return tap_for(info.config.backbone)
    except LocaliserError as err:
        raise ShiftError(f"{err}; choose the gap or attention view") from None


def recorded_tap(description: dict | None, tap: Tap) -> Tap:
    """The tap a stored localiser was fitted on, from its description (``{"tap": …}``); one recorded
    before taps had a context (or none recorded) is ``tap`` without its context."""
    recorded = (description or {}).get("tap")
    if isinstance(recorded, dict):
        try:
            return Tap.from_dict(recorded)
        except LocaliserError:
            pass
    return Tap(tap.module, tap.upsample)


def _read_sidecar(path: Path, tap: Tap) -> tuple[Localiser, Tap] | None:
    for candidate in sidecar_paths(path):
        if candidate.is_file():
            try:
                with safe_open(str(candidate), framework="pt") as handle:
                    description = json.loads((handle.metadata() or {}).get(SIDECAR_KEY, "{}"))
                return Localiser.from_tensors(read_tensors(candidate, PREFIX)), recorded_tap(description, tap)
            except (LocaliserError, TadaError, OSError, ValueError, SafetensorError):
                continue  # a damaged cache is refitted
    return None


def _write_sidecar(path: Path, localiser: Localiser, tap: Tap, dtype: torch.dtype) -> None:
    meta = {SIDECAR_KEY: json.dumps({"checkpoint_sha256": content_hash(path), "tap": tap.to_dict()})}
    tensors = localiser.to_tensors(dtype)
    for candidate in sidecar_paths(path):
        try:
            atomic_write(candidate, lambda tmp: save_file(tensors, tmp, metadata=meta))
            return
        except OSError:
            continue  # read-only folder: try the next place


def _stored(path: Path) -> Localiser | None:
    tensors = read_tensors(path, PREFIX)
    return Localiser.from_tensors(tensors) if tensors else None


def _domains(path: Path, info, data_root: str | None):
    if not info.source or not info.target:
        raise ShiftError(
            f"{path.name} stores no shift localiser and does not record its source and target domains, "
            "so the shift view cannot be fitted; choose the attention view"
        )
    kwargs = {"image_size": image_size_for(info.config), "norm": norm_for(info.config), "train": False}
    try:
        return (
            load_domain(info.source, data_root=data_root, **kwargs),
            load_domain(info.target, data_root=data_root, labels="ignore", **kwargs),
        )
    except TadaError as err:
        raise ShiftError(
            f"the shift view of {path.name} needs its domains {info.source!r} → {info.target!r} to be fitted, "
            f"and they cannot be loaded here ({err}); choose the attention or transferability view"
        ) from None


def fit_checkpoint_localiser(
    path: str | Path, data_root: str | None = None, *, max_images: int = MAX_IMAGES
) -> CheckpointLocaliser:
    """Fit a checkpoint's shift localiser now, on today's tap and settings, whatever it stores or
    has cached (nothing is written); ShiftError when its domains cannot be loaded here."""
    model, info = load_checkpoint(path)
    tap = _tap_of(info)
    source, target = _domains(Path(path), info, data_root)
    settings = FitSettings(max_images=max_images)
    localiser = fit_for_backbone(
        model.backbone, info.config.backbone, source.dataset, target.dataset, settings=settings
    )
    return CheckpointLocaliser(localiser, tap, "fitted")


def fit_seconds(
    backbone: str, images: Sequence[int], shape: tuple[int, int, int], settings: FitSettings | None = None
) -> float:
    """Estimated seconds to fit a localiser on one thread: encode ``images`` (source, target counts)
    at the tap, then ``seeds × epochs × ⌈max(images) / batch⌉`` steps on tap maps of ``shape`` (C, h, w)."""
    channels, h, w = shape
    settings = settings or FitSettings()
    steps = len(settings.seeds) * settings.epochs * math.ceil(max(images) / settings.batch_size)
    per_step = h * w * (STEP_PER_POSITION + channels * STEP_PER_VALUE)
    return sum(images) * ENCODE_SECONDS.get(backbone, ENCODE_SECONDS_OTHER) + steps * per_step


_LOCK = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}
_EXECUTOR: ThreadPoolExecutor | None = None
_STORES: dict[tuple[str | None, int], LocaliserStore] = {}
KEEP = 16  # ready localisers a store keeps in memory (one small network each)


def _key_lock(key: str) -> threading.Lock:
    with _LOCK:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:  # one fit at a time in this process
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tada-localiser")
        return _EXECUTOR


FileKey = tuple[str, int, int]


def _file_key(path: Path) -> FileKey | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


class LocaliserStore:
    """The shift localisers of checkpoints whose domains are read under ``data_root`` (None: the
    default), fitted on at most ``max_images`` images a domain. Thread-safe; see the module docstring.

    Every method takes the checkpoint's path. A ready localiser and a fittable status are kept in
    memory per file (path, modification time, size), so a rewritten checkpoint is read again.
    """

    def __init__(self, data_root: str | None = None, max_images: int = MAX_IMAGES, keep: int = KEEP) -> None:
        self.data_root, self.max_images, self.keep = data_root, max_images, keep
        self._lock = threading.Lock()
        self._ready: OrderedDict[FileKey, CheckpointLocaliser] = OrderedDict()
        self._fittable: dict[FileKey, ShiftStatus] = {}
        self._running: dict[FileKey, Future] = {}

    def forget(self) -> None:
        """Drop what is kept in memory (the next request reads the files, as a new process would)."""
        with self._lock:
            self._ready.clear()
            self._fittable.clear()

    def _kept(self, key: FileKey | None) -> CheckpointLocaliser | None:
        with self._lock:
            found = self._ready.get(key) if key is not None else None
            if found is not None:
                self._ready.move_to_end(key)
            return found

    def _keep(self, key: FileKey | None, found: CheckpointLocaliser) -> CheckpointLocaliser:
        if key is not None:
            with self._lock:
                self._ready[key] = found
                self._fittable.pop(key, None)
                while len(self._ready) > self.keep:
                    self._ready.popitem(last=False)
        return found

    def _read(self, path: Path, info, tap: Tap) -> CheckpointLocaliser | None:
        stored = _stored(path)
        if stored is not None:
            return CheckpointLocaliser(stored, recorded_tap(info.extra.get("localiser"), tap), "stored")
        cached = _read_sidecar(path, tap)
        return CheckpointLocaliser(*cached, "cached") if cached is not None else None

    def _lookup(self, path: Path) -> tuple:
        """``(key, localiser kept in memory for this file or None)``."""
        key = _file_key(path)
        return key, self._kept(key)

    def ready(self, path: str | Path) -> CheckpointLocaliser | None:
        """The localiser when it is stored in the checkpoint or cached beside it, else None. Never
        fits, never opens the checkpoint's domains; from memory after the first time."""
        path = Path(path)
        key, found = self._lookup(path)
        if found is not None:
            return found
        info = read_info(path)
        try:
            tap = _tap_of(info)
        except ShiftError:
            return None
        found = self._read(path, info, tap)
        return self._keep(key, found) if found is not None else None

    def get(self, path: str | Path) -> CheckpointLocaliser:
        """The localiser: stored in the checkpoint, cached beside it, or fitted now (then cached).

        Blocking; concurrent first requests for one checkpoint fit once.

        Raises:
            ShiftError: nothing stored or cached and the checkpoint's domains cannot be loaded here,
                or a backbone without a tap.
        """
        path = Path(path)
        key, found = self._lookup(path)
        if found is not None:
            return found
        info = read_info(path)
        tap = _tap_of(info)
        with _key_lock(content_hash(path)):
            found = self._kept(key) or self._read(path, info, tap)  # another thread may have fitted it
            if found is None:
                found = fit_checkpoint_localiser(path, self.data_root, max_images=self.max_images)
                _write_sidecar(path, found.localiser, tap, torch.float16 if info.config.pretrained else torch.float32)
            return self._keep(key, found)

    def fit_in_background(self, path: str | Path) -> Future:
        """:meth:`get` on a background thread (one fit at a time in this process); its ``Future``,
        the same one while a fit of this file is under way. The future's result is the
        :class:`CheckpointLocaliser`, or it raises :class:`ShiftError`."""
        key = _file_key(Path(path)) or (os.fspath(path), 0, 0)
        with self._lock:
            self._running = {k: f for k, f in self._running.items() if not f.done()}
            if key not in self._running:
                self._running[key] = _executor().submit(self.get, os.fspath(path))
            return self._running[key]

    def status(self, path: str | Path) -> ShiftStatus:
        """Whether the shift view of a checkpoint is ready; if not, whether it can be fitted here and in
        about how many seconds (measured costs of this project's development machine)."""
        path = Path(path)
        key = _file_key(path)
        kept = self._kept(key)
        if kept is not None:
            return ShiftStatus(True, False, "stored" if kept.origin == "stored" else "cached")
        with self._lock:
            fittable = self._fittable.get(key) if key is not None else None
        if fittable is not None:
            return fittable
        info = read_info(path)
        try:
            tap = _tap_of(info)
        except ShiftError as err:
            return ShiftStatus(False, False, "unavailable", reason=str(err))
        if has_tensors(path, PREFIX):
            return ShiftStatus(True, False, "stored")
        if any(candidate.is_file() for candidate in sidecar_paths(path)):
            return ShiftStatus(True, False, "cached")
        try:
            source, target = _domains(path, info, self.data_root)
        except ShiftError as err:
            return ShiftStatus(False, False, "unavailable", reason=str(err))
        n = [min(len(d), self.max_images) for d in (source, target)]
        size = image_size_for(info.config)
        model, _ = load_checkpoint(path)
        with torch.no_grad():
            channels, h, w = tap_features(model.backbone, tap, torch.zeros(1, 3, size, size))[0].shape
        seconds = fit_seconds(info.config.backbone, n, (channels, h, w))
        status = ShiftStatus(False, True, "fittable", seconds=round(seconds, 1))
        if key is not None:
            with self._lock:
                self._fittable[key] = status
        return status

    def default_view(self, path: str | Path, *, fit: bool = True) -> str:
        """The view a checkpoint's images open on: ``shift`` when its localiser is ready (or, with
        ``fit``, can be fitted here), else ``gap`` when its domains load here, else ``attention``."""
        status = self.status(path)
        if status.ready or (fit and status.fittable):
            return "shift"
        if status.fittable:
            return "gap"
        try:
            _domains(Path(path), read_info(Path(path)), self.data_root)
        except ShiftError:
            return "attention"
        return "gap"


def store_for(data_root: str | None = None, max_images: int = MAX_IMAGES) -> LocaliserStore:
    """The process's :class:`LocaliserStore` for ``data_root`` (None: the default) and ``max_images``."""
    key = (None if data_root is None else os.fspath(data_root), max_images)
    with _LOCK:
        return _STORES.setdefault(key, LocaliserStore(*key))


def checkpoint_localiser(
    path: str | Path, data_root: str | None = None, *, max_images: int = MAX_IMAGES
) -> CheckpointLocaliser:
    """:meth:`LocaliserStore.get`: stored, cached or fitted now (then cached); ShiftError says why not."""
    return store_for(data_root, max_images).get(path)


def shift_status(path: str | Path, data_root: str | None = None, *, max_images: int = MAX_IMAGES) -> ShiftStatus:
    """:meth:`LocaliserStore.status`: ready, or fittable here in about how many seconds, or why not."""
    return store_for(data_root, max_images).status(path)


def checkpoint_default_view(path: str | Path, data_root: str | None = None) -> str:
    """:meth:`LocaliserStore.default_view`: ``shift`` when its localiser is ready or can be fitted
    here, else ``gap`` when its domains load here, else ``attention``."""
    return store_for(data_root).default_view(path)


def fit_in_background(path: str | Path, data_root: str | None = None) -> Future:
    """:meth:`LocaliserStore.fit_in_background`: a ``Future`` of :func:`checkpoint_localiser`."""
    return store_for(data_root).fit_in_background(path)
