"""Which words of the chosen sentence are the short answer: a model learned from SQuAD's answer spans.

`SpanRanker.rank(query, sentence)` scores every candidate span of the sentence (rag.answer.spans.all_candidates:
figures with their units, durations, spaCy's entities, organisation names, noun chunks) by a model trained on
SQuAD 2.0's answer spans (`python -m rag.answer.train_spans`; model card rag/answer/model/SPANS.md) over the
features of rag.answer.span_features, among them the packaged question encoder's similarity of each span's
clause to the question. The model is JSON (no pickle): a logistic regression or boosted trees.

The spans and clauses of one sentence go through the ONNX question encoder in one batch; the
question's own vector comes from the `Encoder` given (the product's, which has it cached) when there is one.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer.span_features import FEATURES, SentenceInfo, features, read_sentence
from rag.errors import RagError
from rag.protocols import Encoder
from rag.types import Query

MODEL_PATH = Path(__file__).resolve().parent / "model" / "spans.json"
FORMAT = "rag-span-ranker"
VERSION = 1


@dataclass(frozen=True, slots=True)
class ScoredSpan:
    """A candidate short answer; offsets are relative to the sentence."""

    start: int
    end: int
    text: str
    probability: float


class BatchEncoder:
    """Many short texts through the packaged ONNX question encoder: each distinct text once, in padded batches
    of like lengths."""

    GROUP = 16

    def __init__(self, exported=None, threads: int = 1) -> None:  # noqa: ANN001  (an OnnxExport)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            from rag.embed.export import ensure_export

            exported = exported or ensure_export()
            self.tokenizer = Tokenizer.from_file(str(exported.tokenizer))
            self.tokenizer.enable_truncation(exported.max_length)
            pad = self.tokenizer.token_to_id("[PAD]")
            self.tokenizer.enable_padding(pad_id=pad if pad is not None else 0)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(exported.onnx), options, providers=["CPUExecutionProvider"])
        except RagError:
            raise
        except Exception as exc:
            raise RagError(f"cannot load the ONNX encoder for the span ranker: {type(exc).__name__}: {exc}".splitlines()[0]) from None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        unique = sorted(set(texts), key=len)  # each text once; like lengths together, so little padding
        rows = []
        for i in range(0, len(unique), self.GROUP):
            encodings = self.tokenizer.encode_batch(unique[i : i + self.GROUP])
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            rows.append(np.asarray(self.session.run(None, feed)[0], dtype=np.float32))
        found = dict(zip(unique, np.concatenate(rows), strict=True))
        return np.stack([found[t] for t in texts])


class _Scorer:
    """The stored model: `probabilities(x)` for rows of FEATURES."""

    def __init__(self, data: dict, where: str) -> None:
        try:
            self.kind = data["model"]
            if self.kind == "logistic":
                self.mean = np.asarray(data["mean"], dtype=np.float64)
                self.scale = np.asarray(data["scale"], dtype=np.float64)
                self.coef = np.asarray(data["coef"], dtype=np.float64)
                self.intercept = float(data["intercept"])
                sizes = {len(self.mean), len(self.scale), len(self.coef)}
            elif self.kind == "trees":
                self.baseline = float(data["baseline"])
                self.trees = [{k: np.asarray(t[k]) for k in ("feature", "threshold", "left", "right", "value", "leaf",
                                                             "missing_left")} for t in data["trees"]]
                sizes = {len(FEATURES)} if all(int(t["feature"].max(initial=0)) < len(FEATURES) for t in self.trees) else {-1}
                self.forest = _Forest(self.trees)
            else:
                raise RagError(f"{where}: unknown model kind {self.kind!r} (expected 'logistic' or 'trees')")
        except RagError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise RagError(f"{where}: not a span-ranker model ({type(exc).__name__}: {exc})") from None
        if sizes != {len(FEATURES)}:
            raise RagError(f"{where}: the model's weights do not fit the {len(FEATURES)} features of this code; retrain "
                           "with `python -m rag.answer.train_spans`")

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "logistic":
            raw = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        else:
            raw = self.baseline + self.forest.predict(x)
        return 1.0 / (1.0 + np.exp(-raw))


class _Forest:
    """Every tree as one padded table, walked for all rows and all trees at once (a few numpy steps a level)."""

    def __init__(self, trees: list[dict]) -> None:
        width = max(len(t["feature"]) for t in trees)

        def table(key: str, dtype: type) -> np.ndarray:
            out = np.zeros((len(trees), width), dtype=dtype)
            for i, t in enumerate(trees):
                out[i, : len(t[key])] = t[key]
            return out

        self.feature, self.threshold = table("feature", np.int64), table("threshold", np.float64)
        self.left, self.right, self.value = table("left", np.int64), table("right", np.int64), table("value", np.float64)
        self.leaf, self.missing_left = table("leaf", bool), table("missing_left", bool)
        self.trees = np.arange(len(trees))[None, :]

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros((len(x), self.trees.shape[1]), dtype=np.int64)
        rows = np.arange(len(x))[:, None]
        for _ in range(64):
            leaf = self.leaf[self.trees, node]
            if leaf.all():
                break
            value = x[rows, self.feature[self.trees, node]]
            left = np.where(np.isnan(value), self.missing_left[self.trees, node], value <= self.threshold[self.trees, node])
            step = np.where(left, self.left[self.trees, node], self.right[self.trees, node])
            node = np.where(leaf, node, step)
        return self.value[self.trees, node].sum(axis=1)


def read_model(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(f"{path}: span-ranker model not found; build it with `python -m rag.answer.train_spans`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RagError(f"{path}: cannot be read as a span-ranker model ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RagError(f"{path}: not a span-ranker model (expected format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise RagError(f"{path}: span-ranker model version {data.get('version')!r}, this code reads {VERSION}")
    if tuple(data.get("features", ())) != FEATURES:
        raise RagError(f"{path}: the model was trained on other features than this code computes; retrain with "
                       "`python -m rag.answer.train_spans`")
    return data


class SpanRanker:
    """Ranks the candidate short answers of a sentence, best first."""

    def __init__(self, scorer: _Scorer, meta: dict, encoder: Encoder | None, batch: BatchEncoder | None) -> None:
        self._scorer = scorer
        self.meta = meta
        self._encoder = encoder
        self._batch = batch
        self._lock = threading.Lock()
        self._sentences = functools.lru_cache(maxsize=1024)(self._read)
        self._questions = functools.lru_cache(maxsize=1024)(lambda text: self._encode([text])[0])

    @classmethod
    def load(cls, path: Path | None = None, encoder: Encoder | None = None) -> SpanRanker:
        """The model at `path` (the committed rag/answer/model/spans.json by default). Raises RagError with
        the reason for a missing, unreadable or mismatched file. The encoder's ONNX export is loaded on first use."""
        path = Path(path) if path is not None else MODEL_PATH
        data = read_model(path)
        return cls(_Scorer(data, str(path)), dict(data.get("trained", {})), encoder, None)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._batch is None:
                exported = getattr(self._encoder, "export", None)  # OnnxQueryEncoder: the same export
                self._batch = BatchEncoder(exported)
        return self._batch.encode(texts)

    def _read(self, sentence: str) -> tuple[SentenceInfo, np.ndarray]:
        info = read_sentence(sentence)
        return info, self._encode(info.texts()) if info.spans else np.zeros((0, 0), dtype=np.float32)

    def question_vector(self, query: Query) -> np.ndarray:
        text = query.resolved or query.question
        if self._encoder is not None:
            return np.asarray(self._encoder.encode_query(text), dtype=np.float32)
        return self._questions(text)

    def rank(self, query: Query, sentence: str) -> list[ScoredSpan]:
        """Every candidate span of `sentence` with the model's probability that it is the answer, best first."""
        info, vectors = self._sentences(sentence)
        if not info.spans:
            return []
        x = features(query, info, self.question_vector(query), vectors)
        p = self._scorer.probabilities(x)
        order = sorted(range(len(info.spans)), key=lambda i: (-p[i], info.spans[i].start, info.spans[i].end))
        return [ScoredSpan(info.spans[i].start, info.spans[i].end, info.spans[i].text, round(float(p[i]), 6)) for i in order]

    def score_rows(self, x: np.ndarray) -> np.ndarray:
        """The model's probabilities for feature rows (training and evaluation use it)."""
        return self._scorer.probabilities(x)
