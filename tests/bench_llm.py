"""Benchmark of the LLM mode with the local SmolLM2-135M on the dev questions (prints figures, asserts nothing).

    PYTHONPATH=. python tests/bench_llm.py [questions.jsonl]

Uses the bundled articles (indexed in a temporary folder) and the default llm settings.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from conftest import BUNDLED, DEV_QUESTIONS, smollm2_gguf

from rag.config import load_settings
from rag.pipeline import Assistant


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEV_QUESTIONS
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    gguf = smollm2_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(BUNDLED, Path(tmp) / "articles")
        settings = load_settings(config_file=None, environ={}, articles_dir=Path(tmp) / "articles",
                                 index_dir=Path(tmp) / "index", answer_mode="llm", llm_path=str(gguf))
        assistant = Assistant.from_settings(settings)
        started = time.perf_counter()
        assistant.llm_reader()
        print(f"model load: {time.perf_counter() - started:.1f} s")
        latencies, llm, touched, fallback, totals = [], 0, 0, 0, {}
        for row in rows:
            started = time.perf_counter()
            answer = assistant.ask(row["question"])
            latencies.append(time.perf_counter() - started)
            g = answer.guard
            for key, value in g.items():
                totals[key] = totals.get(key, 0) + value
            changed = g and (g["markers_repaired"] + g["quotes_repaired"] + g["markers_removed"] + g["quotes_removed"]) > 0
            llm += answer.mode == "llm"
            fallback += answer.mode != "llm"
            touched += bool(changed)
            print(f"{row['id']}: {answer.mode:10} {latencies[-1]:5.1f} s  repaired/removed={'yes' if changed else 'no '}  "
                  f"{answer.text[:90]!r}")
        n = len(rows)
        print(f"questions: {n}; guarded LLM answers: {llm}; fell back to extractive: {fallback}")
        print(f"answers needing repair or removal: {touched}/{n} = {touched / n:.0%}")
        print(f"latency per answer: mean {statistics.mean(latencies):.1f} s, median {statistics.median(latencies):.1f} s, "
              f"max {max(latencies):.1f} s")
        print("guard totals:", json.dumps(totals))


if __name__ == "__main__":
    main()
