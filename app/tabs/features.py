"""Features tab: how well a checkpoint aligns the two domains — the headline alignment measure with
its interval (:mod:`tada_core.explain.alignment`), the measures beside it, the global A-distance in
both BatchNorm views, the t-SNE of source vs target bottleneck features by domain and by class, and
the pair's domain gap per region.

API ``/tsne``: ``(checkpoint, compare_with, source, target, max_points, perplexity, seed)`` →
``(figure PNG, summary markdown, [PNG, CSV, gap PNG] downloads, summary JSON, gap-map PNG)``. Two
checkpoints are drawn side by side, as in the paper's Figure 2 (source-only vs TADA). The gap map
is the per-region proxy A-distance of linear probes fitted on the frozen region features
(:mod:`tada_core.explain.gap`), on one colour scale shared by the checkpoints.
"""

from __future__ import annotations

import csv
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from app.serving.checkpoints import load_model
from app.serving.context import AppContext
from app.tabs.features_report import summary_markdown
from app.ui import IMAGE_BUTTONS, NONE, checkpoint_dropdown, owner_of, user_errors
from tada_core.data import check_same_classes, load_domain
from tada_core.errors import ConfigError
from tada_core.explain.alignment import measure_line
from tada_core.explain.alignment_report import checkpoint_alignment
from tada_core.explain.features import tsne_embed
from tada_core.explain.gap import pair_gap
from tada_core.explain.views import value_ranges
from tada_core.explain.viz import TsnePanel, figure_to_png, gap_maps_figure, tsne_panels_figure
from tada_core.model.inputs import image_size_for, norm_for

CSV_COLUMNS = ("checkpoint", "x", "y", "domain", "class", "prediction")
MAX_POINTS = 3000
VIEW_CACHE_SIZE = 8


@dataclass
class FeaturesTab:
    checkpoint: gr.Dropdown
    compare: gr.Dropdown
    source: gr.Dropdown
    target: gr.Dropdown


def _checkpoint_view(
    name: str,
    path: Path,
    source_spec: str,
    target_spec: str,
    max_points: int,
    seed: int,
    perplexity: float,
    domains: dict[tuple, tuple],
    step: Callable,
    base: float,
    total: int,
) -> tuple[TsnePanel, list[tuple], dict, tuple[str, np.ndarray]]:
    """One checkpoint's t-SNE panel, CSV rows, summary and (title, per-region gap map) (``domains``:
    loaded pairs by input spec)."""
    model, info = load_model(path)
    key = (image_size_for(info.config), norm_for(info.config))
    if key not in domains:
        kwargs = {"image_size": key[0], "norm": key[1], "train": False}
        pair = (load_domain(source_spec, **kwargs), load_domain(target_spec, **kwargs))
        check_same_classes(*pair)
        domains[key] = pair
    src_domain, tgt_domain = domains[key]
    step(base + 0.1 / total, desc=f"{name}: bottleneck features of {max_points}+{max_points} images, alignment")
    report = checkpoint_alignment(model, info, src_domain, tgt_domain, max_points=max_points, seed=seed)
    per_domain = report.statistics == "domain"
    step(base + 0.35 / total, desc=f"{name}: domain gap per region")
    probes = pair_gap(model, src_domain, tgt_domain, max_points=max_points, seed=seed, domain_statistics=per_domain)
    features, codes, classes, preds = report.points()
    step(base + 0.4 / total, desc=f"{name}: t-SNE of {len(features)} points")
    xy = tsne_embed(features, seed=seed, perplexity=perplexity)
    summary = {"checkpoint": name, "variant": info.variant, **report.summary, "gap": probes.to_dict()}
    title = f"{name} ({info.variant})"
    panel = TsnePanel(
        xy, codes, classes, src_domain.class_names, title, summary["a_distance"], measure_line(summary["alignment"])
    )
    rows = [
        (name, f"{x:.5f}", f"{y:.5f}", ("source", "target")[d], src_domain.class_names[c], info.class_names[p])
        for (x, y), d, c, p in zip(xy, codes, classes, preds, strict=True)
    ]
    return panel, rows, summary, (title, probes.a_distance)


class ViewCache:
    """The last few checkpoint views (t-SNE, alignment measures, gap map), keyed by (name, file, mtime,
    domains, sample, seed, perplexity).

    Deterministic inputs give the same embedding, so a view asked for again (the other checkpoint
    of a comparison, a second visitor, the same request after a change of the compared model) is
    drawn without recomputing features, A-distance, gap probes and t-SNE. A checkpoint rewritten
    by a running job has a new mtime and is recomputed.
    """

    def __init__(self, size: int = VIEW_CACHE_SIZE) -> None:
        self.size = size
        self._views: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple | None:
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        return None

    def put(self, key: tuple, view: tuple) -> None:
        with self._lock:
            self._views[key] = view
            while len(self._views) > self.size:
                self._views.popitem(last=False)


_views = ViewCache()


def tsne_report(
    ctx: AppContext,
    checkpoint: str,
    compare_with: str | None,
    source: str,
    target: str,
    max_points: float,
    perplexity: float,
    seed: float,
    progress=None,
    owner: str | None = None,
) -> tuple[str, str, list[str], dict, str]:
    """Compute features, alignment measures, t-SNE and the per-region gap map for each checkpoint; write the PNGs and the CSV."""
    step = progress or (lambda *args, **kwargs: None)
    max_points, seed = int(max_points), int(seed)
    if not 4 <= max_points <= MAX_POINTS:
        raise ConfigError(f"sample size must be between 4 and {MAX_POINTS} images per domain, got {max_points}")
    if not 2 <= float(perplexity) <= 100:
        raise ConfigError(f"perplexity must be between 2 and 100, got {perplexity}")
    names = [checkpoint] + ([compare_with] if compare_with and compare_with not in (NONE, checkpoint) else [])
    source_spec, target_spec = ctx.domains.resolve(source, owner), ctx.domains.resolve(target, owner)
    domains: dict[tuple, tuple] = {}
    panels, summaries, rows, gap_maps = [], [], [], []
    total = len(names)
    for n, name in enumerate(names):
        base = n / total
        step(base + 0.02 / total, desc=f"{name}: loading the checkpoint and the domains")
        path = ctx.registry.resolve(name, owner).path
        key = (name, str(path), path.stat().st_mtime_ns, source_spec, target_spec, max_points, seed, float(perplexity))
        view = _views.get(key)
        if view is None:
            view = _checkpoint_view(
                name, path, source_spec, target_spec, max_points, seed, float(perplexity), domains, step, base, total
            )
            _views.put(key, view)
        panel, view_rows, summary, gap_map = view
        panels.append(panel)
        gap_maps.append(gap_map)
        rows += view_rows
        summaries.append(summary)
    step(0.95, desc="drawing")
    fig = tsne_panels_figure(panels, source, target)
    folder = ctx.scratch("tsne")
    png, table, gap_png = folder / "tsne.png", folder / "tsne.csv", folder / "gap.png"
    png.write_bytes(figure_to_png(fig))
    [gap_range, *_] = value_ranges([grid for _, grid in gap_maps], "shared", (0.0, 2.0))
    gap_title = f"Domain gap per region, {source} → {target}: proxy A-distance of probes on frozen features"
    gap_png.write_bytes(figure_to_png(gap_maps_figure(gap_maps, value_range=gap_range, title=gap_title)))
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    summary = {"source": source, "target": target, "checkpoints": summaries}
    return str(png), summary_markdown(summaries), [str(png), str(table), str(gap_png)], summary, str(gap_png)


def build(ctx: AppContext) -> FeaturesTab:
    names = ctx.registry.names()
    default = ctx.default_checkpoint()
    compare_default = ctx.compare_checkpoint() or NONE
    domains = ctx.domains.choices()
    gr.Markdown(
        "How well are the two domains aligned? The headline measure asks whether each class's target images "
        "land on the same class's source images in the model's features (class-conditional MMD, with a 95 % "
        "interval at the sample size shown: lower is better aligned); the proxy A-distance asks only whether the "
        "domains overlap. The t-SNE shows the features of a sample of source (red) and target (blue) images by "
        "domain and by class. Compare two checkpoints as in the paper's Figure 2."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            checkpoint = checkpoint_dropdown(names, default, "Checkpoint")
            compare = checkpoint_dropdown(names, compare_default, "Compare with", allow_none=True)
            source = gr.Dropdown(
                domains,
                value="mnist",
                label="Source domain",
                allow_custom_value=True,
                info="a built-in name, or a folder under the data root",
            )
            target = gr.Dropdown(domains, value="mnistm", label="Target domain", allow_custom_value=True)
            max_points = gr.Slider(20, MAX_POINTS, value=300, step=10, label="Images per domain", elem_id="tsne-points")
            with gr.Accordion("t-SNE options", open=False):
                perplexity = gr.Slider(5, 50, value=30, step=1, label="Perplexity")
                seed = gr.Number(0, precision=0, label="Seed (sample, t-SNE, A-distance split)")
            run = gr.Button("Compute t-SNE", variant="primary")
        with gr.Column(scale=3):
            figure = gr.Image(
                label="t-SNE",
                type="filepath",
                format="png",
                interactive=False,
                elem_id="tsne-figure",
                buttons=IMAGE_BUTTONS,
                height=560,
            )
            gap_figure = gr.Image(
                label="Domain gap per region (proxy A-distance of probes on frozen region features)",
                type="filepath",
                format="png",
                interactive=False,
                elem_id="gap-figure",
                buttons=IMAGE_BUTTONS,
                height=300,
            )
            summary_md = gr.Markdown("*Press **Compute t-SNE**: a few seconds for 300 images per domain.*")
            downloads = gr.File(label="Download PNG and CSV", file_count="multiple", interactive=False)
            with gr.Accordion("Summary (JSON)", open=False):
                summary_json = gr.JSON(label="Summary")

    @user_errors
    def tsne(
        checkpoint,
        compare_with,
        source,
        target,
        max_points,
        perplexity,
        seed,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        owner = owner_of(ctx, request)
        return tsne_report(ctx, checkpoint, compare_with, source, target, max_points, perplexity, seed, progress, owner)

    run.click(
        tsne,
        [checkpoint, compare, source, target, max_points, perplexity, seed],
        [figure, summary_md, downloads, summary_json, gap_figure],
        api_name="tsne",
        concurrency_limit=1,
    )
    return FeaturesTab(checkpoint=checkpoint, compare=compare, source=source, target=target)
