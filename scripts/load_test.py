"""Load benchmark of the web app: concurrent and sustained Attention requests against `tada app`.

    .venv/bin/python scripts/load_test.py [--out docs/bench/load.json] [--concurrent 20] [--sequential 200]

Starts ``tada app`` in a subprocess on a free loopback port (the shipped checkpoint when
``checkpoints/`` has one, else a random LeNet TADA checkpoint saved to a temporary folder and
passed with ``--checkpoint``), then

1. fires ``--concurrent`` Attention requests at once, each from its own thread and its own
   ``gradio_client.Client`` (one source + one target example image each): all must succeed;
   reports p50 / p95 / max latency;
2. sends ``--sequential`` requests one after another from one client, sampling the server
   process's resident memory (``/proc/PID/status`` VmRSS) every 20 requests and at request 50:
   reports the peak and the growth from request 50 to the last.

Writes the numbers as JSON to ``--out`` and prints a summary. It is a benchmark, not a test: it
exits non-zero only when a request fails or the time budget (``--timeout``) runs out. The server
is stopped at the end in every case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "app" / "examples"
SAMPLE_EVERY = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def pick_checkpoint(folder: Path) -> tuple[list[str], str]:
    """``--checkpoint`` flags for the app and a description: shipped if present, else a random LeNet."""
    shipped = sorted((ROOT / "checkpoints").glob("*.safetensors"))
    if shipped:
        return [], f"the app's default among the shipped checkpoints/ ({', '.join(p.name for p in shipped)})"
    from tada_core.checkpoint import CheckpointInfo, save_checkpoint
    from tada_core.config import TADAConfig
    from tada_core.model import build_model

    config = TADAConfig(variant="tada", backbone="lenet", num_classes=10)
    info = CheckpointInfo(config, [str(d) for d in range(10)], source="mnist", target="mnistm")
    path = save_checkpoint(folder / "random_lenet.safetensors", build_model(config), info)
    return ["--checkpoint", str(path)], "random lenet (tada), no shipped checkpoint in checkpoints/"


def start_server(port: int, folder: Path, flags: list[str], log) -> subprocess.Popen:
    tada = Path(sys.executable).parent / "tada"
    command = [str(tada)] if tada.is_file() else [sys.executable, "-m", "tada_core"]
    command += ["app", "--host", "127.0.0.1", "--port", str(port), *flags]
    command += ["--runs-dir", str(folder / "runs"), "--data-root", str(folder / "data")]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(url: str, server: subprocess.Popen, deadline: float):
    from gradio_client import Client

    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} before serving")
        try:
            return Client(url, verbose=False, analytics_enabled=False, download_files=False)
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise TimeoutError("the app did not start in time")


def attention(client, checkpoint: str, images: dict[str, str], timeout: float) -> float:
    """One Attention request; its latency in seconds."""
    from gradio_client import handle_file

    start = time.perf_counter()
    job = client.submit(
        checkpoint=checkpoint,
        compare_with="(none)",
        source_files=[handle_file(images["source"])],
        target_files=[handle_file(images["target"])],
        cmap="jet",
        alpha=0.5,
        mode="smooth",
        view="gap",
        scale="shared",
        api_name="/attention",
    )
    _, gallery, values = job.result(timeout=timeout)
    if len(gallery) != 2 or len(values["results"]) != 2:
        raise RuntimeError(f"unexpected answer: {len(gallery)} overlays")
    return time.perf_counter() - start


def stats(latencies: list[float]) -> dict:
    a = np.array(latencies)
    return {
        "min_s": round(float(a.min()), 3),
        "p50_s": round(float(np.percentile(a, 50)), 3),
        "p95_s": round(float(np.percentile(a, 95)), 3),
        "max_s": round(float(a.max()), 3),
        "mean_s": round(float(a.mean()), 3),
    }


def concurrent_phase(url: str, checkpoint: str, images: dict, n: int, deadline: float) -> dict:
    from gradio_client import Client

    latencies: list[float | None] = [None] * n
    errors: list[str] = []
    ready = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            ready.wait(timeout=max(1.0, deadline - time.time()))
            latencies[i] = attention(client, checkpoint, images, timeout=max(1.0, deadline - time.time()))
        except Exception as err:  # counted and reported
            errors.append(f"request {i}: {type(err).__name__}: {err}")
            ready.abort()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    wall = time.perf_counter() - start
    done = [x for x in latencies if x is not None]
    if len(done) != n and not errors:
        errors.append(f"{n - len(done)} requests did not finish before the deadline")
    result = {"requests": n, "succeeded": len(done), "wall_s_incl_client_setup": round(wall, 2), "errors": errors}
    if done:  # all start together, so the last to finish bounds the throughput
        result |= {**stats(done), "throughput_req_per_s": round(len(done) / max(done), 2)}
    return {**result, "latencies_s": sorted(round(x, 3) for x in done)}


def sequential_phase(client, checkpoint: str, pid: int, images: dict, n: int, deadline: float) -> dict:
    latencies, samples = [], [{"request": 0, "rss_mib": round(rss_mib(pid), 1)}]
    for i in range(1, n + 1):
        latencies.append(attention(client, checkpoint, images, timeout=max(1.0, deadline - time.time())))
        if i % SAMPLE_EVERY == 0 or i == 50:
            samples.append({"request": i, "rss_mib": round(rss_mib(pid), 1)})
        if time.time() > deadline:
            raise TimeoutError(f"time budget spent after {i} sequential requests")
    at = {s["request"]: s["rss_mib"] for s in samples}
    return {
        "requests": n,
        "succeeded": len(latencies),
        **stats(latencies),
        "rss_samples": samples,
        "peak_rss_mib": max(at.values()),
        "rss_growth_50_to_last_mib": round(at[n] - at[50], 1) if n >= 50 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "load.json"))
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900.0, help="time budget for the whole run, seconds")
    args = parser.parse_args(argv)
    deadline = time.time() + args.timeout
    images = {role: str(next(iter(sorted(EXAMPLES.glob(f"{role}_*.png"))))) for role in ("source", "target")}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tada-load-") as tmp:
        folder = Path(tmp)
        flags, checkpoint_text = pick_checkpoint(folder)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            server = start_server(port, folder, flags, log)
        try:
            started = time.perf_counter()
            client = wait_until_up(url, server, deadline)
            startup = time.perf_counter() - started
            api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/attention"]
            checkpoint = api["parameters"][0]["parameter_default"]  # the app's default checkpoint
            attention(client, checkpoint, images, timeout=max(1.0, deadline - time.time()))  # warm-up: loads it
            rss_idle = rss_mib(server.pid)
            concurrent = concurrent_phase(url, checkpoint, images, args.concurrent, deadline)
            sequential = sequential_phase(client, checkpoint, server.pid, images, args.sequential, deadline)
        except BaseException:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(15)
    import gradio
    import torch

    report = {
        "what": "Attention API requests (1 source + 1 target example image, 28x28) against `tada app` on loopback",
        "checkpoint": f"{checkpoint}: {checkpoint_text}",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "note": "CPU only; the cores were shared with a long-running benchmark",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gradio": gradio.__version__,
            "queue_concurrency_limit": 4,
        },
        "startup_s": round(startup, 1),
        "rss_after_warmup_mib": round(rss_idle, 1),
        "concurrent": concurrent,
        "sequential": sequential,
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    c, s = concurrent, sequential
    print(f"checkpoint {report['checkpoint']}; server up in {report['startup_s']} s")
    if "p50_s" in c:
        print(
            f"{c['requests']} concurrent: {c['succeeded']} ok · p50 {c['p50_s']} s · p95 {c['p95_s']} s · "
            f"max {c['max_s']} s · {c['throughput_req_per_s']} requests/s"
        )
    print(
        f"{s['requests']} sequential: {s['succeeded']} ok · p50 {s['p50_s']} s · p95 {s['p95_s']} s · "
        f"peak RSS {s['peak_rss_mib']} MiB · growth request 50→{s['requests']}: {s['rss_growth_50_to_last_mib']} MiB"
    )
    print(f"wrote {args.out}")
    ok = not c["errors"] and c["succeeded"] == c["requests"] and s["succeeded"] == s["requests"]
    if c["errors"]:
        print("errors:\n  " + "\n  ".join(c["errors"]), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
