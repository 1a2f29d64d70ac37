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
from collections.abc import Callable, Sequence

import numpy as np

from rag.embed.export import OnnxExport, ensure_export, load_export
from rag.errors import EmbeddingModelError
from rag.protocols import Encoder


class _Session:
    """One loaded export. ONNX Runtime's `run` and the Rust tokenizer's `encode` may be called from several
    threads at once; nothing here changes after loading."""

    def __init__(self, exported: OnnxExport) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(exported.tokenizer))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(exported.max_length)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one short text: parallel requests use the cores instead
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(exported.onnx), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # any failure to load is the same problem for the user
            raise EmbeddingModelError(
                f"cannot load the ONNX question encoder {exported.onnx}: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from None

    def encode(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        return np.asarray(self.session.run(None, feed)[0][0], dtype=np.float32)


def run_session(exported: OnnxExport, text: str) -> np.ndarray:
    """One text through a fresh session of `exported` (the export's own check uses it)."""
    return _Session(exported).encode(text)


class OnnxQueryEncoder:
    """Questions through ONNX Runtime (one thread per call, calls run in parallel); documents through `documents`."""

    CACHE = 4096  # question vectors kept: the chat's example questions and re-asked questions cost nothing

    def __init__(self, documents: Encoder) -> None:
        self.documents = documents
        self._cached = functools.lru_cache(maxsize=self.CACHE)(self._encode)  # lru_cache is thread-safe
        self._session: _Session | None = None
        self._export: OnnxExport | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.documents.name

    @property
    def dimension(self) -> int:
        exported = self._export or load_export(self.documents.name)
        return exported.dimension if exported else self.documents.dimension

    @property
    def export(self) -> OnnxExport:
        """The ONNX export in use (made now if there is none yet)."""
        self._load()
        return self._export  # type: ignore[return-value]  # set by _load

    def _load(self) -> _Session:
        with self._lock:
            if self._session is None:
                self._export = ensure_export(self.documents.name)
                self._session = _Session(self._export)
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

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The documents encoder's vectors (the torch model): the index keeps one model's document vectors."""
        return self.documents.encode_documents(texts, progress)
