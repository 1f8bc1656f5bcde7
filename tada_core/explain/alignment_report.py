"""One checkpoint on a source/target pair: its features and what they say about alignment.

The features are computed with the BatchNorm statistics the checkpoint trained with (``auto``:
each domain's own for separate forwards, :mod:`tada_core.explain.domain_stats`); the alignment
measures (:mod:`tada_core.explain.alignment`) and the t-SNE use them. The global proxy A-distance is
reported in both views, each labelled: ``domain`` (each domain normalised with its own statistics:
what the discriminators saw) and ``running`` (the eval-mode forward a single upload gets).

    >>> report = checkpoint_alignment(model, info, source, target, max_points=300)
    >>> report.summary["alignment"]     # {"measure", "value", "interval", "reads"}: the headline
    >>> report.source.features          # (N, D) z of the view the measures used, for the t-SNE
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tada_core.checkpoint import CheckpointInfo
from tada_core.data import Domain
from tada_core.explain.alignment import BOOTSTRAP, a_distance_spread, pair_alignment
from tada_core.explain.domain_stats import resolve
from tada_core.explain.estimate import stored_estimate
from tada_core.explain.features import Features, collect_features
from tada_core.model import TADAModel

VIEWS = {
    "domain": "each domain normalised with its own BatchNorm statistics (what training's separate forwards saw)",
    "running": "the running BatchNorm statistics of eval mode (what one uploaded image gets)",
}


@dataclass
class AlignmentReport:
    """Features of the view the measures used (``statistics``) and the JSON-ready ``summary``."""

    source: Features
    target: Features
    statistics: str
    summary: dict
    labelled: bool

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Source rows, then target rows: features (N, D), domain (0 source, 1 target), class (the
        target's labels; its predictions when it has none) and predicted class, (N,) each."""
        src, tgt = self.source, self.target
        target_classes = tgt.labels if self.labelled else tgt.predictions
        return (
            np.concatenate([src.features, tgt.features]),
            np.r_[np.zeros(len(src), int), np.ones(len(tgt), int)],
            np.r_[src.labels, target_classes],
            np.r_[src.predictions, tgt.predictions],
        )


def _estimate(info: CheckpointInfo, target: Domain) -> dict | None:
    """The accuracy estimate stored at training time, when ``target`` is the checkpoint's training target."""
    stored = stored_estimate(info) if target.name == info.target else None
    if stored is None:
        return None
    return {
        "value": round(stored.estimated_accuracy / 100, 4),
        "interval": [round(v / 100, 4) for v in stored.interval],
        "method": stored.method,
        "on": f"all of '{info.target}', at training time",
    }


def checkpoint_alignment(
    model: TADAModel,
    info: CheckpointInfo,
    source: Domain,
    target: Domain,
    *,
    max_points: int | None = None,
    statistics: str = "auto",
    seed: int = 0,
    batch_size: int = 256,
    n_boot: int = BOOTSTRAP,
) -> AlignmentReport:
    """Features of ``max_points`` images a domain and the alignment measures, headline first.

    ``summary``: ``alignment`` (the headline measure), ``measures`` (all, each {measure, value,
    interval, reads}), ``a_distance`` (the measured view's, mean over 5 splits), ``a_distance_views``
    (both views, labelled), ``bn_statistics``, counts, accuracies (target None without labels) and
    ``estimated_target_accuracy`` (stored at training time, on the training target only).
    """
    view = resolve(statistics, info.config)
    options = {"max_points": max_points, "batch_size": batch_size, "seed": seed}
    features = {}
    for name in (view, *(v for v in VIEWS if v != view)):
        per_domain = name == "domain"
        features[name] = (
            collect_features(model, source, domain_statistics=per_domain, **options),
            collect_features(model, target, domain_statistics=per_domain, **options),
        )
    src, tgt = features[view]
    labels = tgt.labels if target.labelled else None
    measures = pair_alignment(src.features, src.labels, tgt.features, labels, tgt.predictions, n_boot=n_boot, seed=seed)
    a_views = {}
    for name, (s, t) in features.items():
        a_views[name] = {**a_distance_spread(s.features, t.features, seed=seed).to_dict(), "view": VIEWS[name]}
    summary = {
        "alignment": measures[0].to_dict(),
        "measures": [m.to_dict() for m in measures],
        "a_distance": a_views[view]["value"],
        "a_distance_views": a_views,
        "bn_statistics": view,
        "n_source": len(src),
        "n_target": len(tgt),
        "source_accuracy": round(src.accuracy, 4),
        "target_accuracy": round(tgt.accuracy, 4) if target.labelled else None,
        "estimated_target_accuracy": _estimate(info, target),
    }
    return AlignmentReport(src, tgt, view, summary, target.labelled)
