"""``tada app``: serve the TADA Studio web app (Gradio), offline.

Address: ``--host`` / ``--port`` win, then ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``, then
127.0.0.1:7860. The app opens the shipped checkpoint (``checkpoints/*.safetensors``) or the one
given with ``--checkpoint``; when none can be opened it says so on the page and still starts.
Gradio is imported only when the command runs, so the rest of the CLI stays quick.
"""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="start the web app (Gradio) in the browser")
    parser.add_argument("--host", default=None, help="address to listen on (default $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="CKPT",
        help="a .safetensors checkpoint to offer and select; repeat to add several",
    )
    parser.add_argument(
        "--data-root",
        default="data",
        metavar="DIR",
        help="folder whose sub-folders may be used as domains (default ./data)",
    )
    parser.add_argument(
        "--runs-dir", default="runs/app", metavar="DIR", help="where the app's training runs go (default ./runs/app)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.main import build_app, launch, resolve_address

    demo = build_app(runs_dir=args.runs_dir, data_root=args.data_root, checkpoints=args.checkpoint)
    for notice in demo.tada_context.notices:
        print(f"tada app: {notice}", flush=True)
    host, port = resolve_address(args.host, args.port)
    print(f"tada app: serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    launch(demo, host=host, port=port, quiet=True)
    return 0
