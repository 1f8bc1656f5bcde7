"""Build and launch the TADA Studio web app.

    demo = build_app(data_dir="runs/app", data_root="data")
    launch(demo, host="127.0.0.1", port=7860)

``python -m app.main`` (or ``tada app``) serves it; ``app.main.demo`` builds the default app on
first access, for tools that look for a module-level ``demo``. Named API endpoints (see the page's
"Use via API" link): ``attention``, ``tsne``, ``train_start``, ``train_status``, ``train_stop``,
``model_card``.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

import gradio as gr
import torch

from app.render import CSS, message_html
from app.serving.context import EXAMPLES_DIR, AppContext, ServerLimits
from app.serving.jobs import JobManager
from app.tabs import attention, features, model, train
from app.ui import NONE, checkpoint_choices, owner_of, refreshed_dropdown
from tada_core.data.archives import MAX_ZIP_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
INFERENCE_THREADS = 1
REQUEST_CONCURRENCY = 4  # requests handled at once; 2 measured the same on 2 cores (docs/RESULTS.md, issue 20)
SESSION_CAPACITY = 64  # Gradio sessions whose state is kept (see launch)
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="rose", neutral_hue="slate")
HEADER = (
    "# TADA Studio\n"
    "Transferable Attention for Domain Adaptation (Wang et al., AAAI 2019): see which image regions a model "
    "finds transferable, how well it aligns the source and target domains, and train your own."
)


def build_app(
    *,
    data_dir: str | Path = "runs/app",
    data_root: str | Path = "data",
    checkpoints: list[str | Path] | None = None,
    shipped_dir: str | Path | None = None,
    jobs: JobManager | None = None,
    limits: ServerLimits | None = None,
) -> gr.Blocks:
    """The app as a ``gr.Blocks`` (not launched).

    Args:
        data_dir: the one folder of everything the server keeps — visitors' runs, uploaded
            checkpoints and domains, the key of their browser tokens (:mod:`app.serving.storage`);
            it survives restarts (the Docker volume).
        data_root: the only folder whose sub-folders may be used as domains.
        checkpoints: extra ``.safetensors`` files to offer everyone; the first is selected.
        shipped_dir: folder of shipped checkpoints and their model cards (default: the repository's
            ``checkpoints/``, else ``./checkpoints``).
        jobs: the job manager (default: one made from ``limits``).
        limits: jobs at once and waiting, steps and minutes per job, storage per visitor.
    """
    ctx = AppContext.create(
        data_dir=data_dir,
        data_root=data_root,
        checkpoints=checkpoints,
        shipped_dir=shipped_dir,
        jobs=jobs,
        limits=limits,
    )
    with gr.Blocks(title="TADA Studio", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        visitor = gr.BrowserState(None, storage_key="tada-visitor", secret=ctx.storage.secret())
        gr.Markdown(HEADER, elem_classes="tada-header")
        for notice in ctx.notices:
            gr.HTML(message_html(notice, "warning"))
        with gr.Tabs():
            with gr.Tab("Attention", id="attention") as attention_tab:
                att = attention.build(ctx)
            with gr.Tab("Features", id="features") as features_tab:
                feat = features.build(ctx)
            with gr.Tab("Train", id="train") as train_tab:
                tr = train.build(ctx)
            with gr.Tab("Model", id="model") as model_tab:
                mod = model.build(ctx)

        pickers = [att.checkpoint, att.compare, feat.checkpoint, feat.compare, mod.checkpoint]
        with_none = [False, True, False, True, False]
        domain_pickers = [feat.source, feat.target, tr.source, tr.target]

        def known_visitor(token, request: gr.Request):
            """Give a new browser its random token; tie this page's session to the token's owner."""
            token = token if isinstance(token, str) and 16 <= len(token) <= 64 else secrets.token_urlsafe(24)
            ctx.visitors.bind(request.session_hash, token)
            return token

        def refresh(request: gr.Request, *current):
            owner = owner_of(ctx, request)
            names = ctx.registry.names(owner)
            default = ctx.default_checkpoint()
            domains = ctx.domains.choices(owner)
            updates = [
                refreshed_dropdown(checkpoint_choices(names, none), value, NONE if none else default)
                for value, none in zip(current[: len(pickers)], with_none, strict=True)
            ]
            for value in current[len(pickers) :]:
                updates.append(gr.update(choices=domains if value in domains else [*domains, value], value=value))
            return updates

        everything = pickers + domain_pickers
        for tab in (attention_tab, features_tab, train_tab, model_tab):
            tab.select(refresh, everything, everything, api_visibility="private", show_progress="hidden")
        demo.load(known_visitor, visitor, visitor, api_visibility="private", show_progress="hidden").then(
            refresh, everything, everything, api_visibility="private", show_progress="hidden"
        )
        demo.load(mod.show, mod.checkpoint, mod.outputs, api_visibility="private", show_progress="hidden")
    demo.tada_context = ctx  # for tests and the CLI
    return demo


def resolve_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Flags win, then ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``, then 127.0.0.1:7860."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)
    return host, port


def launch(
    demo: gr.Blocks,
    *,
    host: str | None = None,
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    session_capacity: int = SESSION_CAPACITY,
):
    """Serve ``demo`` offline (no analytics, no share link, no SSR) with the app's theme and CSS.

    PyTorch runs one thread per request in this process (``INFERENCE_THREADS``): requests are
    small and run side by side, and on a busy machine every parallel operator of a multi-threaded
    forward waits for a descheduled thread (a 2-image LeNet request took 10× longer with 2 threads
    on 2 loaded cores; ``docs/bench/attention_profile.json``). Training runs in its own process.
    """
    host, port = resolve_address(host, port)
    torch.set_num_threads(INFERENCE_THREADS)
    demo.queue(default_concurrency_limit=REQUEST_CONCURRENCY)
    return demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        share=False,
        ssr_mode=False,
        theme=THEME,
        css=CSS,
        allowed_paths=[str(EXAMPLES_DIR)],
        max_file_size=MAX_ZIP_BYTES,
        state_session_capacity=session_capacity,
        show_error=False,
        footer_links=["api", "settings"],
    )


def __getattr__(name: str) -> gr.Blocks:
    if name == "demo":
        value = build_app()
        globals()["demo"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.main", description="Serve the TADA Studio web app.")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--data-dir", default="runs/app")
    args = parser.parse_args(argv)
    launch(
        build_app(data_dir=args.data_dir, data_root=args.data_root, checkpoints=args.checkpoint),
        host=args.host,
        port=args.port,
    )


if __name__ == "__main__":
    main()
