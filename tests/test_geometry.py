"""Maps drawn on the user's own image: the model's resize and crop undone, to the pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tada_core.config import TADAConfig
from tada_core.explain.geometry import display_image, display_size, input_geometry, map_on_display
from tada_core.explain.inference import predict_attention, preprocess
from tada_core.explain.result import AttentionResult
from tada_core.explain.viz import overlay_view
from tada_core.model import build_model


def test_the_box_the_model_sees_by_hand():
    # photo models: resize to 256×256, centre crop 224 → 16 px off each side of 256
    assert input_geometry(480, 200, 224).box == (30.0, 12.5, 450.0, 187.5)  # 16·480/256, 16·200/256, …
    assert input_geometry(100, 100, 224).box == (6.25, 6.25, 93.75, 93.75)
    assert input_geometry(60, 30, 28).box == (0.0, 0.0, 60.0, 30.0)  # digits: the whole image, squeezed


def test_display_keeps_the_aspect_ratio_and_a_useful_size():
    assert display_size(480, 200) == (480, 200)
    assert display_size(4000, 3000) == (1024, 768)
    assert display_size(160, 120) == (448, 336)  # a small photo is enlarged
    assert display_size(28, 28) == (224, 224)  # digits by a whole factor (8)
    big = display_image(np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3), 224, 224)
    assert big.shape == (224, 224, 3) and (big[8:16, 8:16] == big[8, 8]).all()  # crisp 8×8 squares


def test_a_cell_lands_on_its_rectangle_of_the_original():
    grid = np.zeros((7, 7), np.float32)
    grid[2, 5] = 1.0
    geometry = input_geometry(480, 200, 224)
    blocky = map_on_display(grid, geometry, 480, 200, "blocky")
    # cell (2, 5): x ∈ [30 + 5·60, 30 + 6·60) = [330, 390), y ∈ [12.5 + 2·25, 12.5 + 3·25) = [62.5, 87.5)
    rows, cols = np.nonzero(blocky == 1.0)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (62, 86, 330, 389)
    assert np.isnan(blocky[:, :30]).all() and np.isnan(blocky[:, 450:]).all() and np.isnan(blocky[:12]).all()
    assert np.isfinite(blocky[12:187, 30:450]).all() and np.isnan(blocky[187:]).all()  # row centres 12.5 … 186.5
    smooth = map_on_display(grid, geometry, 480, 200, "smooth")
    assert smooth[74, 359] > 0.95 and np.nanmax(smooth) <= 1.0 and np.nanmin(smooth) >= 0.0
    assert np.unravel_index(np.nanargmax(smooth), smooth.shape) in {(74, 359), (74, 360), (75, 359), (75, 360)}
    with pytest.raises(ValueError, match="mode must be one of"):
        map_on_display(grid, geometry, 480, 200, "wavy")


def test_a_known_mark_on_a_non_square_photo_is_outlined_where_it_is():
    """The whole chain: a 480×200 photo with a 40×15 mark, the model's own input, an ideal 14×14 map
    of it (the mark's share of each cell of the input), drawn back on the photo."""
    photo = np.full((200, 480, 3), 90, np.uint8)
    photo[120:135, 300:340] = (255, 0, 0)  # the mark: x 300–339, y 120–134
    config = TADAConfig(backbone="resnet18", num_classes=2, image_size=224)
    _, (seen,) = preprocess([Image.fromarray(photo)], build_model(config))
    red = (seen[..., 0] > 200) & (seen[..., 1] < 60)  # (224, 224)
    grid = red.reshape(14, 16, 14, 16).mean(axis=(1, 3))
    result = AttentionResult(
        image=seen,
        grid=grid,
        probs=np.ones(2) / 2,
        top_k=[],
        predicted="a",
        global_attention=None,
        domain_prob=None,
        original=photo,
        geometry=input_geometry(480, 200, 224),
    )
    blocky = map_on_display(grid, result.geometry, 480, 200, "blocky")
    rows, cols = np.nonzero(blocky > 0.5)
    assert 117 <= rows.min() and rows.max() <= 137 and 296 <= cols.min() and cols.max() <= 343  # within a few px
    overlay = overlay_view(result, view="attention", cmap="jet", alpha=0.6, mode="blocky")
    assert overlay.shape == (200, 480, 3)
    assert overlay[127, 320, 0] > overlay[50, 100, 0]  # red (high) on the mark, blue elsewhere


def test_predict_attention_keeps_the_original_and_its_geometry():
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    model = build_model(config)
    from tada_core.checkpoint import CheckpointInfo

    info = CheckpointInfo(config, [str(d) for d in range(10)])
    (result,) = predict_attention(model, info, [Image.new("RGB", (60, 30), (10, 200, 10))])
    assert result.original.shape == (30, 60, 3) and result.geometry.box == (0.0, 0.0, 60.0, 30.0)
    overlay = overlay_view(result, view="attention")
    assert overlay.shape == (90, 180, 3)  # 60×30 enlarged by the whole factor 3 = 224 // 60


def _cells(box, grid_box, shape):
    """README "Reading the maps": the cells of an (h, w) grid that a box (x0, y0, x1, y1) of the image,
    in its pixels, touches, from the grid's ``grid_box`` alone."""
    import math

    gx0, gy0, gx1, gy1 = grid_box
    h, w = shape
    bx0, by0, bx1, by1 = box
    cols = slice(max(0, math.floor((bx0 - gx0) / (gx1 - gx0) * w)), min(w, math.ceil((bx1 - gx0) / (gx1 - gx0) * w)))
    rows = slice(max(0, math.floor((by0 - gy0) / (gy1 - gy0) * h)), min(h, math.ceil((by1 - gy0) / (gy1 - gy0) * h)))
    mask = np.zeros((h, w), bool)
    mask[rows, cols] = True
    return mask


def test_a_planted_box_on_a_non_square_photo_is_scored_through_the_json_alone(tmp_path, capsys):
    """A 480×200 photo, a mark at x 300–340, y 120–135. A 224 photo model sees the centre crop, the box
    (30, 12.5, 450, 187.5); a 7×7 cell is 60×25 px, so the mark touches cells (4, 4) and (4, 5), by hand:
    x (300 − 30)/60 = 4.5 … (340 − 30)/60 = 5.17, y (120 − 12.5)/25 = 4.3 … (135 − 12.5)/25 = 4.9. Scored
    as if the grid covered the whole photo it would be cell (4, 4) alone (x 4.38 … 4.96, y 4.2 … 4.73)."""
    import json

    import torch
    from sklearn.metrics import roc_auc_score

    from tada_core.checkpoint import CheckpointInfo, save_checkpoint
    from tada_core.cli import main

    torch.manual_seed(0)
    config = TADAConfig(backbone="efficientnet_lite0", num_classes=2, variant="tada", image_size=224)
    checkpoint = save_checkpoint(
        tmp_path / "photo.safetensors", build_model(config), CheckpointInfo(config, ["a", "b"])
    )
    photo = np.full((200, 480, 3), 90, np.uint8)
    photo[120:135, 300:340] = (255, 0, 0)
    Image.fromarray(photo).save(tmp_path / "wide.png")
    argv = ["attention", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "wide.png"), "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)

    assert record["grid_box"] == [30.0, 12.5, 450.0, 187.5] and record["grid_shape"] == [7, 7]
    for view in ("attention", "transferability"):
        assert record["view_boxes"][view] == {"box": record["grid_box"], "shape": [7, 7]}
    assert record["view_boxes"]["shift"] is None and record["localiser"] is None  # no localiser here

    grid = np.array(record["grid"])
    mask = _cells((300, 120, 340, 135), record["grid_box"], grid.shape)
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(4, 4), (4, 5)]
    whole = _cells((300, 120, 340, 135), [0, 0, 480, 200], grid.shape)  # the mistake: the whole photo
    assert sorted(zip(*np.nonzero(whole), strict=True)) == [(4, 4)]
    inside, outside = grid[4, 4:6], np.delete(grid.ravel(), [4 * 7 + 4, 4 * 7 + 5])
    by_hand = np.mean([(p > n) + 0.5 * (p == n) for p in inside for n in outside])
    assert roc_auc_score(mask.ravel(), grid.ravel()) == pytest.approx(by_hand)
    pointing = bool(mask.ravel()[grid.argmax()])  # the pointing game: the maximum falls on the mark
    assert pointing == (np.unravel_index(grid.argmax(), grid.shape) in ((4, 4), (4, 5)))
