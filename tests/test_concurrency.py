"""Many visitors at once: the same example images from 50 clients, with the result files downloaded.

Identical inputs give identical overlays, so every request produces the same PNGs. They must be
written once and never rewritten while another client downloads them (the cause of cut-off
responses, ``RemoteProtocolError: peer closed connection``). A CPU burner keeps the machine busy
while the clients run, as on a shared demo host.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from app.main import build_app, launch
from app.serving.checkpoints import load_model
from app.serving.context import example_images
from app.serving.images import ImageStore
from app.serving.jobs import JobManager
from tada_core.explain.gap import checkpoint_gap
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import view_grid
from tada_core.explain.views import VIEWS, value_ranges
from tada_core.explain.viz import overlay_view
from tests.test_app import attention, free_port, make_checkpoints

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
CLIENTS = 50
BURN_SECONDS = 420  # the burner ends by itself even if the test is interrupted (killed when the test ends)
WAIT_SECONDS = 360  # generous: the suite also runs on slow, shared CI machines (never a timing assertion)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("crowd")
    demo = build_app(
        data_dir=root / "runs", data_root=root / "data", shipped_dir=make_checkpoints(root / "ckpt"), jobs=JobManager()
    )
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(url=url, root=root, ctx=demo.tada_context)
    demo.close()


@pytest.fixture
def cpu_burner():
    """One busy process (a Python loop) for the length of the test."""
    burner = subprocess.Popen(
        [sys.executable, "-c", f"import time\nend = time.time() + {BURN_SECONDS}\nwhile time.time() < end: pass"]
    )
    yield burner
    burner.kill()
    burner.wait(10)


def expected_overlays(ctx, images: list[str]) -> list[np.ndarray]:
    """The overlays of the two checkpoints in the domain-gap view (what these clients ask for) on the
    shared scale, computed here without the server (source, then target; each with both checkpoints)."""
    names = ("tada_tiny", "source_only_tiny")
    results = []
    for name in names:
        path = ctx.registry.resolve(name).path
        model, info = load_model(path)
        probes = checkpoint_gap(path, data_root=str(ctx.domains.data_root))
        results.append(predict_attention(model, info, [Image.open(p) for p in images], probes=probes))
    grids = [view_grid(result, "gap") for per_image in results for result in per_image]  # checkpoint-major
    [value_range, *_] = value_ranges(grids, "shared", VIEWS["gap"].fixed_range)
    return [
        overlay_view(results[c][i], view="gap", value_range=value_range) for i in range(len(images)) for c in (0, 1)
    ]


def test_fifty_clients_with_the_same_images_all_get_complete_correct_overlays(server, cpu_burner):
    images = example_images()
    source, target = images["source"][:1], images["target"][:1]
    expected = expected_overlays(server.ctx, source + target)
    answers: list = [None] * CLIENTS
    ready = threading.Barrier(CLIENTS, timeout=WAIT_SECONDS)

    def one(i: int) -> None:
        try:
            client = Client(
                server.url,
                verbose=False,
                analytics_enabled=False,
                download_files=str(server.root / f"d{i}"),
                httpx_kwargs={"timeout": WAIT_SECONDS},
            )
            ready.wait()
            answers[i] = attention(client, "tada_tiny", source, target, compare="source_only_tiny")[1]
        except Exception as err:  # reported below, with the others
            answers[i] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert cpu_burner.poll() is None, "the burner ended before the clients did"
    failures = [a for a in answers if not isinstance(a, list)]
    assert not failures, f"{len(failures)} of {CLIENTS} failed: {failures[:3]}"
    for gallery in answers:
        assert len(gallery) == len(expected)
        for item, want in zip(gallery, expected, strict=True):
            np.testing.assert_array_equal(np.asarray(Image.open(item["image"]).convert("RGB")), want)


def test_image_store_writes_each_picture_once_and_never_rewrites_it(tmp_path):
    store = ImageStore(tmp_path)
    picture = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    first = store.png(picture)
    before = (tmp_path / first).stat().st_ino
    assert store.png(picture) == first and (tmp_path / first).stat().st_ino == before
    assert store.png(picture[::-1].copy()) != first
    np.testing.assert_array_equal(np.asarray(Image.open(first)), picture)
    assert not list(tmp_path.glob(".staging-*"))


def test_the_load_tests_light_http_client_gets_the_same_overlays(server):
    """``scripts/gradio_http.py`` (``load_test.py --client http``) uploads, calls, reads the event
    stream and downloads like a browser: its answer is the app's, overlay for overlay."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "gradio_http.py"
    spec = importlib.util.spec_from_file_location("gradio_http", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = example_images()
    source, target = images["source"][:1], images["target"][:1]
    client = module.HttpAttentionClient(server.url)
    arguments = ["tada_tiny", "source_only_tiny", None, None, "jet", 0.5, "smooth", "gap", "shared"]
    _, gallery, values = client.attention(arguments, {2: source, 3: target}, timeout=120)
    assert len(values["results"]) == 4 and len(module._file_urls(gallery)) == 4
    for item, want in zip(gallery, expected_overlays(server.ctx, source + target), strict=True):
        got = client.http.get(item["image"]["url"]).content
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(got)).convert("RGB")), want)
    with pytest.raises(RuntimeError, match="error"):
        client.attention(["no_such_checkpoint", *arguments[1:]], {2: source, 3: target}, timeout=120)
