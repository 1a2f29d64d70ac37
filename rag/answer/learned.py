"""The learned reader: which sentence answers, and whether to answer at all, from models trained on SQuAD.

Candidates and their features come from rag.answer.features (the rule reader's own scores among them); the
ranker (rag/answer/model/reader.json, trained by `make reader`, see its CARD.md) picks the sentence, and a
calibrated probability that the passages answer the question decides abstention against the threshold chosen on
the held-back split. The short answer is a typed span of the chosen sentence (`_short_answer`), and figures
that disagree across articles go through the rule reader's own conflict handling. Headings are never the
answer. No word lists and no per-word rules here: the hand rules are features, and the fallback when the model
file is missing or unreadable (the answer then carries a note saying so).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rag.answer.extractive import Candidate, RuleReader, _adjacent, _is_quotation, _quote, _similar
from rag.answer.features import SentenceTable, question_features, sentence_table
from rag.answer.kinds import DATE, DESCRIPTION, DURATION, NUMBER
from rag.answer.model_io import MODEL_PATH, ModelError, ReaderModel, load_model
from rag.answer.spans import counted_noun
from rag.types import Answer, Passage, Query, Quote, Retrieved

FALLBACK_NOTE = "learned reader unavailable ({reason}); answered by the rule reader"
NEAR_LOGIT = 1.0  # a sentence within this many log-odds of the best may support (or, for figures, contradict) it


class LearnedReader:
    """The `Reader` seam, with models learned from labelled data; the rule reader as features and fallback."""

    name = "learned"

    def __init__(self, rules: RuleReader, model_path: Path | None = None, model: ReaderModel | None = None) -> None:
        if not isinstance(rules, RuleReader):
            raise ValueError(f"rules must be a RuleReader, got {type(rules).__name__}")
        self.rules = rules
        self.config = rules.config  # the follow-up gate's settings (rag.pipeline) are the rule reader's
        self.max_quotes = rules.max_quotes
        self.model: ReaderModel | None = model
        self.problem = ""
        if model is None:
            try:
                self.model = load_model(model_path or MODEL_PATH)
            except ModelError as exc:
                self.problem = str(exc)

    @property
    def version(self) -> str:
        return self.model.version if self.model else f"fallback: {self.problem}"

    # -- the Reader protocol ---------------------------------------------------------------------
    def confidence(self, query: Query, passages: tuple[Passage, ...]) -> float:
        """The calibrated probability that `passages` answer `query` (0 when nothing was retrieved)."""
        if self.model is None:
            return self.rules.confidence(query, passages)
        return self._judge(query, passages)[2]

    def read(self, query: Query, passages: tuple[Passage, ...]) -> Answer:
        if self.model is None:
            answer = self.rules.read(query, passages)
            return dataclasses.replace(answer, notes=(*answer.notes, FALLBACK_NOTE.format(reason=self.problem)))
        retrieved = tuple(
            Retrieved(p.rank, p.chunk.article_id, p.title, p.chunk.start, p.chunk.end, round(p.score, 6)) for p in passages
        )
        table, scores, probability = self._judge(query, passages)
        order = [i for i in np.argsort(-scores, kind="stable") if not table.headings[i]]
        pool = [table.candidates[i] for i in order]
        if not pool or probability < self.model.threshold:
            return self.rules._abstain(query, [table.candidates[i] for i in np.argsort(-scores, kind="stable")], retrieved)
        best = pool[0]
        near = [table.candidates[i] for i in order[1:] if scores[i] >= scores[order[0]] - NEAR_LOGIT]
        answer = self._compose(query, best, near, pool)
        return dataclasses.replace(answer, retrieved=retrieved)

    # -- scoring ---------------------------------------------------------------------------------
    def _judge(self, query: Query, passages: tuple[Passage, ...]) -> tuple[SentenceTable, np.ndarray, float]:
        """The candidates, the ranker's log-odds for each, and the probability that the passages answer."""
        if self.model is None:
            raise ModelError(self.problem or "no model loaded")
        table = sentence_table(self.rules, query, passages)
        if not table.candidates:
            return table, np.zeros(0), 0.0
        scores = self.model.rank(table.matrix)
        pool = table.candidates
        rule_confidence = pool[0].dense + pool[0].coverage  # the pool comes sorted by the rules' score
        row = question_features(query, table, scores, rule_confidence)
        return table, scores, self.model.answerable(row)

    # -- composing -------------------------------------------------------------------------------
    def _compose(self, query: Query, best: Candidate, near: list[Candidate], pool: list[Candidate]) -> Answer:
        if query.answer_type != DESCRIPTION:
            # other articles' figures among the sentences the rules would search: _typed keeps only the close ones
            others = [c for c in pool[: self.config.typed_pool] if c.article_id != best.article_id]
            if query.answer_type in (NUMBER, DURATION, DATE) and others:
                # figures stated in other articles: the rule reader's conflict handling decides whether they differ
                typed = self.rules._typed(query, [best, *others], pool)
                if typed is not None and typed.conflicts and typed.quotes and _same(typed.quotes[0], best):
                    return typed
            # the best sentence, or the best near one, that holds a span of the asked type
            for chosen in (best, *near):
                value = self._short_answer(query, chosen)
                if value:
                    rest = [c for c in (best, *near) if c is not chosen and value.lower() in c.text.lower()]
                    quotes = self._supporting(chosen, rest)
                    return Answer(query.question, f"{value} {''.join(f'[{q.n}]' for q in quotes)}", tuple(quotes),
                                  answer_type=query.answer_type, resolved_question=query.resolved)
            if _is_quotation(best.text):
                # "Which think tank said ...": the rule reader finds the speaker in the quotation's attribution line
                attributed = self.rules._typed(query, _adjacent(best, pool), pool, attribution=True)
                if attributed is not None:
                    return attributed
        quotes = self._supporting(best, near)
        text = f"{best.text} [1]"
        if len(quotes) > 1:
            text += " See also " + ", ".join(f"[{q.n}]" for q in quotes[1:]) + "."
        return Answer(query.question, text, tuple(quotes), answer_type=query.answer_type, resolved_question=query.resolved)

    def _short_answer(self, query: Query, sentence: Candidate) -> str:
        """The typed span of the chosen sentence, by the rule reader's span ordering ("" when it has none).
        The one place a span ranker (rag.answer.span_model.SpanRanker) replaces the rules."""
        spans = self.rules._spans(query, sentence)
        if query.answer_type == NUMBER and query.measured:
            counted = [s for s in spans if _counts(query.measured, counted_noun(sentence.text, s))]
            spans = counted or spans
        return spans[0].text if spans else ""

    def _supporting(self, best: Candidate, near: list[Candidate]) -> list[Quote]:
        """The best sentence first, then near ones that are not copies of a quote already given."""
        quotes = [_quote(1, best)]
        for candidate in near:
            if len(quotes) >= self.max_quotes:
                break
            if any(q.article_id == candidate.article_id and q.start == candidate.start for q in quotes):
                continue
            if any(_similar(candidate.text, q.text, self.config.duplicate_overlap) for q in quotes):
                continue
            quotes.append(_quote(len(quotes) + 1, candidate))
        return quotes


def _same(quote: Quote, candidate: Candidate) -> bool:
    return quote.article_id == candidate.article_id and quote.start == candidate.start


def _counts(measured: str, counted: str) -> bool:
    from rag.answer.extractive import _counts_same

    return _counts_same(measured, counted)
