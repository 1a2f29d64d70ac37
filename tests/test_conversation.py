"""Follow-ups read against the conversation: the antecedent is the latest ANSWERED turn, the reading is one
question a person would write, and a history of bare questions reads exactly like one with its answers.

The rewriting tests need only spaCy's parser; the rest use the real model and a real index of a small corpus
written for these tests (tests/chat_corpus.py).
"""

from __future__ import annotations

import dataclasses

import pytest

from rag.answer.conversation import antecedent, as_turns, resolve, rewrite, unsupported
from rag.types import Answer, Query, Quote, Turn

ANSWERED = Turn("How many North Korean troops were deployed to Russia?", "Approximately 10,000 [1]", False)


@pytest.mark.parametrize(("question", "earlier", "expected"), [
    ("Where were they sent?", ANSWERED, "Where were the North Korean troops sent?"),
    ("What did Zelensky say about them?", ANSWERED, "What did Zelensky say about the North Korean troops?"),
    ("Where is it based?", Turn("Which think tank assessed the troops?", "Institute for the Study of War [1]", False),
     "Where is Institute for the Study of War based?"),
    ("What did its director estimate?", Turn("Who runs the container terminal?", "the Port Authority [1]", False),
     "What did the director of the Port Authority estimate?"),
    ("What did she say?", Turn("Who is the mayor of Brindmouth?", "Helena Vasquez [1]", False), "What did Helena Vasquez say?"),
    ("And how many had arrived?", ANSWERED, "And how many North Korean troops had arrived?"),
])
def test_a_pronoun_is_replaced_by_the_phrase_it_points_at(question: str, earlier: Turn, expected: str) -> None:
    assert rewrite(question, earlier) == expected


def test_an_unanswered_turn_is_never_the_antecedent() -> None:
    offtopic = Turn("Who is the president of France?", "The articles don't say.", True)
    history = [ANSWERED, offtopic]
    assert antecedent(history) == ANSWERED
    resolved = resolve("How many of them were killed or wounded?", history)
    assert resolved is not None and "troops" in resolved and "France" not in resolved
    assert resolve("Where were they sent?", [offtopic]) is None  # nothing answered: nothing to lean on


def test_the_reading_is_one_question_never_two_glued() -> None:
    for question in ("Why?", "In front of how many supporters?", "Where were they sent?", "What about Kyiv?"):
        reading = rewrite(question, ANSWERED)
        assert reading.count("?") == 1 and reading.endswith("?"), reading


def test_bare_strings_are_turns_whose_answers_are_unknown() -> None:
    turns = as_turns(["Who?", "  ", Turn("Where?", "Here [1]", False)])
    assert turns == (Turn("Who?"), Turn("Where?", "Here [1]", False))


@pytest.fixture(scope="module")
def velmora(tmp_path_factory, embedder):
    from rag.pipeline import Assistant
    from tests.chat_corpus import build

    return Assistant.from_settings(build(tmp_path_factory.mktemp("velmora"), embedder), encoder=embedder)


def test_a_follow_up_after_an_off_topic_turn_resolves_to_the_answered_topic(velmora) -> None:
    first = velmora.ask("How many families were moved to the sports hall?")
    assert not first.abstained and "300" in first.text
    offtopic = velmora.ask("Who is the president of France?")
    assert offtopic.abstained
    history = [Turn(first.question, first.text, first.abstained, first.resolved_question),
               Turn(offtopic.question, offtopic.text, offtopic.abstained, offtopic.resolved_question)]
    followed = velmora.ask("Where were they moved?", history)
    assert followed.resolved_question == "Where were the families moved?"
    assert "France" not in followed.resolved_question
    assert "Tessin" in followed.text or "sports hall" in followed.text


def test_a_history_of_questions_only_is_read_as_the_chat_reads_it(velmora) -> None:
    """Evaluators' files and old API clients send only the earlier questions: the assistant answers them first,
    so the follow-up gets the same reading and answer as when the chat sends the answers it holds."""
    questions = ["Who is the chief engineer of the water board?", "What is the capital of Australia?"]
    held = []
    for q in questions:
        got = velmora.ask(q, held)
        held.append(Turn(q, got.text, got.abstained, got.resolved_question))
    with_answers = velmora.ask("What did she tell reporters?", held)
    bare = velmora.ask("What did she tell reporters?", questions)
    assert bare.resolved_question == with_answers.resolved_question
    assert bare.text == with_answers.text
    assert "Rudd" in with_answers.resolved_question


def test_the_api_takes_questions_or_turns_with_answers() -> None:
    from app.schema import AskRequest

    body = AskRequest.model_validate({"question": "Where?", "history": [
        "Who?", {"question": "How many?", "answer": "300 [1]", "abstained": False}]})
    assert body.turns() == ["Who?", Turn("How many?", "300 [1]", False)]
    with pytest.raises(ValueError):
        AskRequest.model_validate({"question": "Where?", "history": [{"answer": "no question"}]})


def test_a_clause_with_its_own_subject_is_not_read_as_a_fragment(velmora) -> None:
    """"How much did X cost?" has nothing pointing back: it is read alone even though "how much" + verb can
    start a fragment ("And how many had arrived?")."""
    first = velmora.ask("How many families were moved to the sports hall?")
    question = "How much did the council set aside for repairs?"
    answer = velmora.ask(question, [Turn(first.question, first.text, first.abstained, first.resolved_question)])
    assert answer.resolved_question == question and "2 million" in answer.text


def _followup(question: str, resolved: str, own: list[str], earlier: list[str]) -> Query:
    from rag.text import terms

    return Query(question, resolved, "description", tuple((t, 1.0) for w in own for t in terms(w)),
                 tuple((t, 1.0) for w in earlier for t in terms(w)), tuple(resolved.lower().split()), True)


def test_a_follow_up_whose_own_nouns_no_quote_speaks_of_is_unsupported() -> None:
    quote = Quote(1, "cup", "Rovers win the cup", 0, 40, "Striker Ada Berg scored twice in the final.")
    answer = Answer("q", "twice [1]", (quote,))
    borrowed = _followup("How many goals did she score last season?", "How many goals did Ada Berg score last season?",
                         ["goals", "season"], ["striker", "final"])
    assert unsupported(borrowed, answer) == ["goal", "season"]
    own = _followup("How often did she score in the final?", "How often did Ada Berg score in the final?",
                    ["final"], ["striker"])
    assert unsupported(own, answer) == []  # its own noun is in the quote
    alone = dataclasses.replace(borrowed, is_followup=False, context=())
    assert unsupported(alone, answer) == []  # a question read alone is the reader's to judge
    assert unsupported(borrowed, dataclasses.replace(answer, abstained=True, quotes=())) == []


def test_a_follow_up_answered_only_on_the_earlier_turn_s_words_abstains(velmora) -> None:
    first = velmora.ask("How many families were moved to the sports hall?")
    turn = Turn(first.question, first.text, first.abstained, first.resolved_question)
    answer = velmora.ask("How many blankets did they get?", [turn])
    assert answer.abstained and not answer.quotes
    # the place is the phrase the verb governs through the question's preposition, and news: what the earlier
    # turn already said ("moved to the sports hall") is not the answer to where
    assert velmora.ask("Where were they moved to?", [turn]).text.startswith("Tessin")
    plain = velmora.ask("How many families were moved?")
    turn = Turn(plain.question, plain.text, plain.abstained, plain.resolved_question)
    assert velmora.ask("Where were they moved to?", [turn]).text.startswith("sports hall")
