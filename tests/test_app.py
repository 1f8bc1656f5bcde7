"""The web app, in-process: launched on a free port and driven through its API with gradio_client.

The checkpoints are untrained models written in a temporary folder (no shipped file is needed);
training runs a few steps of optdigits → mnist. Also unit tests of the app's safety checks:
zip extraction, the data-root fence and the checkpoint registry.
"""

from __future__ import annotations

import os
import socket
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app.main import build_app, launch, resolve_address
from app.serving.checkpoints import CheckpointRegistry
from app.serving.context import example_images
from app.serving.domains import DomainCatalog, extract_zip
from app.serving.jobs import JobManager
from app.serving.storage import Storage
from tada_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from tada_core.cli import build_parser
from tada_core.config import TADAConfig
from tada_core.errors import CheckpointError, DataError
from tada_core.model import build_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),  # pandas 3 vs gradio's own queue code
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
DIGITS = [str(d) for d in range(10)]
TINY_TRAIN = {
    "source": "optdigits",
    "target": "mnist",
    "variant": "tada",
    "backbone": "lenet",
    "batch_size": 16,
    "lr": 0.01,
    "trade_off": 1.0,
    "gamma": 0.1,
    "eval_max": 64,
    "seed": 0,
    "device": "cpu",
    "pretrained": False,
    "source_zip": None,
    "target_zip": None,
}


def make_checkpoints(folder: Path) -> Path:
    """Untrained ``tada_tiny`` and ``source_only_tiny`` lenet checkpoints, with a model card."""
    folder.mkdir(parents=True, exist_ok=True)
    for variant, name in (("tada", "tada_tiny"), ("source_only", "source_only_tiny")):
        config = TADAConfig(variant=variant, backbone="lenet", num_classes=10)
        info = CheckpointInfo(config=config, class_names=DIGITS, source="mnist", target="mnistm")
        save_checkpoint(folder / f"{name}.safetensors", build_model(config), info)
    (folder / "tada_tiny.md").write_text("# tada_tiny\n\nAn untrained test model.\n")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(root: Path, shipped_dir: Path):
    """Build and launch the app (not blocking); returns ``(demo, url)``."""
    demo = build_app(data_dir=root / "runs", data_root=root / "data", shipped_dir=shipped_dir, jobs=JobManager())
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, url


def wait_for_job(client: Client, statuses: tuple[str, ...], timeout: float = 120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(api_name="/train_status")
        if status["status"] in statuses:
            return status
        time.sleep(0.5)
    raise AssertionError(f"the job did not reach {statuses} in {timeout} s: {status}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    demo, url = serve(root, make_checkpoints(root / "checkpoints"))
    client = Client(url, verbose=False, analytics_enabled=False, download_files=str(root / "downloads"))
    yield SimpleNamespace(demo=demo, client=client, root=root, url=url, ctx=demo.tada_context)
    demo.tada_context.jobs.stop(None)
    demo.tada_context.jobs.wait(60)
    demo.close()


def attention(client: Client, checkpoint: str, sources: list, targets: list, compare: str = "(none)", **options):
    return client.predict(
        checkpoint=checkpoint,
        compare_with=compare,
        source_files=[handle_file(str(p)) for p in sources],
        target_files=[handle_file(str(p)) for p in targets],
        cmap=options.get("cmap", "jet"),
        alpha=options.get("alpha", 0.5),
        mode=options.get("mode", "smooth"),
        view=options.get("view", "gap"),
        scale=options.get("scale", "shared"),
        api_name="/attention",
    )


def test_named_endpoints(server):
    endpoints = server.client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("attention", "tsne", "train_start", "train_status", "train_stop"):
        assert f"/{name}" in endpoints


def test_attention_on_examples_returns_png_overlays_and_grid_values(server):
    examples = example_images()
    assert examples["source"] and examples["target"], "app/examples must hold source_*.png and target_*.png"
    report, gallery, values = attention(server.client, "tada_tiny", examples["source"][:1], examples["target"][:1])
    assert len(gallery) == 2
    with Image.open(gallery[0]["image"]) as overlay:
        assert overlay.format == "PNG" and overlay.mode == "RGB" and overlay.size == (224, 224)
    assert [r["role"] for r in values["results"]] == ["source", "target"]
    gaps = []
    for result in values["results"]:
        grid = np.array(result["grid"])
        assert grid.shape == (7, 7) and grid.min() >= 0.0 and grid.max() <= 1.0
        assert 1.0 <= result["global_attention"] <= 2.0 and 0.0 <= result["domain_prob"] <= 1.0
        assert result["predicted"] in DIGITS and len(result["top_k"]) == 5
        assert set(result["views"]) == {"attention", "transferability", "gap", "shift"}
        shift = result["views"]["shift"]  # computed only when its localiser is ready (the gap view asked here)
        assert shift is None or np.array(shift).shape == (14, 14)
        assert result["unfamiliar"] is None  # digits on a digits model
        gaps.append(np.array(result["views"]["gap"]))
    assert values["options"]["view"] == "gap" and values["options"]["scale"] == "shared"
    shared = [min(g.min() for g in gaps), max(g.max() for g in gaps)]  # one range for all maps of the request
    assert all(r["value_range"] == pytest.approx(shared, abs=1e-5) for r in values["results"])
    assert "tada-overlay" in report and "predicted" in report and "domain gap" in report


def test_attention_side_by_side_says_when_a_checkpoint_has_no_local_attention(server):
    examples = example_images()
    report, gallery, values = attention(
        server.client,
        "tada_tiny",
        examples["source"][:1],
        [],
        compare="source_only_tiny",
        mode="blocky",
        view="attention",
        scale="image",
    )
    by_checkpoint = {r["checkpoint"]: r for r in values["results"]}
    assert by_checkpoint["source_only_tiny"]["grid"] is None
    assert by_checkpoint["source_only_tiny"]["global_attention"] is None
    assert np.array(by_checkpoint["tada_tiny"]["grid"]).shape == (7, 7)
    assert "No local attention" in report and len(gallery) == 2
    _, _, values = attention(server.client, "tada_tiny", examples["source"][:1], [], compare="source_only_tiny")
    by_checkpoint = {r["checkpoint"]: r for r in values["results"]}
    assert np.array(by_checkpoint["source_only_tiny"]["views"]["gap"]).shape == (7, 7)  # every variant has a gap


def test_attention_notes_an_unfamiliar_upload_in_any_view_and_scale(server):
    photo = Path("app/examples/photos/source_cat.jpg")
    report, gallery, values = attention(
        server.client, "tada_tiny", [photo], example_images()["target"][:1], view="transferability", scale="fixed"
    )
    by_role = {r["role"]: r for r in values["results"]}
    assert "shrunk" in by_role["source"]["unfamiliar"] and by_role["target"]["unfamiliar"] is None
    assert values["options"]["view"] == "transferability" and len(gallery) == 2
    assert all(r["value_range"] == [0.0, 1.0] for r in values["results"])
    assert "source_cat.jpg" in report and "shrunk" in report


def test_bad_uploads_and_names_give_clear_errors_and_the_server_keeps_serving(server):
    not_an_image = server.root / "notes.png"
    not_an_image.write_text("these are notes, not pixels")
    with pytest.raises(AppError, match="notes.png.*not a readable image"):
        attention(server.client, "tada_tiny", [not_an_image], [])
    with pytest.raises(AppError, match="unknown checkpoint 'nope'"):
        attention(server.client, "nope", example_images()["source"][:1], [])
    with pytest.raises(AppError, match="no images"):
        attention(server.client, "tada_tiny", [], [])
    _, gallery, _ = attention(server.client, "tada_tiny", example_images()["source"][:1], [])
    assert len(gallery) == 1


def test_tsne_endpoint_writes_png_and_csv(server):
    png, summary, files, values, gap_png = server.client.predict(
        checkpoint="tada_tiny",
        compare_with="(none)",
        source="optdigits",
        target="mnist",
        max_points=30,
        perplexity=5,
        seed=0,
        api_name="/tsne",
    )
    with Image.open(png) as figure:
        assert figure.format == "PNG"
    assert sorted(Path(f).suffix for f in files) == [".csv", ".png", ".png"]
    with Image.open(gap_png) as figure:
        assert figure.format == "PNG"
    (result,) = values["checkpoints"]
    assert 0.0 <= result["a_distance"] <= 2.0 and result["n_source"] == 30
    assert np.array(result["gap"]["a_distance"]).shape == (7, 7) and result["gap"]["n_fit"] == 15
    assert "A-distance" in summary and "class-conditional MMD" in summary
    low, high = result["alignment"]["interval"]
    assert low <= result["alignment"]["value"] <= high and set(result["a_distance_views"]) == {"domain", "running"}
    with pytest.raises(AppError, match="not a folder inside"):
        server.client.predict("tada_tiny", "(none)", "../../etc", "mnist", 30, 5, 0, api_name="/tsne")


def test_training_jobs_one_per_visitor_queued_private_stop_and_finish(server):
    client = server.client
    other = Client(server.url, verbose=False, analytics_enabled=False)  # another visitor
    assert client.predict(api_name="/train_status")["status"] == "idle"
    first = client.predict(iters=500, eval_every=250, **TINY_TRAIN, api_name="/train_start")
    assert first["busy"] and first["iters"] == 500
    owner = server.ctx.jobs.view(None).owner
    with pytest.raises(AppError, match="you already have a training job"):
        client.predict(iters=5, eval_every=5, **TINY_TRAIN, api_name="/train_start")
    wait_for_job(client, ("running",), timeout=60)
    queued = other.predict(iters=5, eval_every=5, **TINY_TRAIN, api_name="/train_start")  # one slot: it waits
    assert queued["status"] == "queued" and queued["queue_position"] == 1
    assert other.predict(api_name="/train_status")["id"] == queued["id"] != first["id"]  # each sees their own
    other.predict(api_name="/train_stop")  # stops (dequeues) only their own job
    assert other.predict(api_name="/train_status")["status"] == "stopped"
    assert client.predict(api_name="/train_status")["status"] == "running"
    client.predict(api_name="/train_stop")
    stopped = wait_for_job(client, ("stopped", "failed"))
    assert stopped["status"] == "stopped", stopped
    assert "checkpoint" not in stopped and "out_dir" not in stopped  # no server paths for visitors
    _, info = load_checkpoint(server.ctx.jobs.view(owner).checkpoint)  # stopping keeps a loadable checkpoint
    assert info.extra["step"] == stopped["step"] < 500 and info.class_names == DIGITS

    started = client.predict(iters=6, eval_every=3, **TINY_TRAIN, api_name="/train_start")
    assert started["busy"]
    done = wait_for_job(client, ("finished", "failed"))
    assert done["status"] == "finished", done
    assert done["step"] == 6 and [e["step"] for e in server.ctx.jobs.view(owner).evals] == [3, 6]
    name = done["checkpoint_name"]
    job = server.ctx.jobs.view(owner)
    assert name.startswith("runs/") and name in server.ctx.registry.names(job.owner)
    assert name not in server.ctx.registry.names("someone-else")  # a visitor's run is theirs
    assert set(job.probes) == {"source", "target"} and job.probes["source"].shape == (224, 224, 3)
    _, _, values = attention(client, name, example_images()["source"][:1], [])
    assert np.array(values["results"][0]["grid"]).shape == (7, 7)
    card = client.predict(checkpoint=name, api_name="/model_card")
    assert "target accuracy" in card[0] and "metrics.jsonl" in card[2]
    assert "Target accuracy estimated without labels:" in card[5] and "PM-own" in card[5]


def test_training_on_an_uploaded_zip_of_class_folders(server):
    archive = server.root / "shapes.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(archive, "w") as zf:
        for cls in ("dark", "light"):
            for i in range(5):
                pixels = rng.integers(0, 100, (28, 28, 3)) + (150 if cls == "light" else 0)
                path = server.root / f"{cls}{i}.png"
                Image.fromarray(pixels.astype(np.uint8)).save(path)
                zf.write(path, f"shapes/{cls}/{i}.png")
    options = {**TINY_TRAIN, "source_zip": handle_file(str(archive)), "target_zip": handle_file(str(archive))}
    server.client.predict(iters=2, eval_every=2, **options, api_name="/train_start")
    done = wait_for_job(server.client, ("finished", "failed"))
    assert done["status"] == "finished", done
    assert done["source"].startswith("upload/shapes-") and done["iters"] == 2
    job = server.ctx.jobs.view(None)
    _, info = load_checkpoint(job.checkpoint)
    assert info.class_names == ["dark", "light"]
    assert any(name.startswith("upload/shapes-") for name in server.ctx.domains.folders(job.owner))


def test_training_with_an_unlabelled_target_zip_of_just_images(server):
    source = server.root / "classes.zip"
    target = server.root / "camera.zip"
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(source, "w") as src, zipfile.ZipFile(target, "w") as tgt:
        for cls in ("dark", "light"):
            for i in range(5):
                pixels = rng.integers(0, 100, (28, 28, 3)) + (150 if cls == "light" else 0)
                path = server.root / f"u-{cls}{i}.png"
                Image.fromarray(pixels.astype(np.uint8)).save(path)
                src.write(path, f"classes/{cls}/{i}.png")
                tgt.write(path, f"camera/{cls}-{i}.png")  # flat: no class folders
    options = {**TINY_TRAIN, "source_zip": handle_file(str(source)), "target_zip": handle_file(str(target))}
    server.client.predict(iters=2, eval_every=2, **options, api_name="/train_start")
    done = wait_for_job(server.client, ("finished", "failed"))
    assert done["status"] == "finished", done
    assert done["target_accuracy"] is None and done["best_step"] == 2
    assert "target unlabelled" in "\n".join(done["log_tail"])


def test_zip_extraction_refuses_escaping_entries(tmp_path):
    storage = Storage(tmp_path / "store")
    uploads = storage.data("visitor1")
    good = tmp_path / "digits.zip"
    pixel = Image.new("RGB", (8, 8), "white")
    with zipfile.ZipFile(good, "w") as archive:
        for cls in ("a", "b"):
            path = tmp_path / f"{cls}.png"
            pixel.save(path)
            archive.write(path, f"digits/{cls}/{cls}.png")
    name, folder = extract_zip(good, uploads)
    assert name.startswith("upload/digits-") and folder.name == "digits"
    assert sorted(p.name for p in folder.iterdir()) == ["a", "b"]
    catalog = DomainCatalog(tmp_path / "data", storage)
    assert catalog.resolve(name, "visitor1") == str(folder) and name in catalog.folders("visitor1")
    assert name not in catalog.folders("visitor2")  # another visitor's upload is not theirs to read
    with pytest.raises(DataError, match="not a folder inside your uploaded data|neither"):
        catalog.resolve(name, "visitor2")

    for entry, why in (("../evil.png", "leaves its folder"), ("/etc/evil.png", "absolute path")):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr(entry, b"x")
        with pytest.raises(DataError, match=why):
            extract_zip(bad, uploads)
    link = zipfile.ZipInfo("a/link.png")
    link.external_attr = (0o120777 << 16) | 0x20  # a symbolic link
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        extract_zip(tmp_path / "link.zip", uploads)
    (tmp_path / "plain.zip").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        extract_zip(tmp_path / "plain.zip", uploads)
    assert sorted(p.name for p in uploads.iterdir()) == [Path(name).name]  # nothing else left behind


def test_domains_stay_inside_the_data_root(tmp_path):
    root = tmp_path / "data"
    for cls in ("cat", "dog"):
        (root / "pets" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / "pets" / cls / "1.png")
    catalog = DomainCatalog(root, Storage(tmp_path / "store"))
    assert catalog.resolve("mnist") == "mnist"
    assert catalog.resolve("pets") == str((root / "pets").resolve()) and "pets" in catalog.folders()
    for spec in ("../", "pets/../..", str(tmp_path), "/etc"):
        with pytest.raises(DataError, match="not a folder inside"):
            catalog.resolve(spec)
    with pytest.raises(DataError, match="neither a built-in domain"):
        catalog.resolve("missing")


def test_registry_refuses_bad_checkpoints(tmp_path):
    registry = CheckpointRegistry(shipped_dir=make_checkpoints(tmp_path / "ckpt"), storage=Storage(tmp_path / "data"))
    assert registry.names() == ["tada_tiny", "source_only_tiny"]  # a TADA model is the default
    assert registry.resolve("tada_tiny").card is not None
    (tmp_path / "model.pt").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="pickle"):
        registry.add(tmp_path / "model.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a valid"):
        registry.add(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="unknown checkpoint"):
        registry.resolve("junk")


def test_missing_checkpoint_is_a_notice_and_the_app_still_builds(tmp_path):
    demo = build_app(
        data_dir=tmp_path / "runs", shipped_dir=tmp_path / "none", checkpoints=[tmp_path / "gone.safetensors"]
    )
    notices = " ".join(demo.tada_context.notices)
    assert "gone.safetensors" in notices and "No checkpoint found" in notices


def test_checkpoint_flag_adds_and_selects(tmp_path):
    extra = make_checkpoints(tmp_path / "mine") / "source_only_tiny.safetensors"
    shipped = make_checkpoints(tmp_path / "shipped")
    ctx = build_app(data_dir=tmp_path / "runs", shipped_dir=shipped, checkpoints=[extra]).tada_context
    assert ctx.default_checkpoint() == "source_only_tiny-2"
    assert ctx.registry.resolve("source_only_tiny-2").path == extra.resolve()
    assert ctx.registry.add(extra).name == "source_only_tiny-2"  # the same file is registered once


def test_cli_flags_and_address(monkeypatch):
    args = build_parser().parse_args(["app", "--port", "7999", "--checkpoint", "a.safetensors", "--data-dir", "r"])
    assert (args.port, args.checkpoint, args.data_dir, args.data_root) == (7999, ["a.safetensors"], "r", "data")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    assert resolve_address() == ("0.0.0.0", 8000)
    assert resolve_address("127.0.0.2", 9000) == ("127.0.0.2", 9000)  # flags win
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    monkeypatch.delenv("GRADIO_SERVER_PORT")
    assert resolve_address() == ("127.0.0.1", 7860)
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
