"""The dense backend of a segment: sentence vectors on disk and their search (FAISS exact, or IVF + calibration).

Two kinds of segment, by size:
    flat        up to EXACT_MAX_SENTENCES vectors: vectors.npy, [n, dim] float32 unit vectors, memory-mapped and
                searched exactly by FAISS in place (no second copy)
    ivf-sq8r    beyond: vectors.faiss only, an IVF whose lists hold 8-bit scalar codes of each vector's residual
                to its list centroid (~1 byte a dimension), memory-mapped; it is searched, scored and (for
                answers and merges) decoded from those codes alone
Rows are the segment's local sentence rows; the segment maps them to articles and chunks.

Why no float copy beside the codes (format 2 kept a float16 one to re-score candidates): measured by
bench/codes.py on real model vectors, the copy adds ~0.003 recall@10 at the same probe count for ~2.8x the
bytes, and at 10,000 articles it alone would break the disk budget (3x LlamaIndex's default index). The
decoding error of a residual code is ~1e-3 on a cosine; on the hashed stand-ins of bench/standin.py the copy
bought nothing at any probe count. See BENCHMARKS.md, "Index size".
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
TRAIN_SAMPLE = 100_000
BLEND = 3  # stored vectors blended into one calibration query
CALIBRATION_TARGET = 0.995  # recall@10 on calibration queries that the IVF probe count is chosen to reach
KINDS = ("flat", "ivf-sq8r")


def kind_for(sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> str:
    """The search kind of a segment of `sentences` vectors."""
    return "flat" if sentences <= exact_max else "ivf-sq8r"


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

    The index ranks by its codes; its top 10 are judged by their exact scores in `matrix`. Queries blend BLEND stored vectors (the first one's own row excluded from both lists); recall counts a result as
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
        _, found = index.search(q, 11)  # ranked by the codes, as a segment searches
        hits = []
        for i, row in enumerate(rows):
            top = found[i][(found[i] >= 0) & (found[i] != row)][:10]
            scores = np.asarray(matrix[np.sort(top)], dtype=np.float32) @ q[i]  # judged by their exact scores
            hits.append(int((scores >= threshold[i]).sum()) / 10)
        recall = float(np.mean(hits))
        if recall >= target or nprobe >= index.nlist:
            return nprobe, round(recall, 4)
        nprobe = min(index.nlist, nprobe * 2)


def build_ivf(matrix: np.ndarray) -> tuple[Any, int, float]:
    """The IVF index of a large segment over `matrix` (unit rows): 8-bit codes of the residuals, a direct map
    from row to code (for decoding), its calibrated probe count (set on the index) and the calibration recall."""
    import faiss

    n, dimension = matrix.shape
    nlist = ivf_lists(n)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False))
    index.train(np.ascontiguousarray(matrix[sample], dtype=np.float32))
    for begin in range(0, n, 100_000):
        index.add(np.ascontiguousarray(matrix[begin : begin + 100_000], dtype=np.float32))
    index.make_direct_map()
    nprobe, recall = calibrate(index, matrix)
    index.nprobe = max(nprobe, probe_floor(nlist))
    return index, index.nprobe, recall


class DenseWriter:
    """Writes a segment's vectors: `put` rows in order, then `finish` builds the search structure."""

    def __init__(self, path: Path, dimension: int, sentences: int, exact_max: int = EXACT_MAX_SENTENCES) -> None:
        self.path = path
        self.dimension = dimension
        self.total = sentences
        self.kind = kind_for(sentences, exact_max)
        # a flat segment's vectors.npy is what it searches; a large one's float32 rows are only the input of
        # its codes, written beside them while the segment is built and deleted once the codes exist
        self._file = path / ("vectors.npy" if self.kind == "flat" else "vectors.build.npy")
        self._vectors = (
            np.lib.format.open_memmap(self._file, mode="w+", dtype=np.float32, shape=(sentences, dimension))
            if sentences else None
        )

    def put(self, first: int, vectors: np.ndarray) -> None:
        """Rows `first` .. `first + len(vectors)`."""
        self._vectors[first : first + len(vectors)] = vectors

    def finish(self) -> tuple[str, int, float]:
        """Flush the vectors or write the codes: (kind, nprobe, calibration recall)."""
        import faiss

        if self._vectors is None:
            np.save(self.path / "vectors.npy", np.zeros((0, self.dimension), dtype=np.float32))
            return self.kind, 0, 1.0
        self._vectors.flush()
        if self.kind == "flat":  # a flat segment is searched exactly on vectors.npy itself
            return self.kind, 0, 1.0
        index, nprobe, recall = build_ivf(self._vectors)
        faiss.write_index(index, str(self.path / "vectors.faiss"))
        del self._vectors
        self._file.unlink()
        return self.kind, nprobe, recall


class DenseVectors:
    """A loaded segment's vectors and their search. Thread-safe: FAISS searches and mapped reads only."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        import faiss

        self.kind = info["kind"]
        if self.kind not in KINDS:
            raise ValueError(f"unknown search kind {self.kind!r}")
        self.size = int(info["sentences"])
        if self.kind == "flat":
            self.faiss = None
            self.vectors = np.load(path / "vectors.npy", mmap_mode="r")
            if self.vectors.dtype != np.float32 or self.vectors.ndim != 2 or self.vectors.shape[0] != self.size:
                raise ValueError(f"vectors.npy holds {self.vectors.dtype} {self.vectors.shape}")
        else:
            self.vectors = None
            self.faiss = faiss.read_index(str(path / "vectors.faiss"), faiss.IO_FLAG_MMAP)
            if self.faiss.ntotal != self.size:
                raise ValueError("row counts differ between the segment's vector files")
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
        fetch = want
        while True:
            fetch = min(fetch, n)
            if self.faiss is None:
                scores, found = faiss.knn(q, self.vectors, fetch, metric=faiss.METRIC_INNER_PRODUCT)
            else:
                scores, found = self.faiss.search(q, fetch)
            keep = found[0] >= 0
            rows, scores = found[0][keep], scores[0][keep]
            if dead is not None:
                alive = ~dead(rows)
                rows, scores = rows[alive], scores[alive]
            if len(rows) >= want or fetch >= n:
                break
            fetch *= 4
        if self.faiss is not None:  # ranked by the codes' scores, as FAISS returned them
            return rows[:want].astype(np.int64), scores[:want].astype(np.float32)
        order = np.sort(rows)  # memory-mapped reads in file order
        exact = np.asarray(self.vectors[order], dtype=np.float32) @ query
        best = np.argsort(-exact, kind="stable")[:want]
        return order[best], exact[best]

    def scores(self, first: int, count: int, query: np.ndarray) -> np.ndarray:
        """Similarity of `query` to rows `first` .. `first + count`."""
        return self.rows(first, count) @ query

    def rows(self, first: int, count: int) -> np.ndarray:
        """The stored vectors of rows `first` .. `first + count` as float32 (decoded from the codes of a large
        segment): for answer scoring, merges and checks."""
        if self.faiss is not None:
            if count <= 0:
                return np.zeros((0, self.faiss.d), dtype=np.float32)
            return self.faiss.reconstruct_n(first, count)
        return np.asarray(self.vectors[first : first + count], dtype=np.float32)
