"""Where the server's memory goes per new visitor: a tracemalloc diff of the app under N visitors.

    PYTHONPATH=. .venv/bin/python scripts/heap_profile.py [--visitors 300] [--warmup 50]
                                                         [--capacity N] [--out docs/bench/heap_profile.json]

Builds the app in this process, launches it on a free loopback port and sends ``--visitors`` new
visitors over plain HTTP (each its own session: upload 1 source + 1 target example image, call
``/attention``, read the event stream, download every result image — what a browser tab does;
``scripts/gradio_http.py``). tracemalloc snapshots are taken after ``--warmup`` visitors and at the
end; the allocations that grew most in between, by source line, are printed and written as JSON
with the growth per visitor. ``--capacity`` sets Gradio's ``state_session_capacity`` (default: the
app's own setting) so the cause can be shown with and without the bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from gradio_http import HttpAttentionClient  # scripts/, beside this file

from app.main import SESSION_CAPACITY, build_app, launch
from app.serving.context import example_images
from app.tabs.attention_report import DEFAULT_VIEW
from app.ui import NONE


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def visit(url: str, arguments: list, files: dict) -> None:
    HttpAttentionClient(url).attention(arguments, files, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=SESSION_CAPACITY)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tada-heap-"))
    demo = build_app(data_dir=scratch / "data", data_root=scratch / "domains")
    _, url, _ = launch(
        demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True, session_capacity=args.capacity
    )
    ctx = demo.tada_context
    images = example_images()
    arguments = [ctx.default_checkpoint(), ctx.compare_checkpoint() or NONE, None, None, "jet", 0.5, "smooth"]
    arguments += [DEFAULT_VIEW, "shared"]
    files = {2: images["source"][:1], 3: images["target"][:1]}
    tracemalloc.start(10)
    started = time.time()
    for n in range(args.visitors):
        if n == args.warmup:
            before = tracemalloc.take_snapshot()
        visit(url, arguments, files)
    after = tracemalloc.take_snapshot()
    elapsed = time.time() - started
    counted = args.visitors - args.warmup
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    rows = [
        {"where": str(s.traceback[0]), "growth_kib": round(s.size_diff / 1024, 1), "blocks": s.count_diff}
        for s in stats[: args.top]
    ]
    result = {
        "visitors": args.visitors,
        "warmup": args.warmup,
        "session_capacity": args.capacity,
        "traced_growth_mib": round(total / 2**20, 2),
        "per_visitor_kib": round(total / 1024 / counted, 1),
        "seconds": round(elapsed, 1),
        "top": rows,
    }
    print(
        f"{counted} visitors after {args.warmup}: traced heap +{result['traced_growth_mib']} MiB "
        f"({result['per_visitor_kib']} KiB a visitor), session capacity {args.capacity}"
    )
    for row in rows:
        print(f"  {row['growth_kib']:>9.1f} KiB  {row['blocks']:>7d} blocks  {row['where']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    demo.close()


if __name__ == "__main__":
    main()
