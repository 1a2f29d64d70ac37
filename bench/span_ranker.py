"""How long the span ranker takes per sentence (issue 22 §3): `SpanRanker.rank` on sentences of the bundled
articles with questions written for them, cold (first sight of a sentence: parse, candidates, one encoder
batch) and warm (the sentence's parse and vectors cached, only the question's features and the model).
Also the cost of spaCy's parser: the pipeline with and without it on the same sentences.

    python bench/span_ranker.py [--sentences 200] [--model rag/answer/model/spans.json]
Prints wall and CPU milliseconds per sentence with `uptime`'s load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ("How many people were there?", "Who said it?", "Where did it happen?", "When did it start?",
             "which organisation was involved", "How much did it cost?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--model", type=Path, default=None, help="a model JSON (default: the committed one)")
    args = parser.parse_args()
    from rag.answer.parse import _nlp as _parser_nlp
    from rag.answer.question import analyse
    from rag.answer.span_model import SpanRanker
    from rag.answer.spans import _nlp
    from rag.chunk import split_sentences
    from rag.ingest.files import load_articles

    sentences = []
    for article in load_articles(ROOT / "articles").articles:
        sentences += [article.text[s:e] for s, e in split_sentences(article.text)]
    sentences = sentences[: args.sentences]
    queries = [analyse(q) for q in QUESTIONS]
    plain, parsed = _nlp(), _parser_nlp()
    for nlp in (plain, parsed):
        nlp("A warm-up sentence.")
    cost = {}
    for name, nlp in (("without parser", plain), ("with parser", parsed)) * 2:  # twice: the second pass counts
        wall, cpu = time.perf_counter(), time.process_time()
        for sentence in sentences:
            nlp(sentence)
        cost[name] = ((time.perf_counter() - wall) / len(sentences) * 1e3, (time.process_time() - cpu) / len(sentences) * 1e3)
    ranker = SpanRanker.load(args.model)
    ranker.rank(queries[0], "The warm-up sentence names 12 people in Paris.")
    for query in queries:
        ranker.question_vector(query)
    cold, warm = [], []
    for i, sentence in enumerate(sentences):
        query = queries[i % len(queries)]
        wall, cpu = time.perf_counter(), time.process_time()
        ranker.rank(query, sentence)
        cold.append((time.perf_counter() - wall, time.process_time() - cpu))
        wall, cpu = time.perf_counter(), time.process_time()
        ranker.rank(queries[(i + 1) % len(queries)], sentence)
        warm.append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"{len(sentences)} sentences of the bundled articles, one thread")
    for name, (wall, cpu) in cost.items():
        print(f"spaCy {name:15s}: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU per sentence")
    for name, runs in (("rank, cold", cold), ("rank, warm", warm)):
        walls, cpus = sorted(r[0] * 1e3 for r in runs), sorted(r[1] * 1e3 for r in runs)
        print(f"{name}: wall p50 {statistics.median(walls):.1f} ms, p90 {walls[int(0.9 * len(walls))]:.1f} ms; "
              f"CPU p50 {statistics.median(cpus):.1f} ms, mean {statistics.fmean(cpus):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
