"""Retrieval: dense search over sentence vectors and BM25 over chunks, fused by reciprocal rank.

A chunk's dense score is the best similarity of any of its sentences to the question (max-sim), so a
passage is found by its most relevant sentence rather than by an average that long passages dilute.

Fusion is reciprocal rank fusion (Cormack et al. 2009) written out here: llama-index's
QueryFusionRetriever does the same over its own node types through asyncio, while ours works on chunk rows
inside one call and keeps FAISS and BM25 row numbers out of every other module.
"""

from __future__ import annotations

import numpy as np

from rag.embed import Embedder
from rag.index.local import Index
from rag.text import terms
from rag.types import Passage

RRF_K = 60  # the constant from the paper; it damps the weight of the very first ranks
GUARANTEED = 2  # each retriever's top chunks that always survive fusion


class HybridRetriever:
    """Finds the `top_k` passages for a question."""

    def __init__(self, index: Index, embedder: Embedder, top_k: int = 8, dense_per_chunk: int = 6) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        self.index = index
        self.embedder = embedder
        self.top_k = top_k
        self.dense_per_chunk = dense_per_chunk

    def retrieve(self, question: str, query_vector: np.ndarray | None = None) -> tuple[Passage, ...]:
        """Passages best first, each with the dense score of every one of its sentences."""
        vector = self.embedder.encode_query(question) if query_vector is None else query_vector
        if not isinstance(self.index, Index):
            return self._by_chunk_id(question, vector)
        rows, scores = self.index.dense_search(vector, self.top_k * self.dense_per_chunk)
        dense_rank: dict[int, int] = {}
        for row in rows:
            for chunk_row in self.index.chunks_of_sentence(int(row)):
                dense_rank.setdefault(chunk_row, len(dense_rank))
        lexical, _ = self.index.lexical_search(terms(question), self.top_k * 4)
        fused: dict[int, float] = {}
        for chunk_row, rank in dense_rank.items():
            fused[chunk_row] = fused.get(chunk_row, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, chunk_row in enumerate(int(r) for r in lexical):
            fused[chunk_row] = fused.get(chunk_row, 0.0) + 1.0 / (RRF_K + rank + 1)
        ordered = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        # RRF buries a chunk that only one retriever found, however sure that retriever is; each one's
        # first picks are kept so an exact-term match (or a pure paraphrase) always reaches the answer step.
        keep = set(list(dense_rank)[:GUARANTEED]) | {int(r) for r in lexical[:GUARANTEED]}
        chosen = [item for item in ordered if item[0] in keep]
        chosen += [item for item in ordered if item[0] not in keep][: max(0, self.top_k - len(chosen))]
        best = sorted(chosen, key=lambda item: (-item[1], item[0]))[: max(self.top_k, len(keep))]
        passages = []
        for rank, (chunk_row, score) in enumerate(best, start=1):
            chunk = self.index.chunk(chunk_row)
            sentence_scores = self.index.sentence_scores(vector, self.index.chunk_sentence_rows(chunk_row))
            passages.append(
                Passage(
                    chunk=chunk,
                    title=self.index.title(self.index.chunk_article_row(chunk_row)),
                    score=float(score),
                    rank=rank,
                    sentence_scores=tuple(float(s) for s in sentence_scores),
                )
            )
        return tuple(passages)

    def _by_chunk_id(self, question: str, vector: np.ndarray) -> tuple[Passage, ...]:
        """The same fusion through the SearchIndex protocol only (chunk ids; the postgres backend).

        Ties are broken by article id, then chunk start (the local path's chunk-row order after a full build). A chunk
        that a concurrent build replaced between the search and the read is skipped, not an error."""
        dense = self.index.dense_search(vector, self.top_k * self.dense_per_chunk)
        lexical = self.index.lexical_search(terms(question), self.top_k * 4)
        fused: dict[str, float] = {}
        for hits in (dense, lexical):
            for rank, hit in enumerate(hits):
                fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        ordered = sorted(fused.items(), key=lambda item: (-item[1], _place(item[0])))
        keep = {h.chunk_id for h in dense[:GUARANTEED]} | {h.chunk_id for h in lexical[:GUARANTEED]}
        chosen = [item for item in ordered if item[0] in keep]
        chosen += [item for item in ordered if item[0] not in keep][: max(0, self.top_k - len(chosen))]
        best = sorted(chosen, key=lambda item: (-item[1], _place(item[0])))[: max(self.top_k, len(keep))]
        passages = []
        for chunk_id, score in best:
            try:
                found = self.index.passage(chunk_id, vector)
            except KeyError:
                continue
            passages.append(Passage(found.chunk, found.title, float(score), len(passages) + 1, found.sentence_scores))
        return tuple(passages)


def _place(chunk_id: str) -> tuple[str, int]:
    """(article id, chunk start) from a chunk id "article:start-end": a tie-break every backend agrees on."""
    article_id, _, span = chunk_id.rpartition(":")
    start = span.split("-", 1)[0]
    return article_id, int(start) if start.isdigit() else -1
