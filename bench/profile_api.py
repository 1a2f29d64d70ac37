"""Where a POST /api/ask spends its CPU in the real server: pyinstrument over `rag serve`'s app under load.

The app (app.server.create_app, the bundled articles, the index given) runs in this process under uvicorn with
pyinstrument sampling the main thread, while `bench/load.py --url … --pid …` drives it from another process
(so the clients' own Python does not share this interpreter's lock). pyinstrument samples one thread, so the
work FastAPI hands to its thread pool (a sync endpoint, response validation) is run inline on the event loop
for the profile: the same calls, in one thread. Answers and the wrong-answer check are load.py's as usual.

    python bench/profile_api.py --index /tmp/idx --users 20 --rounds 5 --out /tmp/profile-api
    python bench/profile_api.py --index /tmp/idx --http-only --no-profile --rounds 25   # the HTTP path's CPU alone
writes OUT.txt (the call tree, seconds over the whole run) and OUT.html, and prints the top of the tree.
With --http-only each question is answered once and the answer kept, so what the server spends on a repeat is
the HTTP path alone (load.py then asks the dev questions over and over); --no-profile measures it unprofiled,
with FastAPI's thread pool as in `rag serve`.
The breakdown groups the tree by where the time goes: uvicorn (HTTP parsing, the event loop), the middleware,
routing, request validation, the answer itself (`Service.ask`), and the response (validation + JSON).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_support import free_port  # noqa: E402


def inline_threadpool() -> None:
    """Run FastAPI's thread-pool work in the calling thread, so one profiled thread sees all of it."""
    import fastapi.routing
    import starlette.concurrency

    async def inline(func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return func(*args, **kwargs)

    fastapi.routing.run_in_threadpool = inline
    starlette.concurrency.run_in_threadpool = inline


# (label, how a frame that starts the part is recognised); a part's time is its outermost frames' time, minus the
# parts nested inside it, so the rows add up to the sampled total
PARTS = (
    ("the answer itself (Service.ask)", lambda f: f.function == "ask" and f.file_path.endswith("app/service.py")),
    ("response: validation + JSON", lambda f: f.function == "serialize_response" or f.function == "render"
     and "responses.py" in f.file_path),
    ("request body: read, parse, validate", lambda f: f.function in ("solve_dependencies", "_extract_form_body")
     or f.function in ("json", "body") and "starlette/requests.py" in f.file_path),
    ("routing, exception handling, endpoint call", lambda f: f.function == "__call__"
     and f.file_path.endswith("starlette/middleware/exceptions.py")),
    ("our middleware + CORS", lambda f: f.class_name == "CORSMiddleware" or f.class_name == "ServerErrorMiddleware"),
    ("waiting for work (event loop idle)", lambda f: f.function in ("select", "poll") and "selectors" in f.file_path),
)


def breakdown(root: Any) -> dict[str, float]:
    """Seconds per part of the request path; what no part claims is uvicorn: HTTP parsing, the event loop."""
    out = {label: 0.0 for label, _ in PARTS}

    def walk(frame: Any, inside: str | None) -> None:
        part = next((label for label, match in PARTS if match(frame)), None)
        if part is not None and part != inside:
            out[part] += frame.time
            if inside is not None:
                out[inside] -= frame.time
            inside = part
        for child in frame.children:
            walk(child, inside)

    walk(root, None)
    out["uvicorn: HTTP parsing, event loop, sockets"] = root.time - sum(out.values())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/profile-api"))
    parser.add_argument("--http-only", action="store_true", help="keep each answer: time the HTTP path alone")
    parser.add_argument("--no-profile", action="store_true", help="no profiler, FastAPI's own thread pool")
    parser.add_argument("--client", choices=("api", "gradio"), default="api",
                        help="drive POST /api/ask (bench/load.py) or Gradio's queue (bench/gradio_ask.py)")
    args = parser.parse_args()

    import uvicorn
    from pyinstrument import Profiler

    from app.server import create_app
    from app.service import Service
    from rag.config import load_settings
    from rag.pipeline import Assistant

    os.environ["RAG_RATE_LIMIT"] = "1000000"  # every client is 127.0.0.1; the limiter still runs
    settings = load_settings(articles_dir=ROOT / "articles", index_dir=args.index)
    assistant = Assistant.from_settings(settings)
    service = Service(assistant, settings)
    if args.http_only:
        kept: dict[tuple, Any] = {}
        ask = service.ask

        def ask_once(question: str, history: Any = (), mode: str | None = None) -> Any:
            key = (question, tuple(history), mode)
            if key not in kept:
                kept[key] = ask(question, history, mode)
            return kept[key]

        service.ask = ask_once  # type: ignore[method-assign]
    if not args.no_profile:
        inline_threadpool()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    url = f"http://127.0.0.1:{port}"
    result: dict[str, int] = {}

    def drive() -> None:
        deadline = time.monotonic() + 120
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--url", url, "--pid", str(os.getpid()),
               "--users", str(args.users), "--rounds", str(args.rounds), *([] if args.http_only else ["--distinct"])]
        if args.client == "gradio":
            cmd = [sys.executable, str(ROOT / "bench" / "gradio_ask.py"), "--url", url, "--pid", str(os.getpid()),
                   "--users", str(args.users), "--rounds", str(args.rounds)]
        result["rc"] = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
        server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    if args.no_profile:
        server.run()
        return result.get("rc", 1)
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    server.run()
    session = profiler.stop()
    args.out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
    args.out.with_suffix(".html").write_text(profiler.output_html())
    session.save(str(args.out.with_suffix(".pyisession")))  # `pyinstrument --load FILE --show-all` to dig in
    print(f"profile: {session.duration:.1f} s sampled, CPU {session.cpu_time:.1f} s; written to {args.out}.txt/.html")
    parts = breakdown(session.root_frame())
    busy = session.duration - parts["waiting for work (event loop idle)"]
    asked = args.users * args.rounds + (14 if args.http_only else args.users * args.rounds) + 5  # load.py's phases
    print(f"per POST /api/ask ({asked} asked), milliseconds of the profiled thread:")
    for label, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        share = "" if label.startswith("waiting") else f"  {100 * seconds / busy:5.1f}% of the busy time"
        print(f"{seconds * 1000 / asked:8.2f} ms  {label}{share}")
    return result.get("rc", 1)


if __name__ == "__main__":
    sys.exit(main())
