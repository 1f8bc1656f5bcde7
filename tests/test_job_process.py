"""Training runs in a child process: when it dies, the web server keeps serving and says why.

One in-process server; jobs are driven through the API as a visitor would. The child is killed
with SIGKILL mid-run (what the out-of-memory killer does), then the server must still answer
Attention requests, show the job as failed with a clear message and run the next job.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest
import torch
from gradio_client import Client

from app.serving.context import example_images
from tests.test_app import TINY_TRAIN, attention, make_checkpoints, serve, wait_for_job

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    demo, url = serve(root, make_checkpoints(root / "checkpoints"))
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    yield SimpleNamespace(client=client, ctx=demo.tada_context)
    demo.tada_context.jobs.stop(None)
    demo.tada_context.jobs.wait(60)
    demo.close()


def test_a_killed_training_process_leaves_the_server_serving_and_the_job_failed(server):
    client = server.client
    client.predict(iters=100_000, eval_every=50_000, **TINY_TRAIN, api_name="/train_start")
    running = wait_for_job(client, ("running",), timeout=90)
    pid = server.ctx.jobs.view(None).pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    failed = wait_for_job(client, ("failed",), timeout=30)
    assert "killed (SIGKILL" in failed["error"] and failed["step"] >= running["step"]
    assert "the server is fine" in failed["log_tail"][-1]

    images = example_images()
    _, gallery, values = attention(client, "tada_tiny", images["source"][:1], images["target"][:1])
    assert len(gallery) == 2 and len(values["results"]) == 2
    client.predict(iters=2, eval_every=2, **TINY_TRAIN, api_name="/train_start")
    assert wait_for_job(client, ("finished", "failed"))["status"] == "finished"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_error_inside_the_training_process_fails_the_job_with_its_message(server):
    client = server.client
    client.predict(iters=2, eval_every=2, **{**TINY_TRAIN, "device": "cuda"}, api_name="/train_start")
    failed = wait_for_job(client, ("failed", "finished"))
    assert failed["status"] == "failed" and "no CUDA GPU is visible" in failed["error"]


def test_frozen_backbone_training_encodes_inside_the_training_process(tmp_path):
    from app.serving.jobs import JobManager
    from tada_core.config import TADAConfig, TrainConfig
    from tada_core.training.run_data import load_run_data

    train = TrainConfig(source="optdigits", target="mnist", iters=2, batch_size=8, eval_every=2, eval_max=32)
    train.frozen_backbone, train.out = True, str(tmp_path / "run")
    config = TADAConfig(variant="tada", backbone="lenet", train=train)
    manager = JobManager()
    job = manager.start(config, load_run_data(config))
    assert manager.wait(120)
    assert job.status == "finished", job.log
    assert job.pid != os.getpid() and job.encode_total > 0 and job.encoded == job.encode_total
    assert any(f"encoded {job.encode_total} images once" in line for line in job.log)
    assert set(job.probes) == {"source", "target"} and (tmp_path / "run" / "probe_target.png").is_file()
