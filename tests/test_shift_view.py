"""The shift view: stored, cached or fitted once on demand; any image through it; honest notes when
it cannot be shown; the CLI's default view."""

import json
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tada_core import TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, save_checkpoint
from tada_core.cli import main
from tada_core.explain import shift as S
from tada_core.explain.geometry import display_size
from tada_core.explain.inference import predict_attention, preprocess
from tada_core.explain.result import default_view, view_grid
from tada_core.explain.views import VIEWS, flat_note
from tada_core.explain.viz import attention_figure, overlay_view
from tada_core.model.localiser import Localiser, tap_features, tap_for

DIGITS = [str(i) for i in range(10)]


def _digits_checkpoint(path, source="mnist", target="mnistm", stored=True):
    torch.manual_seed(0)
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    extra = Localiser(32, seeds=2).to_tensors() if stored else None
    return save_checkpoint(path, build_model(config), CheckpointInfo(config, DIGITS, source, target), extra)


@pytest.fixture(scope="module")
def photo_checkpoint(tmp_path_factory):
    """An untrained Lite0 photo model (no download) with a stored localiser and domains that are not here."""
    torch.manual_seed(0)
    config = TADAConfig(backbone="efficientnet_lite0", num_classes=4, variant="tada", image_size=224)
    info = CheckpointInfo(config, ["a", "b", "c", "d"], "/not/here/source", "/not/here/target")
    path = tmp_path_factory.mktemp("photo") / "photo.safetensors"
    return save_checkpoint(path, build_model(config), info, Localiser(40, seeds=1).to_tensors(torch.float16))


def _odd_images():
    rng = np.random.default_rng(0)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    return {
        "wide": Image.fromarray(rgb(120, 300)),
        "huge": Image.fromarray(rgb(2400, 3200)),
        "tiny": Image.fromarray(rgb(20, 12)),
        "grey": Image.fromarray(rgb(200, 200)[..., 0], mode="L"),
        "cmyk": Image.fromarray(rgb(150, 90)).convert("CMYK"),
    }


def test_any_image_gets_a_56x56_shift_map_on_a_photo_model(photo_checkpoint):
    from tada_core.checkpoint import load_checkpoint

    found = S.checkpoint_localiser(photo_checkpoint)
    assert found.origin == "stored" and found.tap == S.recorded_tap(
        None, tap_for("efficientnet_lite0")
    )  # 40 ch, no tap recorded
    model, info = load_checkpoint(photo_checkpoint)
    images = _odd_images()
    results = predict_attention(model, info, list(images.values()), localiser=found)
    for (name, image), result in zip(images.items(), results, strict=True):
        assert result.shift.shape == (56, 56) and result.shift.dtype == np.float32, name
        assert np.isfinite(result.shift).all() and 0 <= result.shift.min() and result.shift.max() <= 1
        assert default_view(result) == "shift" and view_grid(result, "shift") is result.shift
        overlay = overlay_view(result, view="shift", value_range=(0.0, 1.0))
        width, height = display_size(*image.size)
        assert overlay.shape == (height, width, 3), name  # the user's image at its own aspect ratio


def test_for_digits_the_shift_map_comes_from_the_same_forward(tmp_path):
    from tada_core.checkpoint import load_checkpoint

    path = _digits_checkpoint(tmp_path / "d.safetensors")
    model, info = load_checkpoint(path)
    found = S.checkpoint_localiser(path)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8), mode="L")
    [result] = predict_attention(model, info, [image], localiser=found)
    batch, _ = preprocess([image], info)
    with torch.no_grad():
        expected = torch.sigmoid(found.localiser(tap_features(model.backbone, found.tap, batch)))[0].numpy()
    np.testing.assert_allclose(result.shift, expected, atol=1e-6)
    assert result.shift.shape == (14, 14)


def test_fit_estimate_is_encoding_plus_steps_by_the_measured_costs():
    # Lite0's default tap on a pair of 160 + 160 photos: 3 seeds × 15 epochs × ⌈160 / 16⌉ = 450 steps,
    # each 56·56·(2.3e-5 + 120·1.29e-6) = 0.5576 s, after 320 encodings of 0.21 s.
    assert S.fit_seconds("efficientnet_lite0", [160, 160], (120, 56, 56)) == pytest.approx(
        450 * 0.5576 + 67.2, rel=1e-4
    )
    # a backbone whose encoding was not measured is priced at 0.5 s an image (about the slowest measured)
    assert S.fit_seconds("vit", [10, 10], (8, 1, 1)) == pytest.approx(20 * 0.5 + 3 * 15 * 1 * (2.3e-5 + 8 * 1.29e-6))


def test_status_prices_the_fit_of_the_checkpoint_tap_with_the_capped_image_counts(tmp_path):
    path = _digits_checkpoint(tmp_path / "old.safetensors", "optdigits", "mnist", stored=False)
    status = S.shift_status(path, max_images=40)
    # LeNet's tap is 32 × 14 × 14; 40 + 40 images: 3 × 15 × ⌈40 / 16⌉ = 135 steps of
    # 196·(2.3e-5 + 32·1.29e-6) = 0.012599 s, plus 80 encodings of 0.0002 s: 1.717 s
    assert status.seconds == 1.7


def test_without_stored_tensors_it_is_fitted_once_cached_beside_the_file_by_content_hash(tmp_path, monkeypatch):
    path = _digits_checkpoint(tmp_path / "old.safetensors", "optdigits", "mnist", stored=False)
    status = S.shift_status(path, max_images=40)
    assert (status.ready, status.fittable, status.origin) == (False, True, "fittable") and status.seconds > 0
    calls = []

    def fake_fit(backbone, name, source, target, *, settings, **kwargs):
        calls.append((name, len(source), len(target), settings.max_images))
        time.sleep(0.2)  # long enough for the other threads to arrive
        return Localiser(32, seeds=1)

    monkeypatch.setattr(S, "fit_for_backbone", fake_fit)
    found = []
    threads = [threading.Thread(target=lambda: found.append(S.checkpoint_localiser(path))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and calls[0][0] == "lenet"  # concurrent first requests fit once
    assert {f.origin for f in found} == {"fitted"}
    sidecar = tmp_path / f"old.localiser-{S.content_hash(path)[:16]}.safetensors"
    assert sidecar.is_file()
    assert S.shift_status(path) == S.ShiftStatus(True, False, "cached")
    S.store_for().forget()  # a new process: read from the sidecar, not fitted again
    assert S.checkpoint_localiser(path).origin == "cached" and len(calls) == 1


def test_a_read_only_checkpoint_folder_caches_under_the_data_root(tmp_path, monkeypatch):
    path = _digits_checkpoint(tmp_path / "ro" / "m.safetensors", "optdigits", "mnist", stored=False)
    monkeypatch.setenv("TADA_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(S, "fit_for_backbone", lambda *a, **k: Localiser(32, seeds=1))
    real_write = S.atomic_write

    def refuse_next_to_checkpoint(target, write):
        if target.parent == path.parent:
            raise PermissionError("read-only")
        return real_write(target, write)

    monkeypatch.setattr(S, "atomic_write", refuse_next_to_checkpoint)
    S.checkpoint_localiser(path)
    assert list((tmp_path / "root" / "localisers").glob("m.localiser-*.safetensors"))


def test_when_the_domains_are_not_here_the_shift_view_says_so(tmp_path):
    path = _digits_checkpoint(tmp_path / "far.safetensors", str(tmp_path / "gone"), "mnist", stored=False)
    with pytest.raises(S.ShiftError, match="cannot be loaded here.*attention or transferability"):
        S.checkpoint_localiser(path)
    status = S.shift_status(path)
    assert (status.ready, status.fittable, status.origin) == (False, False, "unavailable") and "gone" in status.reason
    bare = _digits_checkpoint(tmp_path / "bare.safetensors", "", "", stored=False)
    with pytest.raises(S.ShiftError, match="does not record its source and target"):
        S.checkpoint_localiser(bare)


def test_cli_far_checkpoint_renders_the_other_views_and_notes_why_not(tmp_path, capsys):
    path = _digits_checkpoint(tmp_path / "far.safetensors", str(tmp_path / "gone"), "mnist", stored=False)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8), mode="L").save(image)
    argv = ["attention", "--checkpoint", str(path), "--image", str(image), "--out", str(tmp_path / "o")]
    assert main([*argv, "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["grid_view"] == "attention" and record["grid_reads"] == "high"
    assert record["views"]["shift"] is None and record["views"]["gap"] is None
    assert "cannot be loaded here" in record["view_notes"]["shift"] and "gone" in record["view_notes"]["gap"]
    assert np.array(record["views"]["attention"]).shape == (7, 7)
    assert main([*argv, "--view", "shift"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shift view" in err


def test_cli_opens_on_the_shift_view_and_writes_the_overlay_at_the_images_aspect(tmp_path, capsys):
    path = _digits_checkpoint(tmp_path / "m.safetensors")
    image = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 100, 3), dtype=np.uint8)).save(image)
    argv = ["attention", "--checkpoint", str(path), "--image", str(image), "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["grid_view"] == "shift" and record["grid_reads"] == "high"
    assert np.array(record["grid"]).shape == (14, 14) and record["view_shapes"]["shift"] == [14, 14]
    assert record["grid"] == record["views"]["shift"] and record["view_notes"]["shift"] is None
    assert record["grid_box"] == [0, 0, 100, 40]  # a digits model sees the whole image, squeezed
    assert record["view_boxes"]["shift"] == {"box": [0, 0, 100, 40], "shape": [14, 14]}
    assert record["view_boxes"]["attention"] == {"box": [0, 0, 100, 40], "shape": [7, 7]}
    assert record["localiser"] is None  # stored before the fit counts were recorded: nothing said
    with Image.open(record["overlay_png"]) as overlay:
        assert overlay.size == display_size(100, 40)


def _counted(channels, fitted_on):
    localiser = Localiser(channels, seeds=1)
    localiser.fitted_on = fitted_on
    return localiser


def test_the_fit_counts_reach_the_json_and_the_caption_and_survive_the_sidecar(tmp_path, capsys, monkeypatch):
    from tada_core.checkpoint import load_checkpoint

    torch.manual_seed(0)
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    info = CheckpointInfo(config, DIGITS, str(tmp_path / "gone"), "mnist")
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(config), info, _counted(32, (500, 480)).to_tensors())
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8), mode="L").save(image)
    assert main(["attention", "--checkpoint", str(path), "--image", str(image), "--out", str(tmp_path), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["grid_view"] == "shift" and record["localiser"] == {"source_images": 500, "target_images": 480}
    model, info = load_checkpoint(path)
    [result] = predict_attention(model, info, [Image.open(image)], localiser=S.checkpoint_localiser(path))
    caption = attention_figure(result, view="shift").get_supxlabel().replace("\n", " ")
    assert "fitted on 500 + 480 images (source + target)" in caption

    old = _digits_checkpoint(tmp_path / "old.safetensors", "optdigits", "mnist", stored=False)
    monkeypatch.setattr(S, "fit_for_backbone", lambda *a, **k: _counted(32, (40, 40)))
    assert S.checkpoint_localiser(old).localiser.fitted_on == (40, 40)
    S.store_for().forget()  # a new process reads the sidecar, counts included
    cached = S.checkpoint_localiser(old)
    assert cached.origin == "cached" and cached.localiser.fitted_on == (40, 40)


def test_every_view_reads_an_end_and_a_nearly_flat_map_is_called_so():
    assert {name: view.reads for name, view in VIEWS.items()} == {
        "attention": "high",
        "transferability": "low",
        "gap": "high",
        "shift": "high",
    }
    assert flat_note((0.0, 0.5)) is None and flat_note(None) is None
    assert "0.004" in flat_note((0.001, 0.005)) and "nearly flat" in flat_note((0.3, 0.315))


def test_the_colour_bar_of_a_nearly_flat_map_says_so(tmp_path):
    from tada_core.checkpoint import load_checkpoint

    path = _digits_checkpoint(tmp_path / "m.safetensors")
    model, info = load_checkpoint(path)
    [result] = predict_attention(model, info, [Image.new("L", (28, 28))])
    fig = attention_figure(result, view="attention", value_range=(0.0, 0.01), scale="shared")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("nearly flat" in label for label in labels)
    assert "nearly flat" not in "".join(ax.get_ylabel() for ax in attention_figure(result).axes)


def test_a_measured_auc_appears_in_the_caption(monkeypatch):
    from tada_core.explain import views

    monkeypatch.setitem(views.MEASURED, "gap", "digits AUC 0.90")
    assert views.VIEWS["gap"].meaning.endswith("(digits AUC 0.90)")


def test_the_default_view_of_a_checkpoint(tmp_path, photo_checkpoint):
    assert S.checkpoint_default_view(photo_checkpoint) == "shift"  # stored, even with its domains elsewhere
    far = _digits_checkpoint(tmp_path / "far.safetensors", str(tmp_path / "gone"), "mnist", stored=False)
    assert S.checkpoint_default_view(far) == "attention"
    here = _digits_checkpoint(tmp_path / "here.safetensors", "optdigits", "mnist", stored=False)
    assert S.checkpoint_default_view(here) == "shift"  # fittable


def test_fit_in_background_returns_a_future(tmp_path, monkeypatch):
    path = _digits_checkpoint(tmp_path / "bg.safetensors", "optdigits", "mnist", stored=False)
    monkeypatch.setattr(S, "fit_for_backbone", lambda *a, **k: Localiser(32, seeds=1))
    assert S.fit_in_background(path).result(timeout=60).origin == "fitted"


def test_one_store_answers_ready_get_and_one_background_fit_a_file(tmp_path, monkeypatch):
    """ready() never fits; fit_in_background() hands out the same future while a fit of the file runs;
    afterwards every question is answered from memory, and a new store (process) reads the sidecar."""
    path = _digits_checkpoint(tmp_path / "one.safetensors", "optdigits", "mnist", stored=False)
    store = S.LocaliserStore()
    calls, release = [], threading.Event()

    def slow_fit(*args, **kwargs):
        calls.append(args[1])
        release.wait(30)
        return Localiser(32, seeds=1)

    monkeypatch.setattr(S, "fit_for_backbone", slow_fit)
    assert store.ready(path) is None and calls == []
    first = store.fit_in_background(path)
    assert store.fit_in_background(path) is first  # one fit of the file at a time
    release.set()
    found = first.result(timeout=60)
    assert found.origin == "fitted" and calls == ["lenet"]
    assert store.ready(path) is found and store.get(path) is found
    assert store.status(path) == S.ShiftStatus(True, False, "cached")
    assert S.LocaliserStore().ready(path).origin == "cached" and calls == ["lenet"]
