"""A light client for the app's Attention API over Gradio's plain HTTP routes (used by load_test.py).

What a browser does for one request, with one ``httpx`` connection pool and no per-request
bookkeeping of ``gradio_client``: upload the two images (``POST /gradio_api/upload``), start the
call (``POST /gradio_api/call/attention``), read its server-sent events until ``complete``
(``GET /gradio_api/call/attention/<event id>``), then download every result image. On these
2 cores ``gradio_client`` costs about 3× the server's CPU per request (docs/RESULTS.md); this
client lets a load test measure the server rather than its visitors' machines.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx


class HttpAttentionClient:
    def __init__(self, url: str, download: bool = True) -> None:
        self.url = url.rstrip("/") + "/"
        self.download = download
        self.http = httpx.Client(timeout=None)
        self.session_hash = uuid.uuid4().hex[:11]  # one visitor: one session, as a browser tab has

    def _upload(self, paths: list[str]) -> list[dict]:
        files = [("files", (Path(p).name, Path(p).read_bytes(), "image/png")) for p in paths]
        response = self.http.post(self.url + "gradio_api/upload", files=files)
        response.raise_for_status()
        return [
            {"path": path, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}}
            for path, p in zip(response.json(), paths, strict=True)
        ]

    def attention(self, arguments: list, files: dict[int, list[str]], timeout: float) -> list:
        """Call ``/attention`` with ``arguments`` (file arguments at the indices of ``files`` are
        uploaded first); returns the output list, after downloading every file it points to."""
        data = list(arguments)
        for index, paths in files.items():
            data[index] = self._upload(paths)
        start = self.http.post(
            self.url + "gradio_api/call/attention",
            json={"data": data, "session_hash": self.session_hash},
            timeout=timeout,
        )
        start.raise_for_status()
        event_id = start.json()["event_id"]
        event, output = None, None
        with self.http.stream("GET", self.url + f"gradio_api/call/attention/{event_id}", timeout=timeout) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line.split(":", 1)[1].strip()
                    if event == "error":
                        raise RuntimeError(f"the app answered with an error: {payload}")
                    output = json.loads(payload)
                    break
        if output is None:
            raise RuntimeError("the event stream ended without a result")
        if self.download:
            for url in _file_urls(output):
                got = self.http.get(url, timeout=timeout)
                got.raise_for_status()
                if not got.content:
                    raise RuntimeError(f"empty download {url}")
        return output


def _file_urls(value) -> list[str]:
    """Every ``url`` of a file object in a Gradio output, depth first."""
    if isinstance(value, dict):
        own = [value["url"]] if isinstance(value.get("url"), str) and value.get("path") else []
        return own + [u for v in value.values() for u in _file_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _file_urls(v)]
    return []
