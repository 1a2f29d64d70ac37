"""Whole-answer latency of the rule reader and the learned reader on the bundled articles, warm process.

Both readers answer the same questions (tests/data/questions/bundled_*.jsonl) through `Assistant.ask` over one
real index; each question is asked once to warm caches, then `--rounds` times per reader, interleaved. Prints
p50/p90 of the whole answer (`total_ms`) and of the reading step alone (`answer_ms`), CPU seconds beside wall
seconds, and the load average.

    python bench/reader_latency.py --index /tmp/learned-index-bundled
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.learned import LearnedReader  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.pipeline import Assistant  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=Path("/tmp/learned-index-bundled"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    assistant = Assistant.from_settings(Settings(articles_dir=ROOT / "articles", index_dir=args.index, reader="rules"))
    rules = assistant.reader
    readers = {"rules": rules, "learned": LearnedReader(rules)}
    questions = [json.loads(line)["question"] for path in sorted((ROOT / "tests/data/questions").glob("bundled_*.jsonl"))
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for reader in readers.values():  # warm: spaCy, ONNX, the span caches
        assistant.reader = reader
        for q in questions:
            assistant.ask(q)
    timings: dict[str, dict[str, list[float]]] = {name: {"total_ms": [], "answer_ms": []} for name in readers}
    cpu = dict.fromkeys(readers, 0.0)
    wall = dict.fromkeys(readers, 0.0)
    for _ in range(args.rounds):
        for q in questions:
            for name, reader in readers.items():
                assistant.reader = reader
                c, w = time.process_time(), time.perf_counter()
                answer = assistant.ask(q)
                cpu[name] += time.process_time() - c
                wall[name] += time.perf_counter() - w
                for key in timings[name]:
                    timings[name][key].append(answer.timings[key])
    n = len(questions) * args.rounds
    print(f"{len(questions)} questions x {args.rounds} rounds; load average {os.getloadavg()}")
    for name, got in timings.items():
        figures = ", ".join(f"{k} p50 {np.percentile(v, 50):.1f} p90 {np.percentile(v, 90):.1f}" for k, v in got.items())
        print(f"{name:8s} {figures}; per answer wall {1000 * wall[name] / n:.1f} ms, CPU {1000 * cpu[name] / n:.1f} ms")
    assistant.close()


if __name__ == "__main__":
    main()
