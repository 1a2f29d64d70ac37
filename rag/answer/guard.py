"""The citation guard: checks a language model's answer against the numbered passages it was given.

A pure function from (generated text, passages) to a verified result, so it is tested without any model:
- every [n] must name a passage that was given and share words with it; otherwise the marker is removed;
- every quoted span must be a verbatim span of the cited passage, up to whitespace and quote style; a near
  miss that is clearly the same words is repaired to the passage's real span, anything else is removed
  together with its sentence and flagged;
- the [n] of a sentence with a verified quote is where that quote was found, whatever number the model wrote;
- with `require_quote` (the default, and what the llm reader uses) every kept sentence has verbatim support:
  its own verified quote, or else one passage sentence holding most of its content words and every figure it
  states (that sentence becomes its quote, cited where it is found); anything else, a marker-only fragment
  included, is removed, and so is a quoted sentence stating a figure its passage does not hold: a small
  model's unsupported claims are where it invents. Without it, an uncited sentence whose words the passages
  do not cover is flagged;
- each surviving marker is renumbered to point at a `Quote` (the verified quote of that sentence, or the
  passage sentence that best supports it), so the LLM answer carries quotes exactly like the extractive one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from rag.text import terms
from rag.types import Passage, Quote

REPAIR_MIN = 85.0  # rapidfuzz ratio of a misquote to the real span for it to count as "the same sentence"
REPAIR_MIN_CHARS = 12  # shorter quotes are too short to call anything "clearly the same"
CITED_MIN = 0.3  # share of a cited sentence's content words its passage must contain
SUPPORT_MIN = 0.6  # with require_quote: share of an unquoted sentence's content words one passage sentence must hold
UNCITED_MIN = 0.5  # share of an uncited sentence's content words the passages together must contain

_MARKER = re.compile(r"\[\s*(?:(?:passage|source)\s*)?(\d+(?:\s*[,;]\s*(?:(?:passage|source)\s*)?\d+)*)\s*\]", re.IGNORECASE)
_QUOTE = re.compile(r"[\"“„«]([^\"“”„«»\n]{1,800}?)[\"”»]")
_SENTENCE_END = re.compile(r"[.!?]+[\"”’)]*(?:\s*\[[^\]\n]{1,40}\])*\s+|\n+")
_QUOTE_STYLE = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "`": "'"})
_EDGE = " \t\n.,;:!?"
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True, slots=True)
class Guarded:
    """The checked answer: text with renumbered markers, its quotes, counts, and what was flagged."""

    text: str
    quotes: tuple[Quote, ...]
    report: dict[str, int] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Nothing verifiable survived: the caller should fall back to the extractive answer."""
        return not self.quotes or not self.text.strip()


@dataclass(frozen=True, slots=True)
class _Span:
    """A verified span of passage `index` (0-based), offsets relative to its chunk text."""

    index: int
    start: int
    end: int
    text: str


def _normalise(text: str) -> tuple[str, list[int]]:
    """`text` with whitespace runs folded to one space and curly quotes made straight, and each
    normalised character's index in `text`, so a match in the normalised text maps back to offsets."""
    out: list[str] = []
    where: list[int] = []
    for i, char in enumerate(text.translate(_QUOTE_STYLE)):
        if char.isspace():
            if not out or out[-1] == " ":
                continue
            char = " "
        out.append(char)
        where.append(i)
    return "".join(out), where


def _find_verbatim(quote: str, passage: Passage, index: int) -> _Span | None:
    needle, _ = _normalise(quote)
    hay, where = _normalise(passage.chunk.text)
    at = hay.find(needle) if needle else -1
    if at < 0:
        return None
    start, end = where[at], where[at + len(needle) - 1] + 1
    return _Span(index, start, end, passage.chunk.text[start:end])


def _find_repair(quote: str, passage: Passage, index: int) -> tuple[float, _Span] | None:
    """The passage span closest to a misquote, snapped to whole words, with its similarity."""
    needle, _ = _normalise(quote)
    if len(needle) < REPAIR_MIN_CHARS:
        return None
    text = passage.chunk.text
    hay, where = _normalise(text)
    align = fuzz.partial_ratio_alignment(needle.lower(), hay.lower())
    if align is None or align.dest_end <= align.dest_start:
        return None
    start, end = where[align.dest_start], where[align.dest_end - 1] + 1
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    span = text[start:end].strip(_EDGE)
    if not span:
        return None
    start = text.index(span, start)
    score = fuzz.ratio(needle.lower(), _normalise(span)[0].lower())
    return score, _Span(index, start, start + len(span), span)


def _best_sentence(claim: set[str], passage: Passage, index: int) -> tuple[float, _Span]:
    """The passage sentence sharing most content words with the claim, and the share it covers."""
    chunk = passage.chunk
    spans = [(s - chunk.start, e - chunk.start) for s, e in chunk.sentences] or [(0, len(chunk.text))]
    best: tuple[float, _Span] | None = None
    for s, e in spans:
        text = chunk.text[s:e]
        stripped = text.strip()
        if not stripped:
            continue
        s += text.index(stripped)
        share = len(claim & set(terms(stripped))) / len(claim) if claim else 0.0
        if best is None or share > best[0]:
            best = (share, _Span(index, s, s + len(stripped), stripped))
    if best is None:
        return 0.0, _Span(index, 0, len(chunk.text), chunk.text)
    return best


def _quote_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _QUOTE.finditer(text)]


def _sentence_ends(text: str, quotes: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence end in `text`, in order; a full stop inside a quotation is not one.
    The one definition both `_sentences` and `settled_end` cut by, so streaming and the final guard agree."""
    for m in _SENTENCE_END.finditer(text):
        if not any(s < m.start() < e and m.end() < e for s, e in quotes):
            yield m.start(), m.end()


def _sentences(text: str) -> list[str]:
    """Split generated text into sentences, never inside a quotation and keeping trailing markers."""
    cuts = [0, *(end for _, end in _sentence_ends(text, _quote_spans(text))), len(text)]
    return [text[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _tidy(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()


def _markers(sentence: str, count: int) -> tuple[list[int], int, int]:
    """0-based passage indexes cited in the sentence (in order, once each), markers seen, markers invalid."""
    cited: list[int] = []
    seen = bad = 0
    for m in _MARKER.finditer(sentence):
        for number in re.findall(r"\d+", m.group(1)):
            seen += 1
            n = int(number)
            if 1 <= n <= count:
                if n - 1 not in cited:
                    cited.append(n - 1)
            else:
                bad += 1
    return cited, seen, bad


def _figures(text: str) -> set[str]:
    return {m.group().replace(",", "") for m in _FIGURE.finditer(text)}


def guard(text: str, passages: Sequence[Passage], *, require_quote: bool = True) -> Guarded:
    """Check `text` (a model's answer citing `passages` as [1]..[len]) and return only what holds up.

    With `require_quote` every kept sentence carries at least one verified quote and cites exactly the passages
    its quotes were found in."""
    report = dict.fromkeys(
        ("markers_checked", "markers_repaired", "markers_removed", "quotes_checked", "quotes_verbatim",
         "quotes_repaired", "quotes_removed", "sentences_removed", "sentences_flagged"), 0
    )
    flags: list[str] = []
    numbers: dict[tuple[str, int, int], int] = {}
    quotes: list[Quote] = []
    out: list[str] = []

    def number_of(span: _Span) -> int:
        passage = passages[span.index]
        key = (passage.chunk.article_id, passage.chunk.start + span.start, passage.chunk.start + span.end)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
            quotes.append(Quote(numbers[key], key[0], passage.title, key[1], key[2], span.text))
        return numbers[key]

    for sentence in _sentences(text):
        cited, seen, bad = _markers(sentence, len(passages))
        report["markers_checked"] += seen
        report["markers_removed"] += bad
        if bad:
            flags.append(f"removed {bad} citation marker(s) that point at no passage")
        body = _tidy(_MARKER.sub("", sentence))
        claim = set(terms(body))
        # Check the quotations first: a sentence with a made-up quote is dropped whole.
        checked: list[tuple[re.Match[str], _Span]] = []
        supported: _Span | None = None
        dropped = False
        for m in _QUOTE.finditer(body):
            inner = m.group(1).strip(_EDGE)
            if not inner:
                continue
            report["quotes_checked"] += 1
            order = cited + [i for i in range(len(passages)) if i not in cited]
            span = next((s for i in order if (s := _find_verbatim(inner, passages[i], i))), None)
            if span is not None:
                report["quotes_verbatim"] += 1
            else:
                tries = [r for i in order if (r := _find_repair(inner, passages[i], i))]
                best = max(tries, key=lambda r: r[0], default=None)
                if best is not None and best[0] >= REPAIR_MIN:
                    span = best[1]
                    report["quotes_repaired"] += 1
                    flags.append(f"repaired a misquote to the passage's words: “{inner}” → “{span.text}”")
            if span is None:
                report["quotes_removed"] += 1
                flags.append(f"removed a sentence whose quote is in no passage: “{_short(inner)}”")
                dropped = True
                break
            if span.index not in cited:
                report["markers_repaired"] += 1
                cited.append(span.index)
            checked.append((m, span))
        if not dropped and require_quote and not checked:
            support = _supporting_sentence(claim, body, passages)
            if support is None:
                if claim:
                    flags.append(f"removed a sentence no passage sentence supports word for word: “{_short(body)}”")
                dropped = True
            else:  # cited where its support is, whatever number the model wrote
                report["markers_repaired"] += support.index not in cited
                report["markers_removed"] += sum(1 for i in cited if i != support.index)
                cited, supported = [support.index], support
        if not dropped and require_quote and checked:
            dropped = _invented_figure(body, checked, passages, flags)
        if dropped:
            report["sentences_removed"] += bool(claim)
            report["markers_removed"] += len(cited)
            continue
        if checked and require_quote:
            # The quotes say where the claim comes from: cite those passages, not the model's other numbers.
            found = {s.index for _, s in checked}
            report["markers_removed"] += sum(1 for i in cited if i not in found)
            cited = [i for i in cited if i in found]
        # Each cited passage must share words with the sentence; its evidence is the sentence's quote from
        # that passage, else the passage sentence that best supports the claim.
        evidence: list[int] = []
        for index in cited:
            quoted = next((s for _, s in checked if s.index == index), None)
            if quoted is None and supported is not None and supported.index == index:
                quoted = supported
            if quoted is None:
                share, quoted = _best_sentence(claim, passages[index], index)
                if claim and share < CITED_MIN:
                    report["markers_removed"] += 1
                    flags.append(f"removed citation [{index + 1}]: that passage does not support “{_short(body)}”")
                    continue
            n = number_of(quoted)
            if n not in evidence:
                evidence.append(n)
        for m, span in reversed(checked):  # the passage's own words replace the model's, edge punctuation kept
            at = m.start(1) + len(m.group(1)) - len(m.group(1).lstrip(_EDGE))
            body = body[:at] + span.text + body[at + len(m.group(1).strip(_EDGE)):]
        if not evidence and claim:
            covered = set().union(*(terms(p.chunk.text) for p in passages)) if passages else set()
            if len(claim & covered) / len(claim) < UNCITED_MIN:
                report["sentences_flagged"] += 1
                flags.append(f"not supported by the articles: “{_short(body)}”")
        if evidence:
            marks = "".join(f"[{n}]" for n in evidence)
            tail = re.search(r"[.!?]+$", body)
            body = f"{body[: tail.start()]} {marks}{tail.group()}" if tail else f"{body} {marks}"
        out.append(body)
    return Guarded(" ".join(out).strip(), tuple(quotes), report, tuple(flags))


def _supporting_sentence(claim: set[str], body: str, passages: Sequence[Passage]) -> _Span | None:
    """For an unquoted sentence: the passage sentence that holds at least SUPPORT_MIN of its content words and
    every figure it states, best first; None when no passage sentence does (the sentence is then removed)."""
    if not claim:
        return None
    figures = _figures(body)
    best: tuple[float, _Span] | None = None
    for i, passage in enumerate(passages):
        share, span = _best_sentence(claim, passage, i)
        if share >= SUPPORT_MIN and figures <= _figures(span.text) and (best is None or share > best[0]):
            best = (share, span)
    return best[1] if best else None


def _invented_figure(body: str, checked: list[tuple[re.Match[str], _Span]], passages: Sequence[Passage],
                     flags: list[str]) -> bool:
    """True (and a flag) when a quoted sentence states a figure outside its quotes that the passages its quotes
    come from do not hold."""
    outside = _QUOTE.sub(" ", body)
    held = set().union(*(_figures(passages[i].chunk.text) for i in {s.index for _, s in checked}))
    invented = _figures(outside) - held
    if invented:
        flags.append(f"removed a sentence stating a figure its passage does not hold ({', '.join(sorted(invented))}): "
                     f"“{_short(body)}”")
        return True
    return False


# ---------------------------------------------------------------- streaming: which sentences are final
# A streamed answer is guarded sentence by sentence, and the guard above splits with `_sentences`. To show a
# sentence early and still match what `guard` later does with the whole text, we must know which cuts can no
# longer move however the text goes on: a regex attempt whose outcome depends on characters not yet received
# is one whose remaining text is still a possible beginning of a match. These patterns accept every such
# beginning (a superset is fine: it only delays a sentence).
_PARTIAL_END = re.compile(r"[.!?]+[\"”’)]*(?:\s*\[[^\]\n]{1,40}\])*\s*(?:\[[^\]\n]{0,40})?|\n+")
_PARTIAL_QUOTE = re.compile(r"[\"“„«][^\"“”„«»\n]{0,800}")
_QUOTE_CHARS = "\"“”„«»"


def settled_end(text: str) -> int:
    """The offset in a growing `text` up to which its sentences are final.

    `_sentences(text[:end])` equals the first sentences of `_sentences(text + anything)`, so
    `guard(text[:end], passages)` is, sentence for sentence, the start of the guard's result for the whole
    answer. A sentence is final once the text after it has begun a new sentence (or a stream has ended).
    """
    # The first place where the sentence-end pattern might still match differently.
    open_end = next(
        (p for p, char in enumerate(text) if char in ".!?\n" and _PARTIAL_END.fullmatch(text, p)), len(text)
    )
    quotes = _quote_spans(text)
    # A quotation still open: only the last quote character can start one, unless a finished quotation ends there.
    open_quote = len(text)
    last = max((text.rfind(c) for c in _QUOTE_CHARS), default=-1)
    if last >= 0 and not any(s <= last < e for s, e in quotes) and _PARTIAL_QUOTE.fullmatch(text, last):
        open_quote = last
    limit = min(open_end, open_quote)
    return max((end for start, end in _sentence_ends(text, quotes) if start < limit), default=0)
