"""The learned reader's model file: plain JSON (no pickle), evaluated with numpy, so serving needs no scikit-learn.

One file (rag/answer/model/reader.json) holds two models and what they were trained on:
- `ranker`: scores each candidate sentence (rag.answer.features.SENTENCE_FEATURES) -> the log-odds that it holds
  the answer; a standardised logistic regression or a boosted tree ensemble (scikit-learn's
  HistGradientBoosting, its trees written out node by node);
- `abstain`: a standardised logistic regression over rag.answer.features.QUESTION_FEATURES -> the calibrated
  probability that the passages answer the question, with the `threshold` below which the reader abstains.
`load_model` checks the format, the feature names and the shapes, and raises ModelError with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.features import QUESTION_FEATURES, SENTENCE_FEATURES
from rag.errors import RagError

FORMAT = "rag-learned-reader/1"
MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_PATH = MODEL_DIR / "reader.json"


class ModelError(RagError):
    """The model file is missing, unreadable or not of this version's features."""


@dataclass(frozen=True)
class Linear:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def raw(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"type": "logistic", "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}


@dataclass(frozen=True)
class Trees:
    """Boosted trees: raw = baseline + sum of each tree's leaf value; nodes as parallel arrays per tree."""

    baseline: float
    trees: tuple[dict[str, np.ndarray], ...]  # feature, threshold, left, right, leaf, value, missing_left

    def raw(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), self.baseline, dtype=np.float64)
        rows = np.arange(len(x))
        for t in self.trees:
            node = np.zeros(len(x), dtype=np.int64)
            for _ in range(64):
                leaf = t["leaf"][node]
                if leaf.all():
                    break
                value = x[rows, t["feature"][node]]
                go_left = np.where(np.isnan(value), t["missing_left"][node], value <= t["threshold"][node])
                node = np.where(leaf, node, np.where(go_left, t["left"][node], t["right"][node]))
            out += t["value"][node]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": "trees", "baseline": self.baseline,
                "trees": [{k: v.tolist() for k, v in t.items()} for t in self.trees]}


@dataclass(frozen=True)
class ReaderModel:
    ranker: Linear | Trees
    abstain: Linear
    threshold: float
    info: dict[str, Any]  # version, data sha256, split, figures: what the model card states

    @property
    def version(self) -> str:
        return str(self.info.get("version", "?"))

    def rank(self, x: np.ndarray) -> np.ndarray:
        """Log-odds per candidate row that it holds the answer."""
        return self.ranker.raw(x.astype(np.float64)) if len(x) else np.zeros(0)

    def answerable(self, q: np.ndarray) -> float:
        """The calibrated probability that the passages answer the question."""
        return float(1.0 / (1.0 + np.exp(-self.abstain.raw(q.astype(np.float64)[None, :])[0])))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "sentence_features": list(SENTENCE_FEATURES),
                "question_features": list(QUESTION_FEATURES), "ranker": self.ranker.to_dict(),
                "abstain": self.abstain.to_dict(), "threshold": self.threshold, "info": self.info}

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")


def from_sklearn_linear(model: Any, scaler: Any) -> Linear:
    return Linear(np.asarray(scaler.mean_, dtype=np.float64), np.asarray(scaler.scale_, dtype=np.float64),
                  np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0]))


def from_sklearn_trees(model: Any) -> Trees:
    """A fitted binary HistGradientBoostingClassifier's trees (numeric features only)."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append({
            "feature": nodes["feature_idx"].astype(np.int64), "threshold": nodes["num_threshold"].astype(np.float64),
            "left": nodes["left"].astype(np.int64), "right": nodes["right"].astype(np.int64),
            "leaf": nodes["is_leaf"].astype(bool), "value": nodes["value"].astype(np.float64),
            "missing_left": nodes["missing_go_to_left"].astype(bool),
        })
    return Trees(float(np.ravel(model._baseline_prediction)[0]), tuple(trees))


def _linear(data: dict[str, Any], width: int, what: str) -> Linear:
    model = Linear(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64),
                   np.asarray(data["coef"], dtype=np.float64), float(data["intercept"]))
    if not (model.mean.shape == model.scale.shape == model.coef.shape == (width,)):
        raise ModelError(f"{what}: expected {width} weights, got {model.coef.shape}")
    return model


def _trees(data: dict[str, Any], width: int) -> Trees:
    trees = []
    for t in data["trees"]:
        tree = {"feature": np.asarray(t["feature"], dtype=np.int64), "threshold": np.asarray(t["threshold"], dtype=np.float64),
                "left": np.asarray(t["left"], dtype=np.int64), "right": np.asarray(t["right"], dtype=np.int64),
                "leaf": np.asarray(t["leaf"], dtype=bool), "value": np.asarray(t["value"], dtype=np.float64),
                "missing_left": np.asarray(t["missing_left"], dtype=bool)}
        n = len(tree["leaf"])
        inner = ~tree["leaf"]
        if (any(len(v) != n for v in tree.values()) or (tree["feature"][inner] >= width).any()
                or (tree["left"][inner] >= n).any() or (tree["right"][inner] >= n).any()):
            raise ModelError("ranker: a tree's nodes are inconsistent")
        trees.append(tree)
    return Trees(float(data["baseline"]), tuple(trees))


def load_model(path: Path = MODEL_PATH) -> ReaderModel:
    """The model at `path`; ModelError with the reason when it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no model file (train one with `make reader`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot be read as a model file ({exc})") from None
    try:
        if data.get("format") != FORMAT:
            raise ModelError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
        if tuple(data["sentence_features"]) != SENTENCE_FEATURES or tuple(data["question_features"]) != QUESTION_FEATURES:
            raise ModelError(f"{path}: trained on other features than this version computes (retrain: `make reader`)")
        ranker_data = data["ranker"]
        kind = ranker_data.get("type")
        if kind == "logistic":
            ranker: Linear | Trees = _linear(ranker_data, len(SENTENCE_FEATURES), "ranker")
        elif kind == "trees":
            ranker = _trees(ranker_data, len(SENTENCE_FEATURES))
        else:
            raise ModelError(f"{path}: unknown ranker type {kind!r}")
        abstain = _linear(data["abstain"], len(QUESTION_FEATURES), "abstain")
        threshold = float(data["threshold"])
        if not 0.0 <= threshold <= 1.0:
            raise ModelError(f"{path}: threshold must be a probability, got {threshold}")
        return ReaderModel(ranker, abstain, threshold, dict(data.get("info", {})))
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: not a learned-reader model ({exc!r})") from None
