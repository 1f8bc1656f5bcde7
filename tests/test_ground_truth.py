"""The shift examples' ground truth in the app: matching uploads by content, drawing the outline."""

from __future__ import annotations

import numpy as np

from app.serving.ground_truth import OUTLINE_RGB, SHADOW_RGB, SHIFT_EXAMPLES_DIR, mask_for, outline
from tada_core.data.shift_export import find_mask


def test_an_example_target_is_matched_by_its_bytes_and_a_source_or_stranger_is_not(tmp_path):
    target = SHIFT_EXAMPLES_DIR / "target_cat.png"
    copy = tmp_path / "upload-renamed.png"  # the app sees a copy under another name
    copy.write_bytes(target.read_bytes())
    mask = mask_for(copy.read_bytes())
    assert mask is not None and mask.any()
    np.testing.assert_array_equal(mask, find_mask(target))
    assert mask_for((SHIFT_EXAMPLES_DIR / "source_cat.png").read_bytes()) is None  # clean: empty mask
    assert mask_for(target.read_bytes()[:-1] + b"\x00") is None


def test_outline_draws_a_box_around_the_mask_with_a_shadow_outside_it():
    image = np.full((20, 20, 3), 100, dtype=np.uint8)
    mask = np.zeros((20, 20), dtype=bool)
    mask[8:12, 8:12] = True  # rows/cols 8–11, grown by 3 px: the box spans 5–14
    drawn = outline(image, mask)
    white = np.all(drawn == OUTLINE_RGB, axis=2)
    black = np.all(drawn == SHADOW_RGB, axis=2)
    box = np.zeros((20, 20), dtype=bool)
    box[5:15, 5:15] = True
    box[6:14, 6:14] = False  # a 1 px ring: 10·4 − 4 = 36 pixels
    np.testing.assert_array_equal(white, box)
    ring = np.zeros((20, 20), dtype=bool)
    ring[4:16, 4:16] = True
    ring[5:15, 5:15] = False  # the shadow just outside: 12·4 − 4 = 44 pixels
    np.testing.assert_array_equal(black, ring)
    assert np.all(drawn[10, 10] == 100) and np.all(image == 100)  # the mark stays visible; input untouched


def test_outline_scales_the_mask_to_the_overlay():
    image = np.zeros((20, 40, 3), dtype=np.uint8)  # an overlay twice the mask's size
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:5, 5:10] = True  # → rows 4–9, columns 10–19 of the overlay, grown by 3 px
    white = np.all(outline(image, mask) == OUTLINE_RGB, axis=2)
    rows, cols = np.nonzero(white)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 12, 7, 22)
