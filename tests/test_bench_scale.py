"""tada bench scale: growing a domain, timing a command, the growth exponents."""

from __future__ import annotations

import sys

from PIL import Image

from tada_core.bench.scale import GROWN_SIDE, grow, growth_exponents, timed


def test_grow_writes_n_images_in_class_folders_cycling_over_the_bases(tmp_path):
    bases = []
    for k, colour in enumerate(["red", "blue", "green"]):
        path = tmp_path / f"b{k}.png"
        Image.new("RGB", (80, 80), colour).save(path)
        bases.append(str(path))
    out = grow(bases, ["a", "b"], [0, 1, 0], 7, tmp_path / "grown", seed=0)
    files = sorted(out.rglob("*.png"))
    assert len(files) == 7
    # image i comes from base i mod 3: classes a, b, a, a, b, a, a
    assert [f.parent.name for f in sorted(files, key=lambda f: f.name)] == ["a", "b", "a", "a", "b", "a", "a"]
    with Image.open(files[0]) as image:
        assert image.size == (GROWN_SIDE, GROWN_SIDE)
    again = grow(bases, ["a", "b"], [0, 1, 0], 7, tmp_path / "again", seed=0)
    assert [f.read_bytes() for f in sorted(again.rglob("*.png"))] == [f.read_bytes() for f in files]


def test_timed_reports_the_command_its_memory_and_json(tmp_path):
    code = "import json; x = bytearray(50 * 2**20); print(json.dumps({'ok': len(x)}))"
    result = timed([sys.executable, "-c", code], tmp_path / "cmd")
    assert result["returncode"] == 0 and result["json"] == {"ok": 50 * 2**20}
    assert result["peak_rss_mb"] >= 50 and result["seconds"] > 0
    failed = timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "bad")
    assert failed["returncode"] == 3 and failed["json"] is None


def test_growth_exponent_is_the_log_log_slope():
    sizes = [
        {
            "images_per_domain": 1000,
            "commands": {"train": {"seconds": 10.0}, "tsne": {"seconds": 5.0}},
            "phases": {"steps": 20.0},
        },
        {
            "images_per_domain": 10000,
            "commands": {"train": {"seconds": 100.0}, "tsne": {"seconds": 5.0}},
            "phases": {"steps": 20.0},
        },
    ]
    # train ×10 for ×10 images: slope 1; t-SNE and the steps constant: slope 0
    assert growth_exponents(sizes) == {"train": 1.0, "tsne": 0.0, "train.steps": 0.0}
