"""Build benchmark: a full index build of a corpus, next to the raw model throughput on the same sentences.

"Chunks per second" here means embedded units per second: the index embeds every SENTENCE (chunks score by
their best sentence), so the rate is sentences/s for the whole build (ingest, chunking, embedding, BM25,
FAISS, writing) against sentences/s of `SentenceTransformer.encode` alone on the same sentence texts.

    python bench/build.py 1000                 # real model
    python bench/build.py 100000 --standin     # stand-in vectors (bench/standin.py): index figures only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402, F401  (WORK, corpus_dir, ... are used through bench.build by older scripts)
    WORK,
    corpus_dir,
    embedder_for,
    index_dir,
    progress_bar,
    sentence_texts,
    settings_for,
)


def raw_throughput(texts: list[str], batch_size: int) -> float:
    """Sentences/s of the model alone: one encode() call over all texts (it sorts by length itself)."""
    from sentence_transformers import SentenceTransformer

    from rag.config import DEFAULT_MODEL
    from rag.embed import resolve_model

    # its own copy of the model, on torch's default thread count as the build's document encoding uses
    model = SentenceTransformer(resolve_model(DEFAULT_MODEL), device="cpu")
    model.encode(texts[:64], batch_size=batch_size)  # warm
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started)


def run(size: str, standin: bool, work: Path = WORK, pre_encoded: bool = False) -> dict:
    """A full build. `pre_encoded`: the real model's vectors come from bench/realcache.py, which timed the
    model alone on these very sentences; the build then times everything else, and the build rate is the
    sentences over (model time + the rest)."""
    from rag.index.build import build_index

    settings = settings_for(size, standin, work)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    if pre_encoded:
        from bench.realcache import CachedEmbedder, cache_dir, encode_corpus

        if not (cache_dir(size, work) / "vectors.npy").exists():
            encode_corpus(size, work)
        embedder = CachedEmbedder(size, work)
    else:
        embedder = embedder_for(standin, settings)
    if not standin:
        embedder.encode_query("warm up")  # model load is not build throughput
    update, close = progress_bar()
    started = time.perf_counter()
    try:
        report = build_index(settings, embedder, progress=update)
    finally:
        close()
    seconds = time.perf_counter() - started
    result = {
        "size": size, "vectors": "stand-in" if standin else "real model", "articles": report.articles,
        "chunks": report.chunks, "sentences": report.sentences, "build_s": round(seconds, 2),
        "build_rate": round(report.sentences / seconds, 1),
    }
    if pre_encoded:
        timing = json.loads((cache_dir(size, work) / "timing.json").read_text())
        model_s = timing["seconds"] * report.sentences / timing["sentences"]
        result.update(vectors="real model (pre-encoded)", build_s=round(model_s + seconds, 2), pipeline_s=round(seconds, 2),
                      model_s=round(model_s, 1), build_rate=round(report.sentences / (model_s + seconds), 1),
                      raw_rate=timing["model_rate"], cache_misses=embedder.misses)
        result["pipeline_share"] = round(result["build_rate"] / result["raw_rate"], 3)
    elif not standin:
        texts = sentence_texts(settings)
        raw = raw_throughput(texts, settings.embed_batch_size)
        result.update(raw_rate=round(raw, 1), pipeline_share=round(result["build_rate"] / raw, 3))
    (work / f"build-{size}-{'standin' if standin else 'real'}.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", help="'bundled' or a number of synthetic articles")
    parser.add_argument("--standin", action="store_true", help="hashed stand-in vectors instead of the model")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.size, args.standin, args.work)))


if __name__ == "__main__":
    main()
