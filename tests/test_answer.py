"""Answers: typed short answers, conflicts, abstention, follow-ups, and the verbatim-quote invariant.

Two corpora: the bundled articles with the dev questions (gold read from the file, never written here), and a
small corpus written for these tests (tests/data/harbour) that the answerer was never tuned on.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.config import PROJECT_ROOT
from rag.embed import Embedder
from rag.errors import QuestionError
from rag.pipeline import Assistant
from rag.types import Answer
from tests.conftest import DEV_QUESTIONS, indexed_copy

HARBOUR = PROJECT_ROOT / "tests" / "data" / "harbour"


@pytest.fixture(scope="module")
def harbour(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Assistant:
    return Assistant.from_settings(indexed_copy(HARBOUR, tmp_path_factory.mktemp("harbour"), embedder), encoder=embedder)


def check_invariants(assistant: Assistant, answer: Answer) -> None:
    """What must hold for every answer to every question."""
    for quote in (*answer.quotes, *answer.related):
        assert assistant.verify(quote), f"quote {quote.n} is not verbatim at its offsets: {quote}"
    assert [q.n for q in answer.quotes] == list(range(1, len(answer.quotes) + 1))
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers <= {q.n for q in answer.quotes}, f"a marker points nowhere: {answer.text}"
    if answer.abstained:
        assert not answer.quotes and answer.text.startswith("The articles don't say")
    else:
        assert answer.quotes and markers, "an answer must cite at least one quote"
    for conflict in answer.conflicts:
        assert len(conflict.claims) >= 2
        for claim in conflict.claims:
            assert set(claim.quotes) <= markers


def load_dev() -> list[dict]:
    return [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_dev_questions(assistant: Assistant) -> None:
    """Gold strings in the short answer or the first quote; unanswerable questions abstain."""
    failures, answerable = [], 0
    for item in load_dev():
        answer = assistant.ask(item["question"], item.get("history", []))
        check_invariants(assistant, answer)
        if item["type"] == "unanswerable":
            assert answer.abstained, f"{item['id']} should abstain, got: {answer.text}"
            continue
        answerable += 1
        shown = (answer.text + " " + (answer.quotes[0].text if answer.quotes else "")).lower()
        hits = [gold.lower() in shown for gold in item["answers"]]
        if not (all(hits) if item.get("answers_all") else any(hits)):
            failures.append(f"{item['id']}: {item['question']} -> {answer.text}")
    # The bar is set below 100% on purpose: the set is tiny and tuning to it would be tuning to the answers.
    assert len(failures) <= answerable * 0.2, "\n".join(failures)


def test_figure_question_is_answered_with_the_figure(harbour: Assistant) -> None:
    answer = harbour.ask("How many supporters watched the cup final?")
    check_invariants(harbour, answer)
    assert answer.answer_type == "number" and "8,000" in answer.text
    assert answer.quotes[0].article_id == "d_football.txt"


def test_who_question_is_answered_with_a_name(harbour: Assistant) -> None:
    answer = harbour.ask("Who is the director of the Port Authority?")
    check_invariants(harbour, answer)
    assert "Tomas Okafor" in answer.text


def test_when_question_is_answered_with_a_date(harbour: Assistant) -> None:
    answer = harbour.ask("When was the sea wall first built?")
    check_invariants(harbour, answer)
    assert "1952" in answer.text


def test_how_long_question_is_answered_with_a_duration(harbour: Assistant) -> None:
    answer = harbour.ask("How long could repairs to the sea wall take?")
    check_invariants(harbour, answer)
    assert "six months" in answer.text


def test_disagreeing_articles_are_shown_side_by_side(harbour: Assistant) -> None:
    answer = harbour.ask("How many residents were evacuated?")
    check_invariants(harbour, answer)
    assert answer.conflicts, answer.text
    values = " ".join(claim.value for claim in answer.conflicts[0].claims)
    assert "1,200" in values and "1,500" in values
    assert {q.article_id for q in answer.quotes} >= {"a_storm.txt", "b_recovery.txt"}


@pytest.mark.parametrize(
    "question",
    ["What is the population of Paris?", "Who won the 1998 World Cup?", "How many tanks does the army have?"],
)
def test_questions_the_articles_do_not_answer_abstain(harbour: Assistant, question: str) -> None:
    answer = harbour.ask(question)
    check_invariants(harbour, answer)
    assert answer.abstained, answer.text
    assert answer.related, "abstentions list the closest passages as related reading"


def test_follow_up_uses_the_earlier_turn(harbour: Assistant) -> None:
    first = "Which company runs the container terminal?"
    answer = harbour.ask("Who is its director?", [first])
    check_invariants(harbour, answer)
    assert "Tomas Okafor" in answer.text
    # one question a person would write (issue 20), leaning on the answered turn, never the two glued
    assert "Port Authority" in answer.resolved_question and first not in answer.resolved_question


def test_the_same_question_without_history_is_not_resolved(harbour: Assistant) -> None:
    answer = harbour.ask("Who scored twice in the final?")
    assert answer.resolved_question == "Who scored twice in the final?"
    assert "Jonas Lindqvist" in answer.text


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 100_000, "too long"),
        ("What\x07 happened?", "control characters"),
        ("?!", "no words"),
        ("Сколько солдат отправлено?", "script"),
    ],
)
def test_bad_questions_raise_a_clear_error(harbour: Assistant, question: str, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        harbour.ask(question)


_WORDS = ["storm", "harbour", "mayor", "how", "many", "who", "when", "where", "evacuated", "1,200", "six", "the",
          "Brindmouth", "sea", "wall", "cup", "why", "?", "it", "their", "Okafor", "school", "what", "<script>",
          "“quoted”", "\\d+", "(", "ünïcödé", "中文", "0", "-", "'s", "…"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=14),
    history=st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6).map(" ".join), max_size=2),
)
def test_every_quote_of_every_answer_is_verbatim(harbour: Assistant, words: list[str], history: list[str]) -> None:
    question = " ".join(words)
    try:
        answer = harbour.ask(question, history)
    except QuestionError:
        return  # refused with a message: nothing quoted, nothing to check
    check_invariants(harbour, answer)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.text(min_size=1, max_size=200))
def test_arbitrary_text_never_breaks_the_invariants(harbour: Assistant, question: str) -> None:
    try:
        answer = harbour.ask(question)
    except QuestionError:
        return
    check_invariants(harbour, answer)
