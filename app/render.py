"""Pure rendering helpers of the app: overlays as arrays and PNG, HTML cards for attention results.

Images are ``uint8`` (H, W, 3) RGB; grids are one per-region view (:mod:`tada_core.explain.views`) with
the (low, high) colour range the caller chose (e.g. one shared by all images of a request).
Small inputs (28×28 digits) are enlarged by an integer factor (nearest neighbour) before the
heatmap is blended, so a smooth overlay has room to show. All HTML text is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import io

import matplotlib
import numpy as np
from PIL import Image

from app.serving.images import png_bytes
from tada_core.explain.result import AttentionResult, fit_note, view_grid
from tada_core.explain.views import SCALE_NAMES, range_text
from tada_core.explain.viz import colormap_table, enlarge, prints_values

COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "coolwarm")
NO_LOCAL = {
    "source_only": "a source-only model has no domain discriminators at all",
    "dann": "DANN aligns whole images only (one global discriminator)",
    "tada_global": "tada_global has global attention m only, no region discriminators",
}


INLINE_MAX_SIDE = 512  # inline report images are at most this long; the gallery keeps the full size
GRID_TABLE_MAX_CELLS = 14 * 14  # finer maps (the 56×56 shift view) get a summary instead of a heat map


def data_uri(array: np.ndarray) -> str:
    """An image as a data URI: PNG up to 256 px (sharp digits), else JPEG at most
    :data:`INLINE_MAX_SIDE` px long (a 1024 px photo overlay would be megabytes of PNG in every report)."""
    if max(array.shape[:2]) <= 256:
        return "data:image/png;base64," + base64.b64encode(png_bytes(array)).decode("ascii")
    image = Image.fromarray(np.ascontiguousarray(array))
    image.thumbnail((INLINE_MAX_SIDE, INLINE_MAX_SIDE), Image.BILINEAR)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rgb(color) -> str:
    r, g, b = (round(255 * float(c)) for c in color[:3])
    return f"rgb({r},{g},{b})"


def colorbar_html(cmap: str, low: str = "0", high: str = "1", label: str = "local attention w") -> str:
    """A horizontal colour bar as a CSS gradient, with the labels of its two ends."""
    colormap = matplotlib.colormaps[cmap]
    stops = ", ".join(_rgb(colormap(t)) for t in np.linspace(0, 1, 11))
    return (
        f'<div class="tada-colorbar"><span>{html.escape(low)}</span>'
        f'<div class="tada-colorbar-bar" style="background: linear-gradient(to right, {stops})"></div>'
        f"<span>{html.escape(high)}</span><em>{html.escape(label)}</em></div>"
    )


@functools.lru_cache(maxsize=16)
def _cell_styles(cmap: str) -> tuple[str, ...]:
    """The CSS of a grid cell for each colour of ``cmap``: its background, and black or white ink by
    the colour's luminance."""
    styles = []
    for color in colormap_table(cmap):
        luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        styles.append(f"background:{_rgb(color)};color:{'#000' if luminance > 0.5 else '#fff'}")
    return tuple(styles)


def grid_html(
    grid: np.ndarray, cmap: str = "jet", value_range: tuple[float, float] = (0.0, 1.0), name: str = "w"
) -> str:
    """The h×w grid of a view as a table of cells coloured over ``value_range``: with their values
    written in them up to 7×7 (:func:`tada_core.explain.viz.prints_values`), a heat map whose cells
    give their value on hover up to 14×14, and one line (size, mean, maximum) for a finer grid."""
    lo, hi = value_range
    values = np.asarray(grid, dtype=float)
    h, w = values.shape
    if values.size > GRID_TABLE_MAX_CELLS:
        return (
            f'<div class="tada-grid-summary">{html.escape(name)}: {h}×{w} map, mean {values.mean():.3f}, '
            f"max {values.max():.3f} (every value in the JSON)</div>"
        )
    written = prints_values(values.shape)
    decimals = 3 if float(np.abs(values).max()) < 0.1 else 2  # a fooled discriminator's w stays readable
    styles = _cell_styles(cmap)  # the colour of t is entry min(floor(t·N), N − 1), as in colormap_table
    index = np.minimum((np.clip((values - lo) / (hi - lo), 0.0, 1.0) * len(styles)).astype(np.intp), len(styles) - 1)
    cell = (
        '<td style="{style}">{value:.{decimals}f}</td>' if written else '<td style="{style}" title="{value:.3f}"></td>'
    )
    rows = [
        "<tr>"
        + "".join(
            cell.format(style=styles[i], value=value, decimals=decimals)
            for value, i in zip(row, row_index, strict=True)
        )
        + "</tr>"
        for row, row_index in zip(values.tolist(), index.tolist(), strict=True)
    ]
    caption = f"{html.escape(name)} per region ({h}×{w}), mean {float(np.mean(grid)):.{decimals}f}"
    kind = "tada-grid" if written else "tada-grid tada-heat"
    caption += "" if written else "; hover a cell for its value"
    return f'<table class="{kind}"><caption>{caption}</caption>{"".join(rows)}</table>'


def prediction_html(result: AttentionResult) -> str:
    """Predicted class, top-k bars, global attention m and P(source)."""
    bars = "".join(
        f'<div class="tada-topk"><span class="tada-topk-name">{html.escape(name)}</span>'
        f'<span class="tada-topk-bar"><span style="width:{100 * p:.1f}%"></span></span>'
        f'<span class="tada-topk-p">{p:.1%}</span></div>'
        for name, p in result.top_k
    )
    facts = []
    if result.global_attention is not None:
        facts.append(
            f'<span title="global attention m = 1 + H(d̂): 1 = the domain is obvious, 2 = indistinguishable">'
            f"m = <b>{result.global_attention:.3f}</b></span>"
        )
    if result.domain_prob is not None:
        facts.append(
            f'<span title="the global discriminator\'s P(source)">P(source) = <b>{result.domain_prob:.3f}</b></span>'
        )
    if not facts:
        facts.append("<span>no domain discriminator (source only)</span>")
    return (
        f'<div class="tada-pred"><div class="tada-pred-main">predicted <b>{html.escape(result.predicted)}</b> '
        f"({float(np.max(result.probs)):.1%})</div>{bars}"
        f'<div class="tada-facts">{" · ".join(facts)}</div></div>'
    )


def model_block_html(
    title: str,
    variant: str,
    result: AttentionResult,
    overlay: np.ndarray,
    options: dict,
    value_range: tuple[float, float] | None,
    gap_note: str | None = None,
    shift_note: str | None = None,
) -> str:
    """One checkpoint's view of one image: overlay of ``options["view"]`` (or a note why there is
    none), the grid with its values, the prediction."""
    view = options["view"]
    values = view_grid(result, view)
    if values is None or value_range is None:
        if view == "shift":
            why = shift_note or "no shift localiser for this checkpoint"
            note = f"<b>No shift map</b><br>{html.escape(why)}"
        elif view == "gap":
            why = gap_note or "no domain-gap probes for this checkpoint"
            note = f"<b>No domain-gap map</b><br>{html.escape(why)}"
        else:
            why = NO_LOCAL.get(variant, "this variant has no region discriminators")
            note = (
                f"<b>No local attention</b><br>{html.escape(why)}; only <code>tada</code> and "
                "<code>tada_local</code> checkpoints have attention and transferability maps (the domain-gap "
                "view works for every checkpoint)."
            )
        visual = f'<div class="tada-none"><div>{note}</div></div>'
        grid = ""
    else:
        low, high = range_text(value_range)
        scale = f"{SCALE_NAMES[options['scale']]} {low}–{high}"
        fitted = fit_note(result) if view == "shift" else None
        visual = (
            f'<figure class="tada-fig"><img alt="{html.escape(view)} overlay" class="tada-overlay" src="{data_uri(overlay)}">'
            f"<figcaption>{html.escape(view)} · {html.escape(options['mode'])} · alpha {options['alpha']:.2f} · "
            f"{html.escape(scale)}{f' · localiser {html.escape(fitted)}' if fitted else ''}</figcaption></figure>"
        )
        grid = grid_html(values, options["cmap"], value_range, view)
    return (
        f'<div class="tada-model"><div class="tada-model-name">{html.escape(title)} '
        f'<span class="tada-variant">{html.escape(variant)}</span></div>'
        f'<div class="tada-model-row">{visual}{grid}{prediction_html(result)}</div></div>'
    )


def card_html(label: str, role: str, image: np.ndarray, blocks: list[str]) -> str:
    """One input image with one block per checkpoint."""
    side = f"{image.shape[1]}×{image.shape[0]}"
    return (
        f'<div class="tada-card"><div class="tada-card-head"><span class="tada-badge tada-{role}">{role}</span>'
        f'{html.escape(label)}</div><div class="tada-card-body">'
        f'<figure class="tada-fig"><img alt="input" src="{data_uri(enlarge(image, 160))}">'
        f"<figcaption>input as the model sees it ({side})</figcaption></figure>"
        f'<div class="tada-models">{"".join(blocks)}</div></div></div>'
    )


def message_html(text: str, kind: str = "hint") -> str:
    return f'<div class="tada-message tada-{kind}">{html.escape(text)}</div>'


CSS = """
.tada-header h1 { margin-bottom: 0.1em; }
.tada-header p { margin-top: 0; opacity: 0.8; }
.tada-report { display: flex; flex-direction: column; gap: 14px; }
.tada-card { border: 1px solid var(--border-color-primary); border-radius: 10px; background: var(--block-background-fill);
  padding: 10px 12px; }
.tada-card-head { font-weight: 600; margin-bottom: 8px; display: flex; gap: 8px; align-items: center; }
.tada-badge { font-size: 0.75em; text-transform: uppercase; letter-spacing: 0.05em; padding: 2px 8px;
  border-radius: 999px; color: #fff; }
.tada-source { background: #d62728; }
.tada-target { background: #1f77b4; }
.tada-card-body { display: flex; gap: 14px; align-items: flex-start; flex-wrap: wrap; }
.tada-models { display: flex; gap: 14px; flex: 1; flex-wrap: wrap; }
.tada-model { flex: 1; min-width: 420px; border-left: 3px solid var(--color-accent); padding-left: 10px; }
.tada-model-name { font-weight: 600; margin-bottom: 6px; }
.tada-variant { font-weight: 400; font-size: 0.8em; padding: 1px 6px; border-radius: 6px;
  background: var(--background-fill-secondary); margin-left: 4px; }
.tada-model-row { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; }
.tada-fig { margin: 0; text-align: center; }
.tada-fig img { width: 160px; height: 160px; image-rendering: pixelated; border-radius: 6px; display: block; }
.tada-fig img.tada-overlay { width: auto; height: auto; max-width: 320px; max-height: 320px; min-width: 160px;
  image-rendering: auto; }
.tada-grid-summary { font-size: 0.8em; opacity: 0.8; max-width: 160px; }
.tada-estimate { font-size: 0.9em; opacity: 0.85; }
.tada-fig figcaption { font-size: 0.72em; opacity: 0.75; max-width: 170px; margin-top: 3px; }
.tada-none { width: 160px; height: 160px; box-sizing: border-box; border: 2px dashed var(--border-color-primary);
  border-radius: 6px; padding: 10px; font-size: 0.78em; line-height: 1.35; display: flex; align-items: center; }
.tada-none code { font-size: 0.95em; }
.tada-grid { border-collapse: collapse; font-size: 9.5px; font-variant-numeric: tabular-nums; }
.tada-grid td { width: 26px; height: 20px; text-align: center; padding: 0; border: 1px solid rgba(255,255,255,0.35); }
.tada-heat td { width: 11px; height: 11px; border: none; }
.tada-grid caption { font-size: 11px; opacity: 0.75; caption-side: bottom; padding-top: 3px; }
.tada-pred { min-width: 170px; font-size: 0.85em; }
.tada-pred-main { font-size: 1.1em; margin-bottom: 4px; }
.tada-topk { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.tada-topk-name { width: 3.5em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tada-topk-bar { flex: 1; height: 8px; background: var(--background-fill-secondary); border-radius: 4px; min-width: 60px; }
.tada-topk-bar span { display: block; height: 100%; background: var(--color-accent); border-radius: 4px; }
.tada-topk-p { width: 3.6em; text-align: right; font-variant-numeric: tabular-nums; }
.tada-facts { margin-top: 6px; }
.tada-colorbar { display: flex; align-items: center; gap: 6px; font-size: 0.8em; margin: 4px 0 8px; }
.tada-colorbar-bar { width: 220px; height: 12px; border-radius: 3px; }
.tada-colorbar em { opacity: 0.75; margin-left: 6px; }
.tada-message { padding: 10px 12px; border-radius: 8px; background: var(--background-fill-secondary); }
.tada-warning { border-left: 4px solid #e8a33d; }
.tada-progress { height: 18px; border-radius: 9px; background: var(--background-fill-secondary); overflow: hidden; }
.tada-progress > div { height: 100%; background: var(--color-accent); transition: width 0.5s; }
.tada-progress-text { font-size: 0.9em; margin-top: 4px; }
"""
