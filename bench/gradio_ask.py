"""The Gradio side's cost per question: N users asking through Gradio's queue (the named endpoint "/ask",
the same `Service.ask` the chat's drain calls) with `gradio_client`, against a running server.

Prints requests, wall time and, with --pid, the server's CPU per request (psutil, all its threads), with the
load average. Each reply is checked against the first reply to the same question.

    python bench/profile_api.py --index /tmp/idx --http-only --no-profile --client gradio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import DEV  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    from gradio_client import Client

    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]
    clients = [Client(args.url + "/", verbose=False) for _ in range(args.users)]
    expected = {q: clients[0].predict(q, [], None, api_name="/ask") for q in questions}
    server = psutil.Process(args.pid) if args.pid else None
    before = sum(server.cpu_times()[:2]) if server else 0.0
    began = time.perf_counter()

    def user(i: int) -> int:
        wrong = 0
        for r in range(args.rounds):
            q = questions[(i + r) % len(questions)]
            wrong += clients[i].predict(q, [], None, api_name="/ask") != expected[q]
        return wrong

    with ThreadPoolExecutor(args.users) as pool:
        wrong = sum(pool.map(user, range(args.users)))
    wall = time.perf_counter() - began
    n = args.users * args.rounds
    cpu = f"; server CPU {(sum(server.cpu_times()[:2]) - before) * 1000 / n:.2f} ms per request" if server else ""
    print(f"gradio /ask: {args.users} users x {args.rounds}: {n} requests in {wall:.1f} s ({n / wall:.1f} req/s), "
          f"wrong {wrong}{cpu}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
