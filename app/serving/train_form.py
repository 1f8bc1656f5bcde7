"""The Train tab's form → a validated :class:`TADAConfig` and a started job.

Every value a browser or an API client sends is checked here and refused with a
:class:`~tada_core.errors.ConfigError` / ``DataError`` that says what is allowed; domains go
through the :class:`~app.serving.domains.DomainCatalog` (built-ins, folders under the data root, zips).
"""

from __future__ import annotations

import time
from pathlib import Path

from app.serving.context import AppContext
from app.serving.domains import extract_zip
from app.serving.uploads import file_paths
from tada_core.config import VARIANTS, OptimConfig, TADAConfig, TrainConfig
from tada_core.errors import ConfigError
from tada_core.model.backbones import list_backbones
from tada_core.training.photo_defaults import PHOTO_DEFAULTS, wants_photo_defaults
from tada_core.training.run_data import MIN_TARGET_IMAGES, load_run_data

DEVICES = ("auto", "cpu", "cuda")


def _positive_int(value, name: str, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not 1 <= number <= high or number != float(value):
        raise ConfigError(f"{name} must be a whole number between 1 and {high}, got {value}")
    return number


def _number(value, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {number:g}")
    return number


def run_folder(runs_dir: Path, variant: str) -> Path:
    """A new ``<runs_dir>/<timestamp>-<variant>`` folder name (not created)."""
    base = runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{variant}"
    path, n = base, 2
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def domain_spec(ctx: AppContext, owner: str, choice: str | None, upload) -> tuple[str, str]:
    """An uploaded zip (kept in ``owner``'s folder) wins over the dropdown; returns what
    ``load_domain`` takes and the name to show the visitor."""
    paths = file_paths(upload)
    if paths:
        ctx.storage.check_room(owner, Path(paths[0]).stat().st_size)
        name, _ = extract_zip(paths[0], ctx.storage.data(owner))
        return ctx.domains.resolve(name, owner), name
    return ctx.domains.resolve(choice, owner), (choice or "").strip()


def start_job(
    ctx: AppContext,
    owner: str,
    source: str,
    target: str,
    variant: str,
    backbone: str,
    iters: float,
    batch_size: float,
    lr: float,
    trade_off: float,
    gamma: float,
    eval_every: float = 0,
    eval_max: float = 1000,
    seed: float = 0,
    device: str = "auto",
    pretrained: bool = False,
    source_zip=None,
    target_zip=None,
    fine_tune: bool = False,
    target_unlabelled: bool = False,
) -> dict:
    """Validate the form, load both domains, start (or queue) ``owner``'s job; its status JSON.

    Raises:
        TadaError: a bad value, a domain that cannot be read, the visitor's storage full, the
            visitor's job already running, the server's queue full, a request over the budget.
    """
    ctx.jobs.check_can_start(owner)
    ctx.storage.check_room(owner)
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    if backbone not in list_backbones():
        raise ConfigError(f"unknown backbone '{backbone}'; choose one of {', '.join(list_backbones())}")
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not '{device}'")
    iters = _positive_int(iters, "iterations", 1_000_000)
    ctx.jobs.check_budget(iters)
    (source_path, source_name), (target_path, target_name) = (
        domain_spec(ctx, owner, source, source_zip),
        domain_spec(ctx, owner, target, target_zip),
    )
    every = _positive_int(eval_every, "evaluate every", iters) if eval_every else max(1, iters // 10)
    evaluated = _positive_int(eval_max, "evaluation images", 10_000_000) if eval_max else None
    if evaluated is not None and evaluated < MIN_TARGET_IMAGES:
        raise ConfigError(f"evaluation images must be at least {MIN_TARGET_IMAGES} a domain (0: all), got {evaluated}")
    frozen = wants_photo_defaults({"backbone": backbone, "pretrained": pretrained}) and not fine_tune
    config = TADAConfig(
        variant=variant,
        backbone=backbone,
        pretrained=bool(pretrained),
        pseudo_weight=PHOTO_DEFAULTS["pseudo_weight"] if frozen else 0.0,  # as `tada train`: only with the cache
        trade_off=_number(trade_off, "λ (trade-off)", 0.0, 100.0),
        gamma=_number(gamma, "γ (entropy weight)", 0.0, 100.0),
        train=TrainConfig(
            source=source_path,
            target=target_path,
            iters=iters,
            batch_size=_positive_int(batch_size, "batch size", 1024),
            seed=int(_number(seed, "seed", 0, 2**31 - 1)),
            eval_every=every,
            eval_max=evaluated,
            device=ctx.device if device == "auto" else device,
            out=str(run_folder(ctx.storage.runs(owner), variant)),
            frozen_backbone=frozen,
            target_unlabelled=bool(target_unlabelled),
            optim=OptimConfig(lr=_number(lr, "learning rate", 1e-7, 10.0)),
        ),
    )
    data = load_run_data(config)
    config = config.replace(num_classes=len(data.class_names))
    ctx.jobs.start(config, data, owner=owner, names=(source_name, target_name))
    return ctx.jobs.status(owner)
