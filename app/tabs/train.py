"""Train tab: pick domains and hyper-parameters, start / stop your job, watch it learn, download it.

Each visitor has at most one job, running or waiting in the server's queue, and only sees and stops
their own (:mod:`app.serving.jobs`). API ``/train_start`` (the form's values, zips optional) → the
job's status JSON, or an error when the visitor already has a job, the queue is full or a value is
over this server's budget; ``/train_status`` → the status JSON; ``/train_stop`` → the status JSON
(the job saves ``last.safetensors`` and ends as ``stopped``). A ``gr.Timer`` polls the visitor's
job, so a reload or a closed browser changes nothing; the finished checkpoint can be downloaded
with its model card.
"""

from __future__ import annotations

import html
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.plots import curves_image
from app.serving.bundle import checkpoint_bundle
from app.serving.context import AppContext
from app.serving.jobs import ACTIVE, Job
from app.serving.train_form import DEVICES, start_job
from app.ui import IMAGE_BUTTONS, owner_of, user_errors
from tada_core.config import VARIANTS, OptimConfig, TADAConfig, TrainConfig
from tada_core.data.archives import MAX_ZIP_BYTES
from tada_core.model.backbones import list_backbones
from tada_core.training.photo_defaults import PHOTO_BACKBONES, with_photo_defaults

POLL_SECONDS = 1.0
CURVES_MIN_INTERVAL_S = 2.0
CURVES_CACHED_JOBS = 16
_curves_cache: OrderedDict[str, tuple] = OrderedDict()  # job id -> (version, PNG path, time)
_curves_lock = threading.Lock()


def training_curves(ctx: AppContext, job: Job) -> str:
    """The job's curves as a stored PNG, rendered once per change for all its pages, at most every 2 s
    while it runs; the last few jobs' are remembered."""
    with _curves_lock:
        last = _curves_cache.get(job.id)
        if (
            last is not None
            and Path(last[1]).is_file()
            and (  # an unused file is swept after an hour
                last[0] == job.version or (job.status in ACTIVE and time.time() - last[2] < CURVES_MIN_INTERVAL_S)
            )
        ):
            return last[1]
        path = ctx.images.png(curves_image(job.losses, job.evals))
        _curves_cache[job.id] = (job.version, path, time.time())
        _curves_cache.move_to_end(job.id)
        while len(_curves_cache) > CURVES_CACHED_JOBS:
            _curves_cache.popitem(last=False)
        return path


@dataclass
class TrainTab:
    source: gr.Dropdown
    target: gr.Dropdown


def _headline(ctx: AppContext, job: Job | None, owner: str) -> str:
    if job is None:
        return "**No training job yet.** Pick the domains and press **Start training**."
    status = ctx.jobs.status(owner)
    tc = job.config.train
    what = f"{job.config.variant} ({job.config.backbone}) · {job.source_name} → {job.target_name}"
    if job.status == "queued":
        position, wait = status["queue_position"], ""
        return f"**Waiting for a free slot** · {what} · {position} in line{wait} (it starts by itself)"
    accuracy, estimated = status["target_accuracy"], status["estimated_target_accuracy"]
    best_text = f" · target accuracy **{accuracy:.1f}%**" if accuracy is not None else ""
    if estimated is not None:
        low, high = status["estimate_interval"]
        best_text += f" · estimated without labels **{estimated:.1f}%** ({low:.0f}–{high:.0f})"
    if status["best_step"] is not None:
        best_text += f" · best (chosen without target labels): step {status['best_step']}"
    if job.status in ACTIVE and status["phase"]:  # e.g. "calibrate 1,200/3,400 images · 0:05 left"
        phase = status["phase"]["text"]
        where = phase if status["phase"]["phase"] == "steps" else f"step {job.step}/{tc.iters} · {phase}"
        return f"**{job.status.capitalize()}** · {what} · {where}{best_text}"
    if job.status in ACTIVE:
        eta = f" · about {status['eta_s']:.0f} s left" if status["eta_s"] is not None else ""
        return f"**{job.status.capitalize()}** · {what} · step {job.step}/{tc.iters}{eta}{best_text}"
    if job.status == "failed":
        return f"**Failed** · {what} · {job.error}"
    name = ctx.registry.name_for(job.checkpoint, owner) if job.checkpoint else None
    where = f" · checkpoint **{name}** is now in your checkpoint pickers" if name else ""
    return f"**{job.status.capitalize()}** · {what} · {job.step}/{tc.iters} steps in {status['elapsed_s']:.0f} s{best_text}{where}"


def _progress_html(job: Job | None) -> str:
    if job is None:
        return '<div class="tada-progress"><div style="width:0%"></div></div>'
    fraction = job.step / max(1, job.config.train.iters)
    if job.phase and job.status in ACTIVE:  # the current phase (encode, steps, calibrate, localiser), time left
        fraction = min(1.0, job.phase["done"] / max(1, job.phase["total"]))
        return (
            f'<div class="tada-progress" role="progressbar" aria-valuenow="{100 * fraction:.0f}" '
            f'aria-valuemin="0" aria-valuemax="100"><div style="width:{100 * fraction:.1f}%"></div></div>'
            f'<div class="tada-progress-text" id="train-progress-text">{html.escape(job.phase["text"])} '
            f"({fraction:.0%}) · {job.status}</div>"
        )
    if job.step == 0 and job.encode_total and job.status in ACTIVE:
        fraction = job.encoded / job.encode_total
        return (
            f'<div class="tada-progress" role="progressbar" aria-valuenow="{100 * fraction:.0f}" '
            f'aria-valuemin="0" aria-valuemax="100"><div style="width:{100 * fraction:.1f}%"></div></div>'
            f'<div class="tada-progress-text" id="train-progress-text">encoding {job.encoded} / '
            f"{job.encode_total} images once with the frozen backbone ({fraction:.0%})</div>"
        )
    return (
        f'<div class="tada-progress" role="progressbar" aria-valuenow="{100 * fraction:.0f}" '
        f'aria-valuemin="0" aria-valuemax="100"><div style="width:{100 * fraction:.1f}%"></div></div>'
        f'<div class="tada-progress-text" id="train-progress-text">{job.step} / {job.config.train.iters} steps '
        f"({fraction:.0%}) · {job.status}</div>"
    )


def budget_text(ctx: AppContext) -> str:
    """This server's limits, shown under the form."""
    load = ctx.jobs.server_load()
    parts = [f"{load['max_running']} job(s) train at once, {load['max_queued']} more may wait"]
    if load["max_steps"]:
        parts.append(f"at most {load['max_steps']:,} iterations per job")
    if load["max_minutes"]:
        parts.append(f"at most {load['max_minutes']:g} min of training per job")
    quota = ctx.storage.quota_bytes / 2**20
    parts.append(f"{quota:.0f} MiB of storage per visitor, kept {ctx.storage.max_age_s / 86400:g} days")
    return "*This server: " + "; ".join(parts) + ". One job per visitor.*"


def download_update(ctx: AppContext, job: Job) -> dict:
    """The download button of a finished or stopped job's checkpoint (a zip with its model card)."""
    if job.status in ACTIVE or job.checkpoint is None or not job.checkpoint.is_file():
        return gr.update(visible=False)
    return gr.update(value=str(checkpoint_bundle(job.checkpoint)), visible=True)


def photo_form_defaults(backbone: str) -> tuple:
    """Choosing efficientnet_lite0 fills in the photo defaults (tada_core/training/photo_defaults.py)."""
    if backbone not in PHOTO_BACKBONES:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    train = with_photo_defaults({"backbone": backbone, "pretrained": True})["train"]
    return True, train["iters"], train["batch_size"], train["eval_every"]


def build(ctx: AppContext) -> TrainTab:
    domains = ctx.domains.choices()
    gr.Markdown(
        "Adapt a classifier from a labelled **source** to an unlabelled **target** domain. Your job trains in its "
        "own process (only you see it; when the server is busy it waits its turn); the finished checkpoint appears "
        "in your checkpoint pickers and can be downloaded. Domains: built-in names, folders under the data root, or a zip (the source: class folders; the "
        "target: class folders or just images — its labels, if any, only report accuracy). For your own "
        "photos choose the backbone **efficientnet_lite0**: ImageNet weights, frozen and cached, a few minutes "
        "on a CPU (try the built-in pair photos → photos-sketch)."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            source = gr.Dropdown(domains, value="mnist", label="Source domain (labelled)", allow_custom_value=True)
            target = gr.Dropdown(domains, value="mnistm", label="Target domain (unlabelled)", allow_custom_value=True)
            target_unlabelled = gr.Checkbox(
                False,
                label="Use the target without its labels",
                info="A target with class folders is read without them (its accuracy is then not reported)",
            )
            with gr.Accordion(f"…or upload zips (up to {MAX_ZIP_BYTES // 2**20} MiB)", open=False):
                source_zip = gr.File(label="Source zip: one folder per class", file_types=[".zip"], height=120)
                target_zip = gr.File(
                    label="Target zip: just the images (or class folders)", file_types=[".zip"], height=120
                )
            with gr.Row():
                variant = gr.Dropdown(list(VARIANTS), value="tada", label="Variant")
                backbone = gr.Dropdown(list_backbones(), value="lenet", label="Backbone")
            with gr.Row():
                iters = gr.Number(TrainConfig.iters, precision=0, label="Iterations", minimum=1, elem_id="train-iters")
                batch_size = gr.Number(
                    TrainConfig.batch_size, precision=0, label="Batch (per domain)", minimum=1, elem_id="train-batch"
                )
            with gr.Row():
                lr = gr.Number(OptimConfig.lr, label="Learning rate")
                trade_off = gr.Number(TADAConfig.trade_off, label="λ (adversarial weight)")
                gamma = gr.Number(TADAConfig.gamma, label="γ (entropy weight)")
            with gr.Accordion("Advanced", open=False):
                with gr.Row():
                    eval_every = gr.Number(
                        0, precision=0, label="Evaluate every (0: iterations / 10)", elem_id="train-eval-every"
                    )
                    eval_max = gr.Number(
                        1000, precision=0, label="Evaluation images per domain (0: all)", elem_id="train-eval-max"
                    )
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="Seed")
                    device = gr.Dropdown(list(DEVICES), value="auto", label="Device")
                pretrained = gr.Checkbox(
                    False, label="ImageNet weights (efficientnet_lite0: offline; ResNets: must already be cached)"
                )
                fine_tune = gr.Checkbox(
                    False,
                    label="Fine-tune the backbone (efficientnet_lite0 with ImageNet weights is frozen and cached "
                    "by default: minutes on a CPU instead of hours)",
                )
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
            gr.Markdown(budget_text(ctx), elem_id="train-budget")
            download = gr.DownloadButton(
                "Download the checkpoint (with its model card)", visible=False, elem_id="train-download"
            )
        with gr.Column(scale=2):
            headline = gr.Markdown(_headline(ctx, None, ""), elem_id="train-headline")
            progress = gr.HTML(_progress_html(None), elem_id="train-progress")
            curves = gr.Image(
                label="Training curves",
                format="png",
                interactive=False,
                elem_id="train-curves",
                buttons=IMAGE_BUTTONS,
                show_label=False,
            )
            with gr.Row():
                probe_source = gr.Image(
                    label="Source probe",
                    format="png",
                    interactive=False,
                    height=230,
                    elem_id="train-probe-source",
                    buttons=IMAGE_BUTTONS,
                )
                probe_target = gr.Image(
                    label="Target probe",
                    format="png",
                    interactive=False,
                    height=230,
                    elem_id="train-probe-target",
                    buttons=IMAGE_BUTTONS,
                )
            probe_note = gr.Markdown(
                "*The attention of one fixed source and one fixed target image appears here at every evaluation.*"
            )
            log_box = gr.Textbox(label="Log", lines=8, max_lines=8, autoscroll=True, interactive=False)
            with gr.Accordion("Job status (JSON)", open=False):
                job_json = gr.JSON(label="Status")
    seen = gr.State(-1)  # which job version this page has drawn (display bookkeeping only)
    timer = gr.Timer(POLL_SECONDS)

    @user_errors
    def train_start(
        source,
        target,
        variant,
        backbone,
        iters,
        batch_size,
        lr,
        trade_off,
        gamma,
        eval_every,
        eval_max,
        seed,
        device,
        pretrained,
        source_zip,
        target_zip,
        fine_tune,
        target_unlabelled=False,
        request: gr.Request = None,
    ):
        status = start_job(
            ctx,
            owner_of(ctx, request),
            source,
            target,
            variant,
            backbone,
            iters,
            batch_size,
            lr,
            trade_off,
            gamma,
            eval_every,
            eval_max,
            seed,
            device,
            pretrained,
            source_zip,
            target_zip,
            fine_tune,
            target_unlabelled,
        )
        if status["status"] == "queued":
            gr.Info(f"The server is busy: your job waits, {status['queue_position']} in line.", duration=5)
        else:
            gr.Info(f"Training started: {status['variant']} for {status['iters']} steps.", duration=3)
        return status

    def train_stop(request: gr.Request = None) -> dict:
        """Ask your running job to stop (it saves a loadable checkpoint), or take it out of the queue.
        Returns the job status."""
        owner = owner_of(ctx, request)
        if not ctx.jobs.stop(owner):
            gr.Warning("You have no training job running.")
        return train_status(request)

    def train_status(request: gr.Request = None) -> dict:
        """Your current (or last) training job: status, queue position, step, progress, the running phase
        (``phase``: encode, steps, calibrate or localiser, done/total and ``left_s``), last evaluation,
        checkpoint name, log tail, and the server's load and budget."""
        owner = owner_of(ctx, request)
        status = ctx.jobs.status(owner)
        job = ctx.jobs.view(owner)
        if job is not None and job.checkpoint is not None:
            status["checkpoint_name"] = ctx.registry.name_for(job.checkpoint, owner)
        return status

    def poll(seen_version: int, request: gr.Request = None):
        owner = owner_of(ctx, request)
        job = ctx.jobs.view(owner)
        version = -2 if job is None else job.version
        common = (
            _headline(ctx, job, owner),
            _progress_html(job),
            gr.update(interactive=job is None or job.status not in ACTIVE),
            gr.update(interactive=job is not None and job.status in ("starting", "running")),
            "\n".join(job.log) if job else "",
        )
        if version == seen_version:
            return (*common, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen_version)
        if job is None:
            return (*common, None, None, None, gr.skip(), train_status(request), gr.update(visible=False), version)
        step = f" · step {job.probes_step}" if job.probes else ""
        probes = [
            gr.update(value=ctx.images.png(job.probes[role]), label=f"{role.capitalize()} probe{step}")
            if role in job.probes
            else gr.update(value=None, label=f"{role.capitalize()} probe")
            for role in ("source", "target")
        ]
        note = "  \n".join(job.probe_notes[role] for role in ("source", "target") if role in job.probe_notes)
        return (
            *common,
            training_curves(ctx, job),
            *probes,
            note or gr.skip(),
            train_status(request),
            download_update(ctx, job),
            version,
        )

    form = [source, target, variant, backbone, iters, batch_size, lr, trade_off, gamma]
    form += [eval_every, eval_max, seed, device, pretrained, source_zip, target_zip, fine_tune, target_unlabelled]
    backbone.change(
        photo_form_defaults,
        backbone,
        [pretrained, iters, batch_size, eval_every],
        api_visibility="private",
        show_progress="hidden",
    )
    start.click(train_start, form, job_json, api_name="train_start", concurrency_limit=1)
    stop.click(train_stop, None, job_json, api_name="train_stop")
    gr.api(train_status, api_name="train_status")
    outputs = [
        headline,
        progress,
        start,
        stop,
        log_box,
        curves,
        probe_source,
        probe_target,
        probe_note,
        job_json,
        download,
        seen,
    ]
    timer.tick(poll, seen, outputs, api_visibility="private", concurrency_limit=None, show_progress="hidden")
    return TrainTab(source=source, target=target)
