"""Model tab: the selected checkpoint's card — what it is, how it was trained, how well it does.

API ``/model_card``: ``checkpoint`` name → ``(card markdown, training curves, curves note,
model-card markdown, config JSON, estimate markdown, "Estimate now" button)``; the estimate is the
target accuracy estimated without labels that training stored in the checkpoint (with its
interval, the target's estimated class mix, what makes it uncertain, method and caveat). ``/model_estimate``: ``checkpoint`` → the estimate computed now on
the training target when it is on this server (for checkpoints that store none). A ``.safetensors`` file uploaded here is checked, stored in the visitor's
folder of the data folder (it comes back after a restart) and added to their checkpoint pickers;
anything else is refused with the loader's message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.plots import LOSS_KEYS, curves_image, read_metrics
from app.serving.checkpoints import Entry, load_model
from app.serving.context import AppContext
from app.serving.estimates import compute_for, estimate_markdown, stored_for
from app.serving.uploads import file_paths, keep_by_hash
from app.ui import IMAGE_BUTTONS, checkpoint_dropdown, owner_of, user_errors
from tada_core.checkpoint import read_checkpoint
from tada_core.data.archives import MAX_ZIP_BYTES
from tada_core.errors import CheckpointError
from tada_core.model.backbones import backbone_spec
from tada_core.model.inputs import image_size_for

VARIANT_TEXT = {
    "source_only": "source only — classification loss, no adaptation",
    "dann": "DANN — global domain adversary, no attention",
    "tada_local": "TADA local — region discriminators and local attention w",
    "tada_global": "TADA global — global adversary and attentive entropy with m",
    "tada": "TADA — local attention w and global attention m (the full method)",
}
SKIPPED_METRICS = (
    "step",
    "scores",
    "baselines",
    "estimated_target_accuracy",
    "estimate_interval",
    "estimate_uncertain",
    "estimate_seconds",
    "temperature",
)


@dataclass
class ModelTab:
    checkpoint: gr.Dropdown
    show: Callable  # checkpoint name -> outputs, for the page load
    outputs: list


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _fmt(key: str, value) -> str:
    if key.endswith("accuracy") and isinstance(value, (int, float)):
        return f"{value:.1f}%"  # evaluations report accuracy in %
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def card_markdown(entry: Entry) -> tuple[str, dict]:
    """A markdown table describing the checkpoint, and its config as a dict."""
    _, info = load_model(entry.path)  # cached: the Attention and Features tabs reuse it
    config = info.config
    spec = backbone_spec(config.backbone)
    side = image_size_for(config)
    grid = spec.grid_size(side)
    classes = ", ".join(info.class_names[:20]) + (" …" if len(info.class_names) > 20 else "")
    extra = info.extra
    steps = f"{extra['step']} of {extra.get('iters', extra['step'])}" if "step" in extra else "unknown"
    tc = config.train
    hyper = f"lr {tc.optim.lr:g}, batch {tc.batch_size}+{tc.batch_size}, λ {config.trade_off:g}, γ {config.gamma:g}, seed {tc.seed}"
    rows = [
        ("file", f"`{entry.path.name}` ({_size(entry.path)}, {entry.kind})"),
        ("variant", VARIANT_TEXT.get(config.variant, config.variant)),
        ("backbone", f"{config.backbone}, input {side}×{side}, {grid}×{grid} = {grid * grid} regions"),
        ("classes", f"{len(info.class_names)}: {classes}"),
        ("trained on", f"{Path(info.source).name or '?'} (source) → {Path(info.target).name or '?'} (target)"),
        ("steps", steps),
        ("hyper-parameters", hyper),
    ]
    metrics = dict(info.metrics)
    losses = [f"{key.replace('_', ' ')} {float(metrics.pop(key)):.3f}" for key in LOSS_KEYS if key in metrics]
    seconds = metrics.pop("seconds", None)
    rows += [(key.replace("_", " "), _fmt(key, value)) for key, value in metrics.items() if key not in SKIPPED_METRICS]
    if losses:
        rows.append(("mean losses (last interval)", " · ".join(losses)))
    if seconds is not None:
        rows.append(("training time", f"{float(seconds):.0f} s"))
    (head_key, head_value), *rest = rows
    table = "\n".join(f"| {key} | {value} |" for key, value in rest)
    return f"### {entry.name}\n\n| {head_key} | {head_value} |\n|---|---|\n{table}\n", config.to_dict()


def add_uploaded_checkpoint(ctx: AppContext, owner: str, source: Path) -> Entry:
    """Check an uploaded checkpoint, keep it in ``owner``'s folder named by its content hash, offer it
    (to them only) by its file name; it is found again after a restart.

    A bad file is refused before anything is stored. The name shown is the file's stem, with
    ``-2``, ``-3``, … when another checkpoint already has it; the same bytes uploaded again keep
    their first name.

    Raises:
        CheckpointError: not a ``.safetensors`` file, or one that does not read as a TADA checkpoint.
        StorageFullError: the visitor's storage is full.
    """
    if source.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{source.name} is not a .safetensors file; only safetensors checkpoints are accepted")
    read_checkpoint(source)  # raises a clear CheckpointError for every bad file
    ctx.storage.check_room(owner, source.stat().st_size)
    stored = keep_by_hash(source, ctx.storage.checkpoints(owner))
    name = ctx.registry.name_for(stored, owner)
    return ctx.registry.resolve(name, owner)


def build(ctx: AppContext) -> ModelTab:
    names = ctx.registry.names()
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            checkpoint = checkpoint_dropdown(names, ctx.default_checkpoint(), "Checkpoint", elem_id="model-checkpoint")
            upload = gr.File(label="Add a checkpoint (.safetensors)", file_types=[".safetensors"], height=110)
            gr.Markdown(
                "Checkpoints are `.safetensors` files written by `tada train` or this app; they hold no code, "
                "so opening one from a stranger is safe. Pickle files (`.pt`) are refused. An upload keeps its file "
                f"name (with -2, -3, … when the name is taken) and may be up to {MAX_ZIP_BYTES // 2**20} MiB."
            )
        with gr.Column(scale=3):
            card = gr.Markdown(elem_id="model-card")
            estimate_md = gr.Markdown(elem_id="model-estimate")
            estimate_button = gr.Button("Estimate now (on the training target)", size="sm", visible=False)
            curves = gr.Image(
                label="Training curves",
                format="png",
                interactive=False,
                elem_id="model-curves",
                buttons=IMAGE_BUTTONS,
                show_label=False,
            )
            curves_note = gr.Markdown()
            with gr.Accordion("Model card", open=True):
                model_card_md = gr.Markdown()
            with gr.Accordion("Config", open=False):
                config_json = gr.JSON(label="Config")

    @user_errors
    def model_card(checkpoint: str, request: gr.Request = None):
        entry = ctx.registry.resolve(checkpoint, owner_of(ctx, request))
        text, config = card_markdown(entry)
        records = read_metrics(entry.run_dir / "metrics.jsonl") if entry.run_dir else []
        if not records:
            records = read_metrics(entry.path.with_suffix(".metrics.jsonl"))
        note = (
            f"Curves from `{entry.run_dir.name}/metrics.jsonl` ({len(records)} evaluations)."
            if records and entry.run_dir
            else (
                "Curves from the metrics file beside the checkpoint."
                if records
                else "*No training curves: the run folder of this checkpoint is not known.*"
            )
        )
        card_text = entry.card.read_text() if entry.card else "*No model card beside this checkpoint.*"
        curves_png = curves_image(records, records, loss_title="mean losses between evaluations") if records else None
        image = ctx.images.png(curves_png) if curves_png is not None else None
        stored = stored_for(entry)
        return (
            text,
            gr.update(value=image, visible=image is not None),
            note,
            card_text,
            config,
            estimate_markdown(stored),
            gr.update(visible=stored is None),
        )

    @user_errors
    def model_estimate(checkpoint: str, request: gr.Request = None):
        entry = ctx.registry.resolve(checkpoint, owner_of(ctx, request))
        return estimate_markdown(compute_for(ctx, entry), computed=True)

    @user_errors
    def add_checkpoint(files, request: gr.Request = None):
        paths = file_paths(files)
        if not paths:
            return gr.skip()
        owner = owner_of(ctx, request)
        entry = add_uploaded_checkpoint(ctx, owner, Path(paths[0]))
        gr.Info(f"Added checkpoint {entry.name}.", duration=3)
        return gr.update(choices=ctx.registry.names(owner), value=entry.name)

    outputs = [card, curves, curves_note, model_card_md, config_json, estimate_md, estimate_button]
    checkpoint.change(model_card, checkpoint, outputs, api_name="model_card")
    estimate_button.click(model_estimate, checkpoint, estimate_md, api_name="model_estimate")
    upload.upload(add_checkpoint, upload, checkpoint, api_visibility="private")
    return ModelTab(checkpoint=checkpoint, show=model_card, outputs=outputs)
