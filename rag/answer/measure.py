"""Figures of the readers on SQuAD-style rows: right sentence quoted first, short-answer exact match and F1 (SQuAD's
normalisation), abstention on unanswerable questions and false abstention on answerable ones, per wording.

Shared by the training command (the model card's figures) and the test that checks the committed model still
reaches them on a small slice (`slice_figures`: the same slice, the same code, a fresh index).
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.features import sentence_table
from rag.types import Answer, Passage, Query

SLICE_TITLE = "To_Kill_a_Mockingbird"  # a held-out article: the slice is never trained on
SLICE_PARAGRAPHS = 8
_MARKERS = re.compile(r"\s*\[\d+\]|\s*See also .*$")


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, gold: str) -> float:
    p, g = normalise(prediction).split(), normalise(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if not p or not g or not same:
        return float(p == g)
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def short_text(answer: Answer) -> str:
    """The answer's text without its [n] markers and 'See also' list."""
    return _MARKERS.sub("", answer.text).strip()


def in_gold(article_id: str, start: int, end: int, gold: Sequence[tuple[str, int]]) -> bool:
    return any(a == article_id and start <= s < end for a, s in gold)


def score_answer(answer: Answer, gold: Sequence[tuple[str, int]], answers: Sequence[str]) -> dict[str, float]:
    """One answerable row: quoted first (the first quote holds a gold answer start), EM, F1, abstained."""
    if answer.abstained or not answer.quotes:
        return {"first": 0.0, "em": 0.0, "f1": 0.0, "abstained": 1.0}
    q = answer.quotes[0]
    text = short_text(answer)
    return {"first": float(in_gold(q.article_id, q.start, q.end, gold)),
            "em": max(float(normalise(text) == normalise(a)) for a in answers),
            "f1": max(f1(text, a) for a in answers), "abstained": 0.0}


def baseline_first(rules: Any, query: Query, passages: tuple[Passage, ...], gold: Sequence[tuple[str, int]]) -> float:
    """The baseline: the sentence closest to the question by the packaged encoder alone."""
    table = sentence_table(rules, query, passages)
    if not table.candidates:
        return 0.0
    best = table.candidates[int(np.argmax([c.dense for c in table.candidates]))]
    return float(in_gold(best.article_id, best.start, best.end, gold))


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean figures per (reader, wording): rows hold reader, wording, answerable and the scores."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["reader"], row["wording"] if row["answerable"] else "unanswerable")].append(row)
    out: dict[str, dict[str, float]] = {}
    for (reader, wording), got in sorted(groups.items()):
        keys = ("first", "em", "f1", "abstained") if wording != "unanswerable" else ("abstained",)
        out[f"{reader}/{wording}"] = {"n": len(got), **{k: round(float(np.mean([r[k] for r in got])), 4)
                                                       for k in keys if k in got[0]}}
    return out


def slice_paragraphs(paragraphs: Sequence[Any]) -> list[Any]:
    """The card's slice: the first `SLICE_PARAGRAPHS` paragraphs of `SLICE_TITLE` (held out from training)."""
    return [p for p in paragraphs if p.title == SLICE_TITLE][:SLICE_PARAGRAPHS]


def slice_figures(make_reader: Callable[[Any], Any], articles_dir: Path, index_dir: Path) -> dict[str, float]:
    """A reader's figures on the slice's original questions over a fresh index of the slice alone;
    `make_reader(rule_reader)` builds it over that index's rule reader."""
    from rag.answer.question import analyse
    from rag.answer.squad import load
    from rag.answer.train_data import assistant_for, squad_article_id, write_squad_corpus

    chosen = slice_paragraphs(load())
    write_squad_corpus(chosen, articles_dir)
    assistant = assistant_for(articles_dir, index_dir)
    reader = make_reader(assistant.reader)
    try:
        scores = []
        for p in chosen:
            for q in p.questions:
                if q.impossible:
                    continue
                query = analyse(q.question)
                passages = assistant.retriever.retrieve(query.resolved)
                gold = [(squad_article_id(p.article.id), s) for s, _ in q.answers]
                scores.append(score_answer(reader.read(query, passages), gold, [t for _, t in q.answers]))
    finally:
        assistant.close()
    return {"n": len(scores), **{k: round(float(np.mean([s[k] for s in scores])), 4) for k in ("first", "em", "f1", "abstained")}}
