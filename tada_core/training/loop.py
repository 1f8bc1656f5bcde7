"""The training loop: a function with callbacks that the CLI, the tests and the app all drive.

    result = train(config, callbacks=[PrintCallback()], should_stop=event.is_set)

One step (:func:`~tada_core.training.step.train_step`) draws B source and B target images, runs one
forward over both (each domain through the network on its own, so that BatchNorm uses per-domain
batch statistics; ``train.joint_forward`` shares them), builds the variant's losses with λ_p from the
progress p, and takes an SGD step with lr_p = lr·(1 + α·p)^(−β) (METHOD.md). Every
``eval_every`` steps and at the end the model is evaluated on the held-out source and on the target,
at most ``train.eval_max`` images of each (its accuracy is reported only when the target has labels), its target accuracy is estimated
without labels (:mod:`tada_core.training.calibration`: calibrated on the held-out source and its
augmentation ladder), every label-free criterion is scored, a line goes to ``metrics.jsonl``, and
``last.safetensors`` (with what ``--resume`` and ``tada estimate`` need) and, when the chosen score
(:mod:`tada_core.training.selection`, ``train.select``, by default the estimate) did not get
worse, ``best.safetensors`` are written atomically. Target labels never reach the loss, the batches' order or the choice of ``best``. Launched by ``torchrun``
the same loop runs DistributedDataParallel (see :mod:`tada_core.training.distributed`); only rank 0 writes.
With ``train.frozen_backbone`` every image is first encoded once by the (pretrained) backbone and
the steps run on the cached maps (:mod:`tada_core.training.feature_cache`). Callbacks see each
phase's progress and time left (:meth:`Callback.on_phase`, :mod:`tada_core.training.progress`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Subset

from tada_core.checkpoint import CheckpointInfo, add_to_checkpoint, read_checkpoint, read_info, save_checkpoint
from tada_core.config import TADAConfig
from tada_core.errors import ConfigError, TadaError
from tada_core.model import TADAModel, build_model
from tada_core.model.inputs import norm_for
from tada_core.model.localiser import LocaliserError, tap_for
from tada_core.training import distributed as D
from tada_core.training import resume as R
from tada_core.training.baselines import baseline_estimates
from tada_core.training.calibration import (
    STATISTICS_ITEMS,
    CalibrationSets,
    calibrate,
    calibration_holdout,
    calibration_images,
    calibration_sets,
    estimate_on,
    ladder_recipe,
    rung_subset,
    stratified_cap,
)
from tada_core.training.evaluate import Outputs, collect_outputs, subset_for
from tada_core.training.feature_cache import (
    CachedMaps,
    FrozenBackboneHead,
    cache_run_data,
    ladder_images,
    training_features,
    with_pseudo_labels,
)
from tada_core.training.localiser_fit import FitSettings, fit_for_backbone
from tada_core.training.progress import PhaseClock, PhaseProgress
from tada_core.training.run_data import MIN_TARGET_IMAGES, RunData, holdout_split, load_run_data
from tada_core.training.sampling import BatchStream
from tada_core.training.selection import ESTIMATE, all_scores, check_criterion
from tada_core.training.step import amp_settings, build_optimizer, lr_factor, train_step

LOSS_KEYS = ("total", "classification", "global_adversarial", "local_adversarial", "entropy", "pseudo_label")
LAST, BEST, METRICS = "last.safetensors", "best.safetensors", "metrics.jsonl"
ENCODE_BATCH = 32  # images a batch of the frozen-backbone encode (backbone_maps); more at once were not encoded
CACHE = "cache"  # large frozen caches on disk (training/map_store.py)


class TrainingError(TadaError):
    """Training cannot go on (NaN loss, out of memory, a run folder in the way)."""


@dataclass
class Run:
    """What callbacks can see of a running job."""

    config: TADAConfig
    model: TADAModel
    data: RunData
    out_dir: Path
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_score: float = -math.inf  # the label-free selection score of best.safetensors
    best_step: int = 0
    calibration: dict | None = None  # of the accuracy estimate, at the last evaluation (checkpoint extra)
    estimate: dict | None = None  # the estimate on the training target at the last evaluation


@dataclass
class TrainResult:
    out_dir: Path
    last: Path
    best: Path | None
    steps: int
    stopped: bool
    final: dict
    best_step: int
    best_score: float


class Callback:
    """Hooks called by :func:`train` (on rank 0 only in a distributed run); override what you need."""

    def on_cache(self, done: int, total: int) -> None:
        """Frozen-backbone mode: ``done`` of ``total`` images encoded (before :meth:`on_start`)."""

    def on_start(self, run: Run) -> None: ...

    def on_step(self, run: Run, logs: dict[str, float]) -> None: ...

    def on_eval(self, run: Run, record: dict) -> None: ...

    def on_localiser(self, done: int, total: int) -> None:
        """After the last step: ``done`` of ``total`` units of the shift localiser's fit (images
        encoded, then epochs of each seed) — photo models take a minute or two here."""

    def on_phase(self, progress: PhaseProgress) -> None:
        """Where a phase stands, with its time left (:mod:`tada_core.training.progress`): ``encode``
        (frozen backbone, before :meth:`on_start`), ``steps``, ``calibrate`` (each evaluation, before
        its :meth:`on_eval`) and ``localiser``; called as each advances and once more when it ends
        (``progress.finished``)."""

    def on_end(self, run: Run, result: TrainResult) -> None: ...


class _Phases:
    """A run's :class:`~tada_core.training.progress.PhaseClock`, reporting to the callbacks."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks, self.clock = callbacks, PhaseClock()

    def _send(self, progress: PhaseProgress) -> None:
        for callback in self.callbacks:
            callback.on_phase(progress)

    def start(self, phase: str, total: int, done: int = 0, unit: str | None = None, fresh: bool = False) -> None:
        self._send(self.clock.start(phase, total, done, unit, fresh))

    def update(self, phase: str, done: int, timed: bool = True) -> None:
        self._send(self.clock.update(phase, done, timed=timed))

    def end(self, phase: str, done: int | None = None) -> None:
        self._send(self.clock.end(phase, done))


def _check_run_folder(out_dir: Path, resume: bool) -> bool:
    """Whether to resume: a run stopped before its first checkpoint (during the encode) starts
    again, reusing the complete parts of its ``cache/``."""
    if (out_dir / LAST).exists() and not resume:
        raise TrainingError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not (out_dir / LAST).exists():
        if (out_dir / CACHE).is_dir():
            return False
        raise TrainingError(f"nothing to resume in {out_dir} (no last.safetensors); start it without --resume")
    return resume


def _cache_features(
    core: TADAModel, data: RunData, device: str, callbacks: Sequence[Callback], store_dir: Path | None = None
) -> RunData:
    """Frozen-backbone mode: freeze G_f and replace every image by its backbone map, encoded once
    (``data`` that already holds cached maps, e.g. from :func:`cache_run_data`, is used as it is).
    Maps too large for memory go to ``store_dir`` (the run folder's ``cache/``), where ``--resume``
    finds them again."""
    core.backbone.requires_grad_(False)
    _, upper = core.cache_parts()
    if upper is not None:  # train.tune_blocks: the last stages train on the cached maps of those below
        upper.requires_grad_(True)
    if isinstance(data.source.dataset, CachedMaps):
        return with_pseudo_labels(core, data)
    total, done = sum(len(d) for d in (data.source_eval, data.target_eval)) + ladder_images(core, data), 0
    phases = _Phases(callbacks)
    phases.start("encode", total)

    def progress(n: int) -> None:
        nonlocal done
        done += n
        for callback in callbacks:
            callback.on_cache(done, total)
        phases.update("encode", done, timed=n <= ENCODE_BATCH)  # a whole domain at once: found on disk

    cached = cache_run_data(core, data, device=device, on_batch=progress, store_dir=store_dir)
    phases.end("encode")
    return with_pseudo_labels(core, cached)


def _wrap(model: torch.nn.Module, config: TADAConfig, ctx: D.DistContext, device: str) -> torch.nn.Module:
    """channels_last on CUDA ResNets, SyncBatchNorm and DDP when distributed, torch.compile if asked."""
    tc = config.train
    wrapped: torch.nn.Module = model
    if device.startswith("cuda") and config.backbone.startswith("resnet"):
        wrapped = wrapped.to(memory_format=torch.channels_last)
    if ctx.enabled:
        if tc.sync_bn:
            wrapped = torch.nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
        device_ids = [ctx.local_rank] if device.startswith("cuda") else None
        wrapped = torch.nn.parallel.DistributedDataParallel(wrapped, device_ids=device_ids)
    if tc.compile:
        wrapped = torch.compile(wrapped)
    return wrapped


@dataclass
class _Session:
    """Everything one run holds besides :class:`Run`: devices, the optimiser, the batch streams."""

    ctx: D.DistContext
    device: str
    forward_model: torch.nn.Module  # the model on images, or on cached maps in frozen-backbone mode
    model: torch.nn.Module  # forward_model, wrapped for DDP / compile
    optimizer: torch.optim.Optimizer
    streams: list[BatchStream]
    reference: dict[str, torch.Tensor]  # stored in checkpoints for the app's "unfamiliar image" notice
    calibration_sets: CalibrationSets | None  # what the accuracy estimate is calibrated on (None: no held-out)
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    callbacks: Sequence[Callback]
    images: RunData  # the run's data as images (before the frozen-backbone cache), for the shift localiser
    phases: _Phases  # progress and time left of the steps, evaluations and localiser fit


def _calibration_sets(config: TADAConfig, data: RunData) -> CalibrationSets | None:
    """The held-out source, at most ``train.eval_max`` images of it (class-stratified), and its ladder
    (already encoded in frozen-backbone mode)."""
    tc = config.train
    labels = data.source_eval.labels
    _, all_held_out = holdout_split(labels, tc.source_holdout)
    if not all_held_out:
        return None
    held_out = calibration_holdout(labels, tc.source_holdout, tc.eval_max)
    if data.ladder:  # encoded with the other maps; cut to the capped part when made for all of it
        recipe = data.ladder.recipe
        rungs = rung_subset(data.ladder.rungs, all_held_out, held_out, recipe.copies)
    else:
        recipe, rungs = ladder_recipe(config, len(held_out)), None
    return calibration_sets(
        data.source_eval.dataset,
        labels,
        tc.source_holdout,
        recipe,
        norm_for(config),
        rungs,
        config.num_classes,
        max_items=tc.eval_max,
    )


def _setup(
    config: TADAConfig, data: RunData | None, resume: bool, callbacks: Sequence[Callback]
) -> tuple[Run, _Session]:
    """Check the run folder and config, load the data, build the model, optimiser and streams, and
    restore a resumed run's state. The order matters for exact resumption: the loaders draw from the
    global RNG when they are created, so they are made before its saved state is restored."""
    tc = config.train
    out_dir = Path(tc.out)
    resume = _check_run_folder(out_dir, resume)
    if tc.iters < 1 or tc.batch_size < 1 or tc.eval_every < 1:
        raise ConfigError("iters, batch_size and eval_every must be positive integers")
    if tc.eval_max is not None and tc.eval_max < MIN_TARGET_IMAGES:
        raise ConfigError(
            f"eval_max must be at least {MIN_TARGET_IMAGES} images a domain (unset: all), got {tc.eval_max}"
        )
    check_criterion(tc.select)
    ctx, device = D.setup(tc.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    callbacks = callbacks if ctx.is_main else ()

    data = data or load_run_data(config)
    config = config.replace(num_classes=len(data.class_names))
    info, tensors, history = None, {}, []
    if resume:  # checked before the (long) frozen-backbone encode
        info, tensors = read_checkpoint(out_dir / LAST)
        R.check_resume_config(info.config, config)
        history = R.read_history(out_dir / METRICS, int(info.extra["step"]), rewrite=ctx.is_main)
    torch.manual_seed(tc.seed)
    core = build_model(config).to(device)
    images = data
    if tc.frozen_backbone and not (info is not None and R.finished(info, history, tc.iters)):
        store = out_dir / CACHE if ctx.world == 1 else None  # (ranks would write the same files)
        data = _cache_features(core, data, device, callbacks, store)  # a finished run resumed needs none
    forward_model = FrozenBackboneHead(core) if tc.frozen_backbone else core  # maps in, or images in
    optimizer = build_optimizer(core, config)
    run = Run(config=config, model=core, data=data, out_dir=out_dir)
    if info is not None:
        run.step = int(info.extra["step"])
        run.best_score = float(info.extra.get("best_score", -math.inf))
        run.best_step = int(info.extra.get("best_step", 0))
        run.calibration, run.estimate = info.extra.get("calibration"), info.extra.get("estimate")
        run.history = history
    pin = device.startswith("cuda")
    trained_on, _ = holdout_split(data.source.labels, tc.source_holdout)
    sets = _calibration_sets(config, data)
    if sets is None and tc.select == ESTIMATE:
        raise ConfigError(
            "train.select=estimate calibrates the accuracy estimate on the held-out source, but "
            "train.source_holdout is 0; hold some out (--source-holdout 0.1) or choose another --select"
        )
    streams = [
        BatchStream(dataset, tc.batch_size, tc.seed + k, run.step, tc.workers, ctx.rank, ctx.world, pin)
        for k, dataset in enumerate((Subset(data.source.dataset, trained_on), data.target.dataset))
    ]
    if resume:
        core.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        R.restore_optimizer(optimizer, tensors)
        torch.set_rng_state(tensors["rng.torch"])
    amp_dtype, scaler = amp_settings(device, tc.amp)
    session = _Session(
        ctx=ctx,
        device=device,
        forward_model=forward_model,
        model=_wrap(forward_model, config, ctx, device),
        optimizer=optimizer,
        streams=streams,
        reference=training_features(data) if isinstance(data.source_eval.dataset, CachedMaps) else {},
        calibration_sets=sets,
        amp_dtype=amp_dtype,
        scaler=scaler,
        callbacks=callbacks,
        images=images,
        phases=_Phases(callbacks),
    )
    return run, session


def _step(run: Run, session: _Session) -> dict[str, float]:
    """One optimisation step on the next source and target batches; the step's logs."""
    tc = run.config.train
    progress = run.step / tc.iters
    lr = tc.optim.lr * lr_factor(progress, tc.optim.lr_alpha, tc.optim.lr_beta)
    pin = session.device.startswith("cuda")
    source_batch = [t.to(session.device, non_blocking=pin) for t in next(session.streams[0])]
    target_batch = [t.to(session.device, non_blocking=pin) for t in next(session.streams[1])]
    logs = train_step(
        session.model,
        session.optimizer,
        source_batch,
        target_batch,
        progress,
        lr,
        amp_dtype=session.amp_dtype,
        scaler=session.scaler,
    )
    if not math.isfinite(logs["total"]):
        kept = run.out_dir / LAST if (run.out_dir / LAST).exists() else "not written yet"
        raise TrainingError(
            f"the loss became {logs['total']} at step {run.step + 1}; training stopped. "
            f"Try a smaller --lr. The last good checkpoint is {kept}"
        )
    return logs


def _estimate(
    run: Run, session: _Session, source: Outputs, target: Outputs, target_items: list[int], on_batch=None
) -> dict:
    """Calibrate on the held-out source and estimate the target accuracy without its labels
    (:mod:`tada_core.training.calibration`), with the usual baselines beside it
    (:mod:`tada_core.training.baselines`); the record's fields ({} without a held-out source)."""
    if session.calibration_sets is None:
        return {}
    started = time.time()
    kwargs = {"device": session.device, "ctx": session.ctx, "on_batch": on_batch}
    calibration = calibrate(session.forward_model, session.calibration_sets, **kwargs)
    dataset = run.data.target_eval.dataset
    estimate = estimate_on(
        session.forward_model,
        dataset,
        calibration,
        target_items,
        running=target,
        class_names=run.data.class_names,
        **kwargs,
    )
    run.calibration, run.estimate = calibration.to_dict(), estimate.to_dict()
    return {
        "estimated_target_accuracy": estimate.estimated_accuracy,
        "estimate_interval": estimate.interval,
        "estimate_uncertain": estimate.uncertain,
        "temperature": round(calibration.temperature, 4),
        "estimate_seconds": round(time.time() - started, 2),
        "baselines": {
            name: round(value, 2)
            for name, value in baseline_estimates(source, target, torch.tensor(session.calibration_sets.prior)).items()
        },
    }


def _evaluate_and_save(run: Run, session: _Session, running: dict[str, list[float]], started: float) -> dict:
    """Evaluate on the held-out source and the target, estimate the target accuracy, score the
    checkpoint by every label-free criterion, append the record to ``metrics.jsonl``, write
    ``last`` (with the resume state and the estimate's calibration) and, when the chosen score did
    not get worse, ``best``; notify callbacks."""
    data, ctx, tc = run.data, session.ctx, run.config.train
    labels = data.source_eval.labels  # the held-out source (all of it without one), at most eval_max
    source_items = calibration_holdout(labels, tc.source_holdout, tc.eval_max) or stratified_cap(
        range(len(labels)), labels, tc.eval_max
    )
    target_items = subset_for(data.target_eval.dataset, tc.eval_max)
    sets, done = session.calibration_sets, 0
    extra = calibration_images(sets) + STATISTICS_ITEMS + len(target_items) if sets is not None else 0
    session.phases.start("calibrate", len(source_items) + len(target_items) + extra)

    def progress(n: int) -> None:
        nonlocal done
        done += n
        session.phases.update("calibrate", done)

    kwargs = {"device": session.device, "ctx": ctx, "on_batch": progress if session.callbacks else None}
    source = collect_outputs(session.forward_model, data.source_eval.dataset, source_items, **kwargs)
    target = collect_outputs(session.forward_model, data.target_eval.dataset, target_items, **kwargs)
    estimated = _estimate(run, session, source, target, target_items, on_batch=kwargs["on_batch"])
    scores = all_scores(source, target, estimated.get("estimated_target_accuracy"))
    score = scores.get(tc.select, -math.inf)  # absent when it cannot be computed (e.g. DEV on 1 image)
    sums = D.all_reduce_sum(torch.tensor([[sum(running.get(k, [])), len(running.get(k, []))] for k in LOSS_KEYS]), ctx)
    record = {"step": run.step, "source_accuracy": source.accuracy()}
    if target.labelled:  # reported, never used to choose
        record["target_accuracy"] = target.accuracy()
    record["evaluated"] = {"source": len(source_items), "target": len(target_items)}  # images (≤ eval_max)
    improved = score >= run.best_score
    if improved:
        run.best_score, run.best_step = score, run.step
    record |= {
        **estimated,
        **{k: round(s / n, 5) for k, (s, n) in zip(LOSS_KEYS, sums.tolist(), strict=True) if n},
        "select": tc.select,
        "select_score": round(score, 6) if math.isfinite(score) else None,
        "scores": {name: round(value, 6) for name, value in scores.items()},
        "best_step": run.best_step,
        "seconds": round(time.time() - started, 2),
    }
    run.history.append(record)
    if ctx.is_main:
        with open(run.out_dir / METRICS, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        info = _save_last(run, session, record)
        if improved:
            save_checkpoint(run.out_dir / BEST, run.model, info, session.reference)
    D.barrier(ctx)
    session.phases.end("calibrate")
    for callback in session.callbacks:
        callback.on_eval(run, record)
    return record


def _save_last(run: Run, session: _Session, record: dict) -> CheckpointInfo:
    """Write ``last.safetensors`` with everything ``--resume`` needs (rank 0); its metadata."""
    tc = run.config.train
    extra = {
        "step": run.step,
        "best_score": run.best_score,
        "best_step": run.best_step,
        "iters": tc.iters,
        "world_size": session.ctx.world,
    }
    if run.calibration is not None:  # `tada estimate` then needs no source images
        extra |= {"calibration": run.calibration, "estimate": run.estimate}
    if run.data.pseudo is not None:  # how much of the target the pseudo-label term saw
        extra["pseudo_labels"] = run.data.pseudo
    info = CheckpointInfo(run.config, run.data.class_names, tc.source, tc.target, record, extra)
    state = {**R.optimizer_tensors(session.optimizer), "rng.torch": torch.get_rng_state()}
    _, upper = run.model.cache_parts()
    if upper is not None:  # the familiarity features through the upper stages as trained so far
        session.reference = training_features(run.data, upper=upper)
    save_checkpoint(run.out_dir / LAST, run.model, info, {**state, **session.reference})
    return info


def _attach_localiser(run: Run, session: _Session) -> None:
    """Fit the shift localiser (:mod:`tada_core.training.localiser_fit`) with the final backbone and
    add it to ``last`` and to ``best`` when that has the same backbone (frozen, or chosen at the last
    step); rank 0 only. Skipped when ``train.localiser`` is off, when the run was given cached maps
    only, for a backbone without a tap (the view then fits it on demand), or when those checkpoints
    already hold it (a finished run resumed)."""
    tc, data = run.config.train, session.images
    if not tc.localiser or not session.ctx.is_main or isinstance(data.source_eval.dataset, CachedMaps):
        return
    try:
        tap = tap_for(run.config.backbone)
    except LocaliserError:
        return
    targets = [run.out_dir / LAST]
    if (run.out_dir / BEST).exists() and (tc.frozen_backbone or run.best_step == run.step):
        targets.append(run.out_dir / BEST)
    targets = [path for path in targets if "localiser" not in read_info(path).extra]
    if not targets:
        return
    started, settings = time.time(), FitSettings()
    images = sum(min(len(d), settings.max_images) for d in (data.source_eval, data.target_eval))
    epochs = len(settings.seeds) * settings.epochs
    total, done, fitted = images + epochs, 0, 0
    session.phases.start("localiser", images, unit="images")  # then its epochs, at their own rate

    def progress(n: int) -> None:
        nonlocal done
        done += n
        for callback in session.callbacks:
            callback.on_localiser(done, total)

    def encoded(n: int) -> None:
        progress(n)
        session.phases.update("localiser", min(done, images))

    def epoch(*_) -> None:
        nonlocal fitted
        if not fitted:
            session.phases.end("localiser")
            session.phases.start("localiser", epochs, unit="epochs", fresh=True)
        fitted += 1
        progress(1)
        session.phases.update("localiser", fitted)

    localiser = fit_for_backbone(
        run.model.backbone,
        run.config.backbone,
        data.source_eval.dataset,
        data.target_eval.dataset,
        settings=settings,
        device=session.device,
        on_batch=encoded,
        on_epoch=epoch,
    )
    dtype = torch.float16 if run.config.pretrained else torch.float32  # photo models: half the bytes
    info = {"tap": tap.to_dict(), "fit": settings.to_dict(), "seconds": round(time.time() - started, 1)}
    for path in targets:
        add_to_checkpoint(path, localiser.to_tensors(dtype), {"localiser": info})
    session.phases.end("localiser")


def train(
    config: TADAConfig,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    data: RunData | None = None,
) -> TrainResult:
    """Train ``config`` (its ``train`` section says which domains, budget and output folder).

    Args:
        config: the run's configuration; ``num_classes`` is set from the data.
        resume: continue from ``<out>/last.safetensors`` (same config), exactly where it stopped.
        callbacks: :class:`Callback` objects notified of start, steps, evaluations and the end.
        should_stop: polled every step; when it returns True the run saves ``last`` and returns.
        data: already loaded domains (otherwise loaded from ``config.train.source/target``); in
            frozen-backbone mode they may already be cached maps (:func:`cache_run_data`).

    Raises:
        TadaError: bad domains or classes, an existing run without ``resume``, NaN loss, OOM.
    """
    run, session = _setup(config, data, resume, callbacks)
    tc = run.config.train
    if session.ctx.is_main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        run.config.to_yaml(run.out_dir / "config.yaml")
    for callback in session.callbacks:
        callback.on_start(run)

    started = saved = time.time()
    running: dict[str, list[float]] = {}  # losses since the last evaluation
    stopped = False
    record = run.history[-1] if run.history else {}
    session.phases.start("steps", tc.iters, done=run.step)
    try:
        while run.step < tc.iters:
            if should_stop is not None and D.broadcast_flag(should_stop(), session.ctx):
                stopped = True
                break
            logs = _step(run, session)
            run.step += 1
            for key in LOSS_KEYS:
                if key in logs:
                    running.setdefault(key, []).append(logs[key])
            for callback in session.callbacks:
                callback.on_step(run, logs)
            session.phases.update("steps", run.step)
            if run.step % tc.eval_every == 0 or run.step == tc.iters:
                record = _evaluate_and_save(run, session, running, started)
                running, saved = {}, time.time()
            elif time.time() - saved > tc.save_minutes * 60 and session.ctx.is_main:
                _save_last(run, session, record)  # a long stretch between evaluations: keep the work safe
                saved = time.time()
    except torch.OutOfMemoryError:
        kept = run.out_dir / LAST if (run.out_dir / LAST).exists() else "not written yet"
        raise TrainingError(
            f"out of memory at step {run.step + 1}; use a smaller --batch-size. The last good checkpoint is {kept}"
        ) from None
    session.phases.end("steps", run.step)
    if record.get("step") != run.step:  # stopped between evaluations
        record = _evaluate_and_save(run, session, running, started)
    if not stopped:
        _attach_localiser(run, session)
    best = run.out_dir / BEST
    result = TrainResult(
        out_dir=run.out_dir,
        last=run.out_dir / LAST,
        best=best if best.exists() else None,
        steps=run.step,
        stopped=stopped,
        final=record,
        best_step=run.best_step,
        best_score=run.best_score,
    )
    for callback in session.callbacks:
        callback.on_end(run, result)
    return result
