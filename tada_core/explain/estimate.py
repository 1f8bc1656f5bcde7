"""How accurate is a checkpoint on a domain whose labels nobody has? An estimate, with its interval.

The method ("PM-own" with the class mix, :mod:`tada_core.training.estimator` has the math): the
checkpoint stores a temperature T (and one T_k per calibration set) fitted at training time on its
held-out source and an augmentation ladder of it, each evaluated with its own BatchNorm statistics,
plus the source's class prior. On the target: the deployed model predicts ŷ; the model with the
target's own BatchNorm statistics (the target re-balanced to the source's class mix by ŷ) gives
p = softmax(logits / T); EM on p estimates the target's class mix π̂ (label shift,
:mod:`tada_core.training.label_shift`); p re-weighted to π̂ gives q; the estimate is the mean of
q(ŷ). The interval is [min, max] over {T, T_k} ± 1 point. ``uncertain`` is true, with the reason,
when the mix is far from the source's, the interval is wider than 10 points, or the target is
beyond the calibration (then the source's mix is kept). A labelled domain with fewer classes than
the checkpoint is fine: its absent classes are named (:mod:`tada_core.explain.partial`).

    >>> result = estimate_accuracy(model, info, "photos_from_camera_b/")   # a folder, zip, list, built-in
    >>> result.estimated_accuracy, result.interval, result.uncertain, result.class_mix
    (91.4, [88.2, 95.0], False, {'cat': 0.52, 'coffee': 0.31, 'motorcycle': 0.0, 'person': 0.17})
    >>> stored_estimate(info)        # what training recorded on its own target (instant)
    >>> estimate_line(info)          # one line for a page header

A checkpoint written before the estimate existed stores no calibration: it is computed here from
its source when that domain can be loaded on this machine (the held-out split recomputed from the
config, or, for a model that trained on all of its source, a 10 % sample of it — optimistic), and
:class:`EstimateError` says what to do otherwise.
"""

from __future__ import annotations

import warnings

import torch
from torch.utils.data import Subset

from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TrainConfig
from tada_core.data import Domain, load_domain
from tada_core.errors import DataError, DataWarning, TadaError
from tada_core.explain.partial import match_classes
from tada_core.model import TADAModel
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.calibration import calibrate, calibration_holdout, calibration_sets, estimate_on, ladder_recipe
from tada_core.training.estimator import ASSUMPTION, METHOD, Calibration, Estimate
from tada_core.training.evaluate import collect_outputs
from tada_core.training.feature_cache import CachedMaps, FrozenBackboneHead, backbone_maps, encode_calibration_sets
from tada_core.training.run_data import MIN_TARGET_IMAGES

MAX_IMAGES = 2000  # a larger domain is estimated on a seeded sample of this many images

__all__ = [
    "ASSUMPTION",
    "METHOD",
    "Estimate",
    "EstimateError",
    "calibration_of",
    "estimate_accuracy",
    "estimate_line",
    "mix_text",
    "stored_estimate",
    "uncertain_text",
]


class EstimateError(TadaError):
    """The accuracy cannot be estimated (no stored calibration and no source to compute it from)."""


def stored_estimate(info: CheckpointInfo) -> Estimate | None:
    """The estimate recorded at training time on the checkpoint's training target (None when the
    checkpoint has none), with the accuracy measured there when that target had labels."""
    data = info.extra.get("estimate")
    if not isinstance(data, dict) or "estimated_accuracy" not in data:
        return None
    result = Estimate.from_dict(data)
    measured = info.metrics.get("target_accuracy")
    result.measured_accuracy = float(measured) if isinstance(measured, (int, float)) else None
    step = info.extra.get("step")
    if data.get("attached"):  # computed after training (scripts/attach_estimate.py), with its own notes
        result.notes = [f"computed after training on the training target '{info.target}'", *result.notes]
    else:
        result.notes = [f"recorded at training time (step {step}) on the training target '{info.target}'"]
    return result


def _frozen(info: CheckpointInfo) -> bool:
    return bool(info.config.train.frozen_backbone)


def _runner(model: TADAModel, info: CheckpointInfo) -> torch.nn.Module:
    """What runs on a calibration or target set: the model on images, or its head on cached maps."""
    return FrozenBackboneHead(model) if _frozen(info) else model


def calibration_of(
    model: TADAModel,
    info: CheckpointInfo,
    *,
    source: str | None = None,
    data_root: str | None = None,
    device: str = "cpu",
) -> tuple[Calibration, list[str]]:
    """The checkpoint's stored calibration, or one computed now from its source; and notes.

    Args:
        source: the source domain to calibrate on when none is stored (default: the one the
            checkpoint was trained on, ``info.source``).

    Raises:
        EstimateError: nothing stored and the source cannot be loaded here.
    """
    if isinstance(info.extra.get("calibration"), dict):
        return Calibration.from_dict(info.extra["calibration"]), []
    spec = source or info.source
    config = info.config
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            domain = load_domain(
                spec,
                image_size=image_size_for(config),
                norm=norm_for(config),
                train=False,
                labels="require",
                data_root=data_root,
            )
    except DataError as err:
        raise EstimateError(
            f"this checkpoint stores no calibration for the accuracy estimate (it was written before TADA Studio "
            f"estimated accuracy), and its source '{spec}' cannot be loaded here ({err}). Pass the source images "
            "(tada estimate --source DIR) or retrain the model with this version (tada train), which stores it"
        ) from None
    if domain.class_names != info.class_names:
        raise EstimateError(
            f"the source '{spec}' has other classes than the checkpoint ({domain.class_names[:10]} vs "
            f"{info.class_names[:10]}); pass the domain the checkpoint was trained on with --source"
        )
    fraction = config.train.source_holdout
    notes = [f"this checkpoint stores no calibration (older file): computed now from its source '{spec}'"]
    if not fraction:
        fraction = TrainConfig.source_holdout
        notes.append(
            f"the model trained on all of its source, so it was calibrated on {fraction:.0%} of images it has seen: "
            "the estimate may be optimistic"
        )
    labels = domain.labels
    held_out = calibration_holdout(labels, fraction, config.train.eval_max)  # at most eval_max, as in training
    sets = calibration_sets(
        domain.dataset,
        labels,
        fraction,
        ladder_recipe(config, len(held_out)),
        norm_for(config),
        None,
        len(info.class_names),
        max_items=config.train.eval_max,
    )
    if sets is None:
        raise EstimateError(f"the source '{spec}' is too small to hold any image out for the calibration")
    if _frozen(info):
        sets = encode_calibration_sets(model, sets, device=device)
    return calibrate(_runner(model, info), sets, device=device), notes


def _target(spec: str | Domain, info: CheckpointInfo, labels: str, data_root: str | None) -> tuple[Domain, list[str]]:
    """The target, its labels (if any) indexing the checkpoint's classes, and the classes it lacks."""
    if isinstance(spec, Domain):
        domain = spec
    else:
        config = info.config
        domain = load_domain(
            spec,
            image_size=image_size_for(config),
            norm=norm_for(config),
            train=False,
            labels=labels,
            data_root=data_root,
        )
    if len(domain) < MIN_TARGET_IMAGES:
        raise DataError(
            f"'{domain.name}' has {len(domain)} readable image(s); an accuracy estimate needs at least "
            f"{MIN_TARGET_IMAGES} (a few hundred is better)"
        )
    return match_classes(domain, info.class_names)


def estimate_accuracy(
    model: TADAModel,
    info: CheckpointInfo,
    domain: str | Domain,
    *,
    labels: str = "auto",
    source: str | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    max_images: int | None = MAX_IMAGES,
) -> Estimate:
    """Estimate ``model``'s accuracy (%) on ``domain`` without reading its labels.

    A domain of more than ``max_images`` images (None: no cap) is estimated on a seeded random
    sample of that many (said in the notes): the estimate is a mean over images, and 2,000 of them
    pin it to about ±1 point while the time stays flat as the domain grows.

    Args:
        domain: a loaded :class:`~tada_core.data.Domain` (images normalised for this model) or a
            spec (built-in name, folder, zip, image list) loaded with the model's test transform.
        labels: ``auto`` (a labelled domain's accuracy is also measured and reported beside the
            estimate, never used by it) or ``ignore`` (read it as unlabelled).
        source: see :func:`calibration_of` (only for checkpoints without a stored calibration).

    Raises:
        DataError: unreadable domain, fewer than 10 images, a labelled domain with a class the
            checkpoint lacks (fewer classes are fine: the absent ones are named in the notes).
        EstimateError: no stored calibration and no source to compute it from.
    """
    target, absent = _target(domain, info, labels, data_root)
    calibration, notes = calibration_of(model, info, source=source, data_root=data_root, device=device)
    runner, dataset = _runner(model, info), target.dataset
    if max_images is not None and len(dataset) > max_images:
        notes.append(f"estimated on a random sample of {max_images:,} of the domain's {len(dataset):,} images")
        picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:max_images]
        dataset = Subset(dataset, sorted(picks.tolist()))
    if _frozen(info):
        dataset = CachedMaps(*backbone_maps(model.cache_parts()[0], target.dataset, device=device))
    running = collect_outputs(runner, dataset, device=device)
    result = estimate_on(runner, dataset, calibration, running=running, class_names=info.class_names, device=device)
    result.measured_accuracy = running.accuracy() if target.labelled else None
    if target.labelled and absent:
        notes.append(
            f"the domain's labels have no image of {len(absent)} of the checkpoint's {len(info.class_names)} classes "
            f"({', '.join(absent[:10])}{' …' if len(absent) > 10 else ''}); the measured accuracy is over the others"
        )
    if target.skipped:
        notes.append(f"{len(target.skipped)} unreadable file(s) skipped")
    result.notes = notes
    return result


def estimate_line(source: CheckpointInfo | Estimate | None) -> str:
    """One line for a page header: the estimate (stored in ``source`` when it is a checkpoint's
    info), its interval, the method and the caveat; or why there is none."""
    result = stored_estimate(source) if isinstance(source, CheckpointInfo) else source
    if result is None:
        return (
            "No accuracy estimate stored in this checkpoint (trained before estimates existed); "
            "`tada estimate --checkpoint … --domain …` or the Model tab computes one."
        )
    low, high = result.interval
    measured = (
        f"; measured with labels: {result.measured_accuracy:.1f}%" if result.measured_accuracy is not None else ""
    )
    return (
        f"Estimated target accuracy {result.estimated_accuracy:.1f}% ({low:.1f}–{high:.1f}){uncertain_text(result)}, "
        f"without target labels ({mix_text(result)}){measured}"
    )


def mix_text(result: Estimate, top: int = 3) -> str:
    """The class mix in a few words: its largest shares and how far it is from the source's."""
    if not result.class_mix:
        return "PM-own; assumes the target's classes are mixed as in the source (an estimate stored before issue 34)"
    shares = sorted(result.class_mix.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{name}: {share:.0%}" for name, share in shares[:top])
    absent = sum(share < 0.005 for share in result.class_mix.values())
    rest = f", {absent} class(es) absent" if absent else ""
    used = "" if result.mix_used == "estimated" else "; the source's mix is used"
    return f"estimated class mix {shown}{' …' if len(shares) > top else ''}{rest}, {result.mix_shift:.2f} from the source's{used}"


def uncertain_text(result: Estimate) -> str:
    """`` — uncertain: …`` naming each assumption that broke, or ``""``."""
    if not result.uncertain:
        return ""
    kinds = [reason.split(":", 1)[0] for reason in result.uncertain_reasons] or ["wide interval"]
    return f" — uncertain ({', '.join(kinds)})"
