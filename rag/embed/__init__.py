"""Embedding: the encoders behind the `Encoder` seam, and the one that `query_encoder` picks.

- `Embedder` (rag.embed.sentence): sentence-transformers on torch; builds the index, and encodes questions
  when `query_encoder = "torch"`.
- `OnnxQueryEncoder` (rag.embed.onnx): the same model's questions through ONNX Runtime, no torch (the default:
  a cold `rag ask` no longer pays for importing torch); its documents go to the torch encoder. The ONNX
  file is exported once from the same model (rag.embed.export).
- rag.embed.heavy: torch and spaCy imports, kept off the question path.
"""

from __future__ import annotations

from rag.config import Settings
from rag.embed.onnx import OnnxQueryEncoder
from rag.embed.sentence import Embedder, _set_threads, resolve_model
from rag.protocols import Encoder

__all__ = ["Embedder", "OnnxQueryEncoder", "_set_threads", "encoder_for", "resolve_model"]


def encoder_for(settings: Settings) -> Encoder:
    """The encoder `settings` ask for: documents always by the torch model (loaded only when a build needs
    it); questions by ONNX Runtime (`query_encoder = "onnx"`, the default) or by torch."""
    documents = Embedder(settings.embed_model, settings.embed_batch_size)
    if settings.query_encoder == "torch":
        return documents
    return OnnxQueryEncoder(documents)
