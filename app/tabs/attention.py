"""Attention tab: source and target images → a per-region view as overlay and grid, prediction, m.

API ``/attention``: ``(checkpoint, compare_with, source_files, target_files, colormap, alpha,
mode, view, scale)`` → ``(report HTML, overlay PNG gallery, values JSON)``. ``compare_with`` is a
second checkpoint name or ``"(none)"``; ``view`` is ``attention``, ``transferability`` or ``gap``
(default ``attention``: the one that shows structure on every example of the shipped model. Its
region discriminators are nearly fooled, so w is small, 0–0.04, but it varies across the regions
of each image; the domain gap saturates at P(target) ≈ 1 in every region of most MNIST-M images,
because the frozen region features still separate the domains everywhere); ``scale`` is ``shared`` (one range fitted to every map of the
request, the default), ``fixed`` or ``image``. The JSON holds, per image and checkpoint, the
prediction, top-k, the grid w (h×w, in [0, 1], or null), the grids of all three views, the colour
range used, m, P(source) and ``unfamiliar``: null, or why the image is far from what that
checkpoint was trained on (:mod:`tada_core.explain.familiarity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from app.render import COLORMAPS, card_html, colorbar_html, message_html, model_block_html
from app.serving.checkpoints import load_model
from app.serving.context import AppContext
from app.serving.familiarity import upload_notes
from app.serving.uploads import file_paths
from app.ui import NONE, checkpoint_dropdown, owner_of, user_errors
from tada_core.data import load_image
from tada_core.errors import DataError
from tada_core.explain.gap import GapError, RegionProbes, checkpoint_gap
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import view_grid
from tada_core.explain.views import SCALE_NAMES, VIEWS, check_view, range_text, value_ranges
from tada_core.explain.viz import overlay_view

PHOTO_EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "photos"
MAX_IMAGES = 16  # per role
MAX_UPLOAD_BYTES = 50 * 2**20
TOP_K = 5
DEFAULT_VIEW = "attention"


@dataclass
class AttentionTab:
    checkpoint: gr.Dropdown
    compare: gr.Dropdown


def photo_examples(folder: Path = PHOTO_EXAMPLES_DIR) -> dict[str, list[str]]:
    """The photo-pair example JPEGs by role (``source_<class>.jpg``, ``target_<class>.jpg``)."""
    return {role: [str(p) for p in sorted(folder.glob(f"{role}_*.jpg"))] for role in ("source", "target")}


def photo_checkpoint(names: list[str]) -> str | None:
    """The first checkpoint trained on the photo pair (its name mentions photos), if any."""
    return next((n for n in names if "photos" in n and not n.startswith("source_only")), None)


def read_uploads(paths: list[str], role: str) -> list[tuple[str, Image.Image]]:
    """Decode uploaded images; a clear DataError names the file that is not an image."""
    if len(paths) > MAX_IMAGES:
        raise DataError(f"{len(paths)} {role} images uploaded; the app shows at most {MAX_IMAGES} per domain")
    images = []
    for path in paths:
        name = Path(path).name
        try:
            if Path(path).stat().st_size > MAX_UPLOAD_BYTES:
                raise DataError(f"it is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; upload a smaller PNG or JPEG")
            images.append((name, load_image(Path(path).read_bytes())))
        except DataError as err:
            raise DataError(f"{role} image '{name}': {err}") from None
        except OSError as err:
            raise DataError(f"{role} image '{name}' cannot be read ({err.strerror})") from None
    return images


def _probes(ctx: AppContext, path: Path) -> tuple[RegionProbes | None, str | None]:
    """The checkpoint's domain-gap probes (fitted once, then cached), or None and why not."""
    try:
        return checkpoint_gap(path, data_root=str(ctx.domains.data_root)), None
    except GapError as err:
        return None, str(err)


def _legend(cmap: str, view: str, scale: str, ranges: list[tuple[float, float] | None]) -> str:
    spec = VIEWS[view]
    label = f"{spec.label} — {spec.meaning} · {SCALE_NAMES[scale]}"
    present = [r for r in ranges if r is not None]
    if scale == "image" or not present:
        return colorbar_html(cmap, "min", "max", label)
    return colorbar_html(cmap, *range_text(present[0]), label)


def attention_report(
    ctx: AppContext,
    checkpoint: str,
    compare_with: str | None,
    source_files,
    target_files,
    cmap: str,
    alpha: float,
    mode: str,
    view: str = DEFAULT_VIEW,
    scale: str = "shared",
    owner: str | None = None,
) -> tuple[str, list, dict]:
    """Run the chosen checkpoint(s) on the images; return the HTML report, overlays and values.

    All maps of the request share one colour range under the ``shared`` scale (fitted to their
    values), so source and target images and both checkpoints stay comparable.
    """
    if cmap not in COLORMAPS:
        raise DataError(f"unknown colormap '{cmap}'; choose one of {', '.join(COLORMAPS)}")
    if mode not in ("smooth", "blocky"):
        raise DataError(f"mode must be 'smooth' or 'blocky', not '{mode}'")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    spec = check_view(view, scale)
    items = [("source", *x) for x in read_uploads(file_paths(source_files), "source")]
    items += [("target", *x) for x in read_uploads(file_paths(target_files), "target")]
    if not items:
        raise DataError("no images: upload source and/or target images, or press 'Example images'")
    names = [checkpoint] + ([compare_with] if compare_with and compare_with not in (NONE, checkpoint) else [])
    options = {"view": view, "scale": scale, "cmap": cmap, "alpha": alpha, "mode": mode}
    images = [im for _, _, im in items]
    per_checkpoint, notes = [], []
    for name in names:
        path = ctx.registry.resolve(name, owner).path
        model, info = load_model(path)
        probes, gap_note = _probes(ctx, path)
        results = predict_attention(model, info, images, top_k=TOP_K, probes=probes)
        per_checkpoint.append((name, info, results, gap_note))
        notes.append(upload_notes(path, model, info, images))  # None, or why the image is unfamiliar
    grids = [view_grid(result, view) for _, _, results, _ in per_checkpoint for result in results]
    ranges = value_ranges(grids, scale, spec.fixed_range)  # checkpoint-major, like grids
    cards, gallery, values, warnings = [], [], [], []
    for i, (role, file_name, _) in enumerate(items):
        blocks = []
        for c, ((name, info, results, gap_note), unfamiliar) in enumerate(zip(per_checkpoint, notes, strict=True)):
            result, value_range = results[i], ranges[c * len(items) + i]
            if unfamiliar[i]:
                warnings.append(message_html(f"{role} image '{file_name}' on {name}: {unfamiliar[i]}.", "warning"))
            overlay = overlay_view(result, view=view, value_range=value_range, cmap=cmap, alpha=alpha, mode=mode)
            blocks.append(model_block_html(name, info.variant, result, overlay, options, value_range, gap_note))
            note = f"pred {result.predicted}" if value_range is not None else f"no {view} map"
            gallery.append((ctx.images.png(overlay), f"{role} · {file_name} · {name} · {view} · {note}"))
            values.append(
                {
                    "role": role,
                    "file": file_name,
                    "checkpoint": name,
                    "variant": info.variant,
                    **result.to_dict(),
                    "value_range": list(value_range) if value_range else None,
                    "gap_note": gap_note,
                    "unfamiliar": unfamiliar[i],
                }
            )
        cards.append(card_html(file_name, role, per_checkpoint[0][2][i].image, blocks))
    legend = _legend(cmap, view, scale, ranges)
    report = f'<div class="tada-report">{"".join(warnings)}{legend}{"".join(cards)}</div>'
    return report, gallery, {"options": options, "checkpoints": names, "results": values}


def build(ctx: AppContext) -> AttentionTab:
    names = ctx.registry.names()
    default = ctx.default_checkpoint()
    compare_default = ctx.compare_checkpoint() or NONE
    gr.Markdown(
        "Upload a few **source** and **target** images (or keep the examples) and press **Show attention**. "
        "Each image shows one per-region view over it, the raw 7×7 grid, the prediction, the global attention "
        "m ∈ [1, 2] and the domain discriminator's P(source). Views: **attention w** (default) = 1 − H₂(d̂ᵏ) — "
        "what the model multiplies each region by, (1 + w) (eq. 3–4), ≈ 0 wherever a region discriminator is "
        "fooled (the colour bar gives the range the shared scale fitted); **transferability** H₂(d̂ᵏ) = 1 − w — "
        "1 where it cannot tell the domains apart; **domain gap** — linear probes fitted after training on the "
        "frozen region features fᵏ, P(target) per region: high where the region still looks like the target "
        "domain (every checkpoint has one). "
        "Pick a second checkpoint to compare the same images side by side."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            checkpoint = checkpoint_dropdown(names, default, "Checkpoint")
            compare = checkpoint_dropdown(names, compare_default, "Compare with", allow_none=True)
            source_files = gr.File(
                value=ctx.examples["source"] or None,
                file_count="multiple",
                file_types=["image"],
                label="Source images",
                elem_id="attention-source",
                height=150,
            )
            target_files = gr.File(
                value=ctx.examples["target"] or None,
                file_count="multiple",
                file_types=["image"],
                label="Target images",
                elem_id="attention-target",
                height=150,
            )
            with gr.Row():
                examples_btn = gr.Button("Example images", size="sm", elem_id="attention-examples")
                photos_btn = gr.Button("Photo examples", size="sm", elem_id="attention-photo-examples")
                clear_btn = gr.Button("Clear images", size="sm", elem_id="attention-clear")
            view = gr.Radio(
                [
                    ("attention w", "attention"),
                    ("transferability 1 − w", "transferability"),
                    ("domain gap: probe P(target)", "gap"),
                ],
                value=DEFAULT_VIEW,
                label="View",
                elem_id="attention-view",
            )
            scale = gr.Radio(
                [("shared, fitted to all maps", "shared"), ("fixed 0–1", "fixed"), ("each map min–max", "image")],
                value="shared",
                label="Colour scale",
                elem_id="attention-scale",
            )
            with gr.Accordion("Display", open=True):
                cmap = gr.Dropdown(list(COLORMAPS), value="jet", label="Colormap")
                alpha = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay strength (alpha)")
                mode = gr.Radio(["smooth", "blocky"], value="smooth", label="Upsampling")
            run = gr.Button("Show attention", variant="primary")
        with gr.Column(scale=3):
            report = gr.HTML(
                message_html("Press “Show attention” to see the attention maps of the example images."),
                elem_id="attention-report",
            )
            with gr.Accordion("Overlay PNGs", open=False):
                gallery = gr.Gallery(
                    label="Overlays",
                    format="png",
                    columns=8,
                    height="auto",
                    elem_id="attention-gallery",
                    buttons=["download", "download_all", "fullscreen"],
                )
            with gr.Accordion("Values (JSON)", open=False):
                values = gr.JSON(label="Values")

    inputs = [checkpoint, compare, source_files, target_files, cmap, alpha, mode, view, scale]
    outputs = [report, gallery, values]

    @user_errors
    def attention(
        checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale, request: gr.Request = None
    ):
        owner = owner_of(ctx, request)
        return attention_report(
            ctx, checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale, owner
        )

    @user_errors
    def restyle(
        checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale, request: gr.Request = None
    ):
        if not file_paths(source_files) and not file_paths(target_files):
            return gr.skip(), gr.skip(), gr.skip()
        args = (checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale)
        return attention(*args, request=request)

    run.click(attention, inputs, outputs, api_name="attention")
    for control in (cmap, mode, view, scale, checkpoint, compare):
        control.input(restyle, inputs, outputs, api_visibility="private")
    alpha.release(restyle, inputs, outputs, api_visibility="private")
    examples_btn.click(
        lambda: (ctx.examples["source"], ctx.examples["target"]),
        None,
        [source_files, target_files],
        api_visibility="private",
    )

    def show_photos():
        """The photo examples, with the shipped photo checkpoint selected when there is one."""
        found = photo_checkpoint(ctx.registry.names())
        examples = photo_examples()
        picked = (gr.update(value=found), NONE) if found else (gr.skip(), gr.skip())
        return examples["source"], examples["target"], *picked

    photos_btn.click(show_photos, None, [source_files, target_files, checkpoint, compare], api_visibility="private")
    clear_btn.click(
        lambda: (None, None, message_html("Upload images to see their attention.")),
        None,
        [source_files, target_files, report],
        api_visibility="private",
    )
    return AttentionTab(checkpoint=checkpoint, compare=compare)
