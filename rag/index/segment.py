"""One immutable segment of the index: it composes the dense backend (rag.index.dense), the lexical backend
(rag.index.lexical) and the article store (rag.index.store) with the tables that tie them together.

A segment is written once (`SegmentWriter`) and never changed; `rag.index.build` writes it, `rag.index.local`
lists the live segments in its catalog and masks the articles of a segment that were later changed or deleted
(tombstones). Layout:
    segment.json     counts, dimension and search kind; written last, so a half-written segment has none
    vectors.npy, vectors.faiss   the dense backend's files (see rag.index.dense)
    sentences.npy    int32 [n, 3]: article row, start, end (int32: a segment holds < 2**31 sentences and an
                     article < 2**31 characters; half the bytes of int64, as format 2 stored them)
    chunks.npy       int32 [m, 5]: article row, start, end, first sentence row, last sentence row
    store.sqlite     the article store (see rag.index.store)
    bm25/            the lexical backend: bm25s over chunk texts (doc = chunk row)
Every row number here is local to the segment and never leaves rag.index: `rag.index.local` turns rows into
chunk ids.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.index.dense import EXACT_MAX_SENTENCES, DenseVectors, DenseWriter
from rag.index.lexical import LexicalIndex, top, write_bm25
from rag.index.store import ArticleStore, Placement, StoreWriter
from rag.types import Article, ArticleHeader, Chunk


@dataclass(frozen=True, slots=True)
class SegmentStats:
    name: str
    articles: int
    chunks: int
    sentences: int
    kind: str


@dataclass(frozen=True, slots=True)
class ArticleParts:
    """A stored article with what a merge needs to write it again without re-embedding it."""

    article: Article
    digest: str
    spans: tuple[tuple[int, int], ...]  # sentence offsets in the article text
    chunks: tuple[tuple[int, int, int, int], ...]  # (start, end, first, last sentence index within the article)


def fsync_tree(path: Path) -> None:
    """fsync every file under `path` and the directories themselves, so a crash cannot leave holes."""
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
    for folder in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SegmentWriter:
    """Writes one segment: `add` each article with its vectors, then `finish`. Nothing is live until then."""

    def __init__(self, path: Path, dimension: int, sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> None:
        path.mkdir(parents=True)
        self.path = path
        self.dimension = dimension
        self._dense = DenseWriter(path, dimension, sentences, exact_max)
        self.kind = self._dense.kind
        self._total = sentences
        self._sentences = np.zeros((sentences, 3), dtype=np.int32)
        self._chunks: list[tuple[int, int, int, int, int]] = []
        self._doc_ids: list[list[int]] = []
        self._vocab: dict[str, int] = {}
        self._store = StoreWriter(path)
        self._count = 0
        self._filled = 0

    def add(self, article: Article, digest: str, spans: list[tuple[int, int]],
            chunks: list[tuple[int, int, int, int]], chunk_terms: list[list[str]], vectors: np.ndarray) -> None:
        """One article: its sentence spans, chunks as (start, end, first, last sentence index within the article)."""
        row = self._count
        self._count += 1
        first_sentence, first_chunk = self._filled, len(self._chunks)
        n = len(spans)
        if n:
            self._dense.put(first_sentence, vectors)
            self._sentences[first_sentence : first_sentence + n, 0] = row
            self._sentences[first_sentence : first_sentence + n, 1:] = np.asarray(spans, dtype=np.int32)
        self._filled += n
        for (start, end, first, last), words in zip(chunks, chunk_terms, strict=True):
            self._chunks.append((row, start, end, first_sentence + first, first_sentence + last))
            self._doc_ids.append([self._vocab.setdefault(w, len(self._vocab)) for w in words])
        self._store.add(row, article, digest, Placement(first_sentence, n, first_chunk, len(chunks)))

    def finish(self) -> SegmentStats:
        """Write the search structures and segment.json, fsync everything; returns what was written."""
        if self._filled != self._total:
            raise ValueError(f"segment expected {self._total} sentences, got {self._filled}")
        self._store.close()
        kind, nprobe, recall = self._dense.finish()
        np.save(self.path / "sentences.npy", self._sentences)
        np.save(self.path / "chunks.npy", np.asarray(self._chunks, dtype=np.int32).reshape(-1, 5))
        write_bm25(self.path / "bm25", self._doc_ids, self._vocab)
        stats = SegmentStats(self.path.name, self._count, len(self._chunks), self._total, kind)
        (self.path / "segment.json").write_text(json.dumps(
            {"articles": stats.articles, "chunks": stats.chunks, "sentences": self._total, "dimension": self.dimension,
             "kind": kind, "nprobe": nprobe, "calibrated_recall_at_10": recall}
        ), encoding="utf-8")
        fsync_tree(self.path)
        return stats


class Segment:
    """A loaded segment. Row numbers are local; `dead` article rows are skipped by every search."""

    def __init__(self, path: Path, dead: frozenset[int] = frozenset()) -> None:
        self.path = path
        self.name = path.name
        self.dead = dead
        self.info = json.loads((path / "segment.json").read_text(encoding="utf-8"))
        self.dense = DenseVectors(path, self.info)
        self.sentences = np.load(path / "sentences.npy", mmap_mode="r")
        self.chunks = np.load(path / "chunks.npy", mmap_mode="r")
        self.lexical = LexicalIndex(path / "bm25", len(self.chunks))
        self.store = ArticleStore(path)
        if (len(self.sentences) != self.info["sentences"] or len(self.chunks) != self.info["chunks"]
                or self.store.count() != self.info["articles"]):
            raise ValueError("row counts differ between the segment's files")
        self.num_docs = len(self.chunks)
        self._dead = np.fromiter(dead, dtype=np.int64) if dead else None
        self._cache: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    @property
    def vectors(self) -> np.ndarray:
        """The stored sentence vectors (memory-mapped): for benchmarks and merges."""
        return self.dense.vectors

    # dense
    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(local sentence rows, cosine scores) of the k best live sentences, best first."""
        dead = None if self._dead is None else (lambda rows: np.isin(self.sentences[rows, 0], self._dead))
        return self.dense.search(query, k, dead)

    def chunks_of_sentence(self, sentence: int) -> list[int]:
        """Local rows of the chunks holding local sentence row `sentence`, in row order."""
        first = int(np.searchsorted(self.chunks[:, 4], sentence, side="left"))
        out = []
        for row in range(first, len(self.chunks)):
            if self.chunks[row, 3] > sentence:
                break
            out.append(row)
        return out

    def chunk_sentence_scores(self, chunk: int, query: np.ndarray) -> np.ndarray:
        first, last = int(self.chunks[chunk, 3]), int(self.chunks[chunk, 4])
        return self.dense.scores(first, last - first + 1, query)

    def article_vectors(self, row: int) -> np.ndarray:
        place = self.store.placement(row)
        return self.dense.rows(place.first_sentence, place.sentences)

    # lexical
    def df(self, term: str) -> int:
        return self.lexical.df(term)

    def lexical_search(self, query_terms: list[str], k: int, weights: dict[str, float] | None = None,
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(local chunk rows, BM25 scores), best first, live chunks sharing a term with the query (see
        LexicalIndex.scores for `weights`)."""
        known = [t for t in query_terms if self.df(t)]
        if not known or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        total = self.lexical.scores(known, weights)
        docs = top(total, min(self.num_docs, k + (4 * k if self.dead else 0)))
        scores = total[docs]
        keep = scores > 0
        docs, scores = docs[keep], scores[keep]
        if self._dead is not None:
            alive = ~np.isin(self.chunks[docs, 0], self._dead)
            docs, scores = docs[alive], scores[alive]
        return docs[:k].astype(np.int64), scores[:k]

    # chunks and articles
    def field(self, row: int, name: str) -> Any:
        """A field of the article at `row` (id, title and text are cached: every search result needs them)."""
        key = (row, name)
        value = self._cache.get(key)
        if value is None:
            value = self.store.field(row, name)
            with self._lock:
                if len(self._cache) > 1024:
                    self._cache.clear()
                self._cache[key] = value
        return value

    def chunk_key(self, chunk: int) -> tuple[str, int, int]:
        """(article id, start, end) of local chunk row `chunk`."""
        article_row, start, end = (int(x) for x in self.chunks[chunk, :3])
        return self.field(article_row, "id"), start, end

    def chunk(self, chunk: int, chunk_id: str) -> tuple[Chunk, str]:
        """The chunk at local row `chunk` (whose id the caller knows) and its article's title."""
        article_row, start, end, first, last = (int(x) for x in self.chunks[chunk])
        spans = tuple((int(s), int(e)) for _, s, e in self.sentences[first : last + 1])
        article_id = self.field(article_row, "id")
        text = self.field(article_row, "text")
        return Chunk(chunk_id, article_id, text[start:end], start, end, spans), self.field(article_row, "title")

    def find(self, article_id: str) -> int | None:
        """The live row of `article_id`, or None."""
        row = self.store.find(article_id)
        return None if row is None or row in self.dead else row

    def find_chunk(self, article_id: str, start: int, end: int) -> int | None:
        """The local row of the live chunk of `article_id` at start..end, or None."""
        row = self.find(article_id)
        if row is None:
            return None
        place = self.store.placement(row)
        for chunk in range(place.first_chunk, place.first_chunk + place.chunks):
            if int(self.chunks[chunk, 1]) == start and int(self.chunks[chunk, 2]) == end:
                return chunk
        return None

    def article(self, row: int) -> Article:
        return self.store.article(row)

    def live_ids(self) -> list[str]:
        return [i for r, i in self.store.ids() if r not in self.dead]

    def headers(self) -> list[ArticleHeader]:
        """Id, title and date of the live articles, in row order."""
        return [h for r, h in self.store.headers() if r not in self.dead]

    def live_rows(self) -> list[int]:
        return [r for r in range(self.info["articles"]) if r not in self.dead]

    def article_parts(self, row: int) -> ArticleParts:
        """An article with its hash, sentence spans and chunks (sentence indices within the article): for merges."""
        article, digest, place = self.store.with_hash(row)
        first_s = place.first_sentence
        spans = tuple((int(s), int(e)) for _, s, e in self.sentences[first_s : first_s + place.sentences])
        chunks = tuple((int(c[1]), int(c[2]), int(c[3]) - first_s, int(c[4]) - first_s)
                       for c in self.chunks[place.first_chunk : place.first_chunk + place.chunks])
        return ArticleParts(article, digest, spans, chunks)
