"""Calibrating the accuracy estimate on the held-out source, and estimating on a target.

Every set is evaluated with its *own* BatchNorm statistics, as training normalised each domain
(:mod:`tada_core.training.batchnorm`): the held-out source with those of source images the model
trained on (the held-out part alone is small), each ladder rung and the target with their own —
the target's drawn re-balanced to the source's class mix by predicted class, so that a target of
other class proportions is normalised as a source-mixed one would be (:func:`balanced_outputs`).

    sets = calibration_sets(source_dataset, source_labels, fraction=0.1, recipe=…, norm=…, max_items=…)
    calibration = calibrate(model, sets)                       # T, T_k, the source prior, the recipe
    result = estimate_on(model, target_dataset, calibration)   # an Estimate, in %

Calibration (:func:`calibrate`): the rungs R_0 = held-out source, R_s = its augmented copies at
severity s = 1, 2, … (:mod:`tada_core.training.ladder`), stopping after the first rung whose
accuracy is below ``recipe.stop_accuracy``; T fitted on all rungs pooled, T_k on each
(:mod:`tada_core.training.estimator` has the math). The model is any module returning a
``TADAOutput``: a :class:`~tada_core.model.TADAModel` on images or a
:class:`~tada_core.training.feature_cache.FrozenBackboneHead` on cached maps (then every set
holds cached maps). Nothing here draws from the global RNG.

Bounded by ``max_items`` (``train.eval_max``): the held-out part is a fixed, class-stratified
sample of at most that many images (:func:`calibration_holdout`; the held-out images left out are
still never trained on), so each rung holds at most max(``max_items``, 2 × 400) images, and the
BatchNorm statistics sample at most min(:data:`STATISTICS_ITEMS`, ``max_items``). A source whose
held-out part is no larger than ``max_items`` is calibrated exactly as without the cap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from tada_core.config import TADAConfig
from tada_core.data.transforms import Norm
from tada_core.model.inputs import image_size_for
from tada_core.training.batchnorm import blend_statistics, with_domain_statistics
from tada_core.training.distributed import DistContext
from tada_core.training.estimator import Calibration, Estimate, estimate, fit_temperature
from tada_core.training.evaluate import Outputs, collect_outputs
from tada_core.training.label_shift import balance_weights
from tada_core.training.ladder import AugmentedCopies, LadderRecipe, recipe_for
from tada_core.training.run_data import SPLIT_SEED, holdout_split

STATISTICS_ITEMS = 1000  # a seeded sample of at most this many images gives a set's BatchNorm statistics
FROZEN_COPIES = 4  # frozen backbone: each rung is encoded once at caching time, so fewer copies


def ladder_recipe(config: TADAConfig, held_out: int) -> LadderRecipe:
    """The ladder recipe of a run whose source holds out ``held_out`` images."""
    max_copies = FROZEN_COPIES if config.train.frozen_backbone else 8
    return recipe_for(image_size_for(config), held_out, max_copies=max_copies)


@dataclass
class CalibrationSets:
    """The labelled source sets a calibration runs on.

    Attributes:
        held_out: the held-out source (never trained on).
        statistics: source images the model trained on (≤ :data:`STATISTICS_ITEMS`), whose
            BatchNorm statistics stand for the source's when the held-out part is evaluated.
        rungs: severity → the augmented held-out source (images, or cached maps in frozen mode).
        recipe: how the rungs were made.
        prior: the source's class frequencies (sum 1).
        split: how the held-out part was drawn (stored in the checkpoint).
    """

    held_out: Dataset
    statistics: Dataset
    rungs: dict[int, Dataset]
    recipe: LadderRecipe
    prior: list[float]
    split: dict


def seeded_sample(count: int, max_items: int, seed: int = 0) -> list[int]:
    """Positions of a fixed random sample of ``min(count, max_items)`` of ``range(count)``, sorted."""
    if count <= max_items:
        return list(range(count))
    return sorted(torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:max_items].tolist())


def stratified_cap(
    items: Sequence[int], labels: torch.Tensor, max_items: int | None, seed: int = SPLIT_SEED
) -> list[int]:
    """``items`` (indices into ``labels``) when there are at most ``max_items`` of them (or it is
    None); otherwise a fixed, class-stratified sample of ``max_items`` of them, sorted.

    The items are ordered by class and shuffled within each class (seeded), and every
    (n / ``max_items``)-th is taken: each class keeps its share of the items to within one image,
    the same sample for every run and every training seed.
    """
    items = [int(i) for i in items]
    if max_items is None or len(items) <= max_items:
        return items
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    labels = torch.as_tensor(labels, dtype=torch.long)[items]
    generator = torch.Generator().manual_seed(seed)
    ordered: list[int] = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        ordered += [items[i] for i in members[torch.randperm(len(members), generator=generator)].tolist()]
    step = len(ordered) / max_items
    return sorted(ordered[int((k + 0.5) * step)] for k in range(max_items))


def calibration_holdout(labels: torch.Tensor, fraction: float, max_items: int | None = None) -> list[int]:
    """The held-out source images a calibration (and an evaluation) uses: those of
    :func:`~tada_core.training.run_data.holdout_split`, capped class-stratified at ``max_items``
    (:func:`stratified_cap`); sorted."""
    _, held_out = holdout_split(labels, fraction)
    return stratified_cap(held_out, labels, max_items)


def statistics_items(max_items: int | None) -> int:
    """Size of the BatchNorm statistics sample of the source: :data:`STATISTICS_ITEMS`, or fewer
    under a smaller ``max_items``."""
    return STATISTICS_ITEMS if max_items is None else min(STATISTICS_ITEMS, max_items)


def rung_subset(rungs: dict[int, Dataset], encoded_for: Sequence[int], held_out: Sequence[int], copies: int) -> dict:
    """``rungs`` made for the held-out images ``encoded_for`` (item k: copy k // n of image k % n),
    cut down to the copies of the images ``held_out`` (a subset); unchanged when they are the same
    or the rungs were made otherwise."""
    if list(held_out) == list(encoded_for) or any(len(r) != len(encoded_for) * copies for r in rungs.values()):
        return rungs
    where = {item: position for position, item in enumerate(encoded_for)}
    n = len(encoded_for)
    keep = [c * n + where[item] for c in range(copies) for item in held_out]
    return {severity: Subset(rung, keep) for severity, rung in rungs.items()}


def calibration_images(sets: CalibrationSets) -> int:
    """At most how many images :func:`calibrate` passes through the model (statistics and
    predictions; fewer when the ladder stops early)."""
    rungs = sum(min(len(r), STATISTICS_ITEMS) + len(r) for s, r in sets.rungs.items() if s in sets.recipe.severities)
    return len(sets.statistics) + len(sets.held_out) + rungs


def calibration_sets(
    source: Dataset,
    labels: torch.Tensor,
    fraction: float,
    recipe: LadderRecipe,
    norm: Norm,
    rungs: dict[int, Dataset] | None = None,
    num_classes: int | None = None,
    max_items: int | None = None,
) -> CalibrationSets | None:
    """The calibration sets of a source (its evaluation view) with these ``labels``; None when
    nothing is held out (``fraction`` 0).

    ``rungs`` already made (cached maps in frozen-backbone mode) are used as they are; otherwise
    each is an :class:`~tada_core.training.ladder.AugmentedCopies` of ``source`` made on demand.
    ``max_items``: at most this many held-out images (:func:`calibration_holdout`; ``recipe`` and
    ``rungs`` are for those) and statistics images (:func:`statistics_items`); None: no cap.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    trained_on, all_held_out = holdout_split(labels, fraction)
    if not all_held_out:
        return None
    held_out = stratified_cap(all_held_out, labels, max_items)
    counts = torch.bincount(labels, minlength=num_classes or int(labels.max()) + 1).double()
    sample = [trained_on[i] for i in seeded_sample(len(trained_on), statistics_items(max_items))]
    split = {"fraction": fraction, "seed": SPLIT_SEED, "stratified": True, "size": len(held_out)}
    if len(held_out) < len(all_held_out):  # only under the cap: small sources store what they always did
        split |= {"held_out": len(all_held_out), "max_items": max_items}
    return CalibrationSets(
        held_out=Subset(source, held_out),
        statistics=Subset(source, sample),
        rungs=rungs
        if rungs is not None
        else {s: AugmentedCopies(source, held_out, s, recipe, norm) for s in recipe.severities},
        recipe=recipe,
        prior=(counts / counts.sum()).tolist(),
        split=split,
    )


def own_outputs(
    model: torch.nn.Module,
    dataset: Dataset,
    indices: Sequence[int] | None = None,
    *,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Outputs:
    """``model``'s outputs on ``dataset[indices]`` with the BatchNorm statistics of (a seeded sample
    of at most :data:`STATISTICS_ITEMS` of) those items (``on_batch(n)`` after every n images)."""
    items = list(range(len(dataset))) if indices is None else list(indices)
    sample = Subset(dataset, [items[i] for i in seeded_sample(len(items), STATISTICS_ITEMS)])
    adapted = with_domain_statistics(model, sample, on_batch=on_batch)
    return collect_outputs(adapted, dataset, items, device=device, ctx=ctx, on_batch=on_batch)


def _accuracy(out: Outputs) -> float:
    return 100.0 * float((out.logits.argmax(1) == out.labels).double().mean())


def calibrate(
    model: torch.nn.Module,
    sets: CalibrationSets,
    *,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Calibration:
    """Fit T (all rungs pooled) and T_k (each rung) with every set's own BatchNorm statistics.

    Cost: one pass over ``sets.statistics`` and the held-out part, then two passes (statistics,
    prediction) over each rung until the ladder stops (:func:`calibration_images` at most);
    ``on_batch(n)`` after every n images.
    """
    kwargs = {"device": device, "ctx": ctx, "on_batch": on_batch}
    source_model = with_domain_statistics(model, sets.statistics, on_batch=on_batch)
    rungs = [("held-out", collect_outputs(source_model, sets.held_out, **kwargs))]
    for severity in sets.recipe.severities:
        out = own_outputs(model, sets.rungs[severity], **kwargs)
        rungs.append((f"severity {severity}", out))
        if _accuracy(out) < sets.recipe.stop_accuracy:
            break
    logits = torch.cat([out.logits for _, out in rungs])
    labels = torch.cat([out.labels for _, out in rungs])
    return Calibration(
        temperature=fit_temperature(logits, labels),
        rung_temperatures=[fit_temperature(out.logits, out.labels) for _, out in rungs],
        rung_names=[name for name, _ in rungs],
        rung_accuracies=[round(_accuracy(out), 2) for _, out in rungs],
        rung_sizes=[len(out.labels) for _, out in rungs],
        source_prior=sets.prior,
        ladder=sets.recipe.to_dict(),
        split=sets.split,
    )


def balanced_outputs(
    model: torch.nn.Module,
    dataset: Dataset,
    predictions: torch.Tensor,
    prior: Sequence[float],
    indices: Sequence[int] | None = None,
    *,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Outputs:
    """``model``'s outputs on ``dataset[indices]`` with BatchNorm statistics of those items
    re-balanced to the class mix ``prior`` by their ``predictions`` (N,).

    A seeded draw of :data:`STATISTICS_ITEMS` items with replacement, each item weighted by
    :func:`~tada_core.training.label_shift.balance_weights`, gives the statistics; the part of
    ``prior`` the items do not cover (classes never or seldom predicted) is filled with the model's
    running statistics (:func:`~tada_core.training.batchnorm.blend_statistics`). A target mixed as
    the source is drawn evenly: its own statistics, as :func:`own_outputs` gives them.
    """
    items = list(range(len(dataset))) if indices is None else list(indices)
    weights, covered = balance_weights(predictions, torch.as_tensor(prior, dtype=torch.float64))
    draw = torch.multinomial(weights, STATISTICS_ITEMS, replacement=True, generator=torch.Generator().manual_seed(0))
    adapted = with_domain_statistics(model, Subset(dataset, [items[i] for i in draw.tolist()]), on_batch=on_batch)
    if covered < 1.0:
        blend_statistics(adapted, model, covered)
    return collect_outputs(adapted, dataset, items, device=device, ctx=ctx, on_batch=on_batch)


def estimate_on(
    model: torch.nn.Module,
    dataset: Dataset,
    calibration: Calibration,
    indices: Sequence[int] | None = None,
    *,
    running: Outputs | None = None,
    class_names: list[str] | None = None,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Estimate:
    """The estimate of ``model``'s accuracy on ``dataset[indices]`` (labels never read), with the
    target's class mix (keyed by ``class_names``).

    ``running``: the model's outputs there with its running statistics (the deployed predictions
    ŷ), when already computed; otherwise computed here. The own statistics are re-balanced to the
    source's class mix by ŷ (:func:`balanced_outputs`). Cost: :data:`STATISTICS_ITEMS` images for
    the statistics and one pass over the items (two without ``running``); ``on_batch(n)`` after
    every n images.
    """
    kwargs = {"device": device, "ctx": ctx, "on_batch": on_batch}
    if running is None:
        running = collect_outputs(model, dataset, indices, **kwargs)
    predictions = running.logits.argmax(1)
    own = balanced_outputs(model, dataset, predictions, calibration.source_prior, indices, **kwargs)
    return estimate(own.logits, predictions, calibration, class_names)
