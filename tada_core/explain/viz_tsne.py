"""t-SNE figures: source vs target features coloured by domain and by class (the paper's Figure 2).

Pure functions: arrays in, a :class:`matplotlib.figure.Figure` out (Agg canvas, no pyplot).
Colours follow the paper: source red, target blue. By class, colour is the class (one palette by
class index, so a class has the same colour in every checkpoint's panel) and the marker the domain
(source ●, target ▲): a target class sitting on its source cluster is aligned. Points shrink as
their number grows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

SOURCE_COLOR = "#d62728"  # red, as the paper's Figure 2
TARGET_COLOR = "#1f77b4"  # blue


@dataclass
class TsnePanel:
    """One checkpoint's t-SNE: embedding (N, 2), domain per point (0/"source", 1/"target"),
    class index per point, the class names, a title, optionally its A-distance and a line with
    its headline alignment measure."""

    embedding: np.ndarray
    domains: np.ndarray
    labels: np.ndarray
    class_names: Sequence[str]
    title: str = ""
    a_distance: float | None = None
    alignment: str = ""


def _domain_codes(domains: np.ndarray | Sequence) -> np.ndarray:
    domains = np.asarray(domains)
    if domains.dtype.kind in "USO":
        lowered = np.char.lower(domains.astype(str))
        unknown = sorted(set(lowered.tolist()) - {"source", "target"})
        if unknown:
            raise ValueError(f"domains must be 'source' or 'target', got {unknown[:3]}")
        return (lowered == "target").astype(int)
    if not np.isin(domains, (0, 1)).all():
        raise ValueError("domains must be 0 (source) or 1 (target)")
    return domains.astype(int)


def _class_colors(n: int) -> np.ndarray:
    if n <= 10:
        return matplotlib.colormaps["tab10"](np.arange(n))
    if n <= 20:
        return matplotlib.colormaps["tab20"](np.arange(n))
    return matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, n))


def point_size(n: int) -> float:
    """Marker area (points²) for ``n`` points in one panel: 12 for a few hundred, 2 from 6,000."""
    return float(np.clip(6000.0 / max(n, 1), 2.0, 12.0))


MARKERS = ("o", "^")  # source, target


def _palette(panel: TsnePanel) -> np.ndarray:
    return _class_colors(max(len(panel.class_names), int(np.max(panel.labels, initial=0)) + 1))


def _class_handles(names: Sequence[str], palette: np.ndarray) -> list[Line2D]:
    domains = [
        Line2D([], [], marker=m, ls="", color="0.3", label=d)
        for m, d in zip(MARKERS, ("source", "target"), strict=True)
    ]
    return domains + [Line2D([], [], marker="s", ls="", color=palette[i], label=n) for i, n in enumerate(names)]


def _draw_tsne(ax_domain, ax_class, panel: TsnePanel, *, class_legend: bool = True) -> None:
    emb = np.asarray(panel.embedding, dtype=float)
    codes = _domain_codes(panel.domains)
    labels = np.asarray(panel.labels, dtype=int)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(codes) != len(emb) or len(labels) != len(emb):
        raise ValueError("embedding must be (N, 2) with N domains and N labels")
    order = np.random.default_rng(0).permutation(len(emb))  # mixed drawing order: no domain hides the other
    size = point_size(len(emb))
    domain_colors = np.array([matplotlib.colors.to_rgba(c) for c in (SOURCE_COLOR, TARGET_COLOR)])
    ax_domain.scatter(*emb[order].T, c=domain_colors[codes[order]], s=size, alpha=0.6, linewidths=0)
    counts = np.bincount(codes, minlength=2)
    handles = [
        Line2D([], [], marker="o", ls="", color=c, label=f"{name} ({n})")
        for c, name, n in zip((SOURCE_COLOR, TARGET_COLOR), ("source", "target"), counts, strict=True)
    ]
    ax_domain.legend(handles=handles, loc="best", fontsize=8, markerscale=1.2)
    head = f"{panel.title}\n" if panel.title else ""  # own line: a checkpoint's file name can be long
    a_text = f" — A-distance {panel.a_distance:.3f}" if panel.a_distance is not None else ""
    ax_domain.set_title(f"{head}by domain{a_text}", fontsize=10)
    names = list(panel.class_names)
    palette = _palette(panel)
    for code, marker in enumerate(MARKERS):
        mine = order[codes[order] == code]
        ax_class.scatter(*emb[mine].T, c=palette[labels[mine]], s=size * 1.2, marker=marker, alpha=0.7, linewidths=0)
    if class_legend and len(names) <= 20:
        ax_class.legend(
            handles=_class_handles(names, palette),
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=7,
            frameon=False,
        )
    alignment = "\n" + textwrap.fill(panel.alignment, 60) if panel.alignment else ""
    ax_class.set_title(f"{head}by class (● source, ▲ target){alignment}", fontsize=10)
    for ax in (ax_domain, ax_class):
        ax.set_xticks([])
        ax.set_yticks([])


def tsne_figure(
    embedding: np.ndarray,
    domains: np.ndarray | Sequence,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str = "",
    a_distance: float | None = None,
    alignment: str = "",
) -> Figure:
    """Two panels of one t-SNE: coloured by domain (source red, target blue) and by class."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    ax_domain, ax_class = fig.subplots(1, 2)
    _draw_tsne(ax_domain, ax_class, TsnePanel(embedding, domains, labels, class_names, "", a_distance, alignment))
    fig.suptitle(title or "t-SNE of bottleneck features", fontsize=12)
    return fig


def tsne_comparison_figure(panels: Sequence[TsnePanel], *, title: str = "") -> Figure:
    """Checkpoints side by side (e.g. source_only vs tada, the paper's Figure 2).

    One column per panel: by domain on top, by class below; one class legend, at the right, for
    all of them (the colours are the same in every column).
    """
    if not panels:
        raise ValueError("tsne_comparison_figure needs at least one panel")
    fig = Figure(figsize=(6.2 * len(panels), 10.5), layout="constrained")
    axes = fig.subplots(2, len(panels), squeeze=False)
    for col, panel in enumerate(panels):
        _draw_tsne(axes[0, col], axes[1, col], panel, class_legend=False)
    if len(panels[0].class_names) <= 20:
        handles = _class_handles(list(panels[0].class_names), _palette(panels[0]))
        fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(title or "t-SNE of bottleneck features: source (red) vs target (blue)", fontsize=12)
    return fig


def tsne_panels_figure(panels: Sequence[TsnePanel], source: str, target: str) -> Figure:
    """The t-SNE figure for one checkpoint (two panels) or several (side by side), titled by domains."""
    title = f"t-SNE of bottleneck features: {source} (source, red) → {target} (target, blue)"
    if len(panels) == 1:
        p = panels[0]
        return tsne_figure(
            p.embedding,
            p.domains,
            p.labels,
            p.class_names,
            title=f"{title}\n{p.title}",
            a_distance=p.a_distance,
            alignment=p.alignment,
        )
    return tsne_comparison_figure(panels, title=title)
