"""Answering without a language model: pick the sentences that answer, quote them verbatim, compose.

Every candidate is a whole sentence of a retrieved passage, scored by its dense similarity to the question
and by how much of the question's weighted vocabulary (IDF-weighted, stemmed) it or its neighbours cover.
Typed questions (how many, how long, who, where, when, which agency...) are answered with the span of that
type closest to the question's words in the best sentence that has one. When the best sentences from
different articles state different values, the answer says so and quotes each. When the best sentence does
not cover the question, the answer abstains and lists the closest sentences as related reading.
Quotes are slices of the retrieved chunk text at absolute offsets, so they are verbatim by construction;
the pipeline checks each against the stored article once more before it leaves.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.answer.config import ReaderConfig
from rag.answer.kinds import DATE, DESCRIPTION, DURATION, NUMBER, ORG, PERSON, PLACE
from rag.answer.parse import is_attribution, is_heading, stranded_preposition, verb_phrases
from rag.answer.question import ROLE_NOUNS
from rag.answer.spans import Span, candidates, counted_noun, number_value
from rag.text import bm25_idf, terms, words
from rag.types import Answer, Claim, Conflict, Passage, Query, Quote, Retrieved

# Every threshold is a field of ReaderConfig (rag.answer.config): `rag eval` reports the values behind a figure.
# The answer gate (dense similarity plus term coverage of the best sentence) was first calibrated on 28 answerable
# and 20 unanswerable hand-written questions over two corpora; `rag eval` reports abstention precision and recall
# so it can be watched on new question sets.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True, slots=True)
class Candidate:
    article_id: str
    title: str
    start: int
    end: int
    text: str
    dense: float
    coverage: float
    matched: frozenset[str]
    rank: int
    own_coverage: float = 0.0  # coverage by the sentence's own words, neighbours not counted
    context: frozenset[str] = frozenset()  # terms of the title and the neighbouring sentences
    attribution: bool = False  # a line that only names a source ("– Institute for the Study of War")

    @property
    def score(self) -> float:
        return 0.5 * self.dense + 0.5 * self.coverage + 0.01 / self.rank


def _match(term: str, vocabulary: set[str]) -> bool:
    """Exact stem match, or a close spelling variant (Zelensky / Zelenskyy) for longer words."""
    if term in vocabulary:
        return True
    if len(term) < 6:
        return False
    return any(
        len(other) >= 6 and abs(len(other) - len(term)) <= 2 and _common_prefix(term, other) >= min(len(term), len(other)) - 1
        for other in vocabulary
    )


def _covered(idf: dict[str, float], matched: frozenset[str], own: set[str], context: set[str]) -> float:
    """Share of the IDF mass of `idf`'s terms found in the sentence (full) or its context (half)."""
    total = sum(idf.values())
    if not total:
        return 0.0
    got = sum(v if t in matched else 0.5 * v if _match(t, context) else 0.0 for t, v in idf.items())
    return got / total


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class RuleReader:
    """Composes an `Answer` from a question and its retrieved passages; no model calls."""

    def __init__(self, doc_freq: Callable[[str], int], num_docs: int, max_quotes: int = 3,
                 config: ReaderConfig | None = None) -> None:
        if max_quotes < 1:
            raise ValueError(f"max_quotes must be positive, got {max_quotes}")
        if config is not None and not isinstance(config, ReaderConfig):
            raise ValueError(f"config must be a ReaderConfig, got {type(config).__name__}")
        self.doc_freq = doc_freq
        self.num_docs = max(num_docs, 1)
        self.max_quotes = max_quotes
        self.config = config or ReaderConfig()

    def idf(self, term: str) -> float:
        return bm25_idf(self.doc_freq(term), self.num_docs)

    name = "extractive"

    def confidence(self, query: Query, passages: tuple[Passage, ...]) -> float:
        """Dense similarity plus term coverage of the best sentence: what the answer gate and the follow-up gate
        compare (0 when nothing was retrieved)."""
        pool = self._candidates(query, passages)
        return pool[0].dense + pool[0].coverage if pool else 0.0

    def read(self, query: Query, passages: tuple[Passage, ...]) -> Answer:
        retrieved = tuple(
            Retrieved(p.rank, p.chunk.article_id, p.title, p.chunk.start, p.chunk.end, round(p.score, 6)) for p in passages
        )
        return self._decide(query, self._candidates(query, passages), retrieved)

    def _decide(self, query: Query, everything: list[Candidate], retrieved: tuple[Retrieved, ...]) -> Answer:
        """The rule reader's answer from its sorted candidates (`read` without computing them again)."""
        cfg = self.config
        pool = everything
        if query.names:  # "Who is China's defense minister?" is not answered from a sentence about Russia's
            named = [c for c in pool if self._names_ok(query, c)]
            if not named:
                return self._abstain(query, pool, retrieved)
            pool = named
        if not pool:
            return self._abstain(query, pool, retrieved)
        best = pool[0]
        if best.dense + best.coverage < cfg.min_support:
            return self._abstain(query, pool, retrieved)
        floor = cfg.min_coverage * cfg.coverage_slack
        near = [c for c in pool if c.score >= cfg.near_best * best.score and c.dense >= cfg.min_dense and c.coverage >= floor]
        if query.answer_type != DESCRIPTION:
            relevant = [
                c
                for c in pool[: cfg.typed_pool]
                if (c.score >= cfg.relevant * best.score and c.coverage >= floor)
                or (c.dense >= best.dense - cfg.dense_tie and c.dense >= cfg.dense_floor)
            ]
            if query.answer_type == PERSON and re.fullmatch(ROLE_NOUNS, query.head_noun) and not any(
                    _match(t, set(terms(c.text))) for c in relevant for t in terms(query.head_noun)):
                return self._abstain(query, pool, retrieved)  # "Who is the president of …" with no president named
            if query.answer_type == NUMBER and query.measured and not any(self._counts(query, c) for c in relevant):
                return self._abstain(query, pool, retrieved)  # "how many ships" where only soldiers are counted
            typed = self._typed(query, relevant, pool)
            if _is_quotation(best.text) and (
                    typed is None or (query.answer_type in (PERSON, ORG) and not self._preferred(query, typed))):
                # "Which think tank said ...": the speaker of a quotation is named in its attribution line
                attributed = self._typed(query, _adjacent(best, everything), pool, attribution=True)
                if attributed is not None and (typed is None or self._preferred(query, attributed)):
                    typed = attributed
            if typed is not None:
                return dataclasses.replace(typed, retrieved=retrieved)
            if query.answer_type == NUMBER and query.measured:
                return self._abstain(query, pool, retrieved)
        # -- hook: an attribution line names a speaker for the typed answers above; it is never the answer --
        best = next((c for c in pool if not c.attribution), best)
        return self._describe(query, best, [c for c in near if not c.attribution], retrieved)

    # -- scoring -----------------------------------------------------------------------------------
    def _candidates(self, query: Query, passages: tuple[Passage, ...]) -> list[Candidate]:
        current = {t: self.idf(t) * w for t, w in query.weights}
        earlier = {t: self.idf(t) * w for t, w in query.context}
        weights = {**earlier, **current}
        # A follow-up is judged mostly on its own words and partly on the turn it leans on.
        share = 1.0 if not earlier else (self.config.followup_share if current else 0.0)
        seen: dict[tuple[str, int, int], Candidate] = {}
        for passage in passages:
            chunk = passage.chunk
            spans = chunk.sentences
            title_terms = set(terms(passage.title))
            sentence_terms = [set(terms(chunk.text[s - chunk.start : e - chunk.start])) for s, e in spans]
            for i, (start, end) in enumerate(spans):
                if is_heading(chunk.text, start - chunk.start, end - chunk.start):
                    continue  # -- hook: a heading stays context (its terms above), never a quoted answer --
                key = (chunk.article_id, start, end)
                dense = passage.sentence_scores[i] if i < len(passage.sentence_scores) else 0.0
                context = title_terms.union(*sentence_terms[max(0, i - 1) : i], *sentence_terms[i + 1 : i + 2])
                own = sentence_terms[i]
                matched = frozenset(t for t in weights if _match(t, own))
                coverage = share * _covered(current, matched, own, context) + (1 - share) * _covered(earlier, matched, own, context)
                own_cover = share * _covered(current, matched, own, set()) + (1 - share) * _covered(earlier, matched, own, set())
                candidate = Candidate(
                    chunk.article_id, passage.title, start, end, chunk.text[start - chunk.start : end - chunk.start],
                    dense, coverage, matched, passage.rank, own_cover, frozenset(context),
                    is_attribution(chunk.text, start - chunk.start, end - chunk.start),
                )
                if key not in seen or seen[key].score < candidate.score:
                    seen[key] = candidate
        return sorted(seen.values(), key=lambda c: (-c.score, c.article_id, c.start))

    def _preferred(self, query: Query, answer: Answer) -> bool:
        """Whether a typed answer's value is a name (a person, an organisation), not a nationality standing in."""
        value = answer.text.split(" [")[0]
        return any(s.text == value and not s.weak for q in answer.quotes[:1]
                   for s in candidates(q.text, query.answer_type, query.head_noun))

    def _names_ok(self, query: Query, candidate: Candidate) -> bool:
        """Whether every name of the question is written in the sentence, its neighbours or its article's title
        (only in the sentence itself lost more right answers than it won abstentions on the dev sets: 3 to 1)."""
        here = set(terms(candidate.text)) | candidate.context
        return all(_match(n, here) or any(_related_name(n, w) for w in here) for n in query.names)

    def _counts(self, query: Query, candidate: Candidate) -> bool:
        """Whether the sentence (or its neighbours) speaks of the noun a "how many X" question counts."""
        return _match(query.measured, set(terms(candidate.text))) or _match(query.measured, set(candidate.context))

    # -- typed answers -----------------------------------------------------------------------------
    def _spans(self, query: Query, candidate: Candidate) -> list[Span]:
        """Typed spans of a sentence that do not merely repeat the question, the best-governed first."""
        asked = set(query.words) - set(words(query.head_noun))  # "National Intelligence Service" names the service
        spans = [s for s in candidates(candidate.text, query.answer_type, query.head_noun) if not _echoes(s.text, asked)]
        attached: set[tuple[int, int]] = set()
        if query.answer_type == PLACE:  # -- hook: where the question's verb put it, by the parse --
            for b, e in verb_phrases(candidate.text, {t for t, _ in query.weights},
                                       stranded_preposition(query.resolved)):
                if _echoes(candidate.text[b:e], asked):
                    continue
                inside = [s for s in spans if s.start < e and b < s.end]
                if all(not s.preferred for s in inside):  # "Russian" (a nationality) in "at Russian bases"
                    spans = [s for s in spans if s not in inside] + [Span(b, e, candidate.text[b:e])]
                    attached.add((b, e))
                attached.update((s.start, s.end) for s in inside if s.preferred)
        if not spans:
            return []
        # a follow-up's answer is news: a span made only of the earlier turn's words ("sent to Russia" before
        # "Where were they sent?") tells the reader what it already knows
        earlier = {t for t, _ in query.context}
        told = {(s.start, s.end) for s in spans if earlier and terms(s.text) and all(_match(t, earlier) for t in terms(s.text))}
        positions = [m.start() for m in _TOKEN.finditer(candidate.text) if terms(m.group()) and terms(m.group())[0] in candidate.matched]

        def distance(span: Span) -> float:
            if not positions:
                return 0.0
            return min(min(abs(p - span.start), abs(p - span.end)) for p in positions)

        governed = _governed(query, candidate.text, spans) if query.answer_type == NUMBER else set()
        return sorted(spans, key=lambda s: ((s.start, s.end) in told, not s.preferred, s.weak,
                                            (s.start, s.end) not in attached, not s.beside_noun,
                                            (s.start, s.end) not in governed, distance(s), s.start))

    def _typed(self, query: Query, relevant: list[Candidate], pool: list[Candidate], attribution: bool = False) -> Answer | None:
        """The best relevant sentence that holds a span of the asked type, and any that disagree with it."""
        cfg = self.config
        scored: list[tuple[float, Candidate, Span]] = []
        for candidate in relevant:
            if query.answer_type == NUMBER and query.measured and not self._counts(query, candidate):
                continue
            spans = self._spans(query, candidate)
            if query.answer_type == NUMBER and query.measured:  # "twelve stations" does not count phosphorus
                spans = [sp for sp in spans if _counts_same(query.measured, counted_noun(candidate.text, sp))]
            if (query.answer_type != NUMBER and candidate.own_coverage < cfg.min_typed_coverage and not attribution
                    and not (spans and spans[0].beside_noun)):
                continue  # a name from a sentence that barely speaks of the question
            if spans:
                bonus = cfg.typed_bonus * spans[0].preferred + cfg.beside_bonus * spans[0].beside_noun
                # ranked on the sentence's own words: a neighbour that only borrows them lacks the answer
                own = 0.5 * candidate.dense + 0.5 * candidate.own_coverage + 0.01 / candidate.rank
                scored.append((own + bonus, candidate, spans[0]))
        if not scored:
            return None
        scored.sort(key=lambda item: -item[0])
        top = scored[0][0]
        lead = scored[0][1]
        found = [
            (c, span)
            for score, c, span in scored
            if span.preferred >= scored[0][2].preferred
            and (score >= cfg.near_best * top or (c.dense >= lead.dense - cfg.dense_tie and c.dense >= cfg.dense_floor))
        ]
        if query.answer_type in (NUMBER, DURATION, DATE):
            # a figure of another article is a competing claim only when it is said of the same thing: the
            # question's words next to the figure ("sent", "arrived") must be those next to the leading figure
            lead_words = _near_terms(query, found[0][0].text, found[0][1])
            found = found[:1] + [(c, s) for c, s in found[1:] if lead_words <= _near_terms(query, c.text, s) | _noun_terms(query)]
        found += self._same_quantity(query, found, pool)
        groups: dict[object, list[tuple[Candidate, Span]]] = {}
        for candidate, span in found:
            groups.setdefault(_value_key(query.answer_type, span.text), []).append((candidate, span))
        ordered = list(groups.values())
        articles = {c.article_id for c, _ in found}
        quotes: list[Quote] = []
        claims: list[Claim] = []
        if len(ordered) > 1 and len(articles) > 1 and query.answer_type in (NUMBER, DURATION, DATE):
            budget = max(self.max_quotes, len(ordered)) + 1
            for group in ordered[:5]:
                markers = []
                for candidate, _ in group[:2]:
                    if len(quotes) < budget or not markers:
                        quotes.append(_quote(len(quotes) + 1, candidate))
                        markers.append(len(quotes))
                claims.append(Claim(group[0][1].text, tuple(markers)))
            noun = {NUMBER: "figures", DURATION: "durations", DATE: "dates"}[query.answer_type]
            parts = "; ".join(f"{claim.value} {''.join(f'[{m}]' for m in claim.quotes)}" for claim in claims)
            text = f"The articles give different {noun}: {parts}."
            conflict = Conflict(about=query.question, claims=tuple(claims))
            return Answer(query.question, text, tuple(quotes), conflicts=(conflict,), answer_type=query.answer_type,
                          resolved_question=query.resolved)
        group = ordered[0]
        for candidate, _ in group:
            if len(quotes) < self.max_quotes and all(q.article_id != candidate.article_id or q.start != candidate.start for q in quotes):
                quotes.append(_quote(len(quotes) + 1, candidate))
        value = group[0][1].text
        text = f"{value} {''.join(f'[{q.n}]' for q in quotes)}"
        return Answer(query.question, text, tuple(quotes), answer_type=query.answer_type, resolved_question=query.resolved)

    def _same_quantity(
        self, query: Query, found: list[tuple[Candidate, Span]], pool: list[Candidate]
    ) -> list[tuple[Candidate, Span]]:
        """Figures in other articles that count the same thing ("… 10,000 to 12,000 troops") with an overlapping
        magnitude: a paraphrased sentence ("dispatched" for "sent") scores too low to be near the best one,
        but a figure of the same noun and size is the same claim told differently."""
        if query.answer_type != NUMBER or not query.measured or not found:
            return []
        answer = number_value(found[0][1].text)
        if not answer:
            return []
        have = {(c.article_id, c.start) for c, _ in found}
        said_of = _near_terms(query, found[0][0].text, found[0][1]) - _noun_terms(query)  # "sent", not "arrived"
        extra = []
        for candidate in pool:
            if (candidate.article_id, candidate.start) in have or candidate.dense < self.config.min_dense:
                continue
            for span in candidates(candidate.text, NUMBER):
                counted = counted_noun(candidate.text, span)
                value = number_value(span.text)
                if counted and _counts_same(query.measured, counted, strict=True) and value and _overlaps(
                        value, answer, self.config.same_quantity_ratio) and said_of <= _near_terms(query, candidate.text, span):
                    extra.append((candidate, span))
                    break
        return [e for e in extra if e[0].article_id != found[0][0].article_id]

    # -- descriptive answers and abstention --------------------------------------------------------
    def _describe(self, query: Query, best: Candidate, near: list[Candidate], retrieved: tuple[Retrieved, ...]) -> Answer:
        quotes = [_quote(1, best)]
        for candidate in near:
            if len(quotes) >= self.max_quotes:
                break
            if candidate.article_id == best.article_id and candidate.start == best.start:
                continue
            if any(_similar(candidate.text, q.text, self.config.duplicate_overlap) for q in quotes):
                continue
            quotes.append(_quote(len(quotes) + 1, candidate))
        text = f"{best.text} [1]"
        if len(quotes) > 1:
            text += " See also " + ", ".join(f"[{q.n}]" for q in quotes[1:]) + "."
        return Answer(query.question, text, tuple(quotes), answer_type=query.answer_type,
                      resolved_question=query.resolved, retrieved=retrieved)

    def _abstain(self, query: Query, pool: list[Candidate], retrieved: tuple[Retrieved, ...]) -> Answer:
        weights = dict(query.weights)
        seen_terms = set().union(*(set(terms(c.text)) for c in pool[:20])) if pool else set()
        missing = []
        for word in dict.fromkeys(words(query.question)):
            stem = terms(word)
            if stem and weights.get(stem[0], 0) >= 1.0 and self.doc_freq(stem[0]) == 0 and not _match(stem[0], seen_terms):
                missing.append(word)
        if missing:
            listed = ", ".join(f"“{w}”" for w in missing[:3])
            text = f"The articles don't say. Nothing in them mentions {listed}."
        else:
            text = "The articles don't say. No passage answers this question."
        if pool:
            text += " The closest passages are listed as related reading."
        related = []
        for candidate in pool:
            if len(related) >= 3:
                break
            if not any(_similar(candidate.text, r.text, self.config.duplicate_overlap) for r in related):
                related.append(_quote(len(related) + 1, candidate))
        return Answer(query.question, text, abstained=True, related=tuple(related), answer_type=query.answer_type,
                      resolved_question=query.resolved, retrieved=retrieved)


def _counts_same(measured: str, counted: str, strict: bool = False) -> bool:
    """Whether a figure's noun (`counted`, "" when none follows it) counts what the question asks for."""
    if not counted:
        return not strict
    stem = (terms(counted) or [""])[0]
    return _match(measured, {stem}) or (measured in PEOPLE and stem in PEOPLE)


def _is_quotation(text: str) -> bool:
    stripped = text.strip()
    return stripped[:1] in "“\"‘" or stripped[-1:] in "”\"’"


def _adjacent(candidate: Candidate, pool: list[Candidate], gap: int = 3) -> list[Candidate]:
    """The sentences written right before and right after `candidate` in its article, when they were retrieved."""
    return [c for c in pool if c.article_id == candidate.article_id and c is not candidate
            and (0 <= candidate.start - c.end <= gap or 0 <= c.start - candidate.end <= gap)]


def _related_name(a: str, b: str) -> bool:
    """"korea" and "korean", "ukrain" and "ukrainian": one name's stem starts the other's (4 letters at least)."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 4 and long.startswith(short)


def _quote(n: int, candidate: Candidate) -> Quote:
    return Quote(n, candidate.article_id, candidate.title, candidate.start, candidate.end, candidate.text)


def _echoes(span: str, asked: set[str]) -> bool:
    """A span made mostly of the question's own words repeats the question instead of answering it."""
    own = words(span)
    return not own or sum(w in asked for w in own) * 2 >= len(own)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], ratio: float) -> bool:
    """Whether two figures (points or ranges) are within `ratio` of each other."""
    low_a, high_a, low_b, high_b = min(a), max(a), min(b), max(b)
    return low_a <= high_b * ratio and low_b <= high_a * ratio


def _similar(a: str, b: str, overlap: float) -> bool:
    """Near-duplicate sentences (syndicated copies) are quoted once."""
    x, y = set(words(a)), set(words(b))
    return bool(x and y) and len(x & y) / len(x | y) > overlap


_OF = re.compile(r"^\s*(?:out\s+)?of\s+(?:the\s+|its\s+|their\s+)?$", re.IGNORECASE)
_WHOLE = re.compile(r"\b(?:do|does|did)\b.*\b(?:have|own|count)\s*\??$|\b(?:in total|in all|altogether|overall)\b", re.IGNORECASE)
# Nouns that count people: "1,200 residents" and "about 1,500 people" count the same thing.
PEOPLE = frozenset(terms(
    "people persons residents citizens civilians soldiers troops servicemen personnel forces members visitors "
    "supporters fans pupils students workers employees officers staff volunteers casualties victims refugees"))


def _governed(query: Query, sentence: str, spans: list[Span]) -> set[tuple[int, int]]:
    """The figures a "how many X" question asks for when a sentence has "A of B X" ("shot down 13 out of 24
    drones", "220 of its 310 members"): the part A, unless the question asks for the whole ("how many members
    does it have", "how many were launched") or the question's own words follow B's noun ("24 drones launched")."""
    out: set[tuple[int, int]] = set()
    asked = {t for t, _ in query.weights}
    for a, b in zip(spans, spans[1:], strict=False):
        if not _OF.match(sentence[a.end : b.start]):
            continue
        after = re.findall(r"[\w’'-]+", sentence[b.end : b.end + 60])
        stems = [(terms(w) or [""])[0] for w in after]
        noun_at = next((i for i, t in enumerate(stems[:4]) if query.measured and _match(t, {query.measured})), None)
        # "24 drones launched": a question word right after the noun says the question asks about B
        tail = stems[noun_at + 1] if noun_at is not None and noun_at + 1 < len(stems) else ""
        whole = bool(_WHOLE.search(query.question)) or (bool(tail) and tail in asked - {query.measured})
        out.add((b.start, b.end) if whole else (a.start, a.end))
    return out


def _near_terms(query: Query, sentence: str, span: Span, width: int = 60) -> set[str]:
    """The question's terms written within `width` characters of a figure: what the figure is said of."""
    window = set(terms(sentence[max(0, span.start - width) : span.start] + " " + sentence[span.end : span.end + width]))
    return {t for t, _ in query.weights if _match(t, window)}


def _noun_terms(query: Query) -> set[str]:
    """The question's names and nouns (full weight): a claim may name them differently ("soldiers" for "troops")."""
    return {t for t, w in query.weights if w >= 1.0}


def _value_key(kind: str, text: str) -> object:
    if kind in (NUMBER, DURATION):
        value = number_value(text)
        if value is not None:
            return value
    return " ".join(words(text))
