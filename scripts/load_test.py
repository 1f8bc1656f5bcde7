"""Load benchmark of the web app: concurrent and sustained Attention requests against `tada app`.

    .venv/bin/python scripts/load_test.py [--label after] [--out docs/bench/load.json]
                                          [--concurrent 20] [--sequential 200] [--app-root DIR]

Starts the app (``python -m tada_core app`` of ``--app-root``, default this checkout, so another
checkout — the code before a change — can be measured with the same client) in a subprocess on a
free loopback port with the shipped checkpoints when ``checkpoints/`` has them, else a random
LeNet TADA checkpoint passed with ``--checkpoint``. Each request is what a new visitor sends: one
source + one target example image, the app's default checkpoint and its default "compare with"
checkpoint (2 forwards), other options default, and the result images downloaded as a browser
does (``--no-downloads`` switches that off). Then

1. fires ``--concurrent`` Attention requests at once, each from its own thread and its own
   ``gradio_client.Client``: reports how many succeeded, the errors, p50 / p95 / max latency;
2. sends ``--sequential`` requests one after another from one client (p50 of these is the
   latency of one request alone), sampling the server process's resident memory
   (``/proc/PID/status`` VmRSS) every 20 requests and at request 50: reports the peak and the
   growth from request 50 to the last.

Writes the numbers as JSON under ``--label`` in ``--out`` (other labels there are kept, so a
"before" and an "after" run sit side by side) and prints a summary. It is a benchmark, not a
test: it exits non-zero when a request fails or the time budget (``--timeout``) runs out. The
server is stopped at the end in every case.
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
from gradio_http import HttpAttentionClient  # scripts/, beside this file

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


def pick_checkpoint(folder: Path, app_root: Path) -> tuple[list[str], str]:
    """``--checkpoint`` flags for the app and a description: shipped if present, else a random LeNet."""
    shipped = sorted((app_root / "checkpoints").glob("*.safetensors"))
    if shipped:
        return [], f"the app's default among the shipped checkpoints/ ({', '.join(p.name for p in shipped)})"
    from tada_core.checkpoint import CheckpointInfo, save_checkpoint
    from tada_core.config import TADAConfig
    from tada_core.model import build_model

    config = TADAConfig(variant="tada", backbone="lenet", num_classes=10)
    info = CheckpointInfo(config, [str(d) for d in range(10)], source="mnist", target="mnistm")
    path = save_checkpoint(folder / "random_lenet.safetensors", build_model(config), info)
    return ["--checkpoint", str(path)], "random lenet (tada), no shipped checkpoint in checkpoints/"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # fields 3… of proc(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_set(text: str | None) -> set[int] | None:
    return {int(c) for c in text.split(",")} if text else None


def start_server(
    port: int, folder: Path, flags: list[str], log, app_root: Path, cpus: set[int] | None = None
) -> subprocess.Popen:
    """``python -m tada_core app`` importing the code of ``app_root`` (not whatever is installed),
    pinned to ``cpus`` when given."""
    command = [sys.executable, "-m", "tada_core", "app", "--host", "127.0.0.1", "--port", str(port), *flags]
    command += ["--data-dir", str(folder / "appdata"), "--data-root", str(folder / "data")]
    path = os.pathsep.join(filter(None, [str(app_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": path}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)


def new_client(url: str, downloads: Path | None, kind: str = "gradio"):
    if kind == "http":
        return HttpAttentionClient(url, download=downloads is not None)
    from gradio_client import Client

    if downloads is None:
        return Client(url, verbose=False, analytics_enabled=False, download_files=False)
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))


def wait_until_up(url: str, server: subprocess.Popen, deadline: float, downloads: Path | None):
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} before serving")
        try:
            return new_client(url, downloads)
        except Exception:  # not listening yet
            time.sleep(0.5)
    raise TimeoutError("the app did not start in time")


VIEW = {"name": "shift"}  # the view every request asks for (--view; the app's default for its checkpoint)


def attention(client, checkpoints: tuple[str, str], images: dict[str, str], timeout: float) -> float:
    """One Attention request; its latency in seconds."""
    start = time.perf_counter()
    if isinstance(client, HttpAttentionClient):
        arguments = [*checkpoints, None, None, "jet", 0.5, "smooth", VIEW["name"], "shared"]
        _, gallery, values = client.attention(arguments, {2: [images["source"]], 3: [images["target"]]}, timeout)
    else:
        gallery, values = _gradio_attention(client, checkpoints, images, timeout)
    expected = 2 * len({name for name in checkpoints if name != "(none)"})
    if len(gallery) != expected or len(values["results"]) != expected:
        raise RuntimeError(f"unexpected answer: {len(gallery)} overlays, {expected} expected")
    return time.perf_counter() - start


def _gradio_attention(client, checkpoints: tuple[str, str], images: dict[str, str], timeout: float) -> tuple:
    from gradio_client import handle_file

    job = client.submit(
        checkpoint=checkpoints[0],
        compare_with=checkpoints[1],
        source_files=[handle_file(images["source"])],
        target_files=[handle_file(images["target"])],
        cmap="jet",
        alpha=0.5,
        mode="smooth",
        view=VIEW["name"],
        scale="shared",
        api_name="/attention",
    )
    _, gallery, values = job.result(timeout=timeout)
    return gallery, values


def stats(latencies: list[float]) -> dict:
    a = np.array(latencies)
    return {
        "min_s": round(float(a.min()), 3),
        "p50_s": round(float(np.percentile(a, 50)), 3),
        "p95_s": round(float(np.percentile(a, 95)), 3),
        "max_s": round(float(a.max()), 3),
        "mean_s": round(float(a.mean()), 3),
    }


def concurrent_phase(
    url: str, checkpoints, images: dict, n: int, deadline: float, downloads: Path | None, kind: str = "gradio"
) -> dict:
    latencies: list[float | None] = [None] * n
    errors: list[str] = []
    ready = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            client = new_client(url, downloads / f"c{i}" if downloads else None, kind)
            ready.wait(timeout=max(1.0, deadline - time.time()))
            latencies[i] = attention(client, checkpoints, images, timeout=max(1.0, deadline - time.time()))
        except threading.BrokenBarrierError:
            errors.append(f"request {i}: not sent (another client failed before the start)")
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


def sequential_phase(
    client, checkpoints, pid: int, images: dict, n: int, deadline: float, fresh=None, warmup: int = 50
) -> dict:
    """``n`` requests one after another, from ``client`` or, with ``fresh`` (a function making a
    client), each from a new visitor (a new session, as a new browser tab is); the server's RSS is
    sampled every ``SAMPLE_EVERY`` requests (every ``n // 50`` for long runs) and at ``warmup``."""
    latencies, errors, samples = [], [], [{"request": 0, "rss_mib": round(rss_mib(pid), 1)}]
    every = max(SAMPLE_EVERY, n // 50)
    for i in range(1, n + 1):
        try:
            visitor = fresh() if fresh is not None else client
            latencies.append(attention(visitor, checkpoints, images, timeout=max(1.0, deadline - time.time())))
        except Exception as err:  # counted and reported
            errors.append(f"request {i}: {type(err).__name__}: {err}")
        if i % every == 0 or i in (warmup, n):
            samples.append({"request": i, "rss_mib": round(rss_mib(pid), 1)})
        if time.time() > deadline:
            raise TimeoutError(f"time budget spent after {i} sequential requests")
    at = {s["request"]: s["rss_mib"] for s in samples}
    return {
        "requests": n,
        "new_visitor_each_request": fresh is not None,
        "succeeded": len(latencies),
        "errors": errors,
        **(stats(latencies) if latencies else {}),
        "rss_samples": samples,
        "peak_rss_mib": max(at.values()),
        "warmup_requests": warmup,
        "rss_growth_after_warmup_mib": round(at[n] - at[warmup], 1) if n >= warmup else None,
    }


def hostile_phase(url: str, checkpoints, images: dict, n: int, folder: Path, deadline: float) -> dict:
    """``n`` visitors with hostile uploads among ``n`` normal ones, all at once (light HTTP clients):
    how many normal requests were served and how many hostile ones got a clear error."""
    makers = {
        "renamed-zip.png": b"PK\x03\x04" + bytes(range(256)) * 8,
        "empty.png": b"",
        "text.jpg": b"this is not an image\n" * 50,
        "cut.png": Path(images["source"]).read_bytes()[:60],
    }
    paths = []
    for name, data in makers.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    outcome: list[str | None] = [None] * (2 * n)

    def one(i: int) -> None:
        client = HttpAttentionClient(url, download=False)
        source = images["source"] if i % 2 == 0 else paths[(i // 2) % len(paths)]
        try:
            attention(
                client, checkpoints, {"source": source, "target": images["target"]}, max(1.0, deadline - time.time())
            )
            outcome[i] = "served"
        except RuntimeError as err:
            text = str(err)
            outcome[i] = "clear error" if "source image" in text and "Traceback" not in text else f"other: {text[:200]}"
        except Exception as err:  # counted and reported
            outcome[i] = f"other: {type(err).__name__}: {err}"

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(2 * n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    normal, hostile = outcome[0::2], outcome[1::2]
    return {
        "normal": n,
        "normal_served": normal.count("served"),
        "hostile": n,
        "hostile_clear_error": hostile.count("clear error"),
        "other": [o for o in outcome if o not in ("served", "clear error")][:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "load.json"))
    parser.add_argument("--label", default="after", help="key of this run in --out (e.g. before, after)")
    parser.add_argument("--app-root", default=str(ROOT), help="the checkout whose app is measured")
    parser.add_argument("--compare", default=None, help="second checkpoint ('(none)' for one); default: the app's")
    parser.add_argument("--no-downloads", action="store_true", help="do not download the result images")
    parser.add_argument("--view", default="shift", help="the view requested (default shift, the page's default)")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument(
        "--curve",
        default=None,
        help="comma-separated numbers of concurrent visitors, e.g. 1,5,10,20,50 (each its own phase)",
    )
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument(
        "--new-visitors", action="store_true", help="every sequential request from a new visitor (a new session)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="RSS growth is measured from this sequential request")
    parser.add_argument("--hostile", type=int, default=0, help="then N hostile uploads among N normal visitors at once")
    parser.add_argument("--timeout", type=float, default=900.0, help="time budget for the whole run, seconds")
    parser.add_argument(
        "--server-cpus",
        default=None,
        help="pin the server to these cores, e.g. 0 (with --client-cpus 1: the clients do not take the server's CPU, "
        "as visitors on other machines would not)",
    )
    parser.add_argument(
        "--client",
        choices=("gradio", "http"),
        default="gradio",
        help="gradio: one gradio_client.Client per visitor (default); http: a light client over Gradio's HTTP "
        "routes (scripts/gradio_http.py), so that the clients' CPU on this machine does not hide the server's",
    )
    parser.add_argument("--client-cpus", default=None, help="pin this client process to these cores, e.g. 1")
    parser.add_argument("--note", default="CPU only; the 2 cores were shared with other engineers' jobs")
    args = parser.parse_args(argv)
    VIEW["name"] = args.view
    if args.client_cpus:  # before any thread starts, so that every client thread inherits it
        os.sched_setaffinity(0, cpu_set(args.client_cpus))
    deadline = time.time() + args.timeout
    app_root = Path(args.app_root).resolve()
    images = {role: str(next(iter(sorted(EXAMPLES.glob(f"{role}_*.png"))))) for role in ("source", "target")}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tada-load-") as tmp:
        folder = Path(tmp)
        downloads = None if args.no_downloads else folder / "downloads"
        flags, checkpoint_text = pick_checkpoint(folder, app_root)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            server = start_server(port, folder, flags, log, app_root, cpu_set(args.server_cpus))
        try:
            started = time.perf_counter()
            client = wait_until_up(url, server, deadline, downloads / "seq" if downloads else None)
            startup = time.perf_counter() - started
            parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/attention"]
            defaults = [p["parameter_default"] for p in parameters["parameters"][:2]]  # the app's default pair
            checkpoints = (defaults[0], args.compare or defaults[1])
            attention(client, checkpoints, images, timeout=max(1.0, deadline - time.time()))  # warm-up: loads them
            rss_idle = rss_mib(server.pid)
            cpu_start = cpu_seconds(server.pid)
            levels = [int(x) for x in args.curve.split(",")] if args.curve else [args.concurrent]
            curve = []
            for level in levels:
                phase = concurrent_phase(url, checkpoints, images, level, deadline, downloads, args.client)
                curve.append({"visitors": level, **{k: v for k, v in phase.items() if k != "latencies_s"}})
                if level == args.concurrent or len(levels) == 1:
                    concurrent = phase
            concurrent = concurrent if args.concurrent in levels else phase
            if args.client == "http":
                client = new_client(url, downloads, "http")
            fresh = (lambda: new_client(url, downloads, args.client)) if args.new_visitors else None
            cpu_concurrent, client_cpu = cpu_seconds(server.pid), time.process_time()
            sequential = sequential_phase(
                client, checkpoints, server.pid, images, args.sequential, deadline, fresh, args.warmup
            )
            cpu_sequential, client_cpu = cpu_seconds(server.pid), time.process_time() - client_cpu
            hostile = hostile_phase(url, checkpoints, images, args.hostile, folder, deadline) if args.hostile else None
            served_at_once = sum(row["succeeded"] for row in curve)  # every level of the curve used the CPU
            server_cpu_ms = {
                "concurrent_per_request": round(1000 * (cpu_concurrent - cpu_start) / max(1, served_at_once), 1),
                "sequential_per_request": round(
                    1000 * (cpu_sequential - cpu_concurrent) / max(1, sequential["succeeded"]), 1
                ),
                "client_sequential_per_request": round(1000 * client_cpu / max(1, sequential["succeeded"]), 1),
            }
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
        server_log = log_path.read_text(errors="replace")
    import gradio
    import torch

    report = {
        "what": "Attention API requests (1 source + 1 target example image, 28x28) against `tada app` on loopback",
        "checkpoints": f"{' vs '.join(checkpoints)}: {checkpoint_text}",
        "view": args.view,
        "downloads": not args.no_downloads,
        "app_root": str(app_root),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": args.note,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gradio": gradio.__version__,
            "queue_concurrency_limit": 4,
            "server_cpus": args.server_cpus or "any",
            "client_cpus": args.client_cpus or "any",
            "client": args.client,
        },
        "startup_s": round(startup, 1),
        "rss_after_warmup_mib": round(rss_idle, 1),
        "server_log_cut_off_responses": server_log.count("Too little data for declared Content-Length"),
        "server_cpu_ms": server_cpu_ms,
        "curve": curve,
        "concurrent": concurrent,
        "sequential": sequential,
        "hostile": hostile,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.read_text()) if out.is_file() else {}
    if "concurrent" in runs:  # a file written before runs had labels
        runs = {"earlier": runs}
    runs[args.label] = report
    out.write_text(json.dumps(runs, indent=2) + "\n")
    c, s = concurrent, sequential
    print(f"{args.label}: checkpoints {report['checkpoints']}; server up in {report['startup_s']} s")
    if "p50_s" in c:
        print(
            f"{c['requests']} concurrent: {c['succeeded']} ok · p50 {c['p50_s']} s · p95 {c['p95_s']} s · "
            f"max {c['max_s']} s · {c['throughput_req_per_s']} requests/s"
        )
    for row in curve:
        if "p50_s" in row:
            print(
                f"  {row['visitors']:>3} at once: {row['succeeded']} ok · p50 {row['p50_s']} s · p95 {row['p95_s']} s"
            )
    if "p50_s" in s:
        who = "new visitors" if s["new_visitor_each_request"] else "one visitor"
        print(
            f"{s['requests']} sequential ({who}): {s['succeeded']} ok · p50 {s['p50_s']} s · p95 {s['p95_s']} s · "
            f"peak RSS {s['peak_rss_mib']} MiB · growth request {s['warmup_requests']}→{s['requests']}: "
            f"{s['rss_growth_after_warmup_mib']} MiB"
        )
    if hostile:
        print(
            f"hostile: {hostile['normal_served']}/{hostile['normal']} normal served, "
            f"{hostile['hostile_clear_error']}/{hostile['hostile']} hostile refused clearly; other: {hostile['other']}"
        )
    print(
        f"server CPU per request: {server_cpu_ms['concurrent_per_request']} ms (concurrent), "
        f"{server_cpu_ms['sequential_per_request']} ms (sequential); this client: "
        f"{server_cpu_ms['client_sequential_per_request']} ms (sequential)"
    )
    print(f"cut-off responses in the server log: {report['server_log_cut_off_responses']}; wrote {args.out}")
    errors = [e for row in curve for e in row["errors"]] + s["errors"]
    if hostile and (
        hostile["normal_served"] < hostile["normal"] or hostile["hostile_clear_error"] < hostile["hostile"]
    ):
        errors.append(f"hostile phase: {hostile}")
    if errors:
        print("errors:\n  " + "\n  ".join(errors[:20]), file=sys.stderr)
    return 0 if not errors and c["succeeded"] == c["requests"] and s["succeeded"] == s["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
