"""The torch-free question encoder: ONNX Runtime and the `tokenizers` library running the index's own model.

A cold `rag ask` used to spend ~4.7 s importing torch to encode one question. This encoder imports
onnxruntime and tokenizers instead and runs a float32 ONNX export of the same sentence-transformers model
(rag.embed.export: made once, at install or on first use), so a question gets the same vector, to float
rounding, as torch gives it (recall@10 against torch-encoded questions: tests/test_embed.py and
bench/query_encoder.py). Documents are still encoded by the torch encoder it is given (building keeps torch;
the index's vectors stay the torch model's), so one `Encoder` serves both and `name` is the index's model:
a question is never compared with another model's vectors.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from rag.embed.export import ensure_export, load_export
from rag.embed.session import OnnxExport, OnnxSession
from rag.embed.wrapper import EncoderWrapper
from rag.protocols import Encoder


class OnnxQueryEncoder(EncoderWrapper):
    """Questions through ONNX Runtime (one thread per call, calls run in parallel); documents (and the model's
    name) are the torch encoder `documents`'s, passed through: the index keeps one model's document vectors."""

    CACHE = 4096  # question vectors kept: the chat's example questions and re-asked questions cost nothing

    def __init__(self, documents: Encoder) -> None:
        super().__init__(documents)
        self._cached = functools.lru_cache(maxsize=self.CACHE)(self._encode)  # lru_cache is thread-safe
        self._session: OnnxSession | None = None
        self._export: OnnxExport | None = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        exported = self._export or load_export(self.inner.name)
        return exported.dimension if exported else self.inner.dimension

    @property
    def export(self) -> OnnxExport:
        """The ONNX export in use (made now if there is none yet)."""
        self._load()
        return self._export  # type: ignore[return-value]  # set by _load

    def _load(self) -> OnnxSession:
        with self._lock:
            if self._session is None:
                self._export = ensure_export(self.inner.name)
                self._session = OnnxSession(self._export)
            return self._session

    def warm_up(self) -> None:
        """Load the session now (the pipeline calls it in a thread while the index opens)."""
        self._load()

    def encode_query(self, text: str) -> np.ndarray:
        """One unit-length float32 vector, pooled and normalized inside the graph as sentence-transformers does.
        Read-only: the same array may be handed to every caller that asks the same question."""
        return self._cached(text)

    def _encode(self, text: str) -> np.ndarray:
        vector = (self._session or self._load()).encode(text)
        vector.flags.writeable = False
        return vector
