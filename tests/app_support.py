"""Helpers for the app tests: a real `rag serve` in a subprocess, a real reverse proxy, a headless Chromium.

Run as a script it is the reverse proxy (`python tests/app_support.py PORT UPSTREAM PREFIX`): it strips
PREFIX and forwards to UPSTREAM, streaming responses, as nginx's `proxy_pass http://up/;` would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's RAG_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(ROOT)
    env["RAG_ANSWER_MODE"] = "extractive"  # the default "auto" would answer with the packaged model when installed
    env.update(extra)
    return env


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not up after {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running(cmd: list[str], health_url: str, log: Path, env: dict[str, str], cwd: Path):
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_until_up(health_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def rag_server(articles: Path, index: Path, workdir: Path, name: str, **env: str):
    """`rag serve` on a free port; yields its base URL (with the root path, if any)."""
    port = free_port()
    cmd = [PYTHON, "-m", "rag.cli", "serve", "--port", str(port), "--articles", str(articles), "--index", str(index)]
    with running(cmd, f"http://127.0.0.1:{port}/api/health", workdir / f"{name}.log", clean_env(**env), workdir):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def reverse_proxy(upstream: str, prefix: str, workdir: Path):
    port = free_port()
    cmd = [PYTHON, str(Path(__file__).resolve()), str(port), upstream, prefix]
    with running(cmd, f"http://127.0.0.1:{port}/__proxy_health", workdir / "proxy.log", clean_env(), workdir):
        yield f"http://127.0.0.1:{port}{prefix}"


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _proxy_app(upstream: str, prefix: str) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=upstream, timeout=None)
    hop = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailers", "proxy-authorization"}

    async def forward(request: Request) -> Any:
        path = request.url.path
        if path == "/__proxy_health":
            return PlainTextResponse("ok")
        if not (path == prefix or path.startswith(prefix + "/")):
            return PlainTextResponse("not under the proxied prefix", status_code=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop | {"host"}}
        headers["x-forwarded-host"] = request.headers.get("host", "")
        headers["x-forwarded-proto"] = "http"
        headers["host"] = request.headers.get("host", "")
        upstream_req = client.build_request(
            request.method, path[len(prefix):] or "/", params=request.query_params, headers=headers,
            content=await request.body(),
        )
        resp = await client.send(upstream_req, stream=True)
        out_headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in hop | {"content-length"}]
        streamed = StreamingResponse(resp.aiter_raw(), status_code=resp.status_code, background=BackgroundTask(resp.aclose))
        streamed.raw_headers = [(k.encode(), v.encode()) for k, v in out_headers]
        return streamed

    methods = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


if __name__ == "__main__":
    import uvicorn

    port, upstream, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(_proxy_app(upstream, prefix), host="127.0.0.1", port=port, log_level="warning")
