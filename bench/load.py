"""Load test: N concurrent users asking at once against a real `rag serve` on 127.0.0.1.

Starts the server itself (bundled articles, a throw-away index copy unless --index is given) or uses --url.
Every user asks --rounds questions taken from the dev set; each reply is checked against the answer a
single user gets for the same question (timings aside). Bounded: at most users*rounds requests and
--max-seconds of wall time. Prints p50/p95/max latency and throughput.

    python bench/load.py                       # 20 users x 3 rounds
    python bench/load.py --url http://127.0.0.1:7860 --users 20 --rounds 5
    python bench/load.py --url http://127.0.0.1:7861 --url http://127.0.0.1:7862   # replicas: users spread over them
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_support import rag_server  # noqa: E402  (the same server launcher the tests use)

DEV = ROOT.parent / "shared" / "eval" / "seed_questions_dev.jsonl"
DEV = DEV if DEV.exists() else ROOT / "tests" / "data" / "seed_questions_dev.jsonl"


def _strip(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "timings"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="an already running server (repeat for replicas: users are "
                        "spread over them and every reply is checked against the first one's); default: start one")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="questions per user")
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--index", type=Path, help="index folder to use when starting a server")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]

    with ExitStack() as stack:
        urls = args.url or []
        url = urls[0] if urls else None
        if url is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-load-")))
            index = args.index or work / "index"
            print("starting rag serve (builds the index when needed)…", file=sys.stderr)
            url = stack.enter_context(rag_server(ROOT / "articles", index, work, "load"))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        expected = {q: _strip(client.post("/api/ask", json={"question": q}).json()) for q in questions}
        replica_differ = 0
        for other in urls[1:]:
            with httpx.Client(base_url=other, timeout=60) as replica:
                differ = [q for q in questions if _strip(replica.post("/api/ask", json={"question": q}).json()) != expected[q]]
            print(f"replica {other}: {len(questions) - len(differ)}/{len(questions)} answers equal to {url}'s")
            replica_differ += len(differ)
        single = []
        for q in questions:
            started = time.perf_counter()
            client.post("/api/ask", json={"question": q})
            single.append(time.perf_counter() - started)

        jobs = [questions[(u + r) % len(questions)] for u in range(args.users) for r in range(args.rounds)]
        deadline = time.monotonic() + args.max_seconds

        def user(index: int) -> list[tuple[float, bool]]:
            out = []
            with httpx.Client(base_url=(urls or [url])[index % max(1, len(urls))], timeout=60) as own:
                for q in jobs[index * args.rounds : (index + 1) * args.rounds]:
                    if time.monotonic() > deadline:
                        break
                    started = time.perf_counter()
                    reply = own.post("/api/ask", json={"question": q})
                    out.append((time.perf_counter() - started, reply.status_code == 200 and _strip(reply.json()) == expected[q]))
            return out

        began = time.perf_counter()
        results: list[tuple[float, bool]] = []
        with ThreadPoolExecutor(args.users) as pool:
            for future in as_completed([pool.submit(user, i) for i in range(args.users)]):
                results.extend(future.result())
        wall = time.perf_counter() - began

    latencies = sorted(r[0] * 1000 for r in results)
    wrong = sum(1 for r in results if not r[1])
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"single user: median {statistics.median(single) * 1000:.0f} ms over {len(single)} questions")
    print(f"{args.users} concurrent users x {args.rounds} questions: {len(results)} requests in {wall:.1f} s "
          f"({len(results) / wall:.1f} req/s); latency p50 {statistics.median(latencies):.0f} ms, "
          f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms; wrong or failed answers: {wrong}")
    return 1 if wrong or replica_differ or len(results) < len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
