"""An ONNX export of a sentence-transformers model (`OnnxExport`: where its files are) and one loaded session of
it (`OnnxSession`: its tokenizer and its ONNX Runtime session).

Both rag.embed.export (which makes an export and checks it by running a session) and rag.embed.onnx (the
question encoder) import this module, and it imports neither: no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import EmbeddingModelError


@dataclass(frozen=True, slots=True)
class OnnxExport:
    """An exported model: the graph (token ids in, unit sentence vectors out), its tokenizer and limits."""

    folder: Path
    model: str
    max_length: int
    dimension: int
    max_abs_diff: float  # the largest difference from torch's vectors on the probe sentences

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"


class OnnxSession:
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
    return OnnxSession(exported).encode(text)
