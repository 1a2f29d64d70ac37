"""One browser session's conversation: its turns in order, the questions still waiting, who is answering them.

Why a server-side object per session: a question sent while the previous answer is being computed must wait
its turn and never be lost. Gradio hands each event the component values of the moment it was triggered, so
two overlapping events that both rewrite the chat log would overwrite each other's turns. Instead every
event reads and changes this one object (Gradio keeps a `gr.State` value per session and passes the same
object to every event of that session) and the chat log is always rendered from it. Exactly one "drain" at a
time answers the waiting turns, oldest first; a drain started while another runs returns at once.

What survives a page reload is `stored()`: the finished turns (question, history, answer) as JSON for the
browser's own storage (`gr.BrowserState`); `restore()` reads it back, validating every field and dropping
what does not parse, since the browser may hand back anything. Nothing is kept on the server between sessions.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app import render
from app.schema import AnswerModel, to_answer
from rag.types import Answer
from rag.types import Turn as Earlier

MAX_STORED = 30  # finished turns kept in the browser; older ones are dropped from storage (not from the page)
MAX_STORED_HISTORY = 10  # earlier questions kept with each stored turn (a follow-up chain rarely reaches back further)
_STORED_FIELDS = ("question", "text", "quotes", "abstained", "conflicts", "related", "answer_type",
                  "resolved_question", "mode", "notes")  # what rendering and feedback need; not retrieved/timings
_lock = threading.Lock()  # guards every Conversation; each critical section is a few list operations


@dataclass
class Turn:
    """One question and what the page shows for it. `status`: queued, answering, done (an answer) or error."""

    question: str
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    status: str = "queued"
    history: tuple[str, ...] = ()  # the earlier questions it was answered with (fixed when answering starts)
    earlier: tuple[Earlier, ...] = ()  # the same turns with the answers they got: what the reader resolves against
    answer: Answer | None = None
    bubble: str = ""  # the assistant's side as rendered HTML; empty while queued
    error: str = ""  # the message shown instead of an answer


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)
    owner: object | None = None  # the drain answering this conversation now, if any


def add(conv: Conversation, question: str) -> Turn:
    """Queue a question; it is answered after every earlier one."""
    turn = Turn(question)
    with _lock:
        conv.turns.append(turn)
    return turn


def claim(conv: Conversation) -> object | None:
    """Become the one drain of this conversation; None when another drain is already answering it."""
    with _lock:
        if conv.owner is not None:
            return None
        conv.owner = token = object()
        return token


def next_turn(conv: Conversation, token: object) -> Turn | None:
    """The oldest queued turn, now marked as being answered with the questions answered before it; None (and
    the claim released) when nothing waits or when `token` no longer owns the conversation (it was cleared)."""
    with _lock:
        if conv.owner is not token:
            return None
        for position, turn in enumerate(conv.turns):
            if turn.status == "queued":
                turn.status = "answering"
                done = [t for t in conv.turns[:position] if t.status == "done" and t.answer is not None]
                turn.history = tuple(t.question for t in done)
                turn.earlier = tuple(Earlier(t.question, t.answer.text, t.answer.abstained, t.answer.resolved_question)
                                     for t in done if t.answer is not None)
                return turn
        conv.owner = None
        return None


def owns(conv: Conversation, token: object) -> bool:
    with _lock:
        return conv.owner is token


def release(conv: Conversation, token: object) -> None:
    with _lock:
        if conv.owner is token:
            conv.owner = None


def clear(conv: Conversation) -> None:
    """Start over: forget every turn; a drain still answering one finds it gone and stops."""
    with _lock:
        conv.turns.clear()
        conv.owner = None


def messages(conv: Conversation) -> list[dict[str, str]]:
    """The chat log: each turn's question (unless blank) and its assistant side."""
    with _lock:
        turns = list(conv.turns)
    out: list[dict[str, str]] = []
    for turn in turns:
        if turn.question.strip():
            out.append({"role": "user", "content": render.render_user(turn.question)})
        bubble = turn.bubble or (render.render_queued() if turn.status == "queued" else render.render_pending())
        out.append({"role": "assistant", "content": bubble})
    return out


def turn_at(conv: Conversation, message_index: int) -> Turn | None:
    """The turn whose assistant message is at `message_index` of `messages()` (what a like event names)."""
    with _lock:
        turns = list(conv.turns)
    index = -1
    for turn in turns:
        index += 2 if turn.question.strip() else 1
        if index == message_index:
            return turn
        if index > message_index:
            return None
    return None


def latest_answer(conv: Conversation) -> Answer | None:
    with _lock:
        done = [t.answer for t in conv.turns if t.answer is not None]
    return done[-1] if done else None


def stored(conv: Conversation) -> list[dict[str, Any]]:
    """The finished turns as JSON for the browser's storage (the last MAX_STORED)."""
    with _lock:
        turns = [t for t in conv.turns if t.status in ("done", "error")]
    out = []
    for turn in turns[-MAX_STORED:]:
        item: dict[str, Any] = {"id": turn.id, "question": turn.question, "history": list(turn.history[-MAX_STORED_HISTORY:])}
        if turn.answer is not None:
            full = turn.answer.to_dict()
            item["answer"] = {k: full[k] for k in _STORED_FIELDS}
        else:
            item["error"] = turn.error
        out.append(item)
    return out


def restore(data: Any) -> Conversation:
    """A conversation from what `stored()` wrote; anything malformed (an old format, a tampered value) is
    dropped. Everything is rendered again from data, never taken as stored markup."""
    conv = Conversation()
    if not isinstance(data, list):
        return conv
    for item in data[-MAX_STORED:]:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            continue
        history = item.get("history")
        history = tuple(h for h in history if isinstance(h, str)) if isinstance(history, list) else ()
        turn_id = item.get("id") if isinstance(item.get("id"), str) and item["id"].isalnum() else secrets.token_hex(6)
        turn = Turn(item["question"], id=turn_id, history=history)
        if isinstance(item.get("answer"), dict):
            try:
                turn.answer = to_answer(AnswerModel.model_validate(item["answer"]))
            except ValidationError:
                continue
            turn.status, turn.bubble = "done", render.render_answer(turn.answer)
        else:
            error = item.get("error") if isinstance(item.get("error"), str) else ""
            turn.status, turn.error = "error", error or "this question was not answered"
            turn.bubble = render.render_error(turn.error)
        conv.turns.append(turn)
    return conv
