"""``tada app``: serve the TADA Studio web app (Gradio), offline.

Address: ``--host`` / ``--port`` win, then ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``, then
127.0.0.1:7860. The app opens the shipped checkpoint (``checkpoints/*.safetensors``) or the one
given with ``--checkpoint``; when none can be opened it says so on the page and still starts.
Gradio is imported only when the command runs, so the rest of the CLI stays quick.
"""

from __future__ import annotations

import argparse
import os

from tada_core.errors import ConfigError


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
        "--data-dir",
        default=os.environ.get("TADA_DATA_DIR", "runs/app"),
        metavar="DIR",
        help="the one folder the server keeps (visitors' runs, uploads; survives restarts): "
        "default $TADA_DATA_DIR or ./runs/app",
    )
    limits = parser.add_argument_group("limits per server and visitor (a hosted demo's defaults)")
    limits.add_argument("--max-jobs", type=int, default=_env("TADA_MAX_JOBS", 1), help="training jobs at once (1)")
    limits.add_argument(
        "--max-queued", type=int, default=_env("TADA_MAX_QUEUED", 4), help="jobs waiting for a slot (4)"
    )
    limits.add_argument(
        "--max-steps", type=int, default=_env("TADA_MAX_STEPS", 20_000), help="iterations per job, 0: no limit (20000)"
    )
    limits.add_argument(
        "--max-job-minutes",
        type=float,
        default=_env("TADA_MAX_JOB_MINUTES", 30.0),
        help="training minutes per job, 0: no limit (30)",
    )
    limits.add_argument(
        "--quota-mib", type=float, default=_env("TADA_QUOTA_MIB", 500.0), help="storage per visitor in MiB (500)"
    )
    limits.add_argument(
        "--keep-days", type=float, default=_env("TADA_KEEP_DAYS", 7.0), help="delete visitors' unused items after (7)"
    )
    parser.set_defaults(func=run)


def _env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return type(default)(value)
    except ValueError:
        raise SystemExit(f"tada app: error: ${name} must be a number, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.main import build_app, launch, resolve_address
    from app.serving.context import ServerLimits

    if min(args.max_jobs, args.max_queued + 1, args.quota_mib, args.keep_days) <= 0 or args.max_steps < 0:
        raise ConfigError("--max-jobs, --quota-mib and --keep-days must be positive; --max-queued and --max-steps ≥ 0")
    limits = ServerLimits(
        max_running=args.max_jobs,
        max_queued=args.max_queued,
        max_steps=args.max_steps or None,
        max_minutes=args.max_job_minutes or None,
        quota_mib=args.quota_mib,
        keep_days=args.keep_days,
    )
    demo = build_app(data_dir=args.data_dir, data_root=args.data_root, checkpoints=args.checkpoint, limits=limits)
    for notice in demo.tada_context.notices:
        print(f"tada app: {notice}", flush=True)
    host, port = resolve_address(args.host, args.port)
    print(f"tada app: serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    launch(demo, host=host, port=port, quiet=True)
    return 0
