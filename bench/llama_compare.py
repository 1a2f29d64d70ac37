"""LlamaIndex's default path on the same corpus and machine: VectorStoreIndex over FaissVectorStore with its
default document store (SimpleDirectoryReader, default SentenceSplitter, default embed batch size),
persisted, then reloaded in a fresh process. Same encoder as ours (the real model, or the stand-in for
stand-in sizes), so the figures compare the index machinery, not two models.

Measured: build time, load time and resident memory in a new process, warm retrieval latency (top 8,
real query encoder as for ours; LlamaIndex's default answer path needs an LLM, so retrieval is what
compares), disk size.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_LOAD = """
import json, sys, time
def rss():
    fields = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return int(fields['VmRSS'].split()[0]) * 1024
import faiss
from llama_index.core import StorageContext, load_index_from_storage
from llama_index.core.embeddings import MockEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore
before = rss()
t = time.perf_counter()
store = FaissVectorStore.from_persist_dir({d!r})
context = StorageContext.from_defaults(vector_store=store, persist_dir={d!r})
index = load_index_from_storage(storage_context=context, embed_model=MockEmbedding(embed_dim=384))
seconds = time.perf_counter() - t
print(json.dumps({{"load_s": seconds, "rss_mb": rss() / 2**20, "rss_index_mb": (rss() - before) / 2**20}}))
"""


def _wrapped(encoder: Any):  # -> BaseEmbedding
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class Wrapped(BaseEmbedding):
        _encoder: Any = PrivateAttr()

        def __init__(self, encoder: Any) -> None:
            super().__init__(model_name="same-as-ours")
            self._encoder = encoder

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._encoder.encode_query(query).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._encoder.encode_documents([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._encoder.encode_documents(texts).tolist()

    return Wrapped(encoder)


def compare(size: str, standin: bool, work: Path, questions: list[str], ours: Callable[[str], object]) -> dict:
    """LlamaIndex's figures; retrieval is timed alternately with `ours` (our retriever) question by question,
    so both see the same load on this shared machine."""
    import faiss
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.vector_stores.faiss import FaissVectorStore

    from bench.common import corpus_dir, pct, probe
    from bench.standin import HashEmbedder
    from rag.embed import Embedder

    persist = work / f"llama-{size}-{'standin' if standin else 'real'}"
    shutil.rmtree(persist, ignore_errors=True)
    real = Embedder()
    real.encode_query("warm up")
    build_encoder = HashEmbedder() if standin else real
    started = time.perf_counter()
    docs = SimpleDirectoryReader(str(corpus_dir(size, work)), recursive=True).load_data(show_progress=False)
    context = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatL2(384)))
    index = VectorStoreIndex.from_documents(docs, storage_context=context, embed_model=_wrapped(build_encoder))
    index.storage_context.persist(persist_dir=str(persist))
    build_s = time.perf_counter() - started
    nodes = len(index.docstore.docs)
    del index, context, docs

    loads = [probe(_LOAD.format(d=str(persist))) for _ in range(3)]
    load = sorted(loads, key=lambda r: r["load_s"])[1]  # the median of three

    store = FaissVectorStore.from_persist_dir(str(persist))
    reloaded = load_index_from_storage(StorageContext.from_defaults(vector_store=store, persist_dir=str(persist)),
                                       embed_model=_wrapped(real))
    retriever = reloaded.as_retriever(similarity_top_k=8)
    for q in questions[:10]:
        retriever.retrieve(q)
        ours(q)
    times, our_times = [], []
    for q in questions:
        t = time.perf_counter()
        retriever.retrieve(q)
        times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ours(q)
        our_times.append((time.perf_counter() - t) * 1000)
    return {
        "nodes": nodes, "build_s": round(build_s, 2), "load_s": round(load["load_s"], 3),
        "rss_after_mb": round(load["rss_mb"], 1), "rss_index_mb": round(load["rss_index_mb"], 1),
        "retrieve_p50_ms": pct(times, 0.5), "retrieve_p95_ms": pct(times, 0.95),
        "ours_retrieve_p50_ms": pct(our_times, 0.5), "ours_retrieve_p95_ms": pct(our_times, 0.95),
        "disk_mb": round(sum(p.stat().st_size for p in persist.rglob("*") if p.is_file()) / 2**20, 1),
    }
