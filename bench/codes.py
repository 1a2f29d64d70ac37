"""Which vector codes a large segment should store: disk per vector against recall@10 and search time.

    python bench/codes.py --real 1000          # the real model's vectors of corpus-1000 (bench/realcache.py)
    python bench/codes.py --standin 10000      # stand-in vectors of a built stand-in index of corpus-10000

Every variant is an IVF over the same lists (rag.index.dense.ivf_lists) and is searched the way a segment
searches (k=48: top_k x dense_per_chunk), then compared with exact float32 search on the same vectors:
    f16-rescore   IVF with 8-bit codes, candidates re-scored with a float16 copy (format 2)
    sq8           IVF with 8-bit codes of the residuals, scored by the codes alone (no second copy)
    pq-int8       IVF with 48-byte product codes, candidates re-scored with an int8 copy
Recall is strict (the same sentences) and tie-aware (results scoring at least the exact 10th score). Figures
are printed, never asserted; the real queries are bench/corpus.py's questions, encoded by the real model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import WORK, settings_for  # noqa: E402
from bench.corpus import questions  # noqa: E402

K = 10
FETCH = 48  # what the retriever asks the dense search for


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.zeros((len(queries), 0), dtype=np.int64)
    scores = np.zeros((len(queries), 0), dtype=np.float32)
    for begin in range(0, len(matrix), 100_000):
        block = queries @ np.asarray(matrix[begin : begin + 100_000], dtype=np.float32).T
        both_s = np.concatenate([scores, block], axis=1)
        both_r = np.concatenate([rows, np.broadcast_to(np.arange(begin, begin + block.shape[1]), block.shape)], axis=1)
        top = np.argsort(-both_s, axis=1)[:, :k]
        rows, scores = np.take_along_axis(both_r, top, axis=1), np.take_along_axis(both_s, top, axis=1)
    return rows, scores


def int8_copy(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(matrix).max(axis=0).astype(np.float32) / 127
    scale[scale == 0] = 1
    return np.clip(np.rint(matrix / scale), -127, 127).astype(np.int8), scale


def file_bytes(index) -> int:  # noqa: ANN001
    import faiss

    with tempfile.NamedTemporaryFile() as handle:
        faiss.write_index(index, handle.name)
        return Path(handle.name).stat().st_size


def variants(matrix: np.ndarray):  # noqa: ANN201
    import faiss

    from rag.index.dense import TRAIN_SAMPLE, ivf_lists

    n, dim = matrix.shape
    nlist = ivf_lists(n)
    sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False))
    train = np.ascontiguousarray(matrix[sample])

    def ivf(index):  # noqa: ANN001, ANN202
        index.train(train)
        index.add(matrix)
        return index

    sq = ivf(faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                           faiss.METRIC_INNER_PRODUCT))
    f16 = matrix.astype(np.float16)
    pq = ivf(faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, 48, 8, faiss.METRIC_INNER_PRODUCT))
    codes, scale = int8_copy(matrix)

    def rescored(index, copy, fetch):  # noqa: ANN001, ANN202
        def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, found = index.search(q.reshape(1, -1), fetch)
            rows = np.sort(found[0][found[0] >= 0])
            scores = copy(rows, q)
            best = np.argsort(-scores, kind="stable")[:FETCH]
            return rows[best], scores[best]
        return search

    def own(index):  # noqa: ANN001, ANN202
        def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            scores, found = index.search(q.reshape(1, -1), FETCH)
            return found[0], scores[0]
        return search

    f16_scores = lambda rows, q: f16[rows].astype(np.float32) @ q  # noqa: E731
    i8_scores = lambda rows, q: codes[rows].astype(np.float32) @ (q * scale)  # noqa: E731
    return nlist, [
        ("f16-rescore", sq, file_bytes(sq) + f16.nbytes, rescored(sq, f16_scores, FETCH * 4)),
        ("sq8", sq, file_bytes(sq), own(sq)),
        ("pq-int8", pq, file_bytes(pq) + codes.nbytes, rescored(pq, i8_scores, FETCH * 8)),
    ]


def measure(matrix: np.ndarray, queries: np.ndarray) -> dict:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    want_rows, want_scores = exact_top(matrix, queries, K)
    nlist, found = variants(matrix)
    out = {"vectors": len(matrix), "dimension": matrix.shape[1], "nlist": nlist, "float32_mb": round(matrix.nbytes / 2**20, 1),
           "variants": []}
    for name, index, size, search in found:
        for nprobe in (16, 32, 64, 128):
            index.nprobe = min(nprobe, nlist)
            strict, tied, ms = [], [], []
            for q, want, wscore in zip(queries, want_rows, want_scores, strict=True):
                t = time.perf_counter()
                rows, scores = search(q)
                ms.append((time.perf_counter() - t) * 1000)
                top = rows[:K]
                strict.append(len(set(top.tolist()) & set(want.tolist())) / K)
                exact_of_top = matrix[top] @ q  # judge the returned rows by their exact scores
                tied.append(min(K, int((exact_of_top >= wscore[K - 1] - 1e-5).sum())) / K)
            out["variants"].append({"name": name, "nprobe": index.nprobe, "mb": round(size / 2**20, 1),
                                    "bytes_per_vector": round(size / len(matrix), 1),
                                    "recall_at_10": round(float(np.mean(strict)), 4),
                                    "recall_at_10_ties": round(float(np.mean(tied)), 4),
                                    "search_p50_ms": round(statistics.median(ms), 3)})
            print(json.dumps(out["variants"][-1]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--real", metavar="SIZE", help="real model vectors cached by bench/realcache.py")
    group.add_argument("--standin", metavar="SIZE", help="stand-in vectors of the built stand-in index")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    size = args.real or args.standin
    if args.real:
        from bench.realcache import cache_dir
        from rag.embed import Embedder

        folder = cache_dir(size, args.work)
        full = folder / "vectors.npy"
        parts = sorted(folder.glob("part-*.npy"))  # an unfinished cache: the parts encoded so far
        matrix = np.load(full) if full.exists() else np.concatenate([np.load(p) for p in parts])
        encoder = Embedder()
    else:
        from bench.common import sentence_texts
        from bench.standin import HashEmbedder

        encoder = HashEmbedder()  # float32 vectors of every indexed sentence, encoded again (a large segment keeps codes)
        matrix = encoder.encode_documents(sentence_texts(settings_for(size, True, args.work)))
    queries = np.stack([encoder.encode_query(q) for q, _, _ in questions(int(size), args.queries)])
    result = {"size": size, "vectors_from": "real model" if args.real else "stand-in", **measure(matrix, queries)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
