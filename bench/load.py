"""Load test: N concurrent users asking at once against a real `rag serve` on 127.0.0.1.

Starts the server itself (bundled articles, a throw-away index copy unless --index is given) or uses --url.
Every user asks --rounds questions taken from the dev set; each reply is checked against the answer a
single user gets for the same question (timings aside). With --distinct every request asks a different
text (the dev questions reworded: "Tell me: …", "Please, …"), so no cache of a repeated question helps.
Bounded: at most users*rounds requests and --max-seconds of wall time. Prints the machine, its load
average, p50/p95/max latency and throughput; --json writes them too.

    python bench/load.py                       # 20 users x 3 rounds
    python bench/load.py --users 50 --distinct --index index
    python bench/load.py --url http://127.0.0.1:7860 --users 20 --rounds 5
    python bench/load.py --url http://127.0.0.1:7861 --url http://127.0.0.1:7862   # replicas: users spread over them
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


_REWORDINGS = ("{q}", "Tell me: {q}", "Please, {l}", "{q} Quote the articles.", "I wonder: {l}", "Can you say: {l}")


def distinct_questions(questions: list[str], count: int) -> list[str]:
    """`count` different texts: each question, then each rewording of every question."""
    out = [r.format(q=q, l=q[:1].lower() + q[1:]) for r in _REWORDINGS for q in questions]
    if count > len(out):
        out += [f"{q} ({i})" for i, q in enumerate(out[: count - len(out)], start=1)]
    return out[:count]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="an already running server (repeat for replicas: users are "
                        "spread over them and every reply is checked against the first one's); default: start one")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="questions per user")
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--index", type=Path, help="index folder to use when starting a server")
    parser.add_argument("--distinct", action="store_true", help="every request a different question text")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]
    if args.distinct:
        questions = distinct_questions(questions, args.users * args.rounds)
    print(f"machine: {machine()}", file=sys.stderr)

    with ExitStack() as stack:
        urls = args.url or []
        url = urls[0] if urls else None
        if url is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-load-")))
            index = args.index or work / "index"
            print("starting rag serve (builds the index when needed)…", file=sys.stderr)
            url = stack.enter_context(rag_server(ROOT / "articles", index, work, "load"))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
        expected, single = {}, []
        for q in questions:  # one user alone: the reference answers and the single-user latency
            started = time.perf_counter()
            expected[q] = _strip(client.post("/api/ask", json={"question": q}).json())
            single.append(time.perf_counter() - started)
        replica_differ = 0
        for other in urls[1:]:
            with httpx.Client(base_url=other, timeout=60) as replica:
                differ = [q for q in questions if _strip(replica.post("/api/ask", json={"question": q}).json()) != expected[q]]
            print(f"replica {other}: {len(questions) - len(differ)}/{len(questions)} answers equal to {url}'s")
            replica_differ += len(differ)

        jobs = (questions if args.distinct else  # user u asks jobs[u * rounds : (u + 1) * rounds]
                [questions[(u + r) % len(questions)] for u in range(args.users) for r in range(args.rounds)])
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
    print(f"{args.users} concurrent users x {args.rounds} questions{' (all different)' if args.distinct else ''}: "
          f"{len(results)} requests in {wall:.1f} s "
          f"({len(results) / wall:.1f} req/s); latency p50 {statistics.median(latencies):.0f} ms, "
          f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms; wrong or failed answers: {wrong}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine(), "users": args.users, "rounds": args.rounds, "distinct": args.distinct,
            "requests": len(results), "wall_s": round(wall, 2), "req_per_s": round(len(results) / wall, 1),
            "single_p50_ms": round(statistics.median(single) * 1000, 1), "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(p95, 1), "max_ms": round(latencies[-1], 1), "wrong": wrong}, indent=1) + "\n")
    return 1 if wrong or replica_differ or len(results) < len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
