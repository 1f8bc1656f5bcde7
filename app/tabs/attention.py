"""Attention tab: source and target images → a per-region view as overlay and grid, prediction, m.

API ``/attention``: ``(checkpoint, compare_with, source_files, target_files, colormap, alpha,
mode, view, scale)`` → ``(report HTML, overlay PNG gallery, values JSON)``. ``compare_with`` is a
second checkpoint name or ``"(none)"``; ``view`` is ``shift`` (where the target differs: the shared
region scorer of :mod:`tada_core.explain.shift`, the only view that meets the localisation goal on the
benchmark), ``gap``, ``attention`` or ``transferability``; the page picks each checkpoint's default
view (:func:`app.serving.shift.default_view_for`) when the checkpoint changes. ``scale`` is
``shared`` (one range fitted to every map of the request, the default), ``fixed`` or ``image``. The
JSON holds, per image and checkpoint, the prediction, top-k, the grid w (h×w, in [0, 1], or null),
the grids of every view it computed (the gap probes run only for the gap view; the shift view
whenever its localiser is ready), the colour range used, m, P(source) and ``unfamiliar``: null, or why the
image is far from what that checkpoint was trained on (:mod:`tada_core.explain.familiarity`).

The page (not the API) also outlines the planted artefact of the shift examples when "ground truth"
is ticked (:mod:`app.serving.ground_truth`), shows the inputs as thumbnails, opens on the result of
the example images, and names the checkpoint's label-free accuracy estimate above the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.render import COLORMAPS, message_html
from app.serving.context import AppContext
from app.serving.estimates import estimate_line_for
from app.serving.shift import default_view_for
from app.serving.uploads import file_paths
from app.tabs.attention_report import (
    DEFAULT_VIEW,
    attention_report,
    emoji_checkpoint,
    emoji_examples,
    photo_checkpoint,
    photo_examples,
    shift_checkpoint,
    shift_examples,
)
from app.ui import NONE, checkpoint_dropdown, owner_of, user_errors
from tada_core.errors import TadaError

VIEW_CHOICES = [
    ("where the target differs (shift)", "shift"),
    ("domain gap: probe P(target)", "gap"),
    ("attention w", "attention"),
    ("transferability 1 − w", "transferability"),
]


@dataclass
class AttentionTab:
    checkpoint: gr.Dropdown
    compare: gr.Dropdown


def _opening(ctx: AppContext, checkpoint: str | None, compare: str, view: str) -> tuple[str, list, dict | None]:
    """The report of the example images the page opens on (a message instead when they fail)."""
    if not checkpoint or not (ctx.examples["source"] or ctx.examples["target"]):
        return message_html("Upload images and press “Show attention”."), [], None
    try:
        return attention_report(
            ctx, checkpoint, compare, ctx.examples["source"], ctx.examples["target"], "jet", 0.5, "smooth", view
        )
    except (TadaError, OSError, RuntimeError) as err:
        return message_html(f"Press “Show attention” to see the example images ({err})."), [], None


def _estimate_md(ctx: AppContext, name: str | None, owner: str | None) -> str:
    if not name:
        return ""
    try:
        return (
            f"**Accuracy on its target (label-free estimate):** {estimate_line_for(ctx.registry.resolve(name, owner))}"
        )
    except TadaError as err:
        return f"No accuracy estimate: {err}"


def _view_for(ctx: AppContext, name: str | None, owner: str | None) -> str:
    try:
        return default_view_for(ctx, ctx.registry.resolve(name, owner)) if name else DEFAULT_VIEW
    except TadaError:
        return "attention"


def _thumbnails(files) -> list[str]:
    return file_paths(files)


def _image_inputs(ctx: AppContext, role: str) -> tuple[gr.File, gr.Gallery]:
    """The upload box of one domain's images and, under it, their thumbnails (kept in step by
    ``_thumbnails``)."""
    files = gr.File(
        value=ctx.examples[role] or None,
        file_count="multiple",
        file_types=["image"],
        label=f"{role.capitalize()} images",
        elem_id=f"attention-{role}",
        height=110,
    )
    thumbs = gr.Gallery(
        value=ctx.examples[role] or None,
        label=f"{role.capitalize()} images",
        show_label=False,
        columns=8,
        height=80,
        object_fit="contain",
        allow_preview=False,
        interactive=False,
        elem_id=f"attention-{role}-thumbs",
    )
    return files, thumbs


def build(ctx: AppContext) -> AttentionTab:
    names = ctx.registry.names()
    default = ctx.default_checkpoint()
    compare_default = ctx.compare_checkpoint() or NONE
    opening_view = _view_for(ctx, default, None)
    opening = _opening(ctx, default, compare_default, opening_view)
    gr.Markdown(
        "Upload a few **source** and **target** images (or keep the examples) and press **Show attention**. "
        "Each image shows one map over it at its own shape, the prediction, the global attention m ∈ [1, 2] "
        "and the domain discriminator's P(source). Views: **where the target differs (shift)** (the default "
        "wherever a checkpoint has it) — a scorer shared by all regions, fitted after training on the frozen "
        "features: high where nothing like this part of the image occurs in the source domain; the only view "
        "that finds planted artefacts on the benchmark (the colour bar's caption gives its measured AUC); "
        "**domain gap** — linear probes per region, P(target); **attention w** = 1 − H₂(d̂ᵏ) — what the model "
        "multiplies each region by, (1 + w) (eq. 3–4), ≈ 0 wherever a region discriminator is fooled; "
        "**transferability** H₂(d̂ᵏ) = 1 − w. **Shift examples** loads a pair whose targets carry a planted "
        "text label; tick **ground truth** to outline it. **Emoji examples**: the same emojis drawn by "
        "Twemoji (source) and Noto (target), with the shipped Twemoji → Noto model. Pick a second checkpoint "
        "to compare side by side."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            checkpoint = checkpoint_dropdown(names, default, "Checkpoint")
            compare = checkpoint_dropdown(names, compare_default, "Compare with", allow_none=True)
            source_files, source_thumbs = _image_inputs(ctx, "source")
            target_files, target_thumbs = _image_inputs(ctx, "target")
            with gr.Row():
                examples_btn = gr.Button("Example images", size="sm", elem_id="attention-examples")
                photos_btn = gr.Button("Photo examples", size="sm", elem_id="attention-photo-examples")
                emoji_btn = gr.Button("Emoji examples", size="sm", elem_id="attention-emoji-examples")
                shift_btn = gr.Button("Shift examples", size="sm", elem_id="attention-shift-examples")
                clear_btn = gr.Button("Clear images", size="sm", elem_id="attention-clear")
            view = gr.Radio(VIEW_CHOICES, value=opening_view, label="View", elem_id="attention-view")
            truth = gr.Checkbox(
                value=True,
                label="ground truth: outline the planted artefact of the shift examples",
                elem_id="attention-truth",
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
            run = gr.Button("Show attention", variant="primary", elem_id="attention-run")
            api_run = gr.Button("attention (API)", visible=False)
        with gr.Column(scale=3):
            estimate = gr.Markdown(_estimate_md(ctx, default, None), elem_id="attention-estimate")
            report = gr.HTML(opening[0], elem_id="attention-report")
            with gr.Accordion("Overlay PNGs", open=False):
                gallery = gr.Gallery(
                    value=opening[1] or None,
                    label="Overlays",
                    format="png",
                    columns=8,
                    height="auto",
                    elem_id="attention-gallery",
                    buttons=["download", "download_all", "fullscreen"],
                )
            with gr.Accordion("Values (JSON)", open=False):
                values = gr.JSON(value=opening[2], label="Values")

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
    def attention_page(
        checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale, truth, request=None
    ):
        owner = owner_of(ctx, request)
        args = (checkpoint, compare_with, source_files, target_files, cmap, alpha, mode, view, scale)
        return attention_report(ctx, *args, owner, truth=truth)

    def restyle(*args, request: gr.Request = None):
        source_files, target_files = args[2], args[3]
        if not file_paths(source_files) and not file_paths(target_files):
            return gr.skip(), gr.skip(), gr.skip()
        return attention_page(*args, request=request)

    def on_checkpoint(checkpoint, *rest, request: gr.Request = None):
        """A new checkpoint: its default view, its estimate, then the report in that view."""
        owner = owner_of(ctx, request)
        picked = _view_for(ctx, checkpoint, owner)
        args = [checkpoint, *rest]
        args[7] = picked
        return (gr.update(value=picked), _estimate_md(ctx, checkpoint, owner), *restyle(*args, request=request))

    page_inputs = [*inputs, truth]
    api_run.click(attention, inputs, outputs, api_name="attention")
    run.click(attention_page, page_inputs, outputs, api_visibility="private")
    for control in (cmap, mode, view, scale, compare, truth):
        control.input(restyle, page_inputs, outputs, api_visibility="private")
    alpha.release(restyle, page_inputs, outputs, api_visibility="private")
    checkpoint.input(on_checkpoint, page_inputs, [view, estimate, *outputs], api_visibility="private")
    source_files.change(_thumbnails, source_files, source_thumbs, api_visibility="private")
    target_files.change(_thumbnails, target_files, target_thumbs, api_visibility="private")
    examples_btn.click(
        lambda: (ctx.examples["source"], ctx.examples["target"]),
        None,
        [source_files, target_files],
        api_visibility="private",
    )

    def show_set(examples: dict[str, list[str]], found: str | None) -> tuple:
        """An example set, with its shipped checkpoint selected (its default view, its estimate) when
        there is one; the report waits for “Show attention”."""
        if not found:
            return examples["source"], examples["target"], gr.skip(), gr.skip(), gr.skip(), gr.skip()
        view_update = gr.update(value=_view_for(ctx, found, None))
        return (
            examples["source"],
            examples["target"],
            gr.update(value=found),
            NONE,
            view_update,
            _estimate_md(ctx, found, None),
        )

    set_outputs = [source_files, target_files, checkpoint, compare, view, estimate]
    photos_btn.click(
        lambda: show_set(photo_examples(), photo_checkpoint(ctx.registry.names())),
        None,
        set_outputs,
        api_visibility="private",
    )
    emoji_btn.click(
        lambda: show_set(emoji_examples(), emoji_checkpoint(ctx.registry.names())),
        None,
        set_outputs,
        api_visibility="private",
    )

    def show_shift(*args, request: gr.Request = None):
        """The shift examples with the shift checkpoint, its default view, its estimate and the report."""
        examples = shift_examples()
        found = shift_checkpoint(ctx.registry.names(owner_of(ctx, request))) or args[0]
        args = [found, NONE, examples["source"], examples["target"], *args[4:]]
        view_update, estimate_md, *result = on_checkpoint(*args, request=request)
        return (examples["source"], examples["target"], gr.update(value=found), NONE, view_update, estimate_md, *result)

    shift_btn.click(
        show_shift,
        page_inputs,
        [source_files, target_files, checkpoint, compare, view, estimate, *outputs],
        api_visibility="private",
    )
    clear_btn.click(
        lambda: (None, None, message_html("Upload images to see their attention.")),
        None,
        [source_files, target_files, report],
        api_visibility="private",
    )
    return AttentionTab(checkpoint=checkpoint, compare=compare)
