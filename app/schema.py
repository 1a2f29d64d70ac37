"""The JSON API's declared shapes: pydantic models of `rag.types.Answer` and of the request bodies.

They exist so `/api/docs` and `/api/openapi.json` show what POST /api/ask takes and returns. The library keeps
its own frozen dataclasses (no pydantic in rag/); these models mirror them field for field, and
tests/test_app_schema.py fails the day the two drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.service import MAX_HISTORY
from rag.types import Answer, Claim, Conflict, Quote, Retrieved

Mode = Literal["auto", "extractive", "llm"]  # rag.config.ANSWER_MODES; the schema test checks they agree

_QUOTE = {
    "n": 1, "article_id": "001_532b7867ba6e277e.txt", "title": "North Korean troops in Russia",
    "start": 136, "end": 214, "text": "Approximately 10,000 soldiers from North Korea have been sent to Russia.",
}
EXAMPLE_ANSWER = {
    "question": "How many North Korean troops were sent to Russia?",
    "text": "Approximately 10,000 [1]",
    "quotes": [_QUOTE],
    "abstained": False,
    "conflicts": [],
    "related": [],
    "answer_type": "number",
    "resolved_question": "How many North Korean troops were sent to Russia?",
    "mode": "extractive",
    "retrieved": [{"rank": 1, "article_id": _QUOTE["article_id"], "title": _QUOTE["title"], "start": 0, "end": 560,
                   "score": 0.0328}],
    "timings": {"analyse_ms": 4.1, "retrieve_ms": 12.5, "answer_ms": 3.2, "total_ms": 19.8},
    "notes": [],
    "guard": {},
}


class QuoteModel(BaseModel):
    """A verbatim span of an article: the article's text[start:end] is `text`; `n` is its [n] marker."""

    n: int
    article_id: str
    title: str
    start: int
    end: int
    text: str


class ClaimModel(BaseModel):
    """One of several disagreeing values, with the markers of the quotes that state it."""

    value: str
    quotes: list[int]


class ConflictModel(BaseModel):
    """The articles give different values for what the question asks."""

    about: str
    claims: list[ClaimModel]


class RetrievedModel(BaseModel):
    """One retrieved passage (for scoring retrieval)."""

    rank: int
    article_id: str
    title: str
    start: int
    end: int
    score: float


class AnswerModel(BaseModel):
    """The answer: `text` with [n] markers into `quotes`; `abstained` when the articles don't say (then `related`
    lists the closest passages); `mode` says who wrote `text` ("extractive" quotes, or "llm" checked by the guard)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ANSWER]})
    question: str
    text: str
    quotes: list[QuoteModel] = []
    abstained: bool = False
    conflicts: list[ConflictModel] = []
    related: list[QuoteModel] = []
    answer_type: str = "description"
    resolved_question: str = ""
    mode: str = "extractive"
    retrieved: list[RetrievedModel] = []
    timings: dict[str, float] = {}
    notes: list[str] = []
    guard: dict[str, int] = {}


class AskRequest(BaseModel):
    """The body of POST /api/ask. `history` holds the earlier user questions of the chat, oldest first; `mode`
    asks for one answer mode for this question (default: the server's `answer_mode`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": "How many North Korean troops were sent to Russia?", "history": [], "mode": "extractive"}]})
    question: str
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY)
    mode: Mode | None = None


def to_answer(model: AnswerModel) -> Answer:
    """The library's `Answer` back from its JSON form (an answer kept in the browser, read again on reload)."""
    def quote(q: QuoteModel) -> Quote:
        return Quote(q.n, q.article_id, q.title, q.start, q.end, q.text)

    return Answer(
        question=model.question, text=model.text, quotes=tuple(quote(q) for q in model.quotes),
        abstained=model.abstained,
        conflicts=tuple(Conflict(c.about, tuple(Claim(k.value, tuple(k.quotes)) for k in c.claims)) for c in model.conflicts),
        related=tuple(quote(q) for q in model.related), answer_type=model.answer_type,
        resolved_question=model.resolved_question, mode=model.mode,
        retrieved=tuple(Retrieved(r.rank, r.article_id, r.title, r.start, r.end, r.score) for r in model.retrieved),
        timings=dict(model.timings), notes=tuple(model.notes), guard=dict(model.guard),
    )
