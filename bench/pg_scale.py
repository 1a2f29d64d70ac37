"""Local index against the postgres backend on one synthetic corpus, side by side: build time, disk, warm
retrieval latency p50/p95 and dense recall@10 against exact search.

    python -m bench.pg_scale 1000            # STAND-IN vectors (bench/standin.py): index costs only
    python -m bench.pg_scale 1000 --real     # the real model (slow: ~30k sentences at 1,000 articles)

With stand-in vectors nothing here says anything about answer quality, and the build times exclude the model;
HNSW recall on stand-in vectors is pessimistic (they cluster worse than the model's, see rag/index/segment.py).
Recall: the chunks of the 10 best sentences from pgvector's HNSW against the local index's exact FAISS scan.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import STANDIN, corpus_dir  # noqa: E402
from bench.corpus import questions  # noqa: E402
from bench.standin import HashEmbedder  # noqa: E402


def _latency(retriever, qs: list[str]) -> tuple[float, float]:
    retriever.retrieve(qs[0])  # warm
    times = []
    for q in qs:
        started = time.perf_counter()
        retriever.retrieve(q)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()
    from rag.config import load_settings
    from rag.embed import Embedder
    from rag.index.build import build_index
    from rag.index.local import Index, index_size
    from rag.index.postgres.build import build_postgres
    from rag.index.postgres.search import PostgresIndex
    from rag.index.postgres.server import start, stop
    from rag.retrieve.hybrid import HybridRetriever

    work = Path(tempfile.mkdtemp(prefix="rag-pgscale-"))
    work.chmod(0o755)
    articles = corpus_dir(str(args.n), work)
    model = {} if args.real else {"embed_model": STANDIN}
    settings = load_settings(config_file=None, environ={}, answer_mode="extractive", articles_dir=articles, index_dir=work / "index", **model)
    encoder = Embedder(settings.embed_model) if args.real else HashEmbedder()
    out: dict[str, dict] = {}
    started = time.perf_counter()
    report = build_index(settings, encoder)
    out["local"] = {"build_s": round(time.perf_counter() - started, 1), "disk_mb": round(index_size(settings.index_dir) / 1e6, 1)}
    server = start(work / "pg")
    try:
        pg_settings = settings.replace(index_backend="postgres", database_url=server.url())
        started = time.perf_counter()
        build_postgres(pg_settings, encoder)
        out["postgres"] = {"build_s": round(time.perf_counter() - started, 1)}
        local, pg = Index.load(settings.index_dir, settings), PostgresIndex(pg_settings)
        out["postgres"]["disk_mb"] = round(pg.size_bytes() / 1e6, 1)
        qs = [q for q, _, _ in questions(args.n, args.questions)]
        for name, index in (("local", local), ("postgres", pg)):
            p50, p95 = _latency(HybridRetriever(index, encoder, settings.top_k), qs)
            out[name].update({"retrieve_p50_ms": round(p50, 1), "retrieve_p95_ms": round(p95, 1)})
        hits = []
        for q in qs:
            vector = encoder.encode_query(q)
            exact = {h.chunk_id for h in local.dense_search(vector, 10)}  # FAISS exact scan below 300k sentences
            got = {h.chunk_id for h in pg.dense_search(vector, 10)}
            hits.append(len(exact & got) / len(exact))
        out["postgres"]["dense_recall_at_10"] = round(statistics.mean(hits), 3)
        out["corpus"] = {"articles": report.articles, "chunks": report.chunks, "sentences": report.sentences,
                         "vectors": "real model" if args.real else "STAND-IN (hashed)"}
        local.close()
        pg.close()
    finally:
        stop(server.data_dir, remove=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
