"""``tada attention`` and ``tada tsne`` end to end on a random LeNet checkpoint and tiny folders."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tada_core import TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, save_checkpoint
from tada_core.cli import main

CLASSES = [str(i) for i in range(10)]


def _checkpoint(path, variant="tada", seed=0):
    torch.manual_seed(seed)
    config = TADAConfig(backbone="lenet", num_classes=10, variant=variant)
    return save_checkpoint(path, build_model(config), CheckpointInfo(config, CLASSES, "mnist", "mnistm"))


def _folder(root, per_class=3, seed=0, colour=False):
    """An ImageFolder domain: root/<digit>/<i>.png."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (28, 28, 3) if colour else (28, 28)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_viz")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(root / "grey.png")
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(root / "big.jpg")
    return {
        "root": root,
        "ckpt": _checkpoint(root / "tada.safetensors"),
        "so": _checkpoint(root / "so.safetensors", variant="source_only", seed=1),
        "source": _folder(root / "src"),
        "target": _folder(root / "tgt", seed=1, colour=True),
    }


def test_attention_writes_png_and_json_per_image(files, tmp_path, capsys):
    images = [str(files["root"] / "grey.png"), str(files["root"] / "big.jpg")]
    argv = ["attention", "--checkpoint", str(files["ckpt"]), "--image", *images, "--out", str(tmp_path), "--json"]
    assert main([*argv, "--mode", "blocky", "--view", "transferability", "--scale", "image", "--top-k", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in printed] == images
    for stem in ("grey", "big"):
        with Image.open(tmp_path / f"{stem}_attention.png") as png:
            assert png.format == "PNG" and png.size[0] > 500
        record = json.loads((tmp_path / f"{stem}_attention.json").read_text())
        views = {name: np.array(g) for name, g in record["views"].items()}
        grid = views["attention"]
        assert grid.shape == (7, 7) and 0 <= grid.min() and grid.max() <= 1
        assert record["grid_view"] == "transferability" and record["grid_reads"] == "low"
        np.testing.assert_allclose(record["grid"], views["transferability"])
        assert record["predicted"] in CLASSES and len(record["top_k"]) == 3
        assert 1 <= record["global_attention"] <= 2 and 0 <= record["domain_prob"] <= 1
        assert record["checkpoint"] == str(files["ckpt"]) and record["style"]["mode"] == "blocky"
        np.testing.assert_allclose(views["transferability"], 1.0 - grid, atol=1e-5)
        assert views["gap"].shape == (7, 7) and 0 <= views["gap"].min() and views["gap"].max() <= 1
        assert record["value_range"] == pytest.approx([views["transferability"].min(), views["transferability"].max()])
        assert np.array(record["pair_gap"]["a_distance"]).shape == (7, 7)


def test_attention_human_summary_and_duplicate_names(files, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "grey.png").write_bytes((files["root"] / "grey.png").read_bytes())
    images = [str(files["root"] / "grey.png"), str(other / "grey.png")]
    assert main(["attention", "--checkpoint", str(files["ckpt"]), "--image", *images, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("P(source)") == 2
    assert (tmp_path / "000_grey_attention.png").is_file() and (tmp_path / "001_grey_attention.json").is_file()


@pytest.mark.parametrize("bad", ["missing.png", "notes.txt"])
def test_attention_bad_image_is_one_line_exit_2(files, tmp_path, capsys, bad):
    (tmp_path / "notes.txt").write_text("not an image")
    path = tmp_path / bad
    argv = ["attention", "--checkpoint", str(files["ckpt"]), "--image", str(path), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tada attention: error:") and err.count("\n") == 1 and bad in err
    assert not (tmp_path / "o").exists()  # nothing written


def test_attention_domain_view(files, tmp_path, capsys):
    argv = ["attention", "--checkpoint", str(files["ckpt"]), "--domain", str(files["target"]), "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["count"] == 30 and np.array(record["mean_grid"]).shape == (7, 7)
    assert sum(record["m"]["histogram"]) == 30
    with Image.open(record["png"]) as png:
        assert png.format == "PNG"


def test_tsne_two_checkpoints_png_csv_and_a_distance(files, tmp_path, capsys):
    out = tmp_path / "plots" / "tsne.png"
    argv = ["tsne", "--checkpoint", str(files["so"]), "--checkpoint", str(files["ckpt"])]
    argv += ["--source", str(files["source"]), "--target", str(files["target"]), "--max-points", "20"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["variant"] for c in result["checkpoints"]] == ["source_only", "tada"]
    assert all(0.0 <= c["a_distance"] <= 2.0 and c["n_source"] == c["n_target"] == 20 for c in result["checkpoints"])
    for c in result["checkpoints"]:
        alignment = c["alignment"]
        assert set(alignment) == {"measure", "value", "interval", "reads"}
        assert alignment["measure"] == "class-conditional MMD (target labels)" and c["measures"][0] == alignment
        low, high = alignment["interval"]
        assert low <= alignment["value"] <= high and alignment["reads"] == "lower is better aligned"
        assert set(c["a_distance_views"]) == {"domain", "running"}
        assert all(low <= v["value"] <= high for v in c["a_distance_views"].values() for low, high in [v["interval"]])
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1] * 0.8  # two columns side by side
    with out.with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["checkpoint", "x", "y", "domain", "class", "prediction"]
    assert len(rows) == 80 and {r["domain"] for r in rows} == {"source", "target"}
    assert {r["checkpoint"] for r in rows} == {str(files["so"]), str(files["ckpt"])}
    assert all(r["class"] in CLASSES and r["prediction"] in CLASSES for r in rows)
    float(rows[0]["x"]), float(rows[0]["y"])


def test_tsne_unlabelled_target_takes_classes_from_predictions(files, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, png in enumerate(sorted((files["target"]).glob("*/*.png"))):
        (flat / f"{i}.png").write_bytes(png.read_bytes())
    argv = ["tsne", "--checkpoint", str(files["ckpt"]), "--source", str(files["source"]), "--target", str(flat)]
    assert main([*argv, "--max-points", "30", "--out", str(tmp_path / "t.png"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["checkpoints"]
    assert result["alignment"]["measure"] == "class-conditional MMD (target predictions)"
    assert result["target_accuracy"] is None
    assert [m["measure"] for m in result["measures"]][1:] == ["source-neighbour agreement with the model"]


def test_tsne_human_summary_prints_a_distance(files, tmp_path, capsys):
    argv = ["tsne", "--checkpoint", str(files["ckpt"]), "--source", str(files["source"])]
    argv += ["--target", str(files["target"]), "--max-points", "15", "--out", str(tmp_path / "t.png")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "A-distance" in printed and "class-conditional MMD" in printed and "lower is better aligned" in printed
    assert (tmp_path / "t.png").is_file() and (tmp_path / "t.csv").is_file()


def test_attention_gap_view_needs_the_checkpoints_domains(files, tmp_path, capsys):
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    info = CheckpointInfo(config, CLASSES, str(tmp_path / "gone"), "mnist")
    ckpt = save_checkpoint(tmp_path / "elsewhere.safetensors", build_model(config), info)
    argv = ["attention", "--checkpoint", str(ckpt), "--image", str(files["root"] / "grey.png"), "--out", str(tmp_path)]
    assert main([*argv, "--view", "gap"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be loaded here" in err and "choose the attention" in err
    assert main([*argv, "--view", "attention", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["views"]["gap"] is None and record["pair_gap"] is None and "gone" in record["gap_note"]
    assert np.array(record["views"]["attention"]).shape == (7, 7)
