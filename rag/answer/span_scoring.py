"""Scoring short answers as SQuAD does, the rule reader's span choice as the baseline, and generated wordings.

Used by the span ranker's training (rag.answer.train_spans) and its tests: `exact` and `f1` are SQuAD's
exact match and token F1 (lower case, punctuation and articles dropped); `rule_choice` is the span the rule
reader (rag.answer.extractive.RuleReader) would give for a sentence, or the whole sentence when it gives
none; `reorder` writes a question in another word order (a trailing phrase moved to the front).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

import numpy as np

from rag.types import Query

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


@dataclass(frozen=True, slots=True)
class Row:
    """One (question, wording) with the candidate spans of its answer's sentence and their feature rows."""

    title: str
    qid: str
    wording: str
    query: Query
    sentence: str
    answer: str
    x: np.ndarray
    texts: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]


def normalize(text: str) -> str:
    """SQuAD's answer normalization."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def rule_choice(query: Query, sentence: str) -> str:
    """The rule reader's short answer from `sentence`: its first typed span (RuleReader._spans' order, with
    the counted-noun filter of "how many X" questions), or the sentence itself when it has none."""
    from rag.answer.extractive import Candidate, RuleReader, _counts_same, _match
    from rag.answer.kinds import NUMBER
    from rag.answer.spans import counted_noun
    from rag.text import terms

    reader = RuleReader(doc_freq=lambda _term: 1, num_docs=1)
    own = set(terms(sentence))
    matched = frozenset(t for t, _ in (*query.weights, *query.context) if _match(t, own))
    candidate = Candidate("a", "", 0, len(sentence), sentence, 0.0, 0.0, matched, 1)
    spans = reader._spans(query, candidate)
    if query.answer_type == NUMBER and query.measured:
        spans = [s for s in spans if _counts_same(query.measured, counted_noun(sentence, s))]
    return spans[0].text if spans else sentence


def reorder(question: str) -> str:
    """`question` with a phrase that ends it moved to the front ("What did Beyoncé release in 2003?" ->
    "In 2003, what did Beyoncé release?"), by spaCy's parse; "" when no such phrase can move."""
    from rag.answer.parse import parse

    doc = parse(question)
    words = [t for t in doc if not t.is_punct]
    if len(words) < 4:
        return ""
    last = words[-1].i
    movable = []
    for token in doc:
        if token.dep_ not in ("prep", "npadvmod", "advcl", "agent") or token.head.i > token.i:
            continue
        subtree = list(token.subtree)
        if subtree[-1].i != last or subtree[0].i <= words[0].i:
            continue
        if any(t.tag_ in ("WDT", "WP", "WP$", "WRB") for t in subtree):
            continue  # the asked phrase stays where it is
        movable.append((token.head.pos_ not in ("VERB", "AUX"), subtree[0].i, subtree))
    if not movable:
        return ""
    subtree = min(movable, key=lambda m: m[:2])[2]  # a phrase of the verb first, the longest such
    start, end = subtree[0].idx, subtree[-1].idx + len(subtree[-1].text)
    phrase = question[start:end]
    rest = (question[:start].rstrip(" ,") + question[end:]).strip()
    first = rest[:1] if _is_name(doc, 0) else rest[:1].lower()
    return f"{phrase[:1].upper()}{phrase[1:]}, {first}{rest[1:]}"


def _is_name(doc, i: int) -> bool:  # noqa: ANN001
    return doc[i].pos_ == "PROPN" or doc[i].text == "I"
