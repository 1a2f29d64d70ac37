"""The answer path run from many threads at once gives exactly the single-threaded answers.

One real `Assistant` (the real index of the bundled articles on disk, the real ONNX question encoder, spaCy,
the rule reader) is asked many different questions from 8 threads, each question several times in a
shuffled order; every answer must equal the one a single thread got (timings aside), and bad questions
must fail with the same message. A second test shows that a language-model answer in progress does not hold
up extractive answers: its reader is a stand-in that waits on an event (a real model cannot be made to stop
mid-answer on cue), holding its own lock the way the real reader does.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.service import Service
from rag.embed import encoder_for
from rag.errors import QuestionError
from rag.pipeline import Assistant
from rag.types import Answer, Passage, Query
from tests.conftest import DEV_QUESTIONS

EXTRA = (
    "Who is the leader of North Korea?", "How many soldiers were sent?", "Where are the troops fighting?",
    "What did the Pentagon say?", "When did the troops arrive in Russia?", "Which country sent troops?",
    "What is the capital of Australia?", "Who is Pat Ryder?", "How many North Korean soldiers died?",
    "What did South Korea's intelligence agency report?", "Why did Russia need more soldiers?",
)
BAD = ("", "   ", "?!?", "x" * 5000, "who\x00is")


@pytest.fixture(scope="module")
def onnx_assistant(bundled_settings) -> Assistant:  # noqa: ANN001
    assistant = Assistant.from_settings(bundled_settings, encoder=encoder_for(bundled_settings))
    yield assistant
    assistant.close()


def _questions() -> list[tuple[str, tuple[str, ...]]]:
    dev = [json.loads(line) for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
    asked = [(d["question"], tuple(d.get("history", []))) for d in dev]
    asked += [(q, ()) for q in EXTRA]
    asked += [("Who confirmed it?", ("How many North Korean troops were sent to Russia?",)),
              ("Where are they fighting?", ("Who sent troops to Russia?",))]
    return asked + [(q, ()) for q in BAD]


def _outcome(assistant: Assistant, question: str, history: tuple[str, ...]) -> dict | str:
    try:
        data = assistant.ask(question, history).to_dict()
    except QuestionError as exc:
        return f"QuestionError: {exc}"
    data.pop("timings", None)
    return data


def test_many_threads_get_the_single_threaded_answers(onnx_assistant: Assistant) -> None:
    asked = _questions()
    expected = {item: _outcome(onnx_assistant, *item) for item in asked}
    assert sum(isinstance(v, dict) for v in expected.values()) >= 20
    jobs = asked * 4
    random.Random(14).shuffle(jobs)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda item: (item, _outcome(onnx_assistant, *item)), jobs))
    wrong = [item[0] for item, outcome in got if outcome != expected[item]]
    assert not wrong, f"{len(wrong)} of {len(got)} concurrent answers differ: {wrong[:5]}"


class _HeldModel:
    """Stands in for the language-model reader: its answer waits until `release` is set, under its own lock."""

    name = "llm"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def read(self, query: Query, passages: tuple[Passage, ...]) -> Answer:
        raise NotImplementedError

    def read_stream(self, query: Query, passages: Sequence[Passage], fallback: Answer) -> Generator[Answer, None, Answer]:
        with self._lock:
            self.started.set()
            self.release.wait(60)
            return fallback
        yield fallback  # pragma: no cover  (makes this a generator)

    def condense(self, question: str, history: Sequence[str]) -> str:
        return question


def test_a_slow_model_answer_does_not_hold_up_extractive_answers(bundled_settings) -> None:  # noqa: ANN001
    model = _HeldModel()
    base = Assistant.from_settings(bundled_settings, encoder=encoder_for(bundled_settings))
    assistant = Assistant(bundled_settings, index=base.index, encoder=base.encoder, retriever=base.retriever,
                          reader=base.reader, llm_reader=model)
    service = Service(assistant, bundled_settings)
    slow = threading.Thread(target=lambda: assistant.ask("Who is the leader of North Korea?", mode="llm"))
    slow.start()
    try:
        assert model.started.wait(60), "the model answer never started"
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(service.ask, ["How many North Korean troops were sent to Russia?",
                                                  "Who is the leader of North Korea?"] * 2, timeout=60))
        assert all(a.mode == "extractive" and a.quotes for a in answers)
        assert slow.is_alive(), "the model answer finished early: nothing was shown"
    finally:
        model.release.set()
        slow.join(60)
        base.close()
