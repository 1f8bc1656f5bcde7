"""Attention tab: source and target images → per-region attention overlay, grid, prediction, m.

API ``/attention``: ``(checkpoint, compare_with, source_files, target_files, colormap, alpha,
mode, normalize)`` → ``(report HTML, overlay PNG gallery, values JSON)``. ``compare_with`` is a
second checkpoint name or ``"(none)"``; the JSON holds, per image and checkpoint, the
prediction, top-k, the grid w (h×w, in [0, 1], or null), m and P(source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from app.checkpoints import load_model
from app.context import AppContext
from app.render import COLORMAPS, card_html, colorbar_html, message_html, model_block_html, overlay_array
from app.ui import NONE, checkpoint_dropdown, file_paths, user_errors
from tada_core.data import load_image
from tada_core.errors import DataError
from tada_core.inference import predict_attention

MAX_IMAGES = 16  # per role
MAX_UPLOAD_BYTES = 50 * 2**20
TOP_K = 5


@dataclass
class AttentionTab:
    checkpoint: gr.Dropdown
    compare: gr.Dropdown


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


def attention_report(
    ctx: AppContext,
    checkpoint: str,
    compare_with: str | None,
    source_files,
    target_files,
    cmap: str,
    alpha: float,
    mode: str,
    normalize: bool,
) -> tuple[str, list, dict]:
    """Run the chosen checkpoint(s) on the images; return the HTML report, overlays and values."""
    if cmap not in COLORMAPS:
        raise DataError(f"unknown colormap '{cmap}'; choose one of {', '.join(COLORMAPS)}")
    if mode not in ("smooth", "blocky"):
        raise DataError(f"mode must be 'smooth' or 'blocky', not '{mode}'")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    items = [("source", *x) for x in read_uploads(file_paths(source_files), "source")]
    items += [("target", *x) for x in read_uploads(file_paths(target_files), "target")]
    if not items:
        raise DataError("no images: upload source and/or target images, or press 'Example images'")
    names = [checkpoint] + ([compare_with] if compare_with and compare_with not in (NONE, checkpoint) else [])
    options = {"cmap": cmap, "alpha": alpha, "mode": mode, "normalize": bool(normalize)}
    per_checkpoint = []
    for name in names:
        model, info = load_model(ctx.registry.resolve(name).path)
        per_checkpoint.append((name, info, predict_attention(model, info, [im for _, _, im in items], top_k=TOP_K)))
    cards, gallery, values = [], [], []
    for i, (role, file_name, _) in enumerate(items):
        blocks = []
        for name, info, results in per_checkpoint:
            result = results[i]
            overlay = overlay_array(result, **options)
            blocks.append(model_block_html(name, info.variant, result, overlay, options))
            note = f"pred {result.predicted}" if result.grid is not None else "no local attention"
            gallery.append((ctx.images.png(overlay), f"{role} · {file_name} · {name} · {note}"))
            values.append(
                {"role": role, "file": file_name, "checkpoint": name, "variant": info.variant, **result.to_dict()}
            )
        cards.append(card_html(file_name, role, per_checkpoint[0][2][i].image, blocks))
    if normalize:
        legend = colorbar_html(cmap, "min", "max", "local attention w, each map stretched to its own min–max")
    else:
        legend = colorbar_html(cmap, "0", "1", "local attention w, fixed scale 0–1")
    report = f'<div class="tada-report">{legend}{"".join(cards)}</div>'
    return report, gallery, {"options": options, "checkpoints": names, "results": values}


def build(ctx: AppContext) -> AttentionTab:
    names = ctx.registry.names()
    default = ctx.default_checkpoint()
    compare_default = ctx.compare_checkpoint() or NONE
    gr.Markdown(
        "Upload a few **source** and **target** images (or keep the examples) and press **Show attention**. "
        "Each image shows the per-region local attention w = 1 − H(d̂ᵏ) over it (the paper's eq. 3: high where "
        "that region's domain discriminator is confident), the raw "
        "7×7 grid, the prediction, the global attention m ∈ [1, 2] and the domain discriminator's P(source). "
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
                clear_btn = gr.Button("Clear images", size="sm", elem_id="attention-clear")
            with gr.Accordion("Display", open=True):
                cmap = gr.Dropdown(list(COLORMAPS), value="jet", label="Colormap")
                alpha = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay strength (alpha)")
                mode = gr.Radio(["smooth", "blocky"], value="smooth", label="Upsampling")
                normalize = gr.Checkbox(False, label="Normalise each map to its own min–max (else fixed 0–1)")
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

    inputs = [checkpoint, compare, source_files, target_files, cmap, alpha, mode, normalize]
    outputs = [report, gallery, values]

    @user_errors
    def attention(checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, normalize):
        return attention_report(ctx, checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, normalize)

    @user_errors
    def restyle(checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, normalize):
        if not file_paths(source_files) and not file_paths(target_files):
            return gr.skip(), gr.skip(), gr.skip()
        return attention(checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, normalize)

    run.click(attention, inputs, outputs, api_name="attention")
    for control in (cmap, mode, normalize, checkpoint, compare):
        control.input(restyle, inputs, outputs, api_visibility="private")
    alpha.release(restyle, inputs, outputs, api_visibility="private")
    examples_btn.click(
        lambda: (ctx.examples["source"], ctx.examples["target"]),
        None,
        [source_files, target_files],
        api_visibility="private",
    )
    clear_btn.click(
        lambda: (None, None, message_html("Upload images to see their attention.")),
        None,
        [source_files, target_files, report],
        api_visibility="private",
    )
    return AttentionTab(checkpoint=checkpoint, compare=compare)
