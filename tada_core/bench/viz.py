"""Visualisation benchmarks: t-SNE backends, and attention maps vs a plain forward and Grad-CAM.

* :func:`bench_tsne` — openTSNE (what :func:`tada_core.explain.features.tsne_embed` uses) against
  scikit-learn's ``TSNE`` on the same PCA-50 features of a 10-cluster 256-d Gaussian mixture;
  seconds, ratio and the 10-NN cluster accuracy of each embedding (does the picture keep the
  clusters?).
* :func:`bench_attention` — ResNet-50 at 224×224, random weights, one image: TADA's attention
  comes out of the forward pass, so :func:`~tada_core.explain.inference.predict_attention` should cost
  about a plain classifier forward; Grad-CAM needs a backward pass as well.

Both return flat ``dict``s of numbers (``tada bench tsne|attention --json``). Timings are medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TADAConfig
from tada_core.explain.features import tsne_embed
from tada_core.explain.inference import predict_attention, preprocess
from tada_core.model import TADAModel, build_model


def _round_robin(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each function per round, the functions interleaved within every round so that
    drift in the machine's speed (other processes) hits them all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _median_ratio(times: dict[str, list[float]], top: str, bottom: str) -> float:
    return round(statistics.median(a / b for a, b in zip(times[top], times[bottom], strict=True)), 3)


def gaussian_mixture(n_points: int, dim: int = 256, clusters: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_points`` float32 vectors from ``clusters`` unit-variance Gaussians (centres ~ N(0, 0.5²·I))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.5, size=(clusters, dim))
    labels = rng.integers(0, clusters, size=n_points)
    return (centres[labels] + rng.normal(size=(n_points, dim))).astype(np.float32), labels


def _knn_accuracy(embedding: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return float(cross_val_score(KNeighborsClassifier(10), embedding, labels, cv=5).mean())


def bench_tsne(n_points: int = 2000, seed: int = 0, n_jobs: int = 1) -> dict:
    """openTSNE vs ``sklearn.manifold.TSNE`` (perplexity 30, PCA init, Barnes–Hut) on the same
    features, both limited to ``n_jobs`` threads."""
    import openTSNE  # noqa: F401  (imported before the clock starts, like scikit-learn's TSNE)
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE, trustworthiness
    from threadpoolctl import threadpool_limits

    features, labels = gaussian_mixture(n_points, seed=seed)
    x = PCA(n_components=50, svd_solver="full", random_state=seed).fit_transform(features)
    with threadpool_limits(n_jobs):
        start = time.perf_counter()
        ours = tsne_embed(x, seed=seed, n_jobs=n_jobs)
        open_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = TSNE(n_components=2, perplexity=30.0, init="pca", random_state=seed, n_jobs=n_jobs).fit_transform(x)
        sk_s = time.perf_counter() - start
    return {
        "n_points": n_points,
        "threads": n_jobs,
        "opentsne_s": round(open_s, 3),
        "sklearn_s": round(sk_s, 3),
        "sklearn_over_opentsne": round(sk_s / open_s, 2),
        "opentsne_knn10_accuracy": round(_knn_accuracy(ours, labels), 4),
        "opentsne_trustworthiness10": round(float(trustworthiness(x, ours, n_neighbors=10)), 4),
        "sklearn_knn10_accuracy": round(_knn_accuracy(theirs, labels), 4),
    }


class GradCAM:
    """Grad-CAM (Selvaraju et al., ICCV 2017) on one layer; hooks live only inside ``with``.

    ``cam = ReLU(Σ_c α_c · A_c)`` with ``α_c`` the spatial mean of ∂logit_target/∂A_c, scaled
    per image to [0, 1].

    Example:
        >>> with GradCAM(model, model.backbone.layers[-1]) as cam:
        ...     maps = cam(x)            # (B, h, w) float in [0, 1]
    """

    def __init__(self, model: TADAModel, layer: nn.Module) -> None:
        self.model, self.layer = model, layer
        self._handles: list = []
        self._activation: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None

    def _keep(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self._activation = output
        self._handles.append(output.register_hook(self._keep_gradient))

    def _keep_gradient(self, grad: torch.Tensor) -> None:
        self._gradient = grad

    def __enter__(self) -> GradCAM:
        self._handles.append(self.layer.register_forward_hook(self._keep))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._activation = self._gradient = None

    def __call__(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        self.model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            logits = self.model(x).logits  # (B, C)
            target = logits.argmax(dim=1) if target is None else target
            logits.gather(1, target[:, None]).sum().backward()
        weights = self._gradient.mean(dim=(2, 3), keepdim=True)  # (B, C', 1, 1)
        cam = torch.relu((weights * self._activation).sum(dim=1)).detach()  # (B, h, w)
        peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)
        return cam / peak[:, None, None]


def bench_attention(repeats: int = 5, backbone: str = "resnet50", image_size: int = 224, seed: int = 0) -> dict:
    """Seconds for one image: TADA attention (``predict_attention``, preprocessing included),
    the TADA forward alone, a plain torchvision classifier forward, and Grad-CAM on ``layer4``.

    Median and minimum over ``repeats`` interleaved rounds; ratios are medians of per-round ratios.
    """
    import torchvision

    torch.manual_seed(seed)
    config = TADAConfig(backbone=backbone, num_classes=31, variant="tada", image_size=image_size)
    model = build_model(config).eval()
    info = CheckpointInfo(config=config, class_names=[f"class{i}" for i in range(31)])
    pixels = np.random.default_rng(seed).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    x, _ = preprocess([image], info)
    plain = torchvision.models.get_model(backbone, weights=None, num_classes=31).eval()

    def forward(net: nn.Module) -> Callable[[], object]:
        def call() -> object:
            with torch.no_grad():
                return net(x)

        return call

    def gradcam() -> torch.Tensor:
        with GradCAM(model, model.backbone.layers[-1]) as cam:  # hooks exist only during this call
            return cam(x)

    functions = {
        "predict_attention": lambda: predict_attention(model, info, [image]),
        "tada_forward": forward(model),
        "plain_forward": forward(plain),
        "gradcam": gradcam,
    }
    times = _round_robin(functions, repeats)
    result: dict = {"backbone": backbone, "image_size": image_size, "threads": torch.get_num_threads()}
    result["repeats"] = repeats
    for name, values in times.items():
        result[f"{name}_s"] = round(statistics.median(values), 4)
        result[f"{name}_min_s"] = round(min(values), 4)
    result["attention_over_plain"] = _median_ratio(times, "predict_attention", "plain_forward")
    result["tada_forward_over_plain"] = _median_ratio(times, "tada_forward", "plain_forward")
    result["gradcam_over_attention"] = _median_ratio(times, "gradcam", "predict_attention")
    return result
