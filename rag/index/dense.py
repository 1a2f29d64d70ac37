"""The dense backend of a segment: sentence vectors on disk and their search (FAISS exact, or IVF + calibration).

Files it owns inside a segment folder:
    vectors.npy      [n, dim] unit sentence vectors, memory-mapped at load: float32 in a segment small enough
                     to scan exactly (FAISS's exact search runs on this very file, no second copy), float16
                     beyond it (re-scoring the approximate search's candidates, answer scoring, merges)
    vectors.faiss    only in a segment past the exact threshold: IVF with 8-bit scalar codes, memory-mapped
Rows are the segment's local sentence rows; the segment maps them to articles and chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Exact search scans every vector per query: ~300k x 384 floats is ~30 ms on one core, past that an
# approximate index keeps the answer path flat as the corpus grows.
EXACT_MAX_SENTENCES = 300_000
RERANK_FACTOR = 4  # IVF candidates fetched per wanted result, then re-scored with the stored vectors
TRAIN_SAMPLE = 100_000
BLEND = 3  # stored vectors blended into one calibration query
CALIBRATION_TARGET = 0.995  # recall@10 on calibration queries that the IVF probe count is chosen to reach
KINDS = ("flat", "ivf-sq8")


def kind_for(sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> str:
    """The search kind of a segment of `sentences` vectors."""
    return "flat" if sentences <= exact_max else "ivf-sq8"


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


class DenseWriter:
    """Writes a segment's vectors: `put` rows in order, then `finish` builds the search structure."""

    def __init__(self, path: Path, dimension: int, sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> None:
        self.path = path
        self.dimension = dimension
        self.total = sentences
        self.kind = kind_for(sentences, exact_max)
        # float16 halves the largest file of a big segment; its rounding (~1e-4 on a cosine) is far below
        # the 8-bit codes' the search itself uses. Small segments keep float32: exact scores, as built.
        self._vectors = (
            np.lib.format.open_memmap(path / "vectors.npy", mode="w+", dtype=vector_dtype(self.kind),
                                      shape=(sentences, dimension))
            if sentences else None
        )

    def put(self, first: int, vectors: np.ndarray) -> None:
        """Rows `first` .. `first + len(vectors)`."""
        self._vectors[first : first + len(vectors)] = vectors

    def finish(self) -> tuple[str, int, float]:
        """Flush the vectors and write the approximate index a large segment needs: (kind, nprobe, recall)."""
        import faiss

        if self._vectors is None:
            np.save(self.path / "vectors.npy", np.zeros((0, self.dimension), dtype=np.float32))
            return self.kind, 0, 1.0
        self._vectors.flush()
        if self.kind == "flat":  # a flat segment is searched exactly on vectors.npy itself
            return self.kind, 0, 1.0
        index, nprobe, recall = build_ivf(self._vectors)
        faiss.write_index(index, str(self.path / "vectors.faiss"))
        return self.kind, nprobe, recall


class DenseVectors:
    """A loaded segment's vectors and their search. Thread-safe: FAISS searches and mapped reads only."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        import faiss

        self.kind = info["kind"]
        if self.kind not in KINDS:
            raise ValueError(f"unknown search kind {self.kind!r}")
        self.size = int(info["sentences"])
        # A flat segment is searched with faiss.knn over the memory-mapped vectors (an older index's
        # vectors.faiss beside them, a second copy of the same floats, is not read).
        self.faiss = faiss.read_index(str(path / "vectors.faiss"), faiss.IO_FLAG_MMAP) if self.kind != "flat" else None
        self.vectors = np.load(path / "vectors.npy", mmap_mode="r")
        if self.vectors.dtype not in (np.float32, np.float16) or self.vectors.ndim != 2:
            raise ValueError(f"vectors.npy holds {self.vectors.dtype} {self.vectors.shape}")
        if (self.faiss.ntotal if self.faiss is not None else self.size) != self.size or self.vectors.shape[0] != self.size:
            raise ValueError("row counts differ between the segment's vector files")
        if self.faiss is not None:
            self.faiss.nprobe = max(int(info.get("nprobe") or 1), probe_floor(self.faiss.nlist))

    def search(self, query: np.ndarray, k: int, dead: Callable[[np.ndarray], np.ndarray] | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine scores) of the k best rows, best first; `dead(rows)` masks rows to skip."""
        import faiss

        n = self.size
        want = min(k, n)
        if want <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = query.reshape(1, -1).astype(np.float32)
        fetch = want if self.faiss is None else candidates(want)
        while True:
            fetch = min(fetch, n)
            if self.faiss is None:
                _, found = faiss.knn(q, self.vectors, fetch, metric=faiss.METRIC_INNER_PRODUCT)
            else:
                _, found = self.faiss.search(q, fetch)
            rows = found[0][found[0] >= 0]
            if dead is not None:
                rows = rows[~dead(rows)]
            if len(rows) >= want or fetch >= n:
                break
            fetch *= 4
        order = np.sort(rows)  # memory-mapped reads in file order
        scores = np.asarray(self.vectors[order], dtype=np.float32) @ query  # exact scores, also for IVF candidates
        best = np.argsort(-scores, kind="stable")[:want]
        return order[best], scores[best]

    def scores(self, first: int, count: int, query: np.ndarray) -> np.ndarray:
        """Similarity of `query` to rows `first` .. `first + count`."""
        return np.asarray(self.vectors[first : first + count], dtype=np.float32) @ query

    def rows(self, first: int, count: int) -> np.ndarray:
        """The stored vectors of rows `first` .. `first + count`, as float32 (for merges and checks)."""
        return np.asarray(self.vectors[first : first + count], dtype=np.float32)
