"""A public demo receives every kind of input: odd and hostile uploads, damaged and code-carrying
checkpoints, paths and zips that try to leave their folder, and bursts of concurrent requests.

One in-process server for the module, driven through its API with gradio_client (as in
``tests/test_app.py``, whose helpers it reuses). Each bad request must give a clear ``AppError``
and the next request must still work; each odd but valid image must give the same result as
its plain RGB equivalent. The single-job rule and stop-keeps-a-checkpoint are covered in
``tests/test_app.py``.
"""

from __future__ import annotations

import io
import struct
import threading
import uuid
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors.torch import save_file

import app.serving.domains
import app.tabs.attention_report
import tada_core.data.archives
from app.main import build_app, launch
from app.serving.checkpoints import load_model
from app.serving.context import example_images
from app.serving.jobs import JobManager
from tada_core.checkpoint import CheckpointInfo
from tada_core.config import TADAConfig
from tada_core.explain.inference import predict_attention
from tada_core.model import build_model
from tests.test_app import DIGITS, TINY_TRAIN, attention, free_port, make_checkpoints
from tests.test_robust_files import evil_pickle, lying_checkpoint, lying_metadata

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
RNG = np.random.default_rng(0)
PATTERN = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # any non-flat picture
MASK = RNG.random((32, 32)) < 0.3  # where the odd images are transparent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    outside = root / "outside"  # a folder of class folders the app must never read
    for cls in ("a", "b"):
        (outside / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(outside / cls / "1.png")
    data = root / "data"
    data.mkdir()
    (data / "escape").symlink_to(outside, target_is_directory=True)
    demo = build_app(
        data_dir=root / "runs", data_root=data, shipped_dir=make_checkpoints(root / "checkpoints"), jobs=JobManager()
    )
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False, analytics_enabled=False, download_files=str(root / "downloads"))
    upload = next(f.fn for f in demo.fns.values() if f.name == "add_checkpoint")  # the Model tab's upload

    def add(files):  # uploaded as the visitor whose requests the client makes
        return upload(files, request=SimpleNamespace(session_hash=client.session_hash))

    yield SimpleNamespace(
        demo=demo, client=client, url=url, root=root, outside=outside, ctx=demo.tada_context, add_checkpoint=add
    )
    demo.tada_context.jobs.stop(None)
    demo.tada_context.jobs.wait(30)
    demo.close()


def works(client: Client) -> None:
    """The server still answers a normal request."""
    _, gallery, values = attention(client, "tada_tiny", example_images()["source"][:1], [])
    assert len(gallery) == 1 and np.array(values["results"][0]["grid"]).shape == (7, 7)


# --- uploads --------------------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header (with a valid CRC) says ``width × height``."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _deep_png(path: Path) -> np.ndarray:
    values = (PATTERN[..., 0].astype(np.uint16) * 257) ^ np.uint16(0x5A)  # uses the low byte too
    Image.fromarray(values).save(path)
    grey = np.rint(values / 65535 * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _rgba_png(path: Path) -> np.ndarray:
    alpha = np.where(MASK, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([PATTERN, alpha])).save(path)
    return np.where(MASK[..., None], 255, PATTERN).astype(np.uint8)  # transparent → white


def _palette_png(path: Path) -> np.ndarray:
    colours = np.array([[200, 30, 30], [20, 160, 60], [30, 40, 220], [0, 0, 0]], dtype=np.uint8)
    index = (PATTERN[..., 0] % 3).astype(np.uint8)
    index[MASK] = 3  # palette entry 3 is transparent
    image = Image.fromarray(index, mode="P")
    image.putpalette(colours.flatten().tolist())
    image.save(path, transparency=3)
    return np.where(MASK[..., None], 255, colours[index]).astype(np.uint8)


def _cmyk_jpeg(path: Path) -> np.ndarray:
    Image.fromarray(PATTERN).convert("CMYK").save(path, quality=95)
    with Image.open(path) as decoded:
        assert decoded.mode == "CMYK"
        return np.asarray(decoded.convert("RGB"))


def _animated_gif(path: Path) -> np.ndarray:
    first = np.where(MASK[..., None], [255, 0, 0], [0, 0, 0]).astype(np.uint8)
    second = np.where(MASK[..., None], [0, 0, 255], [255, 255, 255]).astype(np.uint8)
    frames = [Image.fromarray(first), Image.fromarray(second)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return first


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("deep.png", _deep_png),
        ("rgba.png", _rgba_png),
        ("palette.png", _palette_png),
        ("cmyk.jpg", _cmyk_jpeg),
        ("animated.gif", _animated_gif),
    ],
    ids=["16-bit", "rgba", "palette", "cmyk", "animated-gif"],
)
def test_odd_but_valid_images_give_the_result_of_their_rgb_equivalent(server, tmp_path, name, make):
    path = tmp_path / name
    expected = make(path)
    _, gallery, values = attention(server.client, "tada_tiny", [], [path])
    (result,) = values["results"]
    assert result["file"] == name and len(gallery) == 1
    model, info = load_model(server.ctx.registry.resolve("tada_tiny").path)
    (reference,) = predict_attention(model, info, [Image.fromarray(expected)], top_k=5)
    np.testing.assert_allclose(result["grid"], reference.grid, atol=1e-5)
    assert [(t["class"], pytest.approx(t["prob"], abs=1e-5)) for t in result["top_k"]] == reference.top_k


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(PATTERN).save(buffer, format="JPEG")
    return buffer.getvalue()[:400]


def _one_bit_png(path: Path) -> None:
    Image.new("1", (10_000, 5_000)).save(path)  # a real 50 M pixel image, 8 KB on disk


def _noise_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("archive.png", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8), "not a readable image"),
        ("empty.png", lambda p: p.write_bytes(b""), r"not a readable image \(empty file\); upload a PNG or JPEG"),
        ("cut.jpg", lambda p: p.write_bytes(_truncated_jpeg()), "not a readable image .*; upload a PNG or JPEG"),
        ("claims-30000.png", lambda p: p.write_bytes(_png_claiming(30_000, 30_000)), "pixels.*resize it"),
        ("wide.png", _one_bit_png, r"10000×5000 = 50,000,000 pixels, over the limit of 40,000,000; resize it"),
        ("noise.png", _noise_png, r"larger than 1 MiB; upload a smaller PNG or JPEG"),
    ],
    ids=["renamed-binary", "empty", "truncated-jpeg", "header-bomb", "huge-dimensions", "over-size-limit"],
)
def test_bad_uploads_give_a_clear_message_and_the_next_request_works(
    server, tmp_path, monkeypatch, name, make, message
):
    monkeypatch.setattr(app.tabs.attention_report, "MAX_UPLOAD_BYTES", 2**20)  # the noise PNG is ~1.4 MiB
    path = tmp_path / name
    make(path)
    with pytest.raises(AppError, match=f"source image '{name}': .*{message}"):
        attention(server.client, "tada_tiny", [path], example_images()["target"][:1])
    works(server.client)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"checkpoint": "../../etc/passwd"}, "unknown checkpoint"),
        ({"compare": "/etc/passwd"}, "unknown checkpoint"),
        ({"cmap": "$(rm -rf /)"}, "not in the list of choices"),
        ({"alpha": 7.0}, "greater than maximum"),
        ({"mode": "diagonal"}, "not in the list of choices"),
        ({"count": 17}, "at most 16"),
    ],
    ids=["checkpoint-path", "compare-path", "cmap", "alpha", "mode", "too-many"],
)
def test_bad_options_are_refused(server, options, message):
    options = dict(options)
    sources = example_images()["source"][:1] * options.pop("count", 1)
    checkpoint = options.pop("checkpoint", "tada_tiny")
    with pytest.raises(AppError, match=message):
        attention(server.client, checkpoint, sources, [], **options)
    works(server.client)


def test_concurrent_normal_and_hostile_requests_each_get_their_answer(server, tmp_path):
    """Ten visitors with good images and ten with hostile uploads at the same time: every normal
    request gets the right result, every hostile one its clear error."""
    images = example_images()
    _, _, expected = attention(server.client, "tada_tiny", images["source"][:1], images["target"][:1])
    hostile = {
        "archive.png": lambda p: p.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8),
        "empty.png": lambda p: p.write_bytes(b""),
        "cut.jpg": lambda p: p.write_bytes(_truncated_jpeg()),
        "claims-30000.png": lambda p: p.write_bytes(_png_claiming(30_000, 30_000)),
        "wide.png": _one_bit_png,
    }
    bad = []
    for name, make in hostile.items():
        make(tmp_path / name)
        bad.append(tmp_path / name)
    results: list = [None] * 20

    def one(i: int) -> None:
        try:
            client = Client(server.url, verbose=False, analytics_enabled=False, download_files=False)
            sources = images["source"][:1] if i % 2 == 0 else [bad[(i // 2) % len(bad)]]
            results[i] = attention(client, "tada_tiny", sources, images["target"][:1])[2]
        except Exception as err:  # reported below, with the others
            results[i] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    normal, refused = results[0::2], results[1::2]
    assert all(isinstance(r, dict) and r["results"] == expected["results"] for r in normal), normal
    assert all(isinstance(r, AppError) and "source image" in str(r) for r in refused), refused
    works(server.client)


# --- checkpoints ----------------------------------------------------------------------------------


def test_app_starts_with_hostile_checkpoints_and_shows_notices(tmp_path):
    marker = tmp_path / "pwned"
    good = make_checkpoints(tmp_path / "mine") / "tada_tiny.safetensors"
    hostile = [
        evil_pickle(tmp_path / "evil.pt", marker),
        evil_pickle(tmp_path / "evil.safetensors", marker),
        lying_checkpoint(tmp_path / "garbage.safetensors", "{not json"),
    ]
    demo = build_app(data_dir=tmp_path / "runs", shipped_dir=tmp_path / "none", checkpoints=[*hostile, good])
    ctx = demo.tada_context
    notices = "\n".join(ctx.notices)
    assert "evil.pt looks like a pickle" in notices and "evil.safetensors is not a valid" in notices
    assert "garbage.safetensors has unreadable TADA metadata" in notices
    assert ctx.registry.names() == ["tada_tiny"] and ctx.default_checkpoint() == "tada_tiny"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("evil.pt", evil_pickle, "not a .safetensors file"),
        ("evil.safetensors", evil_pickle, "not a valid .safetensors checkpoint"),
        ("garbage.safetensors", lambda p, m: lying_checkpoint(p, "{not json"), "unreadable TADA metadata"),
        ("big.safetensors", lambda p, m: lying_checkpoint(p, lying_metadata(image_size=50_000)), "50000×50000 input"),
    ],
    ids=["pickle", "pickle-renamed", "garbage-metadata", "huge-input"],
)
def test_model_tab_upload_refuses_unsafe_files(server, tmp_path, name, make, message):
    marker = tmp_path / "pwned"
    path = make(tmp_path / name, marker)
    before = server.ctx.registry.names()
    with pytest.raises(gr.Error, match=message):
        server.add_checkpoint(str(path))
    assert server.ctx.registry.names() == before and not marker.exists()
    stored = list(server.ctx.storage.visitors.glob("*/checkpoints/*/*")) if server.ctx.storage.visitors.is_dir() else []
    assert not [p for p in stored if p.name == name]  # not kept on the server


def _damaged(path: Path, kind: str) -> Path:
    """A .safetensors checkpoint whose header reads but whose weights do not fit its metadata."""
    if kind == "missing-keys":
        config = TADAConfig(backbone="lenet", num_classes=10)
        state = build_model(config).state_dict()
        tensors = {f"model.{k}": v for k, v in state.items() if k != "classifier.bias"}
        save_file(tensors, path, metadata={"tada": CheckpointInfo(config, DIGITS).to_json()})
        return path
    metadata = {
        "class-count": lying_metadata(num_classes=3),  # 3 classes over 10-class weights
        "huge-layers": lying_metadata(bottleneck_dim=200_000, global_hidden=200_000),  # ~160 GB if built
        "other-variant": lying_metadata(variant="tada_global"),
    }[kind]
    return lying_checkpoint(path, metadata)


@pytest.mark.parametrize("kind", ["class-count", "missing-keys", "huge-layers", "other-variant"])
def test_damaged_checkpoints_fail_clearly_and_the_server_keeps_serving(server, tmp_path, kind):
    path = _damaged(tmp_path / f"{kind}.safetensors", kind)
    update = server.add_checkpoint(str(path))  # the header reads; the weights do not fit
    assert update["value"] == kind
    with pytest.raises(AppError, match=f"{kind}.safetensors does not match its own config"):
        attention(server.client, kind, example_images()["source"][:1], [])
    with pytest.raises(AppError, match="does not match its own config"):
        server.client.predict(checkpoint=kind, api_name="/model_card")
    works(server.client)


# --- Train tab: paths and zips --------------------------------------------------------------------


def train_start(client: Client, **changes):
    return client.predict(**{**TINY_TRAIN, "iters": 2, "eval_every": 2, **changes}, api_name="/train_start")


@pytest.mark.parametrize(
    ("role", "spec"),
    [
        ("source", "../.."),
        ("target", "/etc"),
        ("source", "{outside}"),
        ("target", "escape"),  # a symlink in the data root pointing out of it
        ("source", "escape/a"),
        ("target", "./../outside"),
        ("source", "x/../../.."),
    ],
)
def test_train_tab_reads_only_under_the_data_root(server, role, spec):
    with pytest.raises(AppError, match="not a folder inside"):
        train_start(server.client, **{role: spec.format(outside=server.outside)})
    assert server.client.predict(api_name="/train_status")["status"] == "idle"  # nothing started


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(PATTERN).save(buffer, format="PNG")
    return buffer.getvalue()


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0x20
    return info


def _encrypted(path: Path) -> None:
    """Mark every entry as encrypted (flag bit 0), as a password-protected zip is."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset] |= 1
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


ZIP_KINDS = ("too-big", "dotdot", "backslash", "absolute", "symlink", "encrypted")


def _make_zip(path: Path, kind: str, escape: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for cls in ("a", "b"):
            archive.writestr(f"shapes/{cls}/0.png", _png_bytes())
        if kind == "dotdot":
            archive.writestr("shapes/../../evil.png", _png_bytes())
        elif kind == "backslash":
            archive.writestr("shapes\\..\\..\\evil.png", _png_bytes())
        elif kind == "absolute":
            archive.writestr(str(escape / "evil.png"), _png_bytes())
        elif kind == "symlink":
            archive.writestr(_symlink("shapes/a/link", str(escape)), str(escape))
            archive.writestr("shapes/a/link/evil.png", _png_bytes())
    if kind == "encrypted":
        _encrypted(path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("too-big", "over the .* limit; upload a smaller one"),
        ("dotdot", "leaves its folder"),
        ("backslash", "leaves its folder"),
        ("absolute", "absolute path"),
        ("symlink", "symbolic link"),
        ("encrypted", "cannot extract .* upload an unencrypted zip"),
    ],
    ids=ZIP_KINDS,
)
def test_hostile_zips_are_refused_and_nothing_is_written_outside(server, tmp_path, monkeypatch, kind, message):
    if kind == "too-big":
        monkeypatch.setattr(tada_core.data.archives, "MAX_ZIP_BYTES", 1000)
    escape = Path("/tmp") / f"tada-escape-{uuid.uuid4().hex}"  # absolute paths and links point here
    archive = tmp_path / f"{kind}.zip"
    _make_zip(archive, kind, escape)
    uploads = server.ctx.storage.data(server.ctx.visitors.owner(server.client.session_hash))
    before = sorted(uploads.iterdir()) if uploads.is_dir() else []
    with pytest.raises(AppError, match=message):
        train_start(server.client, source_zip=handle_file(str(archive)))
    assert not escape.exists()
    assert not list(server.root.rglob("evil.png")) and not list(tmp_path.parent.rglob("evil.png"))
    assert (sorted(uploads.iterdir()) if uploads.is_dir() else []) == before  # no staging left behind
    assert server.client.predict(api_name="/train_status")["status"] == "idle"
    works(server.client)
