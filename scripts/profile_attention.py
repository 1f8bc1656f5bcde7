"""Where an Attention request spends its time: handler stages, Gradio's share, a cProfile.

    PYTHONPATH=. .venv/bin/python scripts/profile_attention.py [--out docs/bench/attention_profile.json]

The request is the app's default one: one source and one target example image, the default
checkpoint compared with the default second one (2 forwards, 4 overlays). Measured in this
process, each number the median of ``--repeats`` runs:

1. the handler's stages — decoding the uploads, the forwards, the overlays, the HTML cards (with
   their PNG data URIs), storing the gallery PNGs — once with PyTorch's default thread count and
   once with one thread (what the server uses);
2. the colour mapping of one 224×224 overlay: matplotlib's colormap call against the table lookup;
3. the server side of a real request: the app launched on a loopback port, driven by
   ``gradio_client`` (result files downloaded), timing Gradio's ``process_api`` (preprocessing of
   the uploads, the handler, postprocessing and caching of the result files) and the client's
   round trip;
4. the top functions of a cProfile of the handler (one thread).

Writes JSON to ``--out`` and prints a summary. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import torch

from app.main import build_app, launch
from app.render import card_html, model_block_html
from app.serving.checkpoints import load_model
from app.serving.context import AppContext
from app.serving.jobs import JobManager
from app.tabs.attention_report import TOP_K, _probes, attention_report, read_uploads
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import view_grid
from tada_core.explain.views import value_ranges
from tada_core.explain.viz import colormap_table, overlay_view

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"cmap": "jet", "alpha": 0.5, "mode": "smooth", "view": "gap", "scale": "shared"}  # the app's defaults
STYLE = {k: OPTIONS[k] for k in ("view", "cmap", "alpha", "mode")}  # overlay_view's keywords


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def stages(ctx: AppContext, names: list[str], files: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each stage of one request."""
    images = read_uploads(files["source"], "source") + read_uploads(files["target"], "target")
    pictures = [im for _, im in images]
    entries = [ctx.registry.resolve(n) for n in names]
    models = [load_model(entry.path) for entry in entries]
    probes = [_probes(ctx, entry) for entry in entries]  # fitted once per checkpoint, then cached
    results = [
        predict_attention(m, i, pictures, top_k=TOP_K, probes=p) for (m, i), (p, _) in zip(models, probes, strict=True)
    ]
    flat = [r for rs in results for r in rs]  # checkpoint-major, like the app
    ranges = value_ranges([view_grid(r, OPTIONS["view"]) for r in flat], OPTIONS["scale"])

    def overlay_all() -> list[np.ndarray]:
        return [overlay_view(r, value_range=v, **STYLE) for r, v in zip(flat, ranges, strict=True)]

    overlays = overlay_all()

    def html() -> None:
        for k in range(len(pictures)):
            blocks = []
            for c, (name, (_, info), rs, (_, note)) in enumerate(zip(names, models, results, probes, strict=True)):
                i = c * len(pictures) + k
                blocks.append(model_block_html(name, info.variant, rs[k], overlays[i], OPTIONS, ranges[i], note))
            card_html(f"{k}.png", "source", results[0][k].image, blocks)

    args = (ctx, names[0], names[1], files["source"], files["target"], *OPTIONS.values())
    return {
        "decode_uploads": median_ms(lambda: read_uploads(files["source"], "source"), repeats) * 2,
        "forward_both_checkpoints": median_ms(
            lambda: [
                predict_attention(m, i, pictures, top_k=TOP_K, probes=p)
                for (m, i), (p, _) in zip(models, probes, strict=True)
            ],
            repeats,
        ),
        "overlays": median_ms(overlay_all, repeats),
        "html_cards_with_png_data_uris": median_ms(html, repeats),
        "store_gallery_pngs": median_ms(lambda: [ctx.images.png(o) for o in overlays], repeats),
        "whole_handler": median_ms(lambda: attention_report(*args), repeats),
    }


def colour_mapping(repeats: int) -> dict[str, float]:
    t = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    table = colormap_table("jet")
    return {
        "matplotlib_colormap_call": median_ms(lambda: matplotlib.colormaps["jet"](t)[..., :3], repeats),
        "table_lookup": median_ms(lambda: table[np.minimum((t * len(table)).astype(np.intp), len(table) - 1)], repeats),
    }


def served(root: Path, names: list[str], files: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """p50 of Gradio's process_api (server side) and of the client's round trip, sequential requests."""
    from gradio_client import Client, handle_file

    demo = build_app(data_dir=root / "runs", data_root=root / "data", jobs=JobManager())
    durations: list[float] = []
    original = demo.process_api

    async def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    demo.process_api = timed
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(root / "downloads"))
        rounds = []
        for i in range(repeats + 3):
            start = time.perf_counter()
            client.predict(
                checkpoint=names[0],
                compare_with=names[1],
                source_files=[handle_file(p) for p in files["source"]],
                target_files=[handle_file(p) for p in files["target"]],
                **OPTIONS,
                api_name="/attention",
            )
            if i >= 3:  # warm-up: model loading, first compilation of the routes
                rounds.append(time.perf_counter() - start)
        attention_calls = durations[-repeats:]
    finally:
        demo.close()
    return {
        "server_process_api_p50_ms": round(1000 * statistics.median(attention_calls), 1),
        "server_process_api_p95_ms": round(1000 * float(np.percentile(attention_calls, 95)), 1),
        "client_round_trip_p50_ms": round(1000 * statistics.median(rounds), 1),
    }


def top_functions(ctx: AppContext, names: list[str], files: dict[str, list[str]], n: int = 15) -> list[str]:
    args = (ctx, names[0], names[1], files["source"], files["target"], *OPTIONS.values())
    attention_report(*args)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(50):
        attention_report(*args)
    profile.disable()
    stats = pstats.Stats(profile).sort_stats("cumulative")
    rows = []
    for (file, line, func), (*_, cumulative, _) in stats.stats.items():
        rows.append((cumulative, f"{cumulative / 50 * 1000:7.2f} ms/request  {Path(file).name}:{line}({func})"))
    return [text for _, text in sorted(rows, reverse=True)[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "attention_profile.json"))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="tada-profile-") as tmp:
        root = Path(tmp)
        ctx = AppContext.create(data_dir=root / "runs", jobs=JobManager())
        names = [ctx.default_checkpoint(), ctx.compare_checkpoint()]
        files = {role: paths[:1] for role, paths in ctx.examples.items()}
        by_threads = {}
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            by_threads[f"{threads}_threads"] = stages(ctx, names, files, args.repeats)
        report = {
            "what": "one Attention request: 1 source + 1 target example image, 2 checkpoints (4 overlays)",
            "checkpoints": names,
            "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before]},
            "handler_stages_ms_median": by_threads,
            "colour_mapping_224x224_ms_median": colour_mapping(args.repeats),
            "served_one_thread": served(root, names, files, args.repeats),
            "cprofile_top_cumulative_one_thread": top_functions(ctx, names, files),
            "date": time.strftime("%Y-%m-%d"),
        }
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: report[k] for k in ("handler_stages_ms_median", "served_one_thread")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
