"""Feature analysis: bottleneck features over a domain, t-SNE embeddings, proxy A-distance.

The paper's Figure 2 plots t-SNE of the bottleneck features z of source and target images; its
Figure 3 reads the proxy A-distance d_A = 2(1 − 2ε) (Ben-David et al., 2007), where ε is the
error of a classifier trained to tell source from target features: d_A ≈ 0 when the domains are
indistinguishable, 2 when they are perfectly separable.

Example:
    >>> src = collect_features(model, source_domain, max_points=1000)
    >>> tgt = collect_features(model, target_domain, max_points=1000)
    >>> a_distance(src.features, tgt.features)
    0.83
    >>> xy = tsne_embed(np.concatenate([src.features, tgt.features]))   # (N, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from tada_core.errors import DataError
from tada_core.explain.domain_stats import with_domain_statistics
from tada_core.model import TADAModel

if TYPE_CHECKING:
    from tada_core.data import Domain


@dataclass
class Features:
    """What a model computes over (a subset of) one domain; N rows, in ``indices`` order.

    Attributes:
        features: (N, D) float32 bottleneck features z.
        labels: (N,) int64 true labels (only for reporting; never used in training).
        predictions: (N,) int64 predicted class indices.
        global_attention: (N,) float32 m ∈ [1, 2], or None for ``source_only``.
        local_attention: (N, h, w) float32 w ∈ [0, 1], or None without local attention.
        indices: (N,) int64 positions of these rows in the domain's dataset.
    """

    features: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    global_attention: np.ndarray | None
    local_attention: np.ndarray | None
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean()) if len(self) else float("nan")


def subset_indices(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """All of ``range(n)``, or a sorted random subset of ``max_points`` of them drawn with ``seed``."""
    if max_points is None or max_points >= n:
        return np.arange(n)
    if max_points < 1:
        raise DataError(f"max_points must be at least 1, got {max_points}")
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def collect_features(
    model: TADAModel,
    domain: Domain,
    *,
    max_points: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    domain_statistics: bool = False,
) -> Features:
    """Run ``model`` over ``domain`` (or a seeded random subset of it) and gather its outputs.

    Batched, without gradients, in eval mode (the model's mode is restored afterwards).
    ``domain_statistics``: normalise with BatchNorm statistics of this sample instead of the
    running ones, as training did with separate forwards (:mod:`tada_core.explain.domain_stats`).
    """
    indices = subset_indices(len(domain.dataset), max_points, seed)
    if len(indices) == 0:
        raise DataError(f"domain {domain.name!r} has no images")
    sample = Subset(domain.dataset, indices.tolist())
    if domain_statistics:
        model = with_domain_statistics(model, sample, batch_size=batch_size)
    loader = DataLoader(sample, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {"z": [], "y": [], "pred": [], "m": [], "w": []}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, y in loader:
                out = model(x.to(device))
                parts["z"].append(out.features.float().cpu())
                parts["y"].append(torch.as_tensor(y).long())
                parts["pred"].append(out.logits.argmax(dim=1).cpu())
                if out.global_attention is not None:
                    parts["m"].append(out.global_attention.float().cpu())
                if out.local_attention is not None:
                    parts["w"].append(out.local_attention.float().cpu())
    finally:
        model.train(was_training)

    def cat(key: str) -> np.ndarray | None:
        return torch.cat(parts[key]).numpy() if parts[key] else None

    return Features(
        features=cat("z"),
        labels=cat("y"),
        predictions=cat("pred"),
        global_attention=cat("m"),
        local_attention=cat("w"),
        indices=indices.astype(np.int64),
    )


EARLY_EXAGGERATION_ITER = 100
ITERATIONS = 300


def tsne_embed(
    features: np.ndarray,
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    n_jobs: int = 1,
) -> np.ndarray:
    """2-D t-SNE (openTSNE) of ``features`` after PCA to at most 50 dimensions.

    400 gradient steps (``EARLY_EXAGGERATION_ITER`` + ``ITERATIONS``, openTSNE's default is
    250 + 500): with openTSNE's automatic learning rate N/12 a few thousand points have
    converged by then. On the shipped checkpoints' features (1,000 MNIST + 1,000 MNIST-M) the
    embedding is as faithful as with the defaults — trustworthiness@10 0.9836 vs 0.9842,
    10-NN class accuracy 0.680 vs 0.682 — in 0.56× the time (docs/RESULTS.md).

    Deterministic given ``seed`` (PCA, initialisation and optimisation all use it). The
    perplexity is lowered to (N − 1) / 3 for small N, as t-SNE requires.

    Args:
        features: (N, D) array, N ≥ 4.
        n_jobs: threads for openTSNE (default 1: on a busy machine more threads than free
            cores make openTSNE's thread pool spin, measured 5–40× slower; raise it on a quiet one).

    Returns:
        (N, 2) float64 embedding.
    """
    from openTSNE import TSNE
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise DataError(f"t-SNE needs an (N, D) array with at least 4 points, got shape {x.shape}")
    dims = min(50, x.shape[1], len(x))
    if x.shape[1] > dims:
        x = PCA(n_components=dims, svd_solver="full", random_state=seed).fit_transform(x)
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (len(x) - 1) / 3.0),
        initialization="pca",
        early_exaggeration_iter=EARLY_EXAGGERATION_ITER,
        n_iter=ITERATIONS,
        random_state=seed,
        n_jobs=n_jobs,
        verbose=False,
    )
    return np.asarray(tsne.fit(x))


def a_distance(source_feats: np.ndarray, target_feats: np.ndarray, *, seed: int = 0) -> float:
    """Proxy A-distance d_A = 2(1 − 2ε), clipped to [0, 2].

    ε is the held-out *balanced* error (mean of the per-domain errors, so unequal domain sizes do
    not bias it) of an L2-regularised logistic regression trained to tell source from target on
    a stratified 50/50 split; features are standardised with statistics of the training half.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    source_feats, target_feats = np.asarray(source_feats), np.asarray(target_feats)
    if min(len(source_feats), len(target_feats)) < 2:
        raise DataError("the A-distance needs at least 2 feature vectors per domain")
    x = np.concatenate([source_feats, target_feats]).astype(np.float64)
    y = np.concatenate([np.ones(len(source_feats)), np.zeros(len(target_feats))])  # source = 1
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(x_train), y_train)
    error = 1.0 - balanced_accuracy_score(y_test, clf.predict(scaler.transform(x_test)))
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0))


@dataclass
class DomainAttention:
    """Attention over a domain: mean local map (h, w) or None, and m per image (N,) or None."""

    mean_grid: np.ndarray | None
    m_values: np.ndarray | None
    count: int


def domain_attention_stats(
    model: TADAModel,
    domain: Domain,
    *,
    max_points: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> DomainAttention:
    """Mean local attention map and the global attention m of every image of ``domain``."""
    feats = collect_features(model, domain, max_points=max_points, batch_size=batch_size, seed=seed)
    mean_grid = feats.local_attention.mean(axis=0) if feats.local_attention is not None else None
    return DomainAttention(mean_grid=mean_grid, m_values=feats.global_attention, count=len(feats))
