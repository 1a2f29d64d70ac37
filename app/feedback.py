"""Users' thumbs up/down on answers, kept as a question set that `rag eval feedback.jsonl` replays.

One JSON object a line in our question-set format (/work/shared/eval/README.md): `id`, `question`,
`history`, `answers`, `sources`, `type`, plus what the user judged: `verdict` ("up"/"down"), `correction`
(the right answer the user typed, if any), `given` (the answer shown: text, mode, quotes) and `created_at`.
What `rag eval` expects from a replay:
  up, answered        -> `answers` is the answer given (markers stripped), `sources` its quoted articles:
                         a regression test of an answer a user confirmed;
  up, abstained       -> no `answers`, type "unanswerable": it must keep saying "the articles don't say";
  down, correction    -> `answers` is the correction;
  down, no correction -> no `answers`, type "rejected": the given answer was wrong and nobody said what is
                         right; replayed it counts as right only by abstaining, and its own type keeps it
                         apart in the report until someone fills in `answers`.
A second vote on the same answer (or a correction after a thumbs-down) replaces its line: the file is rewritten
to a temporary file and renamed, under a lock, so a reader never sees half a file. One process writes it.

User text only ever goes into JSON strings here (json.dumps escapes it); it is never executed or rendered.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.types import Answer

MAX_CORRECTION_CHARS = 500
_MARKERS = re.compile(r"\s*\[\d+\]")
_lock = threading.Lock()


class FeedbackError(RagError):
    """The feedback could not be recorded (a bad value, or the file cannot be written)."""


def _type(answer: Answer, history: tuple[str, ...], answers: list[str], verdict: str) -> str:
    if not answers:
        return "unanswerable" if verdict == "up" else "rejected"
    if history and " ".join(answer.resolved_question.split()) != " ".join(answer.question.split()):
        return "followup"  # the library read it with the earlier turns
    if answer.conflicts and verdict == "up":
        return "conflict"
    return "number" if answer.answer_type == "number" else "fact"


def record_for(turn_id: str, question: str, history: tuple[str, ...], answer: Answer, verdict: str,
               correction: str = "") -> dict[str, Any]:
    """The question-set line for one verdict on one answer."""
    if verdict not in ("up", "down"):
        raise FeedbackError(f"verdict must be 'up' or 'down', got {verdict!r}")
    correction = " ".join(correction.split())
    if len(correction) > MAX_CORRECTION_CHARS:
        raise FeedbackError(f"the correction is too long ({len(correction)} characters; at most {MAX_CORRECTION_CHARS})")
    if verdict == "up":
        given = _MARKERS.sub("", answer.text).strip().rstrip(".")
        answers = [] if answer.abstained or not given else [given]
        sources = sorted({q.article_id for q in answer.quotes}) if answers else []
    else:
        answers, sources = ([correction] if correction else []), []
    return {
        "id": f"fb-{turn_id}",
        "question": question,
        "history": list(history),
        "answers": answers,
        "sources": sources,
        "type": _type(answer, history, answers, verdict),
        "verdict": verdict,
        "correction": correction,
        "given": {
            "text": answer.text, "mode": answer.mode, "abstained": answer.abstained,
            "quotes": [{"n": q.n, "article_id": q.article_id, "start": q.start, "end": q.end, "text": q.text}
                       for q in answer.quotes],
        },
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


class FeedbackLog:
    """Appends (or replaces, by id) verdict lines in one JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        with _lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
                kept = [old for old in lines if old.strip() and _id_of(old) != record["id"]]
                handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".feedback-", suffix=".tmp")
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write("\n".join([*kept, line]) + "\n")
                os.replace(tmp, self.path)
            except OSError as exc:
                raise FeedbackError(f"cannot write the feedback file {self.path}: {exc.strerror or exc}") from None


def _id_of(line: str) -> str | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value.get("id") if isinstance(value, dict) else None
