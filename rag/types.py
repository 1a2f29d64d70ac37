"""Our own small frozen data types: what crosses a stage boundary and what every face shows.

Library types (llama-index nodes, numpy arrays, FAISS row numbers) never appear here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ArticleHeader:
    """What a list of articles shows: no text, so listing a large index reads little."""

    id: str
    title: str
    published_at: str = ""


@dataclass(frozen=True, slots=True)
class Article:
    """One article. `text` is what offsets point into; for .txt/.md files it is the file's text."""

    id: str
    title: str
    text: str
    path: str = ""
    url: str = ""
    published_at: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of whole sentences of one article: `article.text[start:end] == text`, always.

    `sentences` holds the absolute (start, end) span of each sentence inside the chunk.
    """

    id: str
    article_id: str
    text: str
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """An analysed question: what to retrieve with, what to match, what kind of answer to look for."""

    question: str
    resolved: str
    answer_type: str
    weights: tuple[tuple[str, float], ...]  # stemmed term of this turn -> weight by part of speech
    context: tuple[tuple[str, float], ...]  # stemmed terms of the earlier turns a follow-up leans on
    words: tuple[str, ...]  # lower-cased words of the resolved question, for excluding echoed entities
    is_followup: bool
    head_noun: str = ""  # the noun a "which/what X" question asks for: "region", "agency"
    measured: str = ""  # stem of the noun a "how many X" question counts: "troop"
    names: tuple[str, ...] = ()  # stems of the names the question is about: an answer comes from where they appear


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier turn of a chat, as the reader sees it: the question, and what it got when that is known.

    `abstained` is True when the turn was not answered (off-topic, unanswerable), False when it was, None when
    the caller sent only the question (an evaluator's file, an old API client): the assistant then answers it
    itself, in order, so the reading is the one the chat gets. `resolved` is the reading that turn was answered
    as (its `Answer.resolved_question`), so a chain of follow-ups resolves through it."""

    question: str
    answer: str = ""
    abstained: bool | None = None
    resolved: str = ""


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its fused score and 1-based rank.

    `sentence_scores` are the dense similarities of the question to each of the chunk's sentences,
    aligned with `chunk.sentences`, so the answer step needs no model call.
    """

    chunk: Chunk
    title: str
    score: float
    rank: int
    sentence_scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """A verbatim span of an article: `article.text[start:end] == text`. `n` is its 1-based [n] marker."""

    n: int
    article_id: str
    title: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Claim:
    """One of several disagreeing values, with the markers of the quotes that state it."""

    value: str
    quotes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    """The articles give different values for the same thing the question asks about."""

    about: str
    claims: tuple[Claim, ...]


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A reference to one retrieved passage, kept in the answer so evaluators can score retrieval."""

    rank: int
    article_id: str
    title: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    """What every face shows: the CLI's --json, the API, the chat and the evaluator.

    `text` is the short answer with [n] markers pointing into `quotes`. When `abstained` is true the
    articles do not answer the question, `quotes` is empty, and `related` lists the closest passages.
    """

    question: str
    text: str
    quotes: tuple[Quote, ...] = ()
    abstained: bool = False
    conflicts: tuple[Conflict, ...] = ()
    related: tuple[Quote, ...] = ()
    answer_type: str = "description"
    resolved_question: str = ""
    mode: str = "extractive"
    retrieved: tuple[Retrieved, ...] = ()
    timings: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    notes: tuple[str, ...] = ()
    # What the citation guard checked in an LLM answer (markers/quotes checked, repaired, removed); empty otherwise.
    guard: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the one structure the CLI, the API and the evaluator print."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One step of `Assistant.ask_stream`. A draft (`final` false) holds only guard-verified sentences and their
    quotes; the final event's answer is what `Assistant.ask` returns."""

    answer: Answer
    final: bool = False


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file (or a record in one) that ingest passed over, and why."""

    path: str
    reason: str
