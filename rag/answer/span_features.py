"""What the span ranker (rag.answer.span_model) knows about each candidate answer span of a sentence.

A sentence is read once (`read_sentence`: candidates from rag.answer.spans.all_candidates, spaCy's parse,
and the texts to encode for each candidate: the span and its clause); the
question-dependent features (`features`) are then cheap. Every feature is generic: spaCy's own labels and
dependency relations, overlap with the question's own terms, distances, position, length, and the packaged
encoder's similarity of the span's clause to the question. No word list and no per-word rule.

A span's clause is the span with the words that govern it up to the first verb, and that verb's subject and
object: "around 10,000" in "the decision to send around 10,000 troops" reads "send around 10,000 troops",
"at least 30" in "at least 30 were killed" reads "at least 30 killed". The question's similarity to those
clauses is what tells a count of troops sent from a count of casualties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.answer.kinds import ANSWER_KINDS
from rag.answer.parse import parse
from rag.answer.spans import all_candidates, candidates
from rag.text import terms, words
from rag.types import Query

ENTITY_LABELS = ("CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL",
                 "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART")
SOURCES = ("figure", "duration", "orgname", "chunk", *(f"ent:{label}" for label in ENTITY_LABELS))
DEPS = ("nsubj", "nsubjpass", "dobj", "pobj", "attr", "appos", "nummod", "compound", "conj", "npadvmod", "poss",
        "amod", "ROOT", "dative", "oprd", "advmod", "pcomp", "acomp", "quantmod", "other")
HEAD_POS = ("NOUN", "PROPN", "VERB", "AUX", "ADP", "ADJ", "other")
TEXTS_PER_SPAN = 2  # the span and its clause: encoded together, one batch per sentence


@dataclass(frozen=True, slots=True)
class SpanInfo:
    """One candidate: sentence offsets, labels, token range [first, last), and its parse around it."""

    start: int
    end: int
    text: str
    labels: tuple[str, ...]
    first: int
    last: int
    dep: str
    head_pos: str
    head: int  # the token that governs the span (outside it), -1 at the root
    verb: int  # the first verb above the span, -1 when none
    verb_hops: int
    clause: str


@dataclass(frozen=True, slots=True)
class SentenceInfo:
    sentence: str
    stems: tuple[str, ...]  # each token's stem ("" for stop words and punctuation)
    tree: np.ndarray  # (tokens, tokens) distances in the dependency tree
    spans: tuple[SpanInfo, ...]

    def texts(self) -> list[str]:
        """What to encode, TEXTS_PER_SPAN per span, in span order."""
        return [t for s in self.spans for t in (s.text, s.clause)]


def read_sentence(sentence: str) -> SentenceInfo:
    doc = parse(sentence)
    n = len(doc)
    stems = tuple((terms(t.text) or [""])[0] for t in doc)
    paths = []
    for token in doc:
        path = [token.i]
        while doc[path[-1]].head.i != path[-1] and len(path) < n:
            path.append(doc[path[-1]].head.i)
        paths.append(path[::-1])
    tree = np.zeros((n, n), dtype=np.int16)
    for a in range(n):
        for b in range(a + 1, n):
            common = 0
            for x, y in zip(paths[a], paths[b], strict=False):
                if x != y:
                    break
                common += 1
            tree[a, b] = tree[b, a] = len(paths[a]) + len(paths[b]) - 2 * common
    spans = []
    for cand in all_candidates(sentence):
        span = doc.char_span(cand.start, cand.end, alignment_mode="expand")
        if span is None or not len(span):
            continue
        inside = set(range(span.start, span.end))
        root = span.root
        head = root.head if root.head.i != root.i else None
        verb, hops, token, collected = None, 0, root, set(inside)
        while token.head.i != token.i and hops < 4:
            token, hops = token.head, hops + 1
            if token.i in inside:
                continue
            collected.add(token.i)
            if token.pos_ in ("VERB", "AUX"):
                verb = token
                break
        if verb is not None:
            collected |= {c.i for c in verb.children if c.dep_ in ("nsubj", "nsubjpass", "dobj", "attr", "prt")}
        clause = " ".join(doc[i].text for i in sorted(collected))
        spans.append(SpanInfo(
            cand.start, cand.end, cand.text, cand.labels, span.start, span.end,
            root.dep_ if root.dep_ in DEPS else "other",
            (head.pos_ if head.pos_ in HEAD_POS else "other") if head is not None else "other",
            head.i if head is not None else -1, verb.i if verb is not None else -1,
            hops if verb is not None else 0, clause,
        ))
    return SentenceInfo(sentence, stems, tree, tuple(spans))


def feature_names() -> tuple[str, ...]:
    names = [f"src:{s}" for s in SOURCES] + [f"kind:{k}" for k in ANSWER_KINDS]
    names += [f"kind:{k}*src:{s}" for k in ANSWER_KINDS for s in SOURCES]
    names += [f"dep:{d}" for d in DEPS] + [f"head:{p}" for p in HEAD_POS]
    names += [f"kind:{k}*dep:{d}" for k in ANSWER_KINDS for d in DEPS]
    names += ["tokens", "log_chars", "n_sources", "position", "order", "echo_words", "echo_terms", "echoes",
              "log_distance", "no_match", "log_tree_distance", "head_match", "verb_match", "verb_hops", "no_verb",
              "measured_match", "head_noun_match", "capital", "digit", "inside_other", "holds_other",
              "rule", "rule_preferred", "rule_beside", "rule_weak", "sentence_matched",
              "sim_span", "sim_clause", "rel_span", "rel_clause", "best_clause"]
    names += [f"kind:{k}*rel_clause" for k in ANSWER_KINDS] + [f"kind:{k}*sim_span" for k in ANSWER_KINDS]
    return tuple(names)


FEATURES = feature_names()
_INDEX = {name: i for i, name in enumerate(FEATURES)}


def features(query: Query, info: SentenceInfo, question: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(spans, len(FEATURES)) float32: one row per span of `info`; `vectors` are the encoder's vectors of
    `info.texts()` and `question` the question's, all unit length."""
    spans = info.spans
    x = np.zeros((len(spans), len(FEATURES)), dtype=np.float32)
    if not spans:
        return x
    kind = query.answer_type
    asked_terms = {t for t, _ in query.weights} | {t for t, _ in query.context}
    asked_words = set(query.words)
    matched = [i for i, stem in enumerate(info.stems) if stem and stem in asked_terms]
    head_terms = set(terms(query.head_noun))
    rule = {(s.start, s.end): s for s in candidates(info.sentence, kind, query.head_noun)}
    sims = (vectors @ question).reshape(len(spans), TEXTS_PER_SPAN)
    best = sims.max(axis=0)
    n_tokens = max(len(info.stems), 1)
    for row, span in enumerate(spans):
        v = x[row]

        def put(name: str, value: float = 1.0, _v: np.ndarray = v) -> None:
            _v[_INDEX[name]] = value

        for label in span.labels:
            if f"src:{label}" in _INDEX:
                put(f"src:{label}")
                put(f"kind:{kind}*src:{label}")
        put(f"kind:{kind}")
        put(f"dep:{span.dep}")
        put(f"kind:{kind}*dep:{span.dep}")
        put(f"head:{span.head_pos}")
        inside = range(span.first, span.last)
        own_words = words(span.text)
        own_terms = [info.stems[i] for i in inside if info.stems[i]]
        put("tokens", min(len(inside), 20) / 10)
        put("log_chars", float(np.log1p(len(span.text))))
        put("n_sources", len(span.labels))
        put("position", span.first / n_tokens)
        put("order", row / len(spans))
        echo_words = sum(w in asked_words for w in own_words) / len(own_words) if own_words else 1.0
        put("echo_words", echo_words)
        put("echo_terms", sum(t in asked_terms for t in own_terms) / len(own_terms) if own_terms else 0.0)
        put("echoes", float(echo_words >= 0.5))
        outside = [i for i in matched if not span.first <= i < span.last]
        if outside:
            put("log_distance", float(np.log1p(min(min(abs(i - span.first), abs(i - span.last + 1)) for i in outside))))
            put("log_tree_distance", float(np.log1p(min(int(info.tree[i, j]) for i in outside for j in inside))))
        else:
            put("no_match")
        put("head_match", float(span.head >= 0 and info.stems[span.head] in asked_terms and bool(info.stems[span.head])))
        put("verb_match", float(span.verb >= 0 and info.stems[span.verb] in asked_terms and bool(info.stems[span.verb])))
        put("verb_hops", span.verb_hops / 4)
        put("no_verb", float(span.verb < 0))
        if query.measured:
            near = set(own_terms) | ({info.stems[span.head]} if span.head >= 0 else set())
            put("measured_match", float(query.measured in near))
        if head_terms:
            near = set(own_terms) | ({info.stems[span.head]} if span.head >= 0 else set())
            put("head_noun_match", float(bool(head_terms & near)))
        put("capital", float(span.text[:1].isupper()))
        put("digit", float(any(c.isdigit() for c in span.text)))
        put("inside_other", float(any(o.start <= span.start and span.end <= o.end and o is not span for o in spans)))
        put("holds_other", float(any(span.start <= o.start and o.end <= span.end and o is not span for o in spans)))
        typed = rule.get((span.start, span.end))
        if typed is not None:
            put("rule")
            put("rule_preferred", float(typed.preferred))
            put("rule_beside", float(typed.beside_noun))
            put("rule_weak", float(typed.weak))
        put("sentence_matched", min(len(matched), 10) / 10)
        for name, value, top in zip(("span", "clause"), sims[row], best, strict=True):
            put(f"sim_{name}", float(value))
            put(f"rel_{name}", float(value - top))
        put("best_clause", float(sims[row, 1] >= best[1]))
        put(f"kind:{kind}*rel_clause", float(sims[row, 1] - best[1]))
        put(f"kind:{kind}*sim_span", float(sims[row, 0]))
    return x
