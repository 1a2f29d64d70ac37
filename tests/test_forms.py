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
