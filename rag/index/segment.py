"""One immutable segment of the index: sentence vectors, their FAISS search, chunk tables, BM25, article store.

A segment is written once (`SegmentWriter`) and never changed; `rag.index.build` writes it, `rag.index.local` lists the live segments in its
catalog and masks the articles of a segment that were later changed or deleted (tombstones). Layout:
    segment.json     counts, dimension and search kind; written last, so a half-written segment has none
    vectors.npy      [n, dim] unit sentence vectors, memory-mapped at load: float32 in a segment small enough
                     to scan exactly (FAISS's exact search runs on this very file, no second copy), float16
                     beyond it (re-scoring the approximate search's candidates, answer scoring, merges)
    vectors.faiss    only in a segment past the exact threshold: IVF with 8-bit scalar codes, memory-mapped
    sentences.npy    int64 [n, 3]: article row, start, end
    chunks.npy       int64 [m, 5]: article row, start, end, first sentence row, last sentence row
    store.sqlite     one row per article: id, metadata, text, content hash, first sentence and chunk rows
    bm25/            bm25s index over chunk texts (doc = chunk row)
Every row number here is local to the segment; `rag.index.local` adds each segment's offsets.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.types import Article, ArticleHeader

# Exact search scans every vector per query: ~300k x 384 floats is ~30 ms on one core, past that an
# approximate index keeps the answer path flat as the corpus grows.
EXACT_MAX_SENTENCES = 300_000
RERANK_FACTOR = 4  # IVF candidates fetched per wanted result, then re-scored with the stored vectors
TRAIN_SAMPLE = 100_000
BLEND = 3  # stored vectors blended into one calibration query
CALIBRATION_TARGET = 0.995  # recall@10 on calibration queries that the IVF probe count is chosen to reach

_SCHEMA = (
    "CREATE TABLE articles (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT, path TEXT, url TEXT, "
    "published_at TEXT, source TEXT, text TEXT NOT NULL, hash TEXT NOT NULL, first_sentence INTEGER NOT NULL, "
    "sentences INTEGER NOT NULL, first_chunk INTEGER NOT NULL, chunks INTEGER NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class SegmentStats:
    name: str
    articles: int
    chunks: int
    sentences: int
    kind: str


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


def vector_dtype(kind: str) -> type:
    return np.float32 if kind == "flat" else np.float16


def ivf_lists(n: int) -> int:
    """Inverted lists for n vectors: ~2 sqrt(n), but at least 39 training points per list (FAISS's floor)."""
    return max(1, min(int(2 * math.sqrt(n)), n // 39))


def probe_floor(nlist: int) -> int:
    """A small floor under the calibrated probe count (1/64 of the lists).

    Calibration is what sets the count, and it is tuned for model vectors: on the real model's vectors of
    the 10,000-article benchmark corpus (303k sentences, 1,100 lists) real questions reach recall@10 0.979
    at 16 probes, 0.992 at 32, 0.996 at 64, and calibration at CALIBRATION_TARGET picks 32. Hashed stand-in
    vectors (bench/standin.py) cluster far worse: their questions need a quarter of the lists for 0.98, and
    an earlier floor of a quarter, set from them, made real indexes probe 8x more lists than they need.
    """
    return max(1, nlist // 64)


def calibrate(index: Any, matrix: np.ndarray, target: float = CALIBRATION_TARGET, queries: int = 100) -> tuple[int, float]:
    """The smallest nprobe whose recall@10 against exact search reaches `target`, and that recall.

    Queries blend BLEND stored vectors (the first one's own row excluded from both lists); recall counts a result as
    found when it scores at least the exact 10th score, so ties between equally similar sentences do not
    count as misses. How many lists must be probed depends on how clustered the vectors are, which only
    the data can tell: model vectors cluster far better than hashed stand-ins.
    """
    n = matrix.shape[0]
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(n, size=min(queries, n), replace=False))
    # a question lies between the sentences it resembles: a stored vector blended with another one
    q = np.asarray(matrix[rows], dtype=np.float32).copy()
    for _ in range(BLEND - 1):
        q += np.asarray(matrix[np.sort(rng.choice(n, size=len(rows)))], dtype=np.float32)[rng.permutation(len(rows))]
    q = np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)
    exact = np.full((len(rows), 11), -np.inf, dtype=np.float32)
    for begin in range(0, n, 200_000):
        block = q @ np.asarray(matrix[begin : begin + 200_000], dtype=np.float32).T
        inside = (rows >= begin) & (rows < begin + block.shape[1])
        block[np.flatnonzero(inside), rows[inside] - begin] = -np.inf
        exact = -np.sort(-np.concatenate([exact, block], axis=1), axis=1)[:, :11]
    threshold = exact[:, 9] - 1e-5
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(q, RERANK_FACTOR * 10 + 1)
        hits = []
        for i, row in enumerate(rows):
            cand = found[i][(found[i] >= 0) & (found[i] != row)]
            scores = np.asarray(matrix[np.sort(cand)], dtype=np.float32) @ q[i]
            hits.append(min(10, int((np.sort(scores)[::-1][:10] >= threshold[i]).sum())) / 10)
        recall = float(np.mean(hits))
        if recall >= target or nprobe >= index.nlist:
            return nprobe, round(recall, 4)
        nprobe = min(index.nlist, nprobe * 2)


def build_ivf(matrix: np.ndarray) -> tuple[Any, int, float]:
    """The IVF-SQ8 index of a large segment over `matrix` (unit rows), with its calibrated probe count (set on
    the index) and the calibration recall."""
    import faiss

    n, dimension = matrix.shape
    nlist = ivf_lists(n)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False))
    index.train(np.ascontiguousarray(matrix[sample], dtype=np.float32))
    for begin in range(0, n, 100_000):
        index.add(np.ascontiguousarray(matrix[begin : begin + 100_000], dtype=np.float32))
    nprobe, recall = calibrate(index, matrix)
    index.nprobe = max(nprobe, probe_floor(nlist))
    return index, index.nprobe, recall


def candidates(k: int) -> int:
    """How many IVF candidates are fetched (then re-scored with the stored vectors) for k results."""
    return max(k * RERANK_FACTOR, 64)


class SegmentWriter:
    """Writes one segment: `add` each article with its vectors, then `finish`. Nothing is live until then."""

    def __init__(self, path: Path, dimension: int, sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> None:
        path.mkdir(parents=True)
        self.path = path
        self.dimension = dimension
        self.exact_max = exact_max
        self._total = sentences
        self.kind = "flat" if sentences <= exact_max else "ivf-sq8"
        # float16 halves the largest file of a big segment; its rounding (~1e-4 on a cosine) is far below
        # the 8-bit codes' the search itself uses. Small segments keep float32: exact scores, as built.
        self._vectors = (
            np.lib.format.open_memmap(path / "vectors.npy", mode="w+", dtype=vector_dtype(self.kind),
                                      shape=(sentences, dimension))
            if sentences else None
        )
        self._sentences = np.zeros((sentences, 3), dtype=np.int64)
        self._chunks: list[tuple[int, int, int, int, int]] = []
        self._doc_ids: list[list[int]] = []
        self._vocab: dict[str, int] = {}
        self._pending: list[tuple[Any, ...]] = []
        self._count = 0
        self._filled = 0
        self._db = sqlite3.connect(path / "store.sqlite")
        self._db.execute(_SCHEMA)

    def add(self, article: Article, digest: str, spans: list[tuple[int, int]],
            chunks: list[tuple[int, int, int, int]], chunk_terms: list[list[str]], vectors: np.ndarray) -> None:
        """One article: its sentence spans, chunks as (start, end, first, last sentence index within the article)."""
        row = self._count
        self._count += 1
        first_sentence, first_chunk = self._filled, len(self._chunks)
        n = len(spans)
        if n:
            self._vectors[first_sentence : first_sentence + n] = vectors
            self._sentences[first_sentence : first_sentence + n, 0] = row
            self._sentences[first_sentence : first_sentence + n, 1:] = np.asarray(spans, dtype=np.int64)
        self._filled += n
        for (start, end, first, last), words in zip(chunks, chunk_terms, strict=True):
            self._chunks.append((row, start, end, first_sentence + first, first_sentence + last))
            self._doc_ids.append([self._vocab.setdefault(w, len(self._vocab)) for w in words])
        self._pending.append((row, article.id, article.title, article.path, article.url, article.published_at,
                              article.source, article.text, digest, first_sentence, n, first_chunk, len(chunks)))
        if len(self._pending) >= 2000:
            self._flush_rows()

    def _flush_rows(self) -> None:
        with self._db:
            self._db.executemany("INSERT INTO articles VALUES (" + ",".join("?" * 13) + ")", self._pending)
        self._pending.clear()

    def finish(self) -> SegmentStats:
        """Write the search structures and segment.json, fsync everything; returns what was written."""
        import bm25s
        import faiss

        if self._filled != self._total:
            raise ValueError(f"segment expected {self._total} sentences, got {self._filled}")
        self._flush_rows()
        self._db.close()
        n = self._total
        matrix = self._vectors if self._vectors is not None else np.zeros((0, self.dimension), dtype=np.float32)
        if self._vectors is not None:
            self._vectors.flush()
        else:
            np.save(self.path / "vectors.npy", matrix)
        kind = self.kind
        nprobe, recall = 0, 1.0
        if kind != "flat":  # a flat segment is searched exactly on vectors.npy itself
            index, nprobe, recall = build_ivf(matrix)
            faiss.write_index(index, str(self.path / "vectors.faiss"))
        np.save(self.path / "sentences.npy", self._sentences)
        np.save(self.path / "chunks.npy", np.asarray(self._chunks, dtype=np.int64).reshape(-1, 5))
        retriever = bm25s.BM25()
        if self._doc_ids:
            retriever.index((self._doc_ids, self._vocab), show_progress=False)
        else:  # bm25s refuses an empty corpus; a placeholder token keeps an empty segment loadable
            retriever.index([["\x00empty"]], show_progress=False)
        retriever.save(str(self.path / "bm25"), show_progress=False)
        stats = SegmentStats(self.path.name, self._count, len(self._chunks), n, kind)
        (self.path / "segment.json").write_text(json.dumps(
            {"articles": stats.articles, "chunks": stats.chunks, "sentences": n, "dimension": self.dimension, "kind": kind,
             "nprobe": nprobe, "calibrated_recall_at_10": recall}
        ), encoding="utf-8")
        fsync_tree(self.path)
        return stats


class Segment:
    """A loaded segment. Row numbers are local; `dead` article rows are skipped by every search."""

    def __init__(self, path: Path, dead: frozenset[int] = frozenset()) -> None:
        import bm25s
        import faiss

        self.path = path
        self.name = path.name
        self.dead = dead
        self.info = json.loads((path / "segment.json").read_text(encoding="utf-8"))
        # A flat segment is searched with faiss.knn over the memory-mapped vectors (an older index's
        # vectors.faiss beside them, a second copy of the same floats, is not read).
        self.faiss = (faiss.read_index(str(path / "vectors.faiss"), faiss.IO_FLAG_MMAP)
                      if self.info["kind"] != "flat" else None)
        self.vectors = np.load(path / "vectors.npy", mmap_mode="r")
        if self.vectors.dtype not in (np.float32, np.float16) or self.vectors.ndim != 2:
            raise ValueError(f"vectors.npy holds {self.vectors.dtype} {self.vectors.shape}")
        self.sentences = np.load(path / "sentences.npy", mmap_mode="r")
        self.chunks = np.load(path / "chunks.npy", mmap_mode="r")
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            self.bm25 = bm25s.BM25.load(str(path / "bm25"), mmap=True, show_progress=False)
        self.db = sqlite3.connect(f"file:{path / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        stored = self.db.execute("SELECT count(*) FROM articles").fetchone()[0]
        n = self.info["sentences"]
        if ((self.faiss.ntotal if self.faiss is not None else n) != n or len(self.sentences) != n or self.vectors.shape[0] != n
                or len(self.chunks) != self.info["chunks"] or stored != self.info["articles"]):
            raise ValueError("row counts differ between the segment's files")
        if self.info["kind"] != "flat":
            self.faiss.nprobe = max(int(self.info.get("nprobe") or 1), probe_floor(self.faiss.nlist))
        self._lock = threading.Lock()
        self._indptr = self.bm25.scores["indptr"]
        self.num_docs = len(self.chunks)

    def close(self) -> None:
        self.db.close()

    # dense
    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(local sentence rows, cosine scores) of the k best live sentences, best first."""
        n = self.info["sentences"]
        want = min(k, n)
        if want <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = query.reshape(1, -1).astype(np.float32)
        fetch = want if self.info["kind"] == "flat" else candidates(want)
        while True:
            fetch = min(fetch, n)
            if self.faiss is None:
                import faiss  # loaded by __init__ already; a name lookup

                _, found = faiss.knn(q, self.vectors, fetch, metric=faiss.METRIC_INNER_PRODUCT)
            else:
                _, found = self.faiss.search(q, fetch)
            rows = found[0][found[0] >= 0]
            if self.dead:
                rows = rows[~np.isin(self.sentences[rows, 0], list(self.dead))]
            if len(rows) >= want or fetch >= n:
                break
            fetch *= 4
        order = np.sort(rows)  # memory-mapped reads in file order
        scores = np.asarray(self.vectors[order], dtype=np.float32) @ query  # exact scores, also for IVF candidates
        best = np.argsort(-scores, kind="stable")[:want]
        return order[best], scores[best]

    def article_vectors(self, row: int) -> np.ndarray:
        first, count = self.db.execute("SELECT first_sentence, sentences FROM articles WHERE row = ?", (row,)).fetchone()
        return np.asarray(self.vectors[first : first + count], dtype=np.float32)

    # lexical
    def df(self, term: str) -> int:
        i = (self.bm25.vocab_dict or {}).get(term)
        if i is None or i + 1 >= len(self._indptr):
            return 0
        return int(self._indptr[i + 1] - self._indptr[i])

    def lexical(self, query_terms: list[str], k: int, weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(local chunk rows, BM25 scores), best first, live chunks sharing a term with the query.

        With `weights` (term -> factor) each term's score is scaled, so a small segment can be scored with
        the whole index's IDF instead of its own; that path scores every chunk, so it is for small segments.
        """
        known = [t for t in query_terms if self.df(t)]
        if not known or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        # get_scores and a partial sort: bm25s's retrieve() does the same through a thread pool, ~7x slower here
        with self._lock:
            if weights is None:
                total = self.bm25.get_scores(known)
            else:
                total = np.zeros(self.num_docs, dtype=np.float32)
                for term in dict.fromkeys(known):
                    total += weights.get(term, 1.0) * known.count(term) * self.bm25.get_scores([term])
        fetch = min(self.num_docs, k + (4 * k if self.dead else 0))
        docs = np.flatnonzero(total > 0)
        if len(docs) > fetch:
            docs = docs[np.argpartition(-total[docs], fetch - 1)[:fetch]]
        docs = docs[np.lexsort((docs, -total[docs]))]
        scores = total[docs]
        keep = scores > 0
        docs, scores = docs[keep], scores[keep]
        if self.dead:
            alive = ~np.isin(self.chunks[docs, 0], list(self.dead))
            docs, scores = docs[alive], scores[alive]
        return docs[:k].astype(np.int64), scores[:k]

    # articles
    def find(self, article_id: str) -> int | None:
        with self._lock:
            row = self.db.execute("SELECT row FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None or row[0] in self.dead else int(row[0])

    def article(self, row: int) -> Article:
        with self._lock:
            r = self.db.execute(
                "SELECT id, title, text, path, url, published_at, source FROM articles WHERE row = ?", (row,)
            ).fetchone()
        return Article(*r)

    def field(self, row: int, name: str) -> Any:
        if name not in {"title", "text", "id", "hash"}:
            raise ValueError(name)
        with self._lock:
            return self.db.execute(f"SELECT {name} FROM articles WHERE row = ?", (row,)).fetchone()[0]

    def live_ids(self) -> list[str]:
        with self._lock:
            rows = self.db.execute("SELECT row, id FROM articles ORDER BY row").fetchall()
        return [i for r, i in rows if r not in self.dead]

    def headers(self) -> list[ArticleHeader]:
        """Id, title and date of the live articles, in row order."""
        with self._lock:
            rows = self.db.execute("SELECT row, id, title, published_at FROM articles ORDER BY row").fetchall()
        return [ArticleHeader(i, t, p) for r, i, t, p in rows if r not in self.dead]

    def live_rows(self) -> list[int]:
        return [r for r in range(self.info["articles"]) if r not in self.dead]

    def article_parts(self, row: int) -> tuple[Article, str, list[tuple[int, int]], list[tuple[int, int, int, int]]]:
        """An article with its hash, sentence spans and chunks (sentence indices within the article): for merges."""
        with self._lock:
            r = self.db.execute(
                "SELECT id, title, text, path, url, published_at, source, hash, first_sentence, sentences, "
                "first_chunk, chunks FROM articles WHERE row = ?", (row,)
            ).fetchone()
        article = Article(*r[:7])
        first_s, n_s, first_c, n_c = r[8:]
        spans = [(int(s), int(e)) for _, s, e in self.sentences[first_s : first_s + n_s]]
        chunks = [(int(c[1]), int(c[2]), int(c[3]) - first_s, int(c[4]) - first_s) for c in self.chunks[first_c : first_c + n_c]]
        return article, r[7], spans, chunks
