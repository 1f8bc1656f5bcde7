"""Localised-shift photo pairs: artefacts and their masks, shift and control pairs, the built-in
domains, and ``tada data localisation``'s folders."""

import json

import numpy as np
import pytest
from PIL import Image

from tada_core.cli import main
from tada_core.data import list_builtin_domains, load_domain
from tada_core.data.artefacts import KINDS, STAMPS, global_change
from tada_core.data.shift_export import find_mask, mask_box
from tada_core.data.shift_pairs import (
    HELDOUT_CLASSES,
    SIZE,
    WINDOW,
    builtin_shift_arrays,
    builtin_shift_names,
    shift_pair,
)
from tada_core.data.transforms import IMAGENET_NORM


@pytest.mark.parametrize("kind", KINDS)
def test_a_stamp_changes_pixels_only_inside_its_window_and_its_mask_marks_them(kind):
    image = np.full((SIZE, SIZE, 3), 100, np.uint8)
    window = (40, 60, 120)
    stamped, mask = STAMPS[kind](image, window, np.random.default_rng(3))
    changed = (stamped != image).any(-1)
    inside = np.zeros((SIZE, SIZE), bool)
    inside[60:180, 40:160] = True
    assert mask.any() and not (mask & ~inside).any() and not (changed & ~inside).any()
    assert changed[mask].mean() > 0.9  # the mask marks changed pixels …
    strong = (np.abs(stamped.astype(int) - image).max(-1) > 40) & ~mask
    assert strong.sum() <= 0.05 * mask.sum()  # … and every strong change is in it
    again, again_mask = STAMPS[kind](image, window, np.random.default_rng(3))
    assert np.array_equal(again, stamped) and np.array_equal(again_mask, mask)  # deterministic by seed


def test_the_text_stamp_is_a_small_mark():
    boxes = [mask_box(STAMPS["text"](np.zeros((SIZE, SIZE, 3), np.uint8), WINDOW, np.random.default_rng(s))[1])
             for s in range(20)]  # fmt: skip
    widths, heights = [b[2] - b[0] for b in boxes], [b[3] - b[1] for b in boxes]
    assert 25 <= np.median(widths) <= 110 and 8 <= np.median(heights) <= 25


def test_global_changes_touch_every_pixel_but_leave_the_layout():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for kind in KINDS:
        changed = global_change(image, kind, np.random.default_rng(0))
        assert changed.shape == image.shape and (changed != image).mean() > 0.5
        assert np.corrcoef(changed.mean(-1).ravel(), image.mean(-1).ravel())[0, 1] > 0.3


def test_shift_pairs_mark_every_target_image_and_no_source_image():
    pair = shift_pair("text")
    assert pair.name == "shift-text" and pair.classes == ["cat", "coffee", "motorcycle", "person"]
    assert [len(p) for p in (pair.source, pair.source_test, pair.target, pair.target_test)] == [160, 40, 160, 60]
    assert pair.target.images.shape == (160, SIZE, SIZE, 3) and pair.target.masks.shape == (160, SIZE, SIZE)
    assert pair.target.masks.any(axis=(1, 2)).all() and pair.target_test.masks.any(axis=(1, 2)).all()
    assert not pair.source.masks.any() and not pair.source_test.masks.any()
    x0, y0, side = WINDOW
    assert not pair.target.masks[:, :y0].any() and not pair.target.masks[:, :, x0 + side :].any()


def test_control_pairs_carry_the_artefact_in_half_of_both_domains():
    pair = shift_pair("watermark", "control")
    for part in (pair.source, pair.target):
        assert 0.35 <= part.masks.any(axis=(1, 2)).mean() <= 0.65
    held = shift_pair("defect", "shift", "heldout")
    assert held.name == "shift-defect-heldout" and held.classes == list(HELDOUT_CLASSES)


def test_pairs_are_deterministic_by_seed():
    shift_pair.cache_clear()
    first = shift_pair("dust", seed=1).target_test.images.copy()
    shift_pair.cache_clear()
    assert np.array_equal(shift_pair("dust", seed=1).target_test.images, first)
    assert not np.array_equal(shift_pair("dust", seed=2).target_test.images, first)


def test_the_built_in_shift_domains_load_by_name_with_their_masks():
    names = builtin_shift_names()
    assert {"shift-text-source", "shift-text-target", "shift-dust-control-target"} <= set(names)
    listed = {row["name"]: row for row in list_builtin_domains()}
    assert listed["shift-text-target"]["num_classes"] == 4 and listed["shift-text-target"]["size"] == 160
    domain = load_domain("shift-text-target", image_size=224, norm=IMAGENET_NORM, train=False)
    image, label = domain.dataset[0]
    assert len(domain) == 160 and tuple(image.shape) == (3, 224, 224) and domain.class_names[label] == "cat"
    images, labels, masks = builtin_shift_arrays("shift-text-target")
    assert images.shape[0] == labels.shape[0] == masks.shape[0] == 160 and masks.any(axis=(1, 2)).all()
    with pytest.raises(ValueError, match="unknown shift domain"):
        builtin_shift_arrays("shift-paint-target")


def test_mask_box_by_hand():
    mask = np.zeros((5, 6), bool)
    assert mask_box(mask) is None
    mask[1, 2] = mask[3, 4] = True
    assert mask_box(mask) == [2, 1, 5, 4]  # x0, y0, x1, y1 with x1, y1 exclusive


def test_cli_writes_each_pair_as_folders_with_masks_and_boxes(tmp_path, capsys):
    out = tmp_path / "loc"
    assert main(["data", "localisation", "--out", str(out), "--kinds", "defect", "--modes", "shift", "--json"]) == 0
    (written,) = json.loads(capsys.readouterr().out)
    root = out / "shift-defect"
    assert written["folder"] == str(root) and written["sizes"]["target_test"] == 60
    image = root / "target_test" / "cat" / "0000.png"
    with Image.open(image) as png:
        assert png.size == (SIZE, SIZE)
    mask = find_mask(image)
    expected = shift_pair("defect").target_test.masks[0]
    assert np.array_equal(mask, expected)
    boxes = json.loads((root / "boxes.json").read_text())
    assert boxes["target_test/cat/0000.png"] == mask_box(expected) and boxes["source/cat/0000.png"] is None
    assert len(boxes) == 160 + 160 + 40 + 60 and json.loads((root / "pair.json").read_text())["kind"] == "defect"
    assert not list((root / "source").rglob("*mask*"))  # the masks are not in the domain folders
    assert main(["data", "localisation", "--out", str(out), "--kinds", "paint"]) == 2
    assert "unknown kind" in capsys.readouterr().err
