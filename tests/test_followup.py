"""Question reading in a chat: which questions cannot stand alone (rules), and the gate that lets the index decide.

The classifier needs spaCy's tagger but no embedding model; the gate tests use the real pipeline on tests/data/harbour.
"""

from __future__ import annotations

import pytest

from rag.answer.question import ALONE, DOUBT, FOLLOWUP, analyse, reading

FOLLOWUPS = [
    "Where is it based?",
    "Who confirmed it?",
    "What is its acronym?",
    "What did he say?",
    "What did she warn about?",
    "When will it be paid out?",
    "How often will it measure phosphorus?",
    "What territorial gains did he claim?",
    "How much did he estimate the losses at?",
    "Who said that?",
    "When did this happen?",
    "Why did they do that?",
    "And how many had arrived?",
    "How many were killed?",
    "What about Kyiv?",
    "And what about the boat race?",
    "How about last year?",
    "And last year?",
    "In front of how many supporters?",
    "Why?",
    "Which of them is older, the latter?",
]
STANDALONE = [
    "What is the price of rice in Pyongyang?",
    "Which U.S. Defense Secretary warned about the troops?",
    "Who is the leader of North Korea?",
    "Which think tank assessed the integration of North Korean troops?",
    "What did the Port Authority say about its director?",
    "What did Zelensky say about his allies?",
    "Is there a festival in Kessel this weekend?",
    "How many North Korean troops were sent to Russia?",
    "Where is the Institute for the Study of War based?",
    "What is the population of Kyiv?",
    "Who is the mayor of Brindmouth?",
    "When was the sea wall first built?",
    "What did the mayor say that the repairs would cost?",
    "Which river feeds Lake Orrin from the south?",
    "How many members does the fishing co-operative have?",
]
DOUBTFUL = [
    "What is this agency called?",
    "How many drones did they shoot down?",
    "Where does that river flow?",
    "How long will it take to repair the sea wall?",
]


@pytest.mark.parametrize("question", FOLLOWUPS)
def test_questions_that_cannot_stand_alone_are_follow_ups(question: str) -> None:
    assert reading(question) == FOLLOWUP


@pytest.mark.parametrize("question", STANDALONE)
def test_questions_with_their_own_antecedent_stand_alone(question: str) -> None:
    """"the", "that" as a relative pronoun, "there", a pronoun after its own noun: not references."""
    assert reading(question) == ALONE


@pytest.mark.parametrize("question", DOUBTFUL)
def test_doubtful_questions_are_left_to_the_index(question: str) -> None:
    assert reading(question) == DOUBT


def test_a_standalone_question_after_history_is_read_alone() -> None:
    query = analyse("Which U.S. Defense Secretary warned about the troops?", ["How many North Korean troops were sent?"])
    assert not query.is_followup and query.resolved == query.question and not query.context


def test_a_follow_up_is_read_with_the_turn_it_leans_on() -> None:
    query = analyse("Where is it based?", ["Which think tank assessed the troops?", "Who is the mayor?"])
    assert query.is_followup and query.resolved == "Who is the mayor? Where is it based?"
    chained = analyse("And where is it based?", ["Which think tank assessed the troops?", "What did it say?"])
    assert chained.resolved.startswith("Which think tank assessed the troops? What did it say?")


def test_forced_readings() -> None:
    assert analyse("Who is the mayor?", ["Brindmouth floods"], with_history=True).is_followup
    assert not analyse("Where is it based?", ["Which think tank?"], with_history=False).is_followup


@pytest.mark.parametrize("gate", ["rules", "index", "always"])
def test_topic_switch_inside_a_chat_is_answered_as_if_alone(harbour, gate: str) -> None:
    """Whatever the gate, a question that stands alone gets the answer it gets alone."""
    from dataclasses import replace

    harbour.reader.config = replace(harbour.reader.config, followup_gate=gate)
    try:
        history = ["How many residents were evacuated?", "How strong were the winds?"]
        alone = harbour.ask("Who coaches Brindmouth Rovers?")
        chat = harbour.ask("Who coaches Brindmouth Rovers?", history)
        assert chat.text == alone.text and "Kowalski" in chat.text
        assert chat.resolved_question == "Who coaches Brindmouth Rovers?"
        followup = harbour.ask("What did its director estimate?", ["Who runs the container terminal?"])
        assert "3 million euros" in followup.text
        if gate != "always":  # "always" may keep the alone reading when it is much better supported
            assert followup.resolved_question != "What did its director estimate?"
    finally:
        harbour.reader.config = replace(harbour.reader.config, followup_gate="index")


@pytest.fixture(scope="module")
def harbour(tmp_path_factory, embedder):
    from rag.config import PROJECT_ROOT
    from rag.pipeline import Assistant
    from tests.conftest import indexed_copy

    return Assistant.from_settings(indexed_copy(PROJECT_ROOT / "tests" / "data" / "harbour",
                                                tmp_path_factory.mktemp("harbour-gate"), embedder), encoder=embedder)


def test_the_chat_shows_the_reading_when_it_differs_from_what_was_typed() -> None:
    from app.render import render_answer, render_read_as
    from rag.types import Answer

    asked = Answer("Where is it <based>?", "Washington", resolved_question="Which think tank? Where is it <based>?")
    assert "Read as: Which think tank? Where is it &lt;based&gt;?" in render_answer(asked)
    assert render_read_as(Answer("Who?", "x", resolved_question="Who?")) == ""
    assert render_read_as(Answer("Who?", "x")) == ""


class _CountingModel:
    """A stand-in for the language-model reader (a real one takes minutes to load): it records what it was asked
    to condense and answers with the rule reader's answer."""

    name = "counting"

    def __init__(self) -> None:
        self.condensed: list[str] = []

    def read(self, query, passages):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def read_stream(self, query, passages, fallback):  # noqa: ANN001, ANN201
        return fallback
        yield fallback  # pragma: no cover  (makes this a generator)

    def condense(self, question: str, history) -> str:  # noqa: ANN001
        self.condensed.append(question)
        return "What did the director of the Port Authority estimate?"


def test_llm_mode_condenses_only_what_the_gate_reads_with_history(harbour) -> None:
    from rag.pipeline import Assistant

    model = _CountingModel()
    assistant = Assistant(harbour.settings, index=harbour.index, encoder=harbour.encoder, retriever=harbour.retriever,
                          reader=harbour.reader, llm_reader=model)
    switched = assistant.ask("Who coaches Brindmouth Rovers?", ["Who runs the container terminal?"], mode="llm")
    assert model.condensed == [] and "Kowalski" in switched.text
    followup = assistant.ask("What did its director estimate?", ["Who runs the container terminal?"], mode="llm")
    assert model.condensed == ["What did its director estimate?"]
    assert followup.resolved_question == "What did the director of the Port Authority estimate?"


def test_auto_mode_answers_without_a_model_that_will_not_load(harbour) -> None:
    """answer_mode "auto" promised an answer either way: a configured model that fails to load (a bad file, a dead
    process) leaves the extractive answer with a note, once, and later questions do not try it again."""
    from rag.errors import LlmError
    from rag.pipeline import Assistant

    tries = []

    def broken() -> None:
        tries.append(1)
        raise LlmError("cannot load the language model from /nowhere.gguf: file not found")

    settings = harbour.settings.replace(answer_mode="auto", llm_base_url="http://127.0.0.1:9/v1")
    assistant = Assistant(settings, index=harbour.index, encoder=harbour.encoder, retriever=harbour.retriever,
                          reader=harbour.reader, llm_factory=broken)
    first = assistant.ask("Who is the mayor of Brindmouth?")
    assert first.mode == "extractive" and "Vasquez" in first.text
    assert any("language model is not available" in n and "/nowhere.gguf" in n for n in first.notes)
    second = assistant.ask("Who coaches Brindmouth Rovers?")
    assert second.mode == "extractive" and tries == [1]
    with pytest.raises(LlmError):  # asked for by name, the failure is the user's to see
        assistant.ask("Who is the mayor of Brindmouth?", mode="llm")
