"""Hostile files and bad input without a server: pickles that run code, lying checkpoint metadata,
image formats no one should decode, symlinks out of the data root, and the CLI's one-line errors.

The app-level versions (uploads through the running server) are in ``tests/test_robust_app.py``;
plain bad files (missing, empty, text, truncated, header bombs) are in ``tests/test_data.py`` and
``tests/test_train.py``.
"""

from __future__ import annotations

import io
import pathlib
import pickle
import re

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image
from safetensors.torch import save_file

from app.serving.checkpoints import CheckpointRegistry
from app.serving.domains import DomainCatalog
from app.serving.storage import Storage
from tada_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from tada_core.cli import main
from tada_core.config import TADAConfig
from tada_core.data import load_image
from tada_core.errors import CheckpointError, DataError
from tada_core.model import build_model

DIGITS = [str(d) for d in range(10)]


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for any code a stranger's pickle runs."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def evil_pickle(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A ``torch.save`` file whose loading (with ``weights_only=False``) creates ``marker``."""
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": _Payload(marker)}, path)
    return path


def test_the_payload_is_live(tmp_path):
    """The control: a plain unpickle of the payload does create its marker."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.pt", "evil.pth", "evil.ckpt", "evil.safetensors", "evil"])
def test_code_carrying_pickles_are_refused_and_never_run(tmp_path, name):
    marker = tmp_path / "pwned"
    path = evil_pickle(tmp_path / name, marker)
    with pytest.raises(CheckpointError, match="pickle|not a valid|does not exist"):
        load_checkpoint(path)
    registry = CheckpointRegistry(shipped_dir=tmp_path / "none", storage=Storage(tmp_path / "data"))
    with pytest.raises(CheckpointError):
        registry.add(path)
    assert registry.names() == [] and not marker.exists()


def lying_checkpoint(path: pathlib.Path, metadata: str) -> pathlib.Path:
    """Real LeNet TADA weights under metadata that says something else."""
    state = build_model(TADAConfig(backbone="lenet", num_classes=10)).state_dict()
    save_file({f"model.{k}": v for k, v in state.items()}, path, metadata={"tada": metadata})
    return path


def lying_metadata(**config) -> str:
    config = TADAConfig(**{"backbone": "lenet", "num_classes": 10, **config})
    return CheckpointInfo(config, [f"c{i}" for i in range(config.num_classes)]).to_json()


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        # 200,000-wide layers would need ~160 GB: refused from the shapes, before any allocation
        (lambda: lying_metadata(bottleneck_dim=200_000, global_hidden=200_000), "does not match its own config"),
        (lambda: lying_metadata(num_classes=1000), "wrong shape classifier"),
        (lambda: lying_metadata(variant="source_only"), "unexpected"),
        # every upload would be resized to 100,000² pixels
        (lambda: lying_metadata(variant="source_only", image_size=100_000), "100000×100000 input images"),
        (lambda: lying_metadata(image_size=-3), "input images"),
        (lambda: "[" * 100_000, "unreadable TADA metadata"),
        (lambda: "null", "unreadable TADA metadata"),
        (lambda: '{"format_version": 1, "config": {"backbone": "lenet", "evil": 1}, "class_names": []}', "unknown"),
        (lambda: '{"format_version": 99}', "newer than this TADA Studio"),
    ],
    ids=[
        "huge-layers",
        "class-count",
        "other-variant",
        "huge-input",
        "negative-input",
        "deep-json",
        "null",
        "keys",
        "v99",
    ],
)
def test_lying_metadata_is_a_clear_checkpoint_error(tmp_path, metadata, message):
    path = lying_checkpoint(tmp_path / "liar.safetensors", metadata())
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path)
    assert "liar.safetensors" in str(err.value)


def test_checkpoint_still_round_trips_after_the_shape_check(tmp_path):
    config = TADAConfig(backbone="lenet", num_classes=10, image_size=32)
    model = build_model(config)
    path = save_checkpoint(tmp_path / "ok.safetensors", model, CheckpointInfo(config, DIGITS))
    loaded, info = load_checkpoint(path)
    assert info.config.image_size == 32 and not any(p.is_meta for p in loaded.parameters())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model.eval()(x).logits)


def _encoded(fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("RGB").save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "PPM", "SGI", "QOI", "DDS", "JPEG2000"])
def test_decoders_outside_the_accepted_formats_are_never_tried(tmp_path, fmt):
    """A TGA, PCX, JPEG 2000, … renamed .png is refused: only PNG/JPEG/BMP/GIF/WebP/TIFF parsers see uploads."""
    path = tmp_path / "renamed.png"
    path.write_bytes(_encoded(fmt))
    with pytest.raises(DataError, match="renamed.png.*not a recognised image format"):
        load_image(path)


def test_postscript_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", lambda self: pytest.fail("EPS decoder reached"))
    path = tmp_path / "doc.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(pwned) print\nshowpage\n")
    with pytest.raises(DataError, match="not a recognised image format"):
        load_image(path)


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
        ("MPO", {"save_all": True, "append_images": [Image.new("RGB", (8, 8))]}),
    ],
)
def test_accepted_formats_still_decode(fmt, kwargs):
    data = _encoded(fmt, **kwargs)
    assert Image.open(io.BytesIO(data)).format == fmt  # MPO (camera JPEGs) comes in through the JPEG decoder
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (8, 8)
    assert abs(int(np.asarray(image)[7, 7, 0]) - 63) <= (0 if fmt != "MPO" else 4)


def test_symlinks_out_of_the_data_root_are_refused(tmp_path):
    outside = tmp_path / "secret"
    for cls in ("a", "b"):
        (outside / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(outside / cls / "1.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "nested").mkdir()
    (root / "nested" / "up").symlink_to("../../secret", target_is_directory=True)
    catalog = DomainCatalog(root, Storage(tmp_path / "store"))
    for spec in ("escape", "nested/up", "escape/a", str(outside), "../secret", "./../secret", "nested/../../secret"):
        with pytest.raises(DataError, match="not a folder inside"):
            catalog.resolve(spec)
    assert catalog.folders() == []  # the listing does not follow them either


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attention", "--checkpoint", "{evil}", "--image", "{png}", "--out", "{out}"], "not a valid"),
        (["attention", "--checkpoint", "{junk}", "--image", "{png}", "--out", "{out}"], "no TADA metadata"),
        (["attention", "--checkpoint", "{liar}", "--image", "{png}", "--out", "{out}"], "does not match"),
        (["attention", "--checkpoint", "{ckpt}", "--image", "{bomb}", "--out", "{out}"], "over the limit"),
        (
            ["tsne", "--checkpoint", "{ckpt}", "--source", "nowhere", "--target", "mnist", "--out", "{out}/t.png"],
            "unknown domain 'nowhere'",
        ),
        (["app", "--port", "notanumber"], "invalid int value: 'notanumber'"),
        (["data", "download", "nonsense"], "unknown built-in 'nonsense'|downloadable built-ins"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
    ids=["pickle", "foreign", "lying", "pixel-bomb", "tsne-domain", "app-port", "download", "command"],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    marker = tmp_path / "pwned"
    config = TADAConfig(backbone="lenet", num_classes=10)
    files = {
        "evil": evil_pickle(tmp_path / "evil.safetensors", marker),
        "ckpt": save_checkpoint(tmp_path / "ok.safetensors", build_model(config), CheckpointInfo(config, DIGITS)),
        "liar": lying_checkpoint(tmp_path / "liar.safetensors", lying_metadata(num_classes=3)),
        "png": tmp_path / "x.png",
        "bomb": tmp_path / "bomb.png",
        "junk": tmp_path / "junk.safetensors",
        "out": tmp_path / "out",
    }
    save_file({"w": torch.zeros(1)}, files["junk"])
    Image.new("RGB", (28, 28)).save(files["png"])
    Image.new("1", (8000, 6000)).save(files["bomb"])  # 48 M pixels, 6 KB on disk
    code, err = _cli([a.format(**files) for a in argv], capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("tada") and " error: " in err
    assert re.search(message, err), err
    assert not marker.exists() and not files["out"].exists()
