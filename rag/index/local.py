"""The persisted index: its layout, and the read side (open it, search it). Building is rag.build.

Layout of `index_dir`:
    catalog.sqlite   the live state, changed only inside one SQLite transaction: settings signature and
                     counts (meta), the live segments in order, tombstones (article rows of a segment that
                     were changed or deleted since), every article's hash and place, every file's size, mtime
                     and sha256
    gen-NNNNNN/      immutable segments (see rag.index.segment): a large base and small deltas
    .scratch/        vectors of article batches embedded by a build that has not finished yet
A build embeds only new or changed articles into a new delta segment, tombstones the old copies and
commits the catalog; nothing that did not change is rewritten. When a delta grows to a quarter of the
segment before it (or a segment is a quarter dead) they are merged, reusing stored vectors, so the number
of segments stays logarithmic. A killed build leaves the last committed catalog, whose segments are intact;
its finished embedding batches stay in .scratch/ and the next build reuses them. A full build (first build,
--rebuild, other settings) writes a whole new catalog and swaps it in with os.replace.
FAISS and segment row numbers never leave this module and rag.store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.embed import Embedder
from rag.errors import IndexMissingError
from rag.index.build import BuildReport, Progress, build_index  # noqa: F401  (re-exported: callers use rag.index.local)
from rag.index.catalog import (  # noqa: F401  (re-exported: the CLI and tests use these through rag.index.local)
    CATALOG,
    FORMAT_VERSION,
    REBUILD_HINT,
    Freshness,
    check_compatible,
    connect,
    current_generation,
    freshness,
    open_segments,
    read_manifest,
)
from rag.index.segment import Segment
from rag.text import bm25_idf
from rag.types import Article, ArticleHeader, Chunk


class Index:
    """The loaded live segments, seen as one index with global row numbers. Read-only."""

    def __init__(self, path: Path, manifest: dict[str, Any], segments: list[Segment]) -> None:
        self.path = path
        self.manifest = manifest
        self._segments = segments
        self._s_off = np.cumsum([0] + [s.info["sentences"] for s in segments])
        self._c_off = np.cumsum([0] + [s.info["chunks"] for s in segments])
        self._a_off = np.cumsum([0] + [s.info["articles"] for s in segments])
        self._dim = int(manifest.get("dimension") or (segments[0].info["dimension"] if segments else 0))
        self._cache: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        self._total_docs = sum(s.num_docs for s in segments)

    @classmethod
    def load(cls, index_dir: Path, settings: Settings) -> Index:
        """Open the live segments; refuse an index built by another model, chunking or format."""
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise missing_index(index_dir)
        check_compatible(manifest, settings)
        db = connect(index_dir / CATALOG)
        try:
            segments = open_segments(index_dir, db)
        finally:
            db.close()
        return cls(index_dir, manifest, list(segments.values()))

    def close(self) -> None:
        for segment in self._segments:
            segment.close()

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def num_chunks(self) -> int:
        return int(self.manifest.get("counts", {}).get("chunks", self._c_off[-1]))

    @property
    def num_articles(self) -> int:
        return int(self.manifest.get("counts", {}).get("articles", 0))

    def _at(self, offsets: np.ndarray, row: int) -> tuple[int, int]:
        i = int(np.searchsorted(offsets, row, side="right")) - 1
        return i, row - int(offsets[i])

    def article_ids(self) -> list[str]:
        return [aid for segment in self._segments for aid in segment.live_ids()]

    def _field(self, article_row: int, name: str) -> str:
        key = (article_row, name)
        value = self._cache.get(key)
        if value is None:
            i, local = self._at(self._a_off, article_row)
            value = self._segments[i].field(local, name)
            with self._lock:
                if len(self._cache) > 1024:
                    self._cache.clear()
                self._cache[key] = value
        return value

    def article_headers(self) -> list[ArticleHeader]:
        """Every live article's id, title and date, in the order of `article_ids`."""
        return [header for segment in self._segments for header in segment.headers()]

    def title(self, article_row: int) -> str:
        return self._field(article_row, "title")

    def article(self, article_id: str) -> Article | None:
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article(row)
        return None

    def article_vectors(self, article_id: str) -> np.ndarray | None:
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article_vectors(row)
        return None

    def chunk(self, row: int) -> Chunk:
        i, local = self._at(self._c_off, row)
        segment = self._segments[i]
        article_row, start, end, first, last = (int(x) for x in segment.chunks[local])
        spans = tuple((int(s), int(e)) for _, s, e in segment.sentences[first : last + 1])
        global_article = int(self._a_off[i]) + article_row
        article_id = self._field(global_article, "id")
        text = self._field(global_article, "text")
        return Chunk(f"{article_id}:{start}-{end}", article_id, text[start:end], start, end, spans)

    def chunk_article_row(self, row: int) -> int:
        i, local = self._at(self._c_off, row)
        return int(self._a_off[i]) + int(self._segments[i].chunks[local, 0])

    def chunks_of_sentence(self, sentence_row: int) -> list[int]:
        i, local = self._at(self._s_off, sentence_row)
        chunks = self._segments[i].chunks
        first = int(np.searchsorted(chunks[:, 4], local, side="left"))
        out = []
        for row in range(first, len(chunks)):
            if chunks[row, 3] > local:
                break
            out.append(int(self._c_off[i]) + row)
        return out

    def chunk_sentence_rows(self, row: int) -> range:
        i, local = self._at(self._c_off, row)
        chunk = self._segments[i].chunks[local]
        base = int(self._s_off[i])
        return range(base + int(chunk[3]), base + int(chunk[4]) + 1)

    def dense_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sentence rows, cosine scores), best first, over every live sentence."""
        rows, scores = [], []
        for i, segment in enumerate(self._segments):
            r, s = segment.search(query, k)
            rows.append(r + int(self._s_off[i]))
            scores.append(s)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:k]
        return all_rows[best].astype(np.int64), all_scores[best].astype(np.float32)

    def sentence_scores(self, query: np.ndarray, rows: range) -> np.ndarray:
        i, local = self._at(self._s_off, rows.start)
        return np.asarray(self._segments[i].vectors[local : local + len(rows)], dtype=np.float32) @ query

    def lexical_search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rows, BM25 scores), best first; only chunks that share a term with the query.

        The largest segment scores with its own statistics (it holds most of the corpus); smaller ones are
        re-weighted to the whole index's IDF so a fresh delta is not ranked by its own tiny vocabulary.
        """
        if k <= 0 or not any(self.doc_freq(t) for t in query_terms):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        largest = max(range(len(self._segments)), key=lambda i: self._segments[i].num_docs)
        rows, scores = [], []
        for i, segment in enumerate(self._segments):
            weights = None
            if i != largest:
                weights = {}
                for t in set(query_terms):
                    df = segment.df(t)
                    if df:
                        local = bm25_idf(df, segment.num_docs)
                        weights[t] = bm25_idf(self.doc_freq(t), self._total_docs) / local if local > 0 else 1.0
            r, s = segment.lexical(query_terms, k, weights)
            rows.append(r + int(self._c_off[i]))
            scores.append(s)
        all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:k]
        return all_rows[best], all_scores[best]

    def doc_freq(self, term: str) -> int:
        return sum(segment.df(term) for segment in self._segments)

    def size_bytes(self) -> int:
        return index_size(self.path)


def missing_index(index_dir: Path) -> IndexMissingError:
    return IndexMissingError(f"there is no index in {index_dir}; build it with: rag index build")


def index_size(index_dir: Path) -> int:
    """Bytes the index takes on disk, not counting an unfinished build's embedding batches."""
    return sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file() and ".scratch" not in p.parts)


def open_index(settings: Settings, embedder: Embedder | None = None, progress: Progress | None = None,
               on_build: Callable[[str], None] | None = None) -> Index:
    """The index for `settings`, built first when missing or stale and `settings.auto_build` is on
    (`on_build(reason)` is told just before, e.g. "there is no index yet")."""
    state = freshness(settings)
    if state.stale:
        if not settings.auto_build:
            if not state.exists:
                raise missing_index(settings.index_dir)
        else:
            manifest = read_manifest(settings.index_dir)
            if manifest is not None:
                check_compatible(manifest, settings)
            if on_build is not None:
                on_build(state.reason)
            build_index(settings, embedder, progress)
    return Index.load(settings.index_dir, settings)
