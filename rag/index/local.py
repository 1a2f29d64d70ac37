"""The local index backend, read side: the live segments on disk seen as one `SearchIndex` keyed by chunk id.

Layout of `index_dir`:
    catalog.sqlite   the live state, changed only inside one SQLite transaction: settings signature and
                     counts (meta), the live segments in order, tombstones (article rows of a segment that
                     were changed or deleted since), every article's hash and place, every file's size, mtime
                     and sha256 (see rag.index.catalog)
    gen-NNNNNN/      immutable segments (see rag.index.segment): a large base and small deltas
    .scratch/        vectors of article batches embedded by a build that has not finished yet
A build (rag.index.build) embeds only new or changed articles into a new delta segment, tombstones the old
copies and commits the catalog; nothing that did not change is rewritten. When a delta grows to a quarter of
the segment before it (or a segment is a quarter dead) they are merged, reusing stored vectors, so the number
of segments stays logarithmic. A killed build leaves the last committed catalog, whose segments are intact.

Segment and FAISS row numbers never leave rag.index: every search returns chunk ids (`rag.protocols.Hit`).
This module does not import the build path; `open_index` loads it only when it has to build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunk import chunk_id, parse_chunk_id
from rag.config import Settings
from rag.errors import IndexMissingError
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
from rag.protocols import Encoder, Hit
from rag.text import bm25_idf
from rag.types import Article, ArticleHeader, Chunk, Passage

Progress = Callable[[int, int], None]
_WHERE_LIMIT = 50_000  # chunk ids remembered from searches, so `passage` finds their segment without a lookup


def __getattr__(name: str) -> Any:
    """`build_index` and `BuildReport` used to be re-exported here; they now live in rag.index.build, which the
    query path must not import, so old callers get them on first use only."""
    if name in {"build_index", "BuildReport"}:
        from rag.index import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Index:
    """The loaded live segments, seen as one read-only `rag.protocols.SearchIndex`. Thread-safe."""

    def __init__(self, path: Path, manifest: dict[str, Any], segments: list[Segment]) -> None:
        self.path = path
        self.manifest = manifest
        self._segments = tuple(segments)
        self._dim = int(manifest.get("dimension") or (segments[0].info["dimension"] if segments else 0))
        self._total_docs = sum(s.num_docs for s in segments)
        self._largest = max(range(len(segments)), key=lambda i: segments[i].num_docs) if segments else -1
        self._where: dict[str, tuple[int, int]] = {}  # chunk id -> (segment, local chunk row)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, index_dir: Path, settings: Settings) -> Index:
        """Open the live segments; refuse an index built by another model, chunking, backend or format."""
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
    def segments(self) -> tuple[Segment, ...]:
        """The live segments, oldest first: for benchmarks and tests that look inside (rows stay local)."""
        return self._segments

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def num_chunks(self) -> int:
        return int(self.manifest.get("counts", {}).get("chunks", self._total_docs))

    @property
    def num_articles(self) -> int:
        return int(self.manifest.get("counts", {}).get("articles", 0))

    # chunk ids <-> segment rows (the only place they meet)
    def _id_of(self, segment: int, chunk: int) -> str:
        value = chunk_id(*self._segments[segment].chunk_key(chunk))
        if len(self._where) > _WHERE_LIMIT:
            with self._lock:
                self._where.clear()
        self._where[value] = (segment, chunk)
        return value

    def _locate(self, value: str) -> tuple[int, int]:
        found = self._where.get(value)
        if found is not None:
            return found
        try:
            article_id, start, end = parse_chunk_id(value)
        except ValueError:
            raise KeyError(value) from None
        for i in range(len(self._segments) - 1, -1, -1):
            chunk = self._segments[i].find_chunk(article_id, start, end)
            if chunk is not None:
                return i, chunk
        raise KeyError(value)

    # the SearchIndex protocol
    def dense_search(self, vector: np.ndarray, k: int) -> tuple[Hit, ...]:
        """Chunks of the `k` sentences most similar to `vector`, best first, each chunk once (scored by its
        best sentence)."""
        hits: dict[str, Hit] = {}
        for segment, sentence, score in self._sentence_hits(vector, k):
            for chunk in self._segments[segment].chunks_of_sentence(sentence):
                value = self._id_of(segment, chunk)
                if value not in hits:
                    hits[value] = Hit(value, score)
        return tuple(hits.values())

    def _sentence_hits(self, vector: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(segment, local sentence row, cosine) of the k best live sentences, best first."""
        found = [(i, *segment.search(vector, k)) for i, segment in enumerate(self._segments)]
        if not found:
            return []
        where = np.concatenate([np.full(len(rows), i, dtype=np.int64) for i, rows, _ in found])
        rows = np.concatenate([rows for _, rows, _ in found])
        scores = np.concatenate([scores for _, _, scores in found])
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(where[b]), int(rows[b]), float(np.float32(scores[b]))) for b in best]

    def sentence_search(self, vector: np.ndarray, k: int) -> tuple[list[tuple[str, int]], np.ndarray]:
        """((segment name, local sentence row), score) of the k best live sentences: for benchmarks that compare
        the dense search with exact search (rows stay paired with their segment)."""
        hits = self._sentence_hits(vector, k)
        return ([(self._segments[s].name, r) for s, r, _ in hits],
                np.asarray([score for _, _, score in hits], dtype=np.float32))

    def lexical_search(self, terms: list[str], k: int) -> tuple[Hit, ...]:
        """The `k` chunks that best match the stemmed `terms` (BM25), best first; only chunks sharing a term.

        The largest segment scores with its own statistics (it holds most of the corpus); smaller ones are
        re-weighted to the whole index's IDF so a fresh delta is not ranked by its own tiny vocabulary.
        """
        terms = list(terms)
        if k <= 0 or not any(self.doc_freq(t) for t in terms):
            return ()
        where, rows, scores = [], [], []
        for i, segment in enumerate(self._segments):
            weights = None
            if i != self._largest:
                weights = {}
                for t in set(terms):
                    df = segment.df(t)
                    if df:
                        local = bm25_idf(df, segment.num_docs)
                        weights[t] = bm25_idf(self.doc_freq(t), self._total_docs) / local if local > 0 else 1.0
            r, s = segment.lexical_search(terms, k, weights)
            where.append(np.full(len(r), i, dtype=np.int64))
            rows.append(r)
            scores.append(s)
        all_where, all_rows, all_scores = np.concatenate(where), np.concatenate(rows), np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:k]
        return tuple(Hit(self._id_of(int(all_where[b]), int(all_rows[b])), float(all_scores[b])) for b in best)

    def doc_freq(self, term: str) -> int:
        """How many live and dead chunks contain the stemmed `term` (BM25's statistics count both)."""
        return sum(segment.df(term) for segment in self._segments)

    def passage(self, chunk_id: str, vector: np.ndarray) -> Passage:
        """The chunk, its article's title and the similarity of `vector` to each of its sentences."""
        segment, chunk = self._locate(chunk_id)
        found, title = self._segments[segment].chunk(chunk, chunk_id)
        scores = self._segments[segment].chunk_sentence_scores(chunk, vector)
        return Passage(chunk=found, title=title, score=0.0, rank=0, sentence_scores=tuple(float(s) for s in scores))

    def chunk(self, chunk_id: str) -> Chunk:
        """The live chunk `chunk_id`; KeyError when there is none."""
        segment, chunk = self._locate(chunk_id)
        return self._segments[segment].chunk(chunk, chunk_id)[0]

    def article(self, article_id: str) -> Article | None:
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article(row)
        return None

    def article_headers(self) -> list[ArticleHeader]:
        """Every live article's id, title and date, in the order of `article_ids`."""
        return [header for segment in self._segments for header in segment.headers()]

    # beyond the protocol: the local backend's own extras
    def article_ids(self) -> list[str]:
        """Every live article's id, segment by segment in row order."""
        return [aid for segment in self._segments for aid in segment.live_ids()]

    def article_vectors(self, article_id: str) -> np.ndarray | None:
        """The stored sentence vectors of the live article, or None."""
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article_vectors(row)
        return None

    def size_bytes(self) -> int:
        return index_size(self.path)


def missing_index(index_dir: Path) -> IndexMissingError:
    return IndexMissingError(f"there is no index in {index_dir}; build it with: rag index build")


def index_size(index_dir: Path) -> int:
    """Bytes the index takes on disk, not counting an unfinished build's embedding batches."""
    return sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file() and ".scratch" not in p.parts)


def open_index(settings: Settings, encoder: Encoder | None = None, progress: Progress | None = None,
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
            from rag.index.build import build_index  # the build path, loaded only when there is something to build

            build_index(settings, encoder, progress)
    return Index.load(settings.index_dir, settings)
