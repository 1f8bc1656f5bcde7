"""Pictures of transferability: attention overlays, t-SNE panels, domain-level attention.

Every function here is pure: arrays in, an image array or a :class:`matplotlib.figure.Figure`
out. Figures are built object-oriented on the Agg canvas (no pyplot, no global state, nothing
to close by hand); :func:`figure_to_png` / :func:`figure_to_array` render and release them.

Conventions:
    * images are ``uint8`` arrays of shape (H, W, 3) in **RGB** order, values 0–255;
    * local attention grids are float arrays (h, w) of w^k ∈ [0, 1]; global attention m ∈ [1, 2];
    * colours map ``[vmin, vmax]`` (default the fixed [0, 1]) onto the colormap;
      ``normalize=True`` stretches each grid to its own min–max instead; figures of a request
      take one range shared by all its images (:func:`tada_core.explain.views.value_ranges`) and say which;
    * t-SNE colours follow the paper's Figure 2: source red, target blue.
"""

from __future__ import annotations

import functools
import io
import textwrap
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from tada_core.explain.geometry import display_image, display_size, map_on_display
from tada_core.explain.result import fit_note, view_grid
from tada_core.explain.views import SCALE_NAMES, VIEWS, check_view, flat_note, range_text
from tada_core.explain.viz_tsne import (
    SOURCE_COLOR,
    TARGET_COLOR,
    TsnePanel,
    tsne_comparison_figure,
    tsne_figure,
    tsne_panels_figure,
)

if TYPE_CHECKING:
    from tada_core.explain.result import AttentionResult

__all__ = [
    "MODES",
    "SOURCE_COLOR",
    "TARGET_COLOR",
    "TsnePanel",
    "attention_figure",
    "color_range",
    "colormap_table",
    "domain_attention_figure",
    "figure_to_array",
    "figure_to_png",
    "gap_maps_figure",
    "overlay_attention",
    "overlay_values",
    "overlay_view",
    "png_bytes",
    "prints_values",
    "tsne_comparison_figure",
    "tsne_figure",
    "tsne_panels_figure",
    "upsample_grid",
    "wrap_to_width",
]

MODES = ("smooth", "blocky")
DISPLAY_SIDE = 224  # small images (digits) are enlarged to this side before overlaying
VALUES_MAX_SIDE = 7  # grids up to 7×7 show their values; finer ones (14×14, 56×56) are a heat map only
CHAR_WIDTH_EM = 0.6  # a generous mean character width of matplotlib's DejaVu Sans, in ems


def _colormap(name: str) -> matplotlib.colors.Colormap:
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; use a matplotlib name such as 'jet' or 'viridis'") from None


@functools.lru_cache(maxsize=64)
def colormap_table(name: str) -> np.ndarray:
    """The colormap's N colours as an (N, 3) float RGB table in [0, 1], read-only.

    ``table[min(floor(t·N), N − 1)]`` is exactly what ``matplotlib.colormaps[name](t)`` returns
    for t ∈ [0, 1], at a fraction of its cost (no masking, no RGBA, no per-call set-up).
    """
    colormap = _colormap(name)
    table = colormap(np.arange(colormap.N))[:, :3].copy()
    table.flags.writeable = False
    return table


def color_range(
    grid: np.ndarray, *, normalize: bool = False, vmin: float = 0.0, vmax: float = 1.0
) -> tuple[float, float]:
    """The (low, high) values mapped to the ends of the colormap.

    Fixed ``(vmin, vmax)`` unless ``normalize``: then the grid's own min and max (a constant grid
    has no range to stretch and keeps the fixed scale).
    """
    if normalize:
        lo, hi = float(np.min(grid)), float(np.max(grid))
        if hi > lo:
            return lo, hi
    if vmax <= vmin:
        raise ValueError(f"vmax ({vmax}) must be larger than vmin ({vmin})")
    return float(vmin), float(vmax)


def upsample_grid(grid: np.ndarray, height: int, width: int, mode: str = "smooth") -> np.ndarray:
    """Resize an (h, w) grid to (height, width) float32, aligned on pixel centres.

    ``blocky``: nearest neighbour, each region a solid block. ``smooth``: bicubic, clipped to the
    grid's own range so no value is invented outside it.
    """
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D (h, w), got shape {grid.shape}")
    if mode == "blocky":
        rows = np.minimum(((np.arange(height) + 0.5) * grid.shape[0] / height).astype(int), grid.shape[0] - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * grid.shape[1] / width).astype(int), grid.shape[1] - 1)
        return grid[np.ix_(rows, cols)]
    if mode == "smooth":
        resized = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
        return np.clip(np.asarray(resized, dtype=np.float32), grid.min(), grid.max())
    raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def overlay_attention(
    image: np.ndarray,
    grid: np.ndarray,
    *,
    cmap: str = "jet",
    alpha: float = 0.5,
    mode: str = "smooth",
    normalize: bool = False,
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> np.ndarray:
    """Blend the colour-mapped attention grid over ``image``.

    Each pixel is ``round((1 − alpha)·image + alpha·255·cmap(t))`` with ``t`` the upsampled grid
    value scaled by :func:`color_range` and clipped to [0, 1].

    Args:
        image: (H, W, 3) uint8 RGB (a (H, W) grayscale array is replicated to RGB).
        grid: (h, w) float local attention, e.g. w^k ∈ [0, 1].
        cmap: matplotlib colormap name; with ``jet``, high attention is red, low is blue.
        alpha: opacity of the heatmap, 0 (image only) to 1 (heatmap only).
        mode: ``smooth`` (bicubic upsampling) or ``blocky`` (nearest: one block per region).
        normalize: stretch this grid to its own min–max instead of the fixed [vmin, vmax].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lo, hi = color_range(grid, normalize=normalize, vmin=vmin, vmax=vmax)
    up = upsample_grid(grid, image.shape[0], image.shape[1], mode)
    table = colormap_table(cmap)
    scaled = np.clip((up - lo) / (hi - lo), 0.0, 1.0) * len(table)  # float32, as matplotlib computes it
    index = np.minimum(scaled.astype(np.intp), len(table) - 1)  # (H, W)
    blended = (1.0 - alpha) * image.astype(np.float64) + (alpha * 255.0 * table)[index]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """Enlarge ``image`` by the largest integer factor keeping it within ``side`` (nearest), so a
    smooth overlay has room to show on a small input (28×28 digits)."""
    factor = max(1, side // max(image.shape[:2]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def overlay_view(
    result: AttentionResult,
    *,
    view: str = "attention",
    value_range: tuple[float, float] | None = None,
    side: int | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    mode: str = "smooth",
) -> np.ndarray:
    """The overlay of ``view`` on ``result``'s image, uint8 (H, W, 3) RGB, with ``value_range``
    (default the view's full range) at the ends of the colormap; the image alone when the view has
    no grid for this result.

    Drawn on the user's own image at its aspect ratio (:func:`tada_core.explain.geometry.display_size`:
    up to 1024 px on the long side, small images enlarged), the map placed through the model's
    resize and crop; the border the model never saw is dimmed. ``side`` draws on the model's square
    input instead, enlarged to ``side`` (the Train tab's probes).
    """
    if side is not None or result.original is None or result.geometry is None:
        image = enlarge(result.image, side or DISPLAY_SIDE)
        grid = view_grid(result, view)
        if grid is None:
            return image
        lo, hi = value_range or VIEWS[view].fixed_range
        return overlay_attention(image, grid, cmap=cmap, alpha=alpha, mode=mode, vmin=lo, vmax=hi)
    height, width = result.original.shape[:2]
    shown_w, shown_h = display_size(width, height)
    image = display_image(result.original, shown_w, shown_h)
    grid = view_grid(result, view)
    if grid is None:
        return image
    lo, hi = value_range or VIEWS[view].fixed_range
    values = map_on_display(grid, result.geometry, shown_w, shown_h, mode)
    return overlay_values(image, values, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi)


def overlay_values(
    image: np.ndarray,
    values: np.ndarray,
    *,
    cmap: str = "jet",
    alpha: float = 0.5,
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> np.ndarray:
    """Blend per-pixel ``values`` (H, W) over ``image`` (H, W, 3) uint8 RGB, ``[vmin, vmax]`` at the ends
    of ``cmap``; pixels whose value is NaN (outside what the model saw) are dimmed to 60 %, not tinted."""
    if values.shape != image.shape[:2]:
        raise ValueError(f"values {values.shape} must match the image {image.shape[:2]}")
    if vmax <= vmin:
        raise ValueError(f"vmax ({vmax}) must be larger than vmin ({vmin})")
    table = colormap_table(cmap)
    known = np.isfinite(values)
    scaled = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / (vmax - vmin), 0.0, 1.0) * len(table)
    index = np.minimum(scaled.astype(np.intp), len(table) - 1)
    pixels = image.astype(np.float32)
    tinted = np.float32(1.0 - alpha) * pixels + (alpha * 255.0 * table).astype(np.float32)[index]
    blended = np.where(known[..., None], tinted, np.float32(0.6) * pixels)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def prints_values(shape: tuple[int, ...]) -> bool:
    """Whether a grid of ``shape`` (h, w) is drawn with its values in its cells: up to 7×7, where a
    value fits its cell at a readable size; a finer grid is drawn as a heat map only."""
    return max(shape) <= VALUES_MAX_SIDE


def wrap_to_width(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` with each of its lines wrapped at spaces to fit ``width_inches`` at ``fontsize`` points."""
    chars = max(20, int(width_inches * 72 / (fontsize * CHAR_WIDTH_EM)))
    return "\n".join(textwrap.fill(line, chars) if line else line for line in text.split("\n"))


def _caption(fig: Figure, text: str, fontsize: float = 10) -> None:
    fig.supxlabel(wrap_to_width(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def _title(fig: Figure, text: str, fontsize: float = 12) -> None:
    fig.suptitle(wrap_to_width(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def _write_cells(ax, grid: np.ndarray, cmap: str, lo: float, hi: float) -> None:
    """Draw the grid as coloured cells, with their values written in them where they can be read
    (:func:`prints_values`)."""
    ax.imshow(grid, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    h, w = grid.shape
    if prints_values(grid.shape):
        colors = _colormap(cmap)(np.clip((grid - lo) / (hi - lo), 0.0, 1.0))
        luminance = colors[..., :3] @ np.array([0.299, 0.587, 0.114])
        decimals = 3 if np.abs(grid).max() < 0.1 else 2  # small maps (e.g. a confused discriminator) stay readable
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.{decimals}f}", ha="center", va="center", fontsize=9,
                    color="black" if luminance[i, j] > 0.5 else "white")  # fmt: skip
    ax.set_xticks(range(w) if w <= 20 else [])
    ax.set_yticks(range(h) if h <= 20 else [])
    ax.tick_params(labelsize=7, length=0)


def _scale_label(name: str, normalize: bool) -> str:
    return f"{name} (per-image normalised)" if normalize else f"{name} (fixed scale)"


def _note(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_axis_off()


def attention_figure(
    result: AttentionResult,
    *,
    view: str = "attention",
    value_range: tuple[float, float] | None = None,
    scale: str = "fixed",
    cmap: str = "jet",
    alpha: float = 0.5,
    mode: str = "smooth",
    title: str | None = None,
) -> Figure:
    """Image | overlay of one per-region view with colour bar | the h×w grid with its values, a caption.

    Args:
        result: one image's :class:`~tada_core.explain.inference.AttentionResult`.
        view: ``attention``, ``transferability`` or ``gap`` (:data:`tada_core.explain.views.VIEWS`).
        value_range: the (low, high) values at the ends of the colormap, e.g. one shared by all
            images of a request (:func:`tada_core.explain.views.value_ranges`); default the view's full range.
        scale: which scale ``value_range`` is (``shared``, ``fixed``, ``image``), for the colour-bar label.

    The caption gives the predicted class, top-k probabilities, global attention m and
    P(source). Without a grid for the view (no local attention, or no probes for ``gap``) the
    image and a note are shown instead.
    """
    spec = check_view(view, scale)
    grid = view_grid(result, view)
    fig = Figure(figsize=(13.5, 4.9), layout="constrained")
    axes = fig.subplots(1, 3)
    side = result.image.shape[0]
    axes[0].imshow(result.image, interpolation="nearest")
    axes[0].set_title(f"input as the model sees it ({side}×{result.image.shape[1]})", fontsize=10)
    axes[0].set_axis_off()
    if grid is None:
        why = {
            "gap": "no domain-gap probes\nfor this image",
            "shift": "no shift localiser:\nnot stored in the checkpoint\nand its domains are not here",
        }.get(view, "no local attention:\nthis variant has no\nregion discriminators")
        for ax in axes[1:]:
            _note(ax, why)
    else:
        lo, hi = value_range or spec.fixed_range
        overlay = overlay_view(result, view=view, value_range=(lo, hi), cmap=cmap, alpha=alpha, mode=mode)
        axes[1].imshow(overlay)
        axes[1].set_title(f"{view} overlay ({mode}, alpha {alpha:g})", fontsize=10)
        axes[1].set_axis_off()
        mappable = ScalarMappable(norm=Normalize(lo, hi), cmap=_colormap(cmap))
        low, high = range_text((lo, hi))
        flat = flat_note((lo, hi))
        fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.03).set_label(
            f"{spec.label}\n{SCALE_NAMES[scale]}: {low} – {high}" + (f"\n{flat}" if flat else ""), fontsize=9
        )
        h, w = grid.shape
        _write_cells(axes[2], grid, cmap, lo, hi)
        values = "" if prints_values(grid.shape) else "\nheat map: the values are in the JSON"
        axes[2].set_title(f"{view} per region ({h}×{w}), mean {float(np.mean(grid)):.3f}{values}", fontsize=10)
    top = ", ".join(f"{name} {p:.1%}" for name, p in result.top_k)
    lines = [f"predicted: {result.predicted} ({float(np.max(result.probs)):.1%})    top-{len(result.top_k)}: {top}"]
    extra = []
    if result.global_attention is not None:
        extra.append(f"global attention m = {result.global_attention:.3f} (1 = domain-certain, 2 = indistinguishable)")
    if result.domain_prob is not None:
        extra.append(f"P(source) = {result.domain_prob:.3f}")
    if extra:
        lines.append("    ".join(extra))
    if grid is not None:
        note = fit_note(result) if view == "shift" else None
        lines.append(f"{spec.label}: {spec.meaning}" + (f"; {note}" if note else ""))
    _caption(fig, "\n".join(lines))
    _title(fig, title or f"Per-region view: {spec.label}")
    return fig


def gap_maps_figure(
    maps: list[tuple[str, np.ndarray]],
    *,
    value_range: tuple[float, float] | None = None,
    scale: str = "shared",
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """Per-region proxy A-distance maps (h, w) ∈ [0, 2], one panel each, on one colour scale.

    Args:
        maps: ``(panel title, (h, w) A-distance map)`` pairs, e.g. one per checkpoint.
        value_range: (low, high) at the ends of the colormap; default the maps' shared min–max.
        scale: which scale ``value_range`` is, for the colour-bar label.
    """
    if not maps:
        raise ValueError("gap_maps_figure needs at least one map")
    grids = [np.asarray(grid, dtype=float) for _, grid in maps]
    lo, hi = value_range or (min(g.min() for g in grids), max(g.max() for g in grids))
    if hi <= lo:
        lo, hi = 0.0, 2.0
    fig = Figure(figsize=(4.6 * len(maps) + 1.0, 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(maps)))
    for ax, (name, _), grid in zip(axes, maps, grids, strict=True):
        _write_cells(ax, grid, cmap, lo, hi)
        ax.set_title(f"{name}\nmean {grid.mean():.3f}", fontsize=10)
    low, high = range_text((lo, hi))
    fig.colorbar(ScalarMappable(norm=Normalize(lo, hi), cmap=_colormap(cmap)), ax=list(axes), fraction=0.046).set_label(
        f"domain gap: proxy A-distance per region (0 = same, 2 = separable)\n{SCALE_NAMES[scale]}: {low} – {high}",
        fontsize=9,
    )
    _title(fig, title or "Domain gap per region")
    return fig


def domain_attention_figure(
    mean_grid: np.ndarray | None,
    m_values: np.ndarray | None,
    *,
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """A domain at a glance: mean local attention map (fixed [0, 1] scale) + histogram of m ∈ [1, 2]."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_grid, ax_hist = fig.subplots(1, 2)
    if mean_grid is None:
        _note(ax_grid, "no local attention\nin this variant")
    else:
        mean_grid = np.asarray(mean_grid, dtype=float)
        _write_cells(ax_grid, mean_grid, cmap, 0.0, 1.0)
        fig.colorbar(
            ScalarMappable(norm=Normalize(0.0, 1.0), cmap=_colormap(cmap)), ax=ax_grid, fraction=0.046
        ).set_label(_scale_label("mean local attention w", False), fontsize=9)
        ax_grid.set_title(f"mean w per region ({mean_grid.shape[0]}×{mean_grid.shape[1]})", fontsize=10)
    if m_values is None or len(m_values) == 0:
        _note(ax_hist, "no global attention\nin this variant")
    else:
        m_values = np.asarray(m_values, dtype=float)
        ax_hist.hist(m_values, bins=np.linspace(1.0, 2.0, 26), color="#555555", edgecolor="white")
        ax_hist.axvline(m_values.mean(), color=SOURCE_COLOR, ls="--", label=f"mean {m_values.mean():.3f}")
        ax_hist.set_xlim(1.0, 2.0)
        ax_hist.set_xlabel("global attention m = 1 + H₂(d̂)   (1: domain-certain, 2: indistinguishable)", fontsize=9)
        ax_hist.set_ylabel("images")
        ax_hist.legend(fontsize=8)
        ax_hist.set_title(
            f"m over {len(m_values)} images (min {m_values.min():.3f}, max {m_values.max():.3f})", fontsize=10
        )
    _title(fig, title or "Attention over a domain")
    return fig


def _release(fig: Figure) -> None:
    if fig.canvas.manager is not None:  # a pyplot figure: unregister it too
        import matplotlib.pyplot as plt

        plt.close(fig)
    fig.clear()


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) RGB array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def figure_to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render ``fig`` as PNG bytes and release it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    _release(fig)
    return buffer.getvalue()


def figure_to_array(fig: Figure, *, dpi: int = 110) -> np.ndarray:
    """Render ``fig`` as a (H, W, 3) uint8 RGB array and release it."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    array = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    _release(fig)
    return array
