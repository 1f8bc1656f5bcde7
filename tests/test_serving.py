"""A public demo's plumbing: what a visitor may learn, budgets and queues, storage that survives."""

from __future__ import annotations

import json
import os
import time
import zipfile
from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app.main import build_app, launch
from app.serving.bundle import checkpoint_bundle
from app.serving.context import ServerLimits
from app.serving.redact import redact_paths
from app.serving.storage import Storage, StorageFullError, owner_key
from app.serving.visitors import Visitors
from tada_core.checkpoint import read_checkpoint
from tests.test_app import TINY_TRAIN, free_port, make_checkpoints, wait_for_job


def test_redact_paths_keeps_only_the_last_part():
    text = "the target '/srv/tada/visitors/ab12/data/shapes' has 8 images; see /tmp/x/ and http://h:7860/a/b"
    assert redact_paths(text) == "the target '…/shapes' has 8 images; see …/x and http://h:7860/a/b"
    assert redact_paths("ratio 1/2, a relative/path") == "ratio 1/2, a relative/path"


def test_visitors_bind_sessions_to_their_token_and_forget_the_oldest():
    visitors = Visitors(max_sessions=2)
    owner = visitors.bind("page-1", "token-a")
    assert visitors.bind("page-2", "token-a") == owner == visitors.owner("page-1")  # a reload: the same visitor
    assert visitors.owner("api-client") == owner_key("session:api-client") != owner
    visitors.bind("page-3", "token-b")
    assert len(visitors) == 2 and visitors.owner("page-2") != owner  # the least recently used is forgotten


def test_storage_quota_and_expiry(tmp_path):
    storage = Storage(tmp_path, quota_bytes=1000, max_age_s=3600)
    run = storage.runs("v1") / "old-run"
    run.mkdir(parents=True)
    (run / "last.safetensors").write_bytes(b"x" * 800)
    storage.check_room("v1", 100)
    with pytest.raises(StorageFullError, match="your storage on this server is full .*deleted automatically"):
        storage.check_room("v1", 300)
    storage.check_room("v2", 900)  # quotas are per visitor
    old = time.time() - 7200
    os.utime(run / "last.safetensors", (old, old))
    os.utime(run, (old, old))
    assert storage.expire(force=True) == 1 and not run.exists()
    assert storage.secret() == Storage(tmp_path).secret() and len(storage.secret()) == 64


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    limits = ServerLimits(max_running=1, max_queued=0, max_steps=400, max_minutes=0.05, quota_mib=50)
    demo = build_app(
        data_dir=root / "data", data_root=root / "domains", shipped_dir=make_checkpoints(root / "ckpt"), limits=limits
    )
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False, analytics_enabled=False, download_files=str(root / "downloads"))
    yield SimpleNamespace(demo=demo, client=client, url=url, root=root, ctx=demo.tada_context)
    demo.tada_context.jobs.stop(None)
    demo.tada_context.jobs.wait(60)
    demo.close()


def test_what_a_visitor_sees_names_no_server_path(budget_server):
    client, root = budget_server.client, str(budget_server.root)
    form = {**TINY_TRAIN, "iters": 5, "eval_every": 5}
    for spec in ("no_such_folder", "../../etc", "x" * 5000, "a/" * 300 + "b"):
        with pytest.raises(AppError) as err:
            client.predict(**{**form, "source": spec}, api_name="/train_start")
        message = str(err.value)
        assert root not in message and "OSError" not in message and len(message) < 600, message
    with pytest.raises(AppError, match=r"5,000 characters long"):
        client.predict(**{**form, "source": "x" * 5000}, api_name="/train_start")


def test_budget_queue_and_time_limit(budget_server):
    client = budget_server.client
    with pytest.raises(AppError, match="over this server's budget of 400 steps"):
        client.predict(iters=401, eval_every=100, **TINY_TRAIN, api_name="/train_start")
    client.predict(iters=400, eval_every=400, **TINY_TRAIN, api_name="/train_start")
    other = Client(budget_server.url, verbose=False, analytics_enabled=False)
    with pytest.raises(AppError, match=r"the server is busy: 1 training jobs ahead of you"):
        other.predict(iters=5, eval_every=5, **TINY_TRAIN, api_name="/train_start")
    done = wait_for_job(client, ("finished", "stopped", "failed"), timeout=120)
    log = "\n".join(done["log_tail"])
    assert done["status"] == "stopped" and "time budget of 0.05 min per job is used up" in log, done
    assert done["budget_minutes"] == 0.05 and done["server"]["max_steps"] == 400
    assert root_free(json.dumps(done), str(budget_server.root))

    job = budget_server.ctx.jobs.view(budget_server.ctx.visitors.owner(client.session_hash))
    bundle = checkpoint_bundle(job.checkpoint)
    with zipfile.ZipFile(bundle) as archive:
        names = sorted(archive.namelist())
        assert names == [f"{job.out_dir.name}.md", f"{job.out_dir.name}.safetensors"]
        card = archive.read(names[0]).decode()
    assert "TADA Studio model card" in card and "the run's" in card
    assert read_checkpoint(job.checkpoint)[0].extra["step"] == done["step"]


def root_free(text: str, root: str) -> bool:
    return root not in text


def test_a_full_storage_refuses_a_new_job_with_a_clear_message(tmp_path):
    limits = ServerLimits(quota_mib=0.001)
    demo = build_app(data_dir=tmp_path / "data", shipped_dir=make_checkpoints(tmp_path / "ckpt"), limits=limits)
    ctx = demo.tada_context
    owner = ctx.visitors.owner("session-1")
    (ctx.storage.runs(owner) / "r").mkdir(parents=True)
    (ctx.storage.runs(owner) / "r" / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(StorageFullError, match="your storage on this server is full"):
        ctx.storage.check_room(owner)
