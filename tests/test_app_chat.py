"""The chat handler of app/chat.py as a generator, without a browser: the steps a page is sent for one turn.

The browser test in tests/test_app_web.py checks that a real page shows an intermediate step; this one checks
every step, with a real `Assistant`, a real index and llama-index's real OpenAI client talking to the stand-in
model server of tests/llm_support.py (no real model server can be installed here).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app import render
from app.chat import _respond
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


def bubbles(steps: list[tuple]) -> list[str]:
    return [step[0][-1]["content"] for step in steps]


def test_llm_answers_reach_the_chat_sentence_by_sentence(stand_in, bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder, answer_mode="llm", llm_base_url=url_of(stand_in), llm_model="liar", llm_timeout=5)
    steps = list(_respond(service, "", QUESTION, [], []))
    shown = bubbles(steps)
    assert shown[0] == render.render_pending()  # "Searching the articles…" comes first
    drafts = shown[1:-1]
    assert drafts and all('class="answer streaming"' in d for d in drafts)
    assert all("elephants" not in d for d in drafts)  # the invented quote is never shown as an answer…
    assert "elephants" not in shown[-1].split('<div class="note">')[0]  # …only named in the final note on what was removed
    final = service.ask(QUESTION)
    assert shown[-1] == render.render_answer(final)  # the last step is the answer a one-shot call gives
    assert steps[-1][1] == render.render_sources(final, service.article, "") and steps[-1][3] == [QUESTION]
    for step in steps[1:-1]:  # each draft comes with the sources of its own quotes
        cited = {int(n) for n in re.findall(r'class="marker">\[(\d+)\]', step[0][-1]["content"])}
        assert cited and cited <= {int(n) for n in re.findall(r'id="source-(\d+)"', step[1])}


def test_extractive_answers_and_errors_are_one_step_after_the_status(bundled_settings, embedder) -> None:
    service = service_for(bundled_settings, embedder)
    steps = list(_respond(service, "", QUESTION, [], []))
    assert bubbles(steps) == [render.render_pending(), render.render_answer(service.ask(QUESTION))]
    empty = list(_respond(service, "", "   ", [], []))
    assert len(empty) == 1 and "the question is empty" in bubbles(empty)[0]


def test_examples_for_another_corpus_come_from_its_short_titles(tmp_path, embedder) -> None:
    from tests.conftest import PROJECT_ROOT, indexed_copy

    settings = indexed_copy(PROJECT_ROOT / "tests" / "data" / "harbour", tmp_path, embedder)
    examples = service_for(settings, embedder).examples
    assert examples and all(q.startswith("What do the articles say about ") for q in examples)
    assert any("Schools reopen in Brindmouth" in q for q in examples)
    for question in examples:  # each is a question the corpus can answer
        assert not service_for(settings, embedder).assistant.ask(question).abstained
