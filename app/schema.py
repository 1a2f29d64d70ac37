"""The JSON API's declared shapes: the response model generated from `rag.types.Answer`, and the request body.

They exist so `/api/docs` and `/api/openapi.json` show what POST /api/ask takes and returns. The library keeps
its own frozen dataclasses (no pydantic in rag/: it would cost a cold `rag ask` ~0.1 s of imports);
`model_of` reads their fields (names, types, defaults) when this module is imported, so a field added to
`Answer`, or to a type inside it, is in the API's schema without a change here. Nested dataclasses (Quote,
Conflict, Claim, Retrieved) are validated by pydantic as they are, into instances of themselves.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.service import MAX_HISTORY
from rag.types import Answer, Quote, Retrieved, Turn

MAX_TURN_CHARS = 10_000  # an earlier question (or its reading) in a history
MAX_ANSWER_CHARS = 20_000  # the answer the chat showed for it

Mode = Literal["auto", "extractive", "llm"]  # rag.config.ANSWER_MODES; the schema test checks they agree


def model_of(kind: type, name: str, config: ConfigDict | None = None) -> type[BaseModel]:
    """A pydantic model named `name` with the fields of the dataclass `kind`: the same names in the same order,
    the same type hints and defaults, its docstring as the description."""
    hints = typing.get_type_hints(kind)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (hints[f.name], default)
    return create_model(name, __config__=config, __doc__=kind.__doc__, __module__=__name__, **fields)


_QUOTE = Quote(1, "001_532b7867ba6e277e.txt", "North Korean troops in Russia", 136, 214,
               "Approximately 10,000 soldiers from North Korea have been sent to Russia.")
EXAMPLE_ANSWER = Answer(
    question="How many North Korean troops were sent to Russia?", text="Approximately 10,000 [1]", quotes=(_QUOTE,),
    answer_type="number", resolved_question="How many North Korean troops were sent to Russia?",
    retrieved=(Retrieved(1, _QUOTE.article_id, _QUOTE.title, 0, 560, 0.0328),),
    timings={"analyse_ms": 4.1, "retrieve_ms": 12.5, "answer_ms": 3.2, "total_ms": 19.8},
).to_dict()  # every field, the new ones with their defaults

AnswerModel = model_of(Answer, "AnswerModel", ConfigDict(json_schema_extra={"examples": [EXAMPLE_ANSWER]}))


class HistoryTurn(BaseModel):
    """An earlier turn with what it got: the chat and the widget send these, so a follow-up resolves against the
    latest turn that was answered (`abstained` false). Without `answer`/`abstained` the server answers it first."""

    model_config = ConfigDict(extra="forbid")
    # bounded: every earlier turn is parsed (spaCy) and may be answered again, so one body cannot carry megabytes
    question: str = Field(max_length=MAX_TURN_CHARS)
    answer: str = Field(default="", max_length=MAX_ANSWER_CHARS)
    abstained: bool | None = None
    resolved_question: str = Field(default="", max_length=MAX_TURN_CHARS)


class AskRequest(BaseModel):
    """The body of POST /api/ask. `history` holds the earlier turns of the chat, oldest first: their questions
    (strings, as older clients send them) or {question, answer, abstained} objects; `mode` asks for one answer
    mode for this question (default: the server's `answer_mode`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": "How many North Korean troops were sent to Russia?", "history": [], "mode": "extractive"}]})
    question: str
    history: list[Annotated[str, Field(max_length=MAX_TURN_CHARS)] | HistoryTurn] = Field(
        default_factory=list, max_length=MAX_HISTORY)

    def turns(self) -> list[Turn | str]:
        """The history as the library takes it (converted here, at the edge)."""
        return [h if isinstance(h, str) else Turn(h.question, h.answer, h.abstained, h.resolved_question)
                for h in self.history]
    mode: Mode | None = None


def to_answer(model: BaseModel) -> Answer:
    """The library's `Answer` back from its JSON form (an answer kept in the browser, read again on reload):
    `model` is an AnswerModel, whose nested values pydantic has already made Quotes, Conflicts, tuples."""
    return Answer(**{f.name: getattr(model, f.name) for f in dataclasses.fields(Answer)})
