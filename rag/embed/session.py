"""One loaded ONNX export of a sentence-transformers model: its tokenizer and its ONNX Runtime session.

Apart from rag.embed.onnx (the question encoder) so that the export's own check (rag.embed.export) can run
a session without importing the encoder that imports the export: no import circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rag.errors import EmbeddingModelError

if TYPE_CHECKING:
    from rag.embed.export import OnnxExport


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
