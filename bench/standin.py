"""A cheap deterministic STAND-IN for the embedding model, for index-scale benchmarks only.

Embedding 100,000 articles (~2.5M sentences) with the real model takes hours on this machine. Load time,
memory, search latency, incremental writes and approximate-search recall depend on the index, not on what
the vectors mean, so for large corpora the benchmarks may build the index from these vectors instead:
hashed word and word-pair features (signed feature hashing into the model's 384 dimensions), normalised.
Similar sentences share words and so get similar vectors, which gives FAISS a realistic-ish clustered
space, but it is NOT the model: answer quality and build throughput measured with it mean nothing, and
BENCHMARKS.md labels every figure that used it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

NAME = "bench-standin-hash-384"
_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Same interface as rag.embed.Embedder (encode_documents, encode_query, dimension, model_name)."""

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_name = NAME
        self.batch_size = 1024
        self._slots: dict[str, tuple[int, float]] = {}

    def _slot(self, feature: str) -> tuple[int, float]:
        slot = self._slots.get(feature)
        if slot is None:
            h = zlib.crc32(feature.encode())
            slot = (h % self.dimension, 1.0 if (h >> 16) & 1 else -1.0)
            if len(self._slots) < 2_000_000:
                self._slots[feature] = slot
        return slot

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            vector = out[row]
            for feature in (*words, *(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))):
                col, sign = self._slot(feature)
                vector[col] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1, norms)
        return out

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for begin in range(0, len(texts), self.batch_size):
            out[begin : begin + self.batch_size] = self._encode(texts[begin : begin + self.batch_size])
            if progress:
                progress(min(self.batch_size, len(texts) - begin))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]
