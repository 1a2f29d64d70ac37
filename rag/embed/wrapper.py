"""`EncoderWrapper`: an `Encoder` built around another one, which changes only what it overrides.

Three encoders add one thing to an inner encoder and pass the rest through: the ONNX question encoder
(rag.embed.onnx: questions without torch, documents by the torch model), the Ray encoder
(rag.index.ray_embed: documents on a cluster, questions here) and the tests' caching encoder
(tests/pg_support.py). The pass-through is written here once. `name` is always the inner encoder's: the
index catalog records it, and a wrapper must never make an index look built by another model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rag.protocols import Encoder


class EncoderWrapper:
    """An `Encoder` that is `inner` in every method a subclass does not override."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode_query(self, text: str) -> np.ndarray:
        return self.inner.encode_query(text)

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self.inner.encode_documents(texts, progress)
