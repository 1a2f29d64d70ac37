"""The chat handlers of app/chat.py without a browser: the steps a page is sent for one session's questions.

The browser tests in tests/test_app_web.py check that a real page shows them; these check every step, with a
real `Assistant`, a real index and llama-index's real OpenAI client talking to the stand-in model server of
tests/llm_support.py (no real model server can be installed here).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import gradio as gr
import pytest

from app import conversation, render
from app.chat import _drain
from app.conversation import Conversation
from app.service import Service
from rag.pipeline import Assistant
from tests.llm_support import model_server, url_of

QUESTION = "In which region are the North Korean troops fighting?"


@pytest.fixture(scope="module")
def stand_in() -> Iterator:
    with model_server() as httpd:
        yield httpd


def service_for(settings, embedder, **changes: object) -> Service:
    assistant = Assistant.from_settings(settings.replace(**changes), encoder=embedder)
    return Service(assistant, assistant.settings)


def run(service: Service, *questions: str, conv: Conversation | None = None) -> tuple[Conversation, list[tuple]]:
    conv = conv or Conversation()
    for question in questions:
        conversation.add(conv, question)
    return conv, list(_drain(service, "", conv))


def last_bubbles(steps: list[tuple]) -> list[str]:
    return [step[0][-1]["content"] for step in steps]


def test_llm_mode_shows_the_extractive_answer_then_the_models_checked_sentences(stand_in, bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder, answer_mode="llm", llm_base_url=url_of(stand_in), llm_model="liar", llm_timeout=5)
    _, steps = run(service, QUESTION)
    shown = last_bubbles(steps)
    assert shown[0] == render.render_pending()  # "Searching the articles…" comes first
    quick = service.ask(QUESTION, mode="extractive")
    assert shown[1] == render.render_answer(quick, provisional=True)  # the extractive answer at once, labelled
    assert "shown while the language model writes" in shown[1]
    drafts = shown[2:-2]
    assert drafts and all('class="answer streaming drafted"' in d for d in drafts)
    assert all("elephants" not in d for d in drafts)  # the invented quote is never shown as an answer…
    assert "elephants" not in shown[-1].split('<div class="note">')[0]  # …only named in the final note on what was removed
    final = service.ask(QUESTION)
    assert shown[-1] == render.render_answer(final)  # the last step is the answer a one-shot call gives
    assert render.mode_label(final) in shown[-1]  # the label says whose answer it is
    assert steps[-2][1] == render.render_sources(final, service.article, "")
    assert steps[-1][2][0]["question"] == QUESTION and steps[-1][2][0]["answer"]["text"] == final.text  # kept in the browser
    for step in steps[2:-2]:  # each draft comes with the sources of its own quotes
        cited = {int(n) for n in re.findall(r'class="marker">\[(\d+)\]', step[0][-1]["content"])}
        assert cited and cited <= {int(n) for n in re.findall(r'id="source-(\d+)"', step[1])}


def test_extractive_answers_and_errors_are_one_step_after_the_status(bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder)
    _, steps = run(service, QUESTION)
    assert last_bubbles(steps)[:2] == [render.render_pending(), render.render_answer(service.ask(QUESTION))]
    _, empty = run(service, "   ")
    assert "the question is empty" in last_bubbles(empty)[-1]
    assert all("user-turn" not in m["content"] for m in empty[-1][0])  # a blank question shows no user bubble


def test_questions_sent_while_answering_wait_and_are_answered_in_order(bundled_settings, embedder) -> None:
    """A question added while a drain is answering is shown as waiting and answered by that same drain, after
    the earlier ones, with the earlier ones as its history; a second drain started meanwhile returns at once."""
    service = service_for(bundled_settings, embedder)
    conv = Conversation()
    conversation.add(conv, "Who is the leader of North Korea?")
    drain = _drain(service, "", conv)
    first = next(drain)  # answering the first; now two more arrive
    assert "pending" in first[0][-1]["content"]
    conversation.add(conv, QUESTION)
    conversation.add(conv, "How many troops were sent?")
    waiting = conversation.messages(conv)
    assert [m["content"] for m in waiting[3::2]] == [render.render_queued()] * 2
    assert list(_drain(service, "", conv)) == [(gr.skip(),) * 3]  # the first drain still owns the conversation
    rest = list(drain)
    assert conv.owner is None and [t.status for t in conv.turns] == ["done"] * 3
    questions = [t.question for t in conv.turns]
    assert [t.history for t in conv.turns] == [(), tuple(questions[:1]), tuple(questions[:2])]
    for turn in conv.turns:  # each answered as the API answers it with the same history
        assert turn.answer.text == service.ask(turn.question, turn.history).text
    assert [s["question"] for s in rest[-1][2]] == questions


def test_start_over_while_answering_drops_the_answer_and_frees_the_conversation(bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder)
    conv = Conversation()
    conversation.add(conv, QUESTION)
    drain = _drain(service, "", conv)
    next(drain)
    conversation.clear(conv)
    conversation.add(conv, "Who is the leader of North Korea?")
    _, steps = run(service, conv=conv)  # a new drain may start at once
    list(drain)
    assert [t.question for t in conv.turns] == ["Who is the leader of North Korea?"] and conv.turns[0].status == "done"


def test_concurrent_sessions_do_not_mix(bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder)
    convs = [Conversation() for _ in range(4)]
    questions = ["Who is the leader of North Korea?", QUESTION, "How many troops were sent?", "What is the capital of Australia?"]

    def session(conv: Conversation, question: str) -> None:
        run(service, question, conv=conv)

    threads = [threading.Thread(target=session, args=pair) for pair in zip(convs, questions, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for conv, question in zip(convs, questions, strict=True):
        assert [t.question for t in conv.turns] == [question]
        assert conv.turns[0].answer.text == service.ask(question).text


def test_examples_for_another_corpus_come_from_its_short_titles(tmp_path, embedder) -> None:
    from tests.conftest import PROJECT_ROOT, indexed_copy

    settings = indexed_copy(PROJECT_ROOT / "tests" / "data" / "harbour", tmp_path, embedder)
    examples = service_for(settings, embedder).examples
    assert examples and all(q.startswith("What do the articles say about ") for q in examples)
    assert any("Schools reopen in Brindmouth" in q for q in examples)
    for question in examples:  # each is a question the corpus can answer
        assert not service_for(settings, embedder).assistant.ask(question).abstained
