"""The answer forms: what X said, who X is, why, overviews; a heading is never quoted as the answer.

Real model, real index of a small dated corpus written for these tests (tests/chat_corpus.py).
"""

from __future__ import annotations

import pytest

from rag.answer.forms import FACT, OVERVIEW, SAID, WHO_IS, WHY, form_of
from rag.answer.parse import is_heading


@pytest.mark.parametrize(("question", "form"), [
    ("What did Alma Rudd say about the spillway?", SAID),
    ("What did the mayor say about the sandbags?", SAID),
    ("Who is Oskar Lind?", WHO_IS),
    ("Who is the mayor of Tessin?", FACT),  # asks for a name, not a description
    ("Why did the water board open the gates?", WHY),
    ("Summarize the articles", OVERVIEW),
    ("What happened in Tessin?", OVERVIEW),
    ("What's the latest?", OVERVIEW),
    ("Who coaches the team?", FACT),
    ("How many families were moved?", FACT),
])
def test_the_form_is_read_from_the_parse(question: str, form: str) -> None:
    assert form_of(question) == form


def test_headings_are_whole_lines_without_sentence_punctuation() -> None:
    text = "Title line\nA sentence.\nRising Water in the Valley\n– Institute for the Study of War\nIt said:\n"
    spans = [(0, 10), (11, 22), (23, 49), (50, 83), (84, 92)]
    assert [is_heading(text, s, e) for s, e in spans] == [True, False, True, False, False]


@pytest.fixture(scope="module")
def velmora(tmp_path_factory, embedder):
    from rag.pipeline import Assistant
    from tests.chat_corpus import build

    return Assistant.from_settings(build(tmp_path_factory.mktemp("velmora-forms"), embedder), encoder=embedder)


def test_what_x_said_quotes_the_statements_x_is_the_speaker_of(velmora) -> None:
    answer = velmora.ask("What did Alma Rudd say?")
    assert not answer.abstained and answer.quotes
    assert all("Rudd" in q.text for q in answer.quotes)
    assert "spillway was working" in answer.text or "gates would stay open" in answer.text
    for q in answer.quotes:
        assert velmora.verify(q)


def test_who_is_x_gives_the_description_not_the_name(velmora) -> None:
    answer = velmora.ask("Who is Alma Rudd?")
    assert "chief engineer" in answer.text and not answer.text.startswith("Alma Rudd")
    mayor = velmora.ask("Who is Oskar Lind?")
    assert "mayor" in mayor.text.lower()


def test_why_quotes_the_reason(velmora) -> None:
    answer = velmora.ask("Why did the water board open the spillway gates?")
    assert "because the reservoir had reached its highest level" in answer.text


def test_an_overview_quotes_sentences_of_different_articles_in_date_order(velmora) -> None:
    answer = velmora.ask("Summarize the articles")
    assert not answer.abstained and 3 <= len(answer.quotes) <= 5
    assert len({q.article_id for q in answer.quotes}) == 3
    dates = {h.id: h.published_at for h in velmora.index.article_headers()}
    assert [dates[q.article_id] for q in answer.quotes] == sorted(dates[q.article_id] for q in answer.quotes)
    assert "Rising Water in the Valley" not in answer.text
    for q in answer.quotes:
        assert velmora.verify(q) and f"[{q.n}]" in answer.text


def test_a_heading_is_never_quoted_as_the_answer(velmora) -> None:
    for question in ("What about the rising water in the valley?", "Was there rising water in the valley?"):
        answer = velmora.ask(question)
        for q in answer.quotes:
            article = velmora.index.article(q.article_id)
            assert not is_heading(article.text, q.start, q.end), q.text


def test_markdown_headings_are_headings_and_dash_lines_without_a_verb_are_attributions() -> None:
    from rag.answer.parse import is_attribution

    text = "# Pier reopens in Tessin\nA sentence.\n“We are ready.”\n– Tessin Harbour Trust\n– and then it rained.\n"
    assert is_heading(text, 0, 24)
    lines = [(text.index("–"), text.index("\n", text.index("–"))), (text.rindex("–"), len(text) - 1)]
    assert [is_attribution(text, s, e) for s, e in lines] == [True, False]
    assert not is_attribution(text, 25, 36)


def test_a_place_is_the_phrase_the_question_s_verb_governs() -> None:
    from rag.answer.parse import stranded_preposition, verb_phrases
    from rag.text import terms

    sentence = "About 300 families from the old town were moved to the sports hall in Tessin on Sunday."
    found = [sentence[s:e] for s, e in verb_phrases(sentence, set(terms("moved")))]
    assert "sports hall" in found and "Sunday" not in found
    assert stranded_preposition("Where were they moved from?") == "from"
    assert verb_phrases(sentence, set(terms("moved")), "from") == []  # "from the old town" hangs off "families"
    assert verb_phrases(sentence, set(terms("painted"))) == []


def test_titles_relative_clauses_and_pronoun_speakers_by_the_parse() -> None:
    from rag.answer.forms import _description, _speaks
    from rag.answer.parse import parse
    from rag.text import terms

    stems = set(terms("John Carter"))
    assert _description(parse("Deputy Transport Minister John Carter opened the new bridge."), stems) \
        == "Deputy Transport Minister"
    assert "runs the town clinic" in _description(parse("Dr. John Carter, who runs the town clinic, said it was full."), stems)
    assert _speaks(parse("He added that the clinic would stay open."), set(), pronoun=True)
    assert not _speaks(parse("The clinic will stay open."), set(), pronoun=True)


def test_what_x_said_follows_x_into_the_next_sentence_and_prefers_the_asked_verb(velmora) -> None:
    answer = velmora.ask("What did Alma Rudd tell reporters?")
    assert not answer.abstained and "gates would stay open" in answer.quotes[0].text
