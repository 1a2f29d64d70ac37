"""Real model vectors for a synthetic corpus, encoded once and kept, so larger corpora can be benchmarked
with the REAL embedding model without re-embedding for every index variant.

    python bench/realcache.py 10000          # encodes every sentence of corpus-10000 (resumable)

Encoding 300,000 sentences takes 20-60 minutes on this 2-core machine. This script times the model alone
on exactly the sentence texts the index embeds (that is the "model alone" figure of the build benchmark),
and saves the vectors in --work/real-<size>/. `CachedEmbedder` then serves them by text to `build_index`,
so the build benchmark measures everything except the model (ingest, splitting, BM25, FAISS, SQLite) on
top of the time the model alone took. Texts the cache does not hold (an article the incremental benchmark
adds or changes) are encoded by the real model on the spot. Nothing here is a stand-in: every vector is the
model's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import WORK, sentence_texts, settings_for  # noqa: E402

BATCH = 4096  # sentences per saved part: a kill loses at most one part


def cache_dir(size: str, work: Path = WORK) -> Path:
    return work / f"real-{size}"


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


def encode_corpus(size: str, work: Path = WORK) -> dict:
    """Encode every sentence the index of `size` embeds, in resumable parts; returns the timing record."""
    from bench.standin import HashEmbedder
    from rag.embed import Embedder
    from rag.index.build import build_index

    out = cache_dir(size, work)
    out.mkdir(parents=True, exist_ok=True)
    # The sentence list comes from a stand-in build of the same corpus: splitting does not depend on the model.
    settings = settings_for(size, True, work)
    if not (settings.index_dir / "catalog.sqlite").exists():
        build_index(settings, HashEmbedder())
    texts = sentence_texts(settings)
    embedder = Embedder(batch_size=64)
    embedder.encode_query("warm up")
    parts = (len(texts) + BATCH - 1) // BATCH
    timing_file = out / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {"seconds": 0.0, "sentences": 0}
    for part in range(parts):
        target = out / f"part-{part:05d}.npy"
        if target.exists():
            continue
        chunk = texts[part * BATCH : (part + 1) * BATCH]
        started = time.perf_counter()
        vectors = embedder.encode_documents(chunk)
        timing["seconds"] += time.perf_counter() - started
        timing["sentences"] += len(chunk)
        np.save(out / "part.tmp.npy", vectors.astype(np.float32))
        (out / "part.tmp.npy").rename(target)
        timing_file.write_text(json.dumps(timing))
        rate = timing["sentences"] / timing["seconds"]
        print(f"part {part + 1}/{parts}: {rate:.0f} sent/s, ETA {(len(texts) - (part + 1) * BATCH) / rate / 60:.1f} min",
              file=sys.stderr, flush=True)
    vectors = np.concatenate([np.load(out / f"part-{p:05d}.npy") for p in range(parts)])
    np.save(out / "vectors.npy", vectors)
    # uint8 rows, not numpy's "S12": S strings drop trailing zero bytes on the way out (1 key in 256)
    keys = np.frombuffer(b"".join(_key(t) for t in texts), dtype=np.uint8).reshape(-1, 12)
    np.save(out / "keys.npy", keys)
    for p in range(parts):
        (out / f"part-{p:05d}.npy").unlink()
    timing.update(size=size, total=len(texts), model_rate=round(timing["sentences"] / timing["seconds"], 1))
    timing_file.write_text(json.dumps(timing))
    return timing


class CachedEmbedder:
    """The real model, with the vectors of a corpus already encoded by `encode_corpus` served from disk.

    Same interface as rag.embed.Embedder. `encode_documents` looks each text up; misses go to the model.
    """

    def __init__(self, size: str, work: Path = WORK) -> None:
        from rag.embed import Embedder

        folder = cache_dir(size, work)
        self._vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        keys = np.load(folder / "keys.npy")
        keys = keys.view(np.uint8).reshape(-1, 12) if keys.dtype.kind == "S" else keys  # caches written as S12
        self._rows = {row.tobytes(): i for i, row in enumerate(keys)}
        self._model = Embedder(batch_size=64)
        self.model_name = self._model.model_name
        self.batch_size = self._model.batch_size
        self.dimension = int(self._vectors.shape[1])
        self.misses = 0

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            row = self._rows.get(_key(text))
            if row is None:
                missing.append(i)
            else:
                out[i] = self._vectors[row]
        if missing:
            self.misses += len(missing)
            out[missing] = self._model.encode_documents([texts[i] for i in missing])
        if progress:
            progress(len(texts))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._model.encode_query(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    print(json.dumps(encode_corpus(args.size, args.work)))


if __name__ == "__main__":
    main()
