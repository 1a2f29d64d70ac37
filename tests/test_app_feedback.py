"""Feedback as a question set, the conversation kept in the browser, and the API's declared schema: the pure
parts of app/feedback.py, app/conversation.py and app/schema.py, without a server."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from app import conversation, render
from app.conversation import Conversation
from app.feedback import FeedbackError, FeedbackLog, record_for
from app.schema import AnswerModel, AskRequest, Mode, model_of, to_answer
from rag.config import ANSWER_MODES
from rag.eval.run import load_questions
from rag.types import Answer, Claim, Conflict, Quote, Retrieved

EVIL = '<script>window.__x = 1</script><img src=x onerror="alert(1)">'
QUOTE = Quote(1, "a.txt", "Harbour news", 10, 40, "The harbour reopened on Monday.")
ANSWER = Answer(question="When did the harbour reopen?", text="on Monday [1]", quotes=(QUOTE,), answer_type="date",
                resolved_question="When did the harbour reopen?",
                retrieved=(Retrieved(1, "a.txt", "Harbour news", 0, 80, 0.5),), timings={"total_ms": 3.0})


@dataclasses.dataclass(frozen=True, slots=True)
class Speaker:
    """A type as rag/types.py would hold it, nested in the next."""

    name: str
    role: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    text: str
    speakers: tuple[Speaker, ...] = ()
    scores: dict[str, float] = dataclasses.field(default_factory=dict)


def test_verdicts_become_a_question_set_that_rag_eval_reads(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "sub" / "feedback.jsonl")
    abstained = Answer(question="What is the capital of Australia?", text="No passage answers this.", abstained=True)
    log.write(record_for("t1", ANSWER.question, (), ANSWER, "up"))
    log.write(record_for("t2", abstained.question, (), abstained, "up"))
    log.write(record_for("t3", "And who reopened it?", (ANSWER.question,), ANSWER, "down", f"  the   mayor {EVIL} "))
    log.write(record_for("t4", "Why?", (), ANSWER, "down"))
    qset = load_questions(log.path)
    got = {q.id: q for q in qset.questions}
    assert list(got) == ["fb-t1", "fb-t2", "fb-t3", "fb-t4"]
    assert got["fb-t1"].answers == ("on Monday",) and got["fb-t1"].sources == ("a.txt",) and got["fb-t1"].type == "fact"
    assert got["fb-t2"].answers == () and got["fb-t2"].type == "unanswerable"
    assert got["fb-t3"].answers == (f"the mayor {EVIL}",) and got["fb-t3"].history == (ANSWER.question,)
    assert got["fb-t4"].answers == () and got["fb-t4"].type == "rejected"
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert lines[0]["verdict"] == "up" and lines[0]["given"]["quotes"][0]["text"] == QUOTE.text
    assert lines[2]["correction"] == f"the mayor {EVIL}"  # kept as data, exactly; never markup


def test_a_second_verdict_on_the_same_answer_replaces_the_first(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    log.write(record_for("t1", ANSWER.question, (), ANSWER, "down"))
    log.write(record_for("t2", "Other?", (), ANSWER, "up"))
    log.write(record_for("t1", ANSWER.question, (), ANSWER, "down", "on Tuesday"))
    ids = [q.id for q in load_questions(log.path).questions]
    assert sorted(ids) == ["fb-t1", "fb-t2"]
    assert next(q for q in load_questions(log.path).questions if q.id == "fb-t1").answers == ("on Tuesday",)
    assert not list(tmp_path.glob(".feedback-*"))  # no temporary file left behind


def test_bad_feedback_is_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="verdict"):
        record_for("t", "q", (), ANSWER, "maybe")
    with pytest.raises(FeedbackError, match="too long"):
        record_for("t", "q", (), ANSWER, "down", "x" * 600)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(FeedbackError, match="cannot write"):
        FeedbackLog(blocked / "feedback.jsonl").write(record_for("t", "q", (), ANSWER, "up"))


def test_the_stored_conversation_renders_again_the_same() -> None:
    conv = Conversation()
    turn = conversation.add(conv, ANSWER.question)
    turn.status, turn.answer, turn.bubble = "done", ANSWER, render.render_answer(ANSWER)
    failed = conversation.add(conv, "   ")
    failed.status, failed.error, failed.bubble = "error", "the question is empty", render.render_error("the question is empty")
    waiting = conversation.add(conv, "not answered yet")
    saved = json.loads(json.dumps(conversation.stored(conv)))  # what the browser keeps is plain JSON
    assert [s["question"] for s in saved] == [ANSWER.question, "   "]  # the waiting one is not kept
    back = conversation.restore(saved)
    assert conversation.messages(back) == conversation.messages(conv)[:3]
    assert back.turns[0].answer == dataclasses.replace(ANSWER, retrieved=())  # what rendering and feedback need
    assert waiting.status == "queued"


@pytest.mark.parametrize("saved", [
    None, "text", [1, None, "x"], [{"question": 3}], [{"question": "q", "answer": {"text": 1}}],
    [{"question": "q", "answer": {"question": "q", "text": "t", "quotes": [{"n": "one"}]}}],
])
def test_anything_malformed_in_the_browser_storage_is_dropped(saved: object) -> None:
    assert conversation.restore(saved).turns == []


def test_a_tampered_stored_answer_is_rendered_escaped() -> None:
    saved = [{"id": "<b>", "question": EVIL, "history": [EVIL, 3],
              "answer": {"question": EVIL, "text": EVIL, "notes": [EVIL], "mode": EVIL}},
             {"question": EVIL, "error": EVIL}]
    back = conversation.restore(saved)
    assert back.turns[0].history == (EVIL,) and back.turns[0].id.isalnum()
    for message in conversation.messages(back):
        assert "<script>" not in message["content"] and "<img" not in message["content"]
        assert "&lt;script&gt;" in message["content"]


def test_the_like_index_names_the_turn() -> None:
    conv = Conversation()
    first, blank, third = (conversation.add(conv, q) for q in ("first?", " ", "third?"))
    # messages: 0 user, 1 answer(first), 2 answer(blank: no user bubble), 3 user, 4 answer(third)
    assert [conversation.turn_at(conv, i) for i in range(6)] == [None, first, blank, None, third, None]


def test_the_api_schema_is_the_answer_type() -> None:
    assert list(AnswerModel.model_fields) == [f.name for f in dataclasses.fields(Answer)]
    assert set(typing.get_args(Mode)) == set(ANSWER_MODES)
    full = Answer(question="q", text="x [1]", quotes=(QUOTE,), conflicts=(Conflict("q", (Claim("x", (1,)),)),),
                  related=(QUOTE,), retrieved=ANSWER.retrieved, timings={"total_ms": 1.5}, notes=("n",), guard={"markers_checked": 1})
    assert to_answer(AnswerModel.model_validate(full.to_dict())) == full
    as_json = json.loads(json.dumps(full.to_dict()))
    assert to_answer(AnswerModel.model_validate(as_json)) == full  # lists back to tuples, dicts back to Quotes
    assert AnswerModel.model_validate(as_json).model_dump(mode="json") == as_json  # the API sends what rag ask --json prints
    schema = AnswerModel.model_json_schema()
    assert schema["$defs"]["Quote"]["required"] == [f.name for f in dataclasses.fields(Quote)]
    example = schema["examples"][0]
    assert set(example) == set(AnswerModel.model_fields) and to_answer(AnswerModel.model_validate(example)).quotes
    with pytest.raises(ValueError, match="quotes"):
        AnswerModel.model_validate({**as_json, "quotes": [{"n": 1}]})
    with pytest.raises(ValueError, match="mode"):
        AskRequest.model_validate({"question": "q", "mode": "poetry"})


def test_a_field_added_to_a_type_is_in_its_generated_model() -> None:
    """What keeps the API's schema from drifting: a new field (here in a nested type too) needs no edit."""
    model = model_of(Reply, "ReplyModel")
    schema = model.model_json_schema()
    assert list(schema["properties"]) == ["text", "speakers", "scores"] and schema["required"] == ["text"]
    assert list(schema["$defs"]["Speaker"]["properties"]) == ["name", "role"]
    got = model.model_validate({"text": "t", "speakers": [{"name": "Ana"}]})
    assert got.speakers == (Speaker("Ana"),) and got.scores == {}


def test_a_full_stored_conversation_fits_well_inside_the_body_limit() -> None:
    """A reload sends the stored chat back in one request body; Gradio's encryption adds about a third."""
    from rag.config import Settings

    sentence = "Approximately 10,000 soldiers from North Korea have been sent to Russia, particularly around Kursk. " * 2
    quotes = tuple(Quote(n, f"00{n}_article.txt", "A long headline about the war in Ukraine " * 2, 0, len(sentence), sentence)
                   for n in range(1, 5))
    claims = tuple(Claim(f"around {n},000", (n,)) for n in range(1, 5))
    big = Answer(question="How many North Korean troops were sent to Russia? " * 3, text="The articles give different figures. " * 4,
                 quotes=quotes, conflicts=(Conflict("q" * 150, claims),), notes=("a note about the answer " * 5,) * 3)
    conv = Conversation()
    for _ in range(conversation.MAX_STORED + 10):
        turn = conversation.add(conv, big.question)
        turn.status, turn.answer, turn.history = "done", big, (big.question,) * 40
    size = len(json.dumps(conversation.stored(conv)))
    assert len(conversation.stored(conv)) == conversation.MAX_STORED
    assert size * 1.5 < Settings().max_body_bytes, size


def test_a_history_turn_is_bounded() -> None:
    """Every earlier turn is parsed and may be answered again: one request body cannot carry a megabyte turn."""
    import pydantic

    from app.schema import MAX_TURN_CHARS, AskRequest

    ok = AskRequest(question="Where is it based?", history=["x" * MAX_TURN_CHARS, {"question": "Who?", "answer": "A."}])
    assert len(ok.turns()) == 2
    for bad in (["x" * (MAX_TURN_CHARS + 1)], [{"question": "x" * (MAX_TURN_CHARS + 1)}]):
        with pytest.raises(pydantic.ValidationError):
            AskRequest(question="Where is it based?", history=bad)
