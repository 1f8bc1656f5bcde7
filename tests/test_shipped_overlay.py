"""The app's default overlay of the shipped model on its example images shows structure.

Read back from the overlay PNGs the page shows (the report's data URIs), not from the code that
made them: each pixel is ``(1 − α)·image + α·255·jet(t)``, so subtracting the example image
(enlarged ×8, nearest) recovers the colour, which is matched to the nearest entry of the jet
colormap to give its position t ∈ [0, 1]. A flat map would give one t per image.
"""

import base64
import io
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from app.serving.context import AppContext
from app.tabs.attention_report import attention_report
from app.ui import NONE

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 0.5  # the Attention tab's default overlay strength; jet, smooth are its other defaults


def _overlay_pngs(report: str) -> list[np.ndarray]:
    uris = re.findall(r'class="tada-overlay" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report)
    images = []
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as png:
            assert png.format == "PNG"
            images.append(np.asarray(png.convert("RGB"), dtype=np.float64))
    return images


def _colormap_positions(overlay: np.ndarray, example: Path) -> tuple[np.ndarray, np.ndarray]:
    """Position t of every pixel's heatmap colour on jet, and its distance to that colour."""
    with Image.open(example) as image:
        base = np.asarray(image.convert("RGB"), dtype=np.float64)
    factor = overlay.shape[0] // base.shape[0]
    base = np.repeat(np.repeat(base, factor, axis=0), factor, axis=1)
    colour = ((overlay - (1 - ALPHA) * base) / (ALPHA * 255)).reshape(-1, 3)  # (P, 3) in [0, 1]
    colours, inverse = np.unique(colour.round(4), axis=0, return_inverse=True)  # (U, 3): few distinct ones
    lut = matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3]  # (256, 3)
    distance = np.linalg.norm(colours[:, None, :] - lut[None], axis=2)  # (U, 256)
    nearest = distance.argmin(axis=1)
    inverse = inverse.ravel()
    return nearest[inverse] / 255.0, distance[np.arange(len(nearest)), nearest][inverse]


@pytest.mark.parametrize("name", ["tada_mnist_mnistm"])
def test_attention_overlays_of_the_shipped_model_are_not_flat(tmp_path, name):
    ctx = AppContext.create(data_dir=tmp_path / "runs", shipped_dir=ROOT / "checkpoints")
    examples = ctx.examples["source"] + ctx.examples["target"]
    assert len(examples) >= 4
    report, _, _ = attention_report(
        ctx, name, NONE, ctx.examples["source"], ctx.examples["target"], "jet", ALPHA, "smooth", "attention"
    )  # w: on the source images the shift view is flat, as it should be (nothing there differs)
    overlays = _overlay_pngs(report)
    assert len(overlays) == len(examples)
    positions = []
    for overlay, example in zip(overlays, examples, strict=True):
        t, distance = _colormap_positions(overlay, Path(example))
        assert np.median(distance) < 0.03  # the read-back really found jet colours
        spread = np.percentile(t, 99) - np.percentile(t, 1)
        assert spread >= 0.05 and len(np.unique(np.round(t * 255))) >= 8, f"{Path(example).name} is flat"
        positions.append(t)
    everything = np.concatenate(positions)
    # the shared scale is fitted to the values of the request: together the maps reach both ends of the colormap
    assert everything.max() - everything.min() >= 0.8
