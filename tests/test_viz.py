"""Pure visualisation functions: overlay pixels against hand computations, figures that render."""

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from tada_core.explain.result import AttentionResult
from tada_core.explain.viz import (
    TsnePanel,
    attention_figure,
    color_range,
    domain_attention_figure,
    figure_to_array,
    figure_to_png,
    gap_maps_figure,
    overlay_attention,
    prints_values,
    tsne_comparison_figure,
    tsne_figure,
    upsample_grid,
)


def _image(side=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)


def _blend(image, value, alpha, cmap="jet"):
    """Hand computation: round((1 − α)·pixel + α·255·cmap(value)) for every pixel."""
    colour = np.array(matplotlib.colormaps[cmap](value)[:3])
    return np.rint((1 - alpha) * image.astype(float) + alpha * 255 * colour).astype(np.uint8)


@pytest.mark.parametrize("mode", ["smooth", "blocky"])
@pytest.mark.parametrize(("value", "alpha"), [(0.0, 0.5), (1.0, 0.5), (1.0, 0.3)])
def test_constant_grid_blends_the_colormap_end(mode, value, alpha):
    image = _image()
    out = overlay_attention(image, np.full((7, 7), value), alpha=alpha, mode=mode)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out, _blend(image, value, alpha))


def test_alpha_extremes():
    image, grid = _image(), np.random.default_rng(1).random((7, 7))
    np.testing.assert_array_equal(overlay_attention(image, grid, alpha=0.0), image)
    full = overlay_attention(image, grid, alpha=1.0, mode="blocky")
    np.testing.assert_array_equal(full[:4, :4], _blend(image[:4, :4], grid[0, 0], 1.0))


def test_blocky_hot_cell_is_red_at_its_place_rest_is_cold():
    image = np.zeros((28, 28, 3), np.uint8)
    grid = np.zeros((7, 7))
    grid[2, 5] = 1.0  # row 2, column 5 → pixels rows 8..11, columns 20..23
    out = overlay_attention(image, grid, alpha=1.0, mode="blocky")
    hot, cold = out[8:12, 20:24], np.delete(np.delete(out, np.s_[20:24], axis=1), np.s_[8:12], axis=0)
    np.testing.assert_array_equal(hot, _blend(image[8:12, 20:24], 1.0, 1.0))
    assert (hot[..., 0] > 100).all() and (hot[..., 2] < 50).all()  # jet's top is red: channel 0 is R (RGB order)
    np.testing.assert_array_equal(cold, np.broadcast_to(_blend(image[:1, :1], 0.0, 1.0), cold.shape))
    assert (cold[..., 2] > 100).all() and (cold[..., 0] < 50).all()  # jet's bottom is blue


def test_smooth_is_graded_and_stays_in_grid_range():
    grid = np.zeros((7, 7), np.float32)
    grid[3, 3] = 1.0
    up = upsample_grid(grid, 224, 224, "smooth")
    assert up.min() >= 0.0 and up.max() <= 1.0
    assert up[112, 112] == pytest.approx(up.max()) and up[0, 0] == 0.0
    assert len(np.unique(up)) > 10  # graded, unlike blocky's two values
    assert set(np.unique(upsample_grid(grid, 224, 224, "blocky"))) == {0.0, 1.0}


def test_normalize_stretches_each_grid_fixed_scale_does_not():
    image = _image()
    low = np.full((7, 7), 0.2)
    low[0, 0] = 0.4
    fixed = overlay_attention(image, low, mode="blocky")
    stretched = overlay_attention(image, low, mode="blocky", normalize=True)
    np.testing.assert_array_equal(fixed[4:, 4:], _blend(image[4:, 4:], 0.2, 0.5))
    np.testing.assert_array_equal(stretched[4:, 4:], _blend(image[4:, 4:], 0.0, 0.5))
    np.testing.assert_array_equal(stretched[:4, :4], _blend(image[:4, :4], 1.0, 0.5))
    assert color_range(low, normalize=True) == pytest.approx((0.2, 0.4))
    assert color_range(low) == (0.0, 1.0)
    assert color_range(np.full((7, 7), 0.3), normalize=True) == (0.0, 1.0)  # nothing to stretch


def test_overlay_rejects_wrong_inputs():
    with pytest.raises(ValueError, match="uint8"):
        overlay_attention(np.zeros((28, 28, 3), np.float32), np.zeros((7, 7)))
    with pytest.raises(ValueError, match="mode"):
        overlay_attention(_image(), np.zeros((7, 7)), mode="fancy")
    with pytest.raises(ValueError, match="colormap"):
        overlay_attention(_image(), np.zeros((7, 7)), cmap="no-such-map")


def _result(grid=True):
    probs = np.array([0.1, 0.6, 0.3], np.float32)
    return AttentionResult(
        image=_image(),
        grid=np.random.default_rng(0).random((7, 7)).astype(np.float32) if grid else None,
        probs=probs,
        top_k=[("b", 0.6), ("c", 0.3)],
        predicted="b",
        global_attention=1.5 if grid else None,
        domain_prob=0.7 if grid else None,
    )


def _texts(fig):
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_attention_figure_panels_caption_and_png():
    fig = attention_figure(_result(), value_range=(0.2, 0.6), scale="shared", title="x.png")
    texts = _texts(fig)
    assert "predicted: b" in texts and "m = 1.500" in texts and "P(source) = 0.700" in texts
    assert "attention w = 1 − H₂(d̂ᵏ)" in texts and "shared scale fitted to all images: 0.20 – 0.60" in texts
    assert "x.png" in texts
    grid = _result().grid
    assert [t.get_text() for t in fig.axes[2].texts] == [f"{v:.2f}" for v in grid.ravel()]  # every cell's value
    png = figure_to_png(fig)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert "fixed scale: 0.00 – 1.00" in _texts(attention_figure(_result(), view="transferability"))
    assert "no local attention" in _texts(attention_figure(_result(grid=False)))
    assert "no domain-gap probes" in _texts(attention_figure(_result(), view="gap"))


def test_transferability_figure_shows_one_minus_w():
    fig = attention_figure(_result(), view="transferability")
    grid = 1.0 - _result().grid
    assert [t.get_text() for t in fig.axes[2].texts] == [f"{v:.2f}" for v in grid.ravel()]
    assert "transferability H₂(d̂ᵏ) = 1 − w" in _texts(fig)


def test_gap_maps_figure_shares_one_scale_and_writes_every_value():
    maps = [("a", np.full((7, 7), 0.5)), ("b", np.linspace(0.2, 1.8, 49).reshape(7, 7))]
    fig = gap_maps_figure(maps)
    texts = _texts(fig)
    assert "proxy A-distance" in texts and "0.20 – 1.80" in texts
    assert len(fig.axes[1].texts) == 49 and fig.axes[1].texts[0].get_text() == "0.20"
    with pytest.raises(ValueError, match="at least one map"):
        gap_maps_figure([])


def test_tsne_figures_colour_domains_red_and_blue():
    rng = np.random.default_rng(0)
    emb, domains, labels = rng.normal(size=(60, 2)), np.repeat(["source", "target"], 30), rng.integers(0, 3, 60)
    fig = tsne_figure(emb, domains, labels, ["a", "b", "c"], title="T", a_distance=1.234)
    colours = fig.axes[0].collections[0].get_facecolors()[:, :3]
    reds = np.isclose(colours, matplotlib.colors.to_rgb("#d62728")).all(axis=1)
    blues = np.isclose(colours, matplotlib.colors.to_rgb("#1f77b4")).all(axis=1)
    assert reds.sum() == 30 and blues.sum() == 30
    assert "A-distance 1.234" in _texts(fig)
    array = figure_to_array(fig)
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
    panels = [TsnePanel(emb, (domains == "target").astype(int), labels, "abc", name, 0.5) for name in ("so", "tada")]
    comparison = tsne_comparison_figure(panels)
    assert len(comparison.axes) == 4 and "tada\nby domain" in _texts(comparison)
    with pytest.raises(ValueError, match="source"):
        tsne_figure(emb, np.repeat(["src", "tgt"], 30), labels, "abc")


def test_domain_attention_figure():
    fig = domain_attention_figure(np.full((7, 7), 0.25), np.linspace(1.0, 2.0, 50), title="mnist")
    texts = _texts(fig)
    assert "mean 1.500" in texts and "m over 50 images" in texts and "mnist" in texts
    assert Image.open(io.BytesIO(figure_to_png(fig))).size[0] > 300
    assert "no global attention" in _texts(domain_attention_figure(np.zeros((7, 7)), None))


def test_gradcam_baseline_matches_hand_computation_and_releases_hooks():
    import torch

    from tada_core import TADAConfig, build_model
    from tada_core.bench.viz import GradCAM

    torch.manual_seed(0)
    model = build_model(
        TADAConfig(backbone="lenet", num_classes=10, variant="dann", head="pool")
    ).eval()  # h = f, pooled
    layer = model.backbone.features[-1]  # the last pooling: the (B, 64, 7, 7) map
    x = torch.randn(2, 3, 28, 28)
    with GradCAM(model, layer) as cam:
        maps = cam(x)
    assert not layer._forward_hooks and maps.shape == (2, 7, 7)
    f = model.backbone(x).detach().requires_grad_(True)  # by hand: the same graph, split at f
    logits = model.classifier(model.bottleneck(f.mean(dim=(2, 3))))
    (grad,) = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), f)
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * f).sum(1))
    expected = expected / expected.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(maps, expected, atol=1e-4, rtol=1e-4)


def _shift_result(side, fitted_on=None, width=480, height=200):
    """A photo model's result with a side×side shift grid on a width×height original."""
    from tada_core.explain.geometry import input_geometry

    rng = np.random.default_rng(1)
    return AttentionResult(
        image=_image(224),
        grid=rng.random((7, 7)).astype(np.float32),
        probs=np.array([0.4, 0.6], np.float32),
        top_k=[("b", 0.6), ("a", 0.4)],
        predicted="b",
        global_attention=1.5,
        domain_prob=0.7,
        shift=rng.random((side, side)).astype(np.float32),
        original=np.zeros((height, width, 3), np.uint8),
        geometry=input_geometry(width, height, 224),
        shift_fitted_on=fitted_on,
    )


@pytest.mark.parametrize(("side", "written"), [(7, True), (14, False), (56, False)])
def test_values_are_written_only_in_grids_where_they_can_be_read(side, written):
    fig = attention_figure(_shift_result(side), view="shift")
    assert prints_values((side, side)) is written
    assert len(fig.axes[2].texts) == (side * side if written else 0)  # 14×14 / 56×56: a heat map only
    assert ("the values are in the JSON" in fig.axes[2].get_title()) is not written
    assert len(gap_maps_figure([("a", np.full((side, side), 0.5))]).axes[0].texts) == (49 if written else 0)


def test_captions_and_titles_are_wrapped_within_the_figure_on_a_wide_image():
    title = "a_long_panorama_file_name_from_a_phone_camera.jpg — tada (tada_photos_sketch.safetensors): " * 2
    fig = attention_figure(_shift_result(56, (500, 480), 3000, 300), view="shift", title=title)
    FigureCanvasAgg(fig).draw()
    right = fig.bbox.x1
    for text in (fig.get_supxlabel(), fig.get_suptitle()):
        assert "\n" in text  # wrapped, not shrunk or cut
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text():
            extent = text.get_window_extent()
            assert extent.x0 >= 0 and extent.x1 <= right, text.get_text()[:60]
    assert "fitted on 500 + 480 images (source + target)" in fig.get_supxlabel().replace("\n", " ")


def test_a_localiser_without_fit_counts_says_nothing_of_them():
    assert "fitted on" not in attention_figure(_shift_result(56), view="shift").get_supxlabel()
    assert "fitted on" not in attention_figure(_shift_result(56, (500, 480)), view="attention").get_supxlabel()
