"""Features of every candidate sentence of the retrieved passages, for the learned reader (rag.answer.learned).

The candidates are the rule reader's own (`RuleReader._candidates`: one per sentence, deduplicated, with its
dense similarity from the packaged encoder and its IDF-weighted term coverage), so the hand-set scores become
features here instead of being copied. Beside them: a BM25 score of the sentence alone, the passage's rank and
fused score, whether a span of the asked answer type is in the sentence (rag.answer.spans.candidates, looked
for in the `TYPED_POOL` best sentences by the rules' score only, since spaCy costs ~4 ms a sentence), heading
or body, position and length, and each score relative to the best candidate's (what makes one candidate win
is how it compares with the others of the same question). `question_features` summarises a question's
candidates for the abstention model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag.answer.extractive import Candidate, RuleReader
from rag.answer.kinds import ANSWER_KINDS, DESCRIPTION
from rag.answer.spans import candidates as typed_spans
from rag.text import terms
from rag.types import Passage, Query

TYPED_POOL = 12  # the rule reader's typed_pool: sentences searched for a span of the asked type
BM25_K1, BM25_B, AVG_TERMS = 1.2, 0.75, 12.0
_ENDS = (".", "!", "?", "\"", "”", "’", "'", ")", ":", ";", "…")

SENTENCE_FEATURES = (
    "dense", "coverage", "own_coverage", "bm25", "rule_score",
    "dense_gap", "coverage_gap", "own_gap", "bm25_gap", "rule_gap",
    "dense_rank", "rule_rank", "passage_rank", "passage_score", "passage_score_gap",
    "has_type", "type_checked", "typed_question",
    "heading", "position", "first_in_chunk", "log_chars", "log_terms", "matched_share",
    "names_here", "n_candidates", "counts_measured", "head_noun_here",
)
QUESTION_FEATURES = (
    "best_model", "second_model", "model_gap", "best_dense", "second_dense", "dense_gap2", "best_coverage",
    "best_own", "best_bm25", "rule_confidence", "type_anywhere", "typed_question", "n_candidates", "query_terms",
    "best_passage_score", "mean_dense_top5", "measured_anywhere", "head_noun_anywhere",
    *(f"kind_{k}" for k in ANSWER_KINDS),
)


@dataclass(frozen=True, slots=True)
class SentenceTable:
    """The candidates of one question and their feature rows (`matrix[i]` describes `candidates[i]`)."""

    candidates: tuple[Candidate, ...]
    matrix: np.ndarray  # float32, shape (len(candidates), len(SENTENCE_FEATURES))
    headings: np.ndarray  # bool, a line with no sentence-ending punctuation: never quoted as the answer


def is_heading(text: str) -> bool:
    """A line with no sentence-ending punctuation is a heading (or a caption), not a sentence of the text."""
    stripped = text.rstrip()
    return not stripped.endswith(_ENDS)


def sentence_table(rules: RuleReader, query: Query, passages: tuple[Passage, ...]) -> SentenceTable:
    """Every candidate sentence of `passages` for `query`, with its features."""
    pool = rules._candidates(query, passages)
    n = len(pool)
    width = len(SENTENCE_FEATURES)
    if not n:
        return SentenceTable((), np.zeros((0, width), dtype=np.float32), np.zeros(0, dtype=bool))
    where: dict[tuple[str, int], tuple[float, int, int]] = {}
    for p in passages:
        for i, (start, _) in enumerate(p.chunk.sentences):
            key = (p.chunk.article_id, start)
            if key not in where or where[key][1] > p.rank:
                where[key] = (p.score, p.rank, i)
    idf = {t: rules.idf(t) * w for t, w in (*query.context, *query.weights)}
    names = set(query.names)
    head = set(terms(query.head_noun))
    typed = query.answer_type != DESCRIPTION
    cols: dict[str, np.ndarray] = {name: np.zeros(n, dtype=np.float64) for name in SENTENCE_FEATURES}
    total_idf = sum(idf.values()) or 1.0
    for i, c in enumerate(pool):
        sentence_terms = terms(c.text)
        counts: dict[str, int] = {}
        for t in sentence_terms:
            counts[t] = counts.get(t, 0) + 1
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(sentence_terms) / AVG_TERMS)
        cols["bm25"][i] = sum(v * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t, v in idf.items() if t in counts)
        score, rank, index = where.get((c.article_id, c.start), (0.0, c.rank, 0))
        cols["passage_score"][i] = score
        cols["passage_rank"][i] = rank
        cols["first_in_chunk"][i] = index == 0
        cols["position"][i] = math.log1p(c.start)
        cols["log_chars"][i] = math.log1p(len(c.text))
        cols["log_terms"][i] = math.log1p(len(sentence_terms))
        cols["matched_share"][i] = sum(idf.get(t, 0.0) for t in c.matched) / total_idf
        cols["heading"][i] = is_heading(c.text)
        cols["names_here"][i] = (len(names & (set(sentence_terms) | c.context)) / len(names)) if names else 1.0
        # the rule reader's verdicts as features: "how many ships" where only soldiers are counted, "who is the
        # president" where no president is named
        cols["counts_measured"][i] = rules._counts(query, c) if query.measured else 1.0
        cols["head_noun_here"][i] = bool(head & (set(sentence_terms) | c.context)) if head else 1.0
    cols["dense"] = np.array([c.dense for c in pool])
    cols["coverage"] = np.array([c.coverage for c in pool])
    cols["own_coverage"] = np.array([c.own_coverage for c in pool])
    cols["rule_score"] = np.array([c.score for c in pool])
    for name, gap in (("dense", "dense_gap"), ("coverage", "coverage_gap"), ("own_coverage", "own_gap"),
                      ("bm25", "bm25_gap"), ("rule_score", "rule_gap"), ("passage_score", "passage_score_gap")):
        cols[gap] = cols[name] - cols[name].max()
    cols["dense_rank"] = np.log1p(np.argsort(np.argsort(-cols["dense"], kind="stable"), kind="stable"))
    cols["rule_rank"] = np.log1p(np.arange(n))  # the pool comes sorted by the rules' score
    cols["passage_rank"] = np.log(cols["passage_rank"])
    cols["typed_question"][:] = typed
    cols["n_candidates"][:] = math.log1p(n)
    if typed:
        for i, c in enumerate(pool[:TYPED_POOL]):
            cols["type_checked"][i] = 1.0
            cols["has_type"][i] = bool(typed_spans(c.text, query.answer_type, query.head_noun))
    matrix = np.column_stack([cols[name] for name in SENTENCE_FEATURES]).astype(np.float32)
    return SentenceTable(tuple(pool), matrix, cols["heading"].astype(bool))


def question_features(query: Query, table: SentenceTable, model_scores: np.ndarray, rule_confidence: float) -> np.ndarray:
    """One row describing how well the best candidates answer the question (for the abstention model)."""
    out = dict.fromkeys(QUESTION_FEATURES, 0.0)
    out[f"kind_{query.answer_type}"] = 1.0
    out["typed_question"] = float(query.answer_type != DESCRIPTION)
    out["query_terms"] = math.log1p(len(query.weights))
    out["rule_confidence"] = rule_confidence
    m = table.matrix
    if len(table.candidates):
        col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
        usable = np.where(table.headings, -np.inf, model_scores)
        order = np.argsort(-usable, kind="stable")
        best = order[0]
        second = order[1] if len(order) > 1 else best
        dense_sorted = np.sort(m[:, col["dense"]])[::-1]
        out.update(
            best_model=float(model_scores[best]), second_model=float(model_scores[second]),
            model_gap=float(model_scores[best] - model_scores[second]),
            best_dense=float(dense_sorted[0]), second_dense=float(dense_sorted[1] if len(dense_sorted) > 1 else 0.0),
            best_coverage=float(m[best, col["coverage"]]), best_own=float(m[best, col["own_coverage"]]),
            best_bm25=float(m[:, col["bm25"]].max()), type_anywhere=float(m[:, col["has_type"]].max()),
            n_candidates=math.log1p(len(table.candidates)), best_passage_score=float(m[:, col["passage_score"]].max()),
            mean_dense_top5=float(dense_sorted[:5].mean()),
        )
        out["dense_gap2"] = out["best_dense"] - out["second_dense"]
        top = m[:TYPED_POOL]
        out["measured_anywhere"] = float(top[:, col["counts_measured"]].max())
        out["head_noun_anywhere"] = float(top[:, col["head_noun_here"]].max())
    return np.array([out[name] for name in QUESTION_FEATURES], dtype=np.float32)
