"""The ONNX question encoder against torch's: same retrieval? how fast? (issue 14 §1)

For each corpus, every sentence is encoded once by the torch model (the index's document vectors), each
question by both encoders, and the exact top 10 sentences of the two question vectors are compared:
recall@10 of the ONNX question's top 10 against the torch question's. Also the cosine of the two question
vectors and the per-question encoding time of each (one thread each, warm). Corpora: the bundled articles
with the dev questions, tests/data/harbour with its test questions, and a synthetic benchmark corpus
(bench/corpus.py) with its generated questions.

    python bench/query_encoder.py                     # bundled + harbour + 100 synthetic articles
    python bench/query_encoder.py --synthetic 300
Writes bench/results/query-encoder.json; figures are printed, never asserted (tests/test_embed.py asserts the
recall floor on the bundled and harbour corpora).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HARBOUR_QUESTIONS = (  # the questions tests/test_answer.py asks of tests/data/harbour
    "How many supporters watched the cup final?", "Who is the director of the Port Authority?",
    "When was the sea wall first built?", "How long could repairs to the sea wall take?",
    "How many residents were evacuated?", "Who scored twice in the final?", "Who is its director?",
    "What is the capital of Australia?", "Which schools reopened after the storm?",
)


def sentences_of(folder: Path) -> list[str]:
    """Every sentence of every article under `folder`, split as the index splits them."""
    from rag.chunk import split_sentences
    from rag.ingest.files import load_articles

    out = []
    for article in load_articles(folder).articles:
        out.extend(article.text[s:e] for s, e in split_sentences(article.text))
    return out


def agreement(documents: np.ndarray, reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> dict:
    """recall@k of `candidate` question vectors' exact top k against `reference`'s, over `documents`
    (all unit length, one row each), with ties at the k-th reference score counted as found; and the cosines."""
    k = min(k, len(documents))
    recalls, cosines = [], []
    for ref, cand in zip(reference, candidate, strict=True):
        ref_scores, cand_scores = documents @ ref, documents @ cand
        want = np.argsort(-ref_scores, kind="stable")[:k]
        got = np.argsort(-cand_scores, kind="stable")[:k]
        kth = ref_scores[want[-1]]
        found = len(set(want.tolist()) & set(got.tolist()))
        tied = sum(1 for g in got.tolist() if g not in set(want.tolist()) and ref_scores[g] >= kth - 1e-6)
        recalls.append(min(k, found + tied) / k)
        cosines.append(float(ref @ cand))
    return {"questions": len(recalls), "recall_at_10": round(float(np.mean(recalls)), 4),
            "worst_recall": round(float(min(recalls)), 2), "cosine_min": round(min(cosines), 4),
            "cosine_mean": round(float(np.mean(cosines)), 5)}


def _timed(encode, questions: list[str]) -> tuple[np.ndarray, float]:
    encode(questions[0])
    times, vectors = [], []
    for q in questions:
        started = time.perf_counter()
        vectors.append(encode(q))
        times.append(time.perf_counter() - started)
    return np.stack(vectors), round(statistics.median(times) * 1000, 2)


def compare_corpus(name: str, folder: Path, questions: list[str], torch_encoder, onnx_encoder) -> dict:  # noqa: ANN001
    documents = torch_encoder.encode_documents(sentences_of(folder))
    ref, torch_ms = _timed(torch_encoder.encode_query, questions)
    cand, onnx_ms = _timed(onnx_encoder.encode_query, questions)
    result = {"corpus": name, "sentences": len(documents), **agreement(documents, ref, cand),
              "torch_query_ms_p50": torch_ms, "onnx_query_ms_p50": onnx_ms}
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=100, help="articles of the synthetic corpus (0: skip)")
    args = parser.parse_args()

    from bench.corpus import generate, questions
    from bench.run import machine
    from rag.embed import Embedder, OnnxQueryEncoder
    from tests.conftest import DEV_QUESTIONS

    torch_encoder = Embedder()
    onnx_encoder = OnnxQueryEncoder(torch_encoder)
    dev = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
    results = [
        compare_corpus("bundled (dev questions)", ROOT / "articles", dev, torch_encoder, onnx_encoder),
        compare_corpus("tests/data/harbour", ROOT / "tests" / "data" / "harbour", list(HARBOUR_QUESTIONS),
                       torch_encoder, onnx_encoder),
    ]
    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="rag-qenc-") as work:
            folder = generate(args.synthetic, Path(work) / "corpus")
            asked = [q for q, _, _ in questions(args.synthetic, 200)]
            results.append(compare_corpus(f"synthetic {args.synthetic} (bench/corpus.py)", folder, asked,
                                          torch_encoder, onnx_encoder))
    out = {"machine": machine(), "onnx_model": f"float32 export {onnx_encoder.export.folder.name} (rag.embed.export)", "results": results}
    path = ROOT / "bench" / "results" / "query-encoder.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
