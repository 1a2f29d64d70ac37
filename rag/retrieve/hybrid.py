"""Hybrid retrieval: dense search over sentence vectors and BM25 over chunks, fused by rank (rag.retrieve.fusion).

A chunk's dense score is the best similarity of any of its sentences to the question (max-sim), so a
passage is found by its most relevant sentence rather than by an average that long passages dilute.
It talks only to the `SearchIndex` and `Encoder` seams of rag.protocols, by chunk id, so any backend serves it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rag.chunk import parse_chunk_id
from rag.protocols import Encoder, SearchIndex
from rag.retrieve.fusion import RankFusion
from rag.text import terms
from rag.types import Passage


def _corpus_order(chunk_id: str) -> tuple[str, int, int]:
    try:
        return parse_chunk_id(chunk_id)
    except ValueError:  # a backend with other ids still gets a stable order
        return chunk_id, 0, 0


class HybridRetriever:
    """Finds the `top_k` passages for a question (the `Retriever` seam)."""

    def __init__(self, index: SearchIndex, encoder: Encoder, top_k: int = 8, dense_per_chunk: int = 6,
                 fusion: RankFusion | None = None) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        if dense_per_chunk < 1:
            raise ValueError(f"dense_per_chunk must be positive, got {dense_per_chunk}")
        self.index = index
        self.encoder = encoder
        self.top_k = top_k
        self.dense_per_chunk = dense_per_chunk
        self.fusion = fusion or RankFusion()

    def retrieve(self, question: str, query_vector: np.ndarray | None = None) -> tuple[Passage, ...]:
        """Passages best first, ranks 1-based, each with the dense score of every one of its sentences.

        `query_vector`: the question's vector when the caller has it already (it is encoded otherwise)."""
        vector = self.encoder.encode_query(question) if query_vector is None else query_vector
        dense = self.index.dense_search(vector, self.top_k * self.dense_per_chunk)
        lexical = self.index.lexical_search(terms(question), self.top_k * 4)
        fused = self.fusion.fuse([[h.chunk_id for h in dense], [h.chunk_id for h in lexical]], self.top_k,
                                 order=_corpus_order)
        passages: list[Passage] = []
        for f in fused:
            try:
                found = self.index.passage(f.id, vector)
            except KeyError:  # a build running beside a shared index replaced this chunk since the search: skip it
                continue
            passages.append(dataclasses.replace(found, score=f.score, rank=len(passages) + 1))
        return tuple(passages)
