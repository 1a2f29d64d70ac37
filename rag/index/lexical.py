"""The lexical backend of a segment: BM25 over its chunk texts (bm25s), one document per local chunk row.

Files it owns inside a segment folder: `bm25/` (bm25s's own save format, memory-mapped at load). Terms are
the stemmed tokens of rag.text.terms; the segment hands over each chunk's terms when it is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np


def write_bm25(path: Path, doc_terms: list[list[int]], vocab: dict[str, int]) -> None:
    """Index the chunks (each a list of term ids of `vocab`) into `path`."""
    import bm25s

    retriever = bm25s.BM25()
    if doc_terms:
        retriever.index((doc_terms, vocab), show_progress=False)
    else:  # bm25s refuses an empty corpus; a placeholder token keeps an empty segment loadable
        retriever.index([["\x00empty"]], show_progress=False)
    retriever.save(str(path), show_progress=False)


class LexicalIndex:
    """A loaded BM25 index over `num_docs` chunks. Thread-safe (bm25s's scoring is serialised)."""

    def __init__(self, path: Path, num_docs: int) -> None:
        import bm25s

        with contextlib.redirect_stderr(open(os.devnull, "w")):
            self.bm25 = bm25s.BM25.load(str(path), mmap=True, show_progress=False)
        self._indptr = self.bm25.scores["indptr"]
        self._vocab = self.bm25.vocab_dict or {}
        self._lock = threading.Lock()
        self.num_docs = num_docs

    def df(self, term: str) -> int:
        """How many of the chunks contain `term`."""
        i = self._vocab.get(term)
        if i is None or i + 1 >= len(self._indptr):
            return 0
        return int(self._indptr[i + 1] - self._indptr[i])

    def scores(self, known: list[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """BM25 score of every chunk for the query terms `known` (each in the vocabulary; repeats count).

        With `weights` (term -> factor) each term's score is scaled, so a small segment can be scored with
        the whole index's IDF instead of its own; that path scores term by term, so it is for small segments.
        """
        # get_scores and a partial sort by the caller: bm25s's retrieve() does the same through a thread
        # pool, ~7x slower here
        with self._lock:
            if weights is None:
                return self.bm25.get_scores(known)
            total = np.zeros(self.num_docs, dtype=np.float32)
            for term in dict.fromkeys(known):
                total += weights.get(term, 1.0) * known.count(term) * self.bm25.get_scores([term])
            return total


def top(total: np.ndarray, fetch: int) -> np.ndarray:
    """Rows of the `fetch` best positive scores in `total`, best first, ties by row."""
    docs = np.flatnonzero(total > 0)
    if len(docs) > fetch:
        docs = docs[np.argpartition(-total[docs], fetch - 1)[:fetch]]
    return docs[np.lexsort((docs, -total[docs]))]
