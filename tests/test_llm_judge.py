"""Answer mode "auto", the sentence windows the model reads, and the judge of a guarded answer's kind and subject.

Real parts: the bundled articles' real index and embedding model, the rule reader as the judge, spaCy for the
entities, and the stand-in OpenAI-compatible server of tests/llm_support.py for the model. Sentences are picked
from what retrieval returns by their spans' kinds, never by knowing the articles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from rag.answer import llm_judge
from rag.answer.kinds import NUMBER, PERSON
from rag.answer.local_model import packaged_installed
from rag.answer.question import analyse
from rag.answer.spans import candidates
from rag.cli import main
from rag.config import Settings, load_settings
from rag.pipeline import Assistant
from rag.types import Passage, Quote
from tests.conftest import DEV_QUESTIONS
from tests.llm_support import model_server, url_of


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with model_server() as httpd:
        yield httpd


def _questions(kind: str) -> list[str]:
    rows = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("answers") and not r.get("history")
            and analyse(r["question"]).answer_type == kind]


def _sentences(passages: tuple[Passage, ...]) -> list[Quote]:
    """Every sentence of the passages as a quote at its absolute offsets."""
    out = []
    for p in passages:
        for s, e in p.chunk.sentences:
            text = p.chunk.text[s - p.chunk.start : e - p.chunk.start]
            out.append(Quote(1, p.chunk.article_id, p.title, s, e, text))
    return out


# ---------------------------------------------------------------- answer mode auto

def test_auto_is_the_default_and_follows_what_is_installed_or_configured(bundled_settings: Settings, embedder,
                                                                        server) -> None:
    assert load_settings(config_file=None, environ={}).answer_mode == "auto"
    auto = bundled_settings.replace(answer_mode="auto")
    plain = Assistant.from_settings(auto, encoder=embedder)
    assert plain.answer_mode() == ("llm" if packaged_installed() else "extractive")
    assert plain.answer_mode("extractive") == "extractive" and plain.answer_mode("llm") == "llm"
    served = Assistant.from_settings(auto.replace(llm_base_url=url_of(server), llm_model="echo", llm_timeout=5),
                                     encoder=embedder)
    assert served.answer_mode() == "llm"
    question = _questions(NUMBER)[0]
    events = list(served.ask_stream(question))
    assert events[0].answer.mode == "extractive" and not events[0].final  # the extractive answer at once…
    assert events[-1].final and events[-1].answer == served.ask(question)  # …then the guarded answer, final
    assert served.ask(question, mode="extractive").mode == "extractive"  # the request's mode overrides
    bare = Assistant(auto, index=plain.index, encoder=embedder, retriever=plain.retriever, reader=plain.reader)
    assert bare.answer_mode() == "extractive"  # no model reader at all: auto is extractive


def test_the_cli_follows_auto_and_mode_overrides_it(server, bundled_settings: Settings, monkeypatch) -> None:
    for name, value in {"RAG_ANSWER_MODE": "auto", "RAG_LLM_BASE_URL": url_of(server), "RAG_LLM_MODEL": "echo"}.items():
        monkeypatch.setenv(name, value)
    where = ["--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    question = _questions(NUMBER)[0]
    auto = CliRunner().invoke(main, ["ask", "--json", question, *where])
    assert auto.exit_code == 0, auto.output
    assert json.loads(auto.output)["mode"] in ("llm", "extractive")  # extractive only as the guard's fallback
    assert len(json.loads(auto.output)["guard"]) > 0  # the model was asked
    forced = CliRunner().invoke(main, ["ask", "--json", "--mode", "extractive", question, *where])
    assert forced.exit_code == 0 and json.loads(forced.output)["guard"] == {}


# ---------------------------------------------------------------- what the model reads

def test_windows_are_verbatim_runs_of_the_best_sentences(assistant: Assistant) -> None:
    for question in _questions(NUMBER)[:3] + _questions(PERSON)[:2]:
        query = analyse(question)
        passages = assistant.retriever.retrieve(question)
        shown = llm_judge.windows(query, passages, 3)
        assert 1 <= len(shown) <= 3
        best = llm_judge.sentence_scores(query, passages)[0]
        top = passages[best.passage].chunk.sentences[best.sentence]
        assert any(p.chunk.article_id == passages[best.passage].chunk.article_id and top in p.chunk.sentences
                   for p in shown)  # the best sentence is read
        for p in shown:
            article = assistant.index.article(p.chunk.article_id)
            assert article.text[p.chunk.start : p.chunk.end] == p.chunk.text
            assert len(p.chunk.sentences) <= 2 * llm_judge.WINDOW_NEIGHBOURS + 1 or len(shown) < 3
            assert len(p.sentence_scores) == len(p.chunk.sentences)
        assert sum(len(p.chunk.text) for p in shown) < sum(len(p.chunk.text) for p in passages[:3]) + 1


# ---------------------------------------------------------------- the judge

def test_a_quote_without_the_asked_kind_is_not_an_answer(assistant: Assistant) -> None:
    for kind in (PERSON, NUMBER):
        question = _questions(kind)[0]
        query = analyse(question)
        passages = assistant.retriever.retrieve(question)
        quotes = _sentences(passages)
        with_kind = [q for q in quotes if any(not s.weak for s in candidates(q.text, kind, query.head_noun))]
        without = [q for q in quotes if q not in with_kind]
        assert with_kind and without
        verdict = llm_judge.judge(query, without[:1], passages, assistant.reader)
        assert not verdict.ok and not verdict.kind_ok and kind in verdict.why
        best = max(with_kind, key=lambda q: llm_judge.judge(query, [q], passages, assistant.reader).support)
        assert llm_judge.judge(query, [best], passages, assistant.reader).ok


def test_a_quote_about_something_else_is_not_an_answer(assistant: Assistant) -> None:
    """The question's best-supported sentence passes; the sentence the rule reader finds least related fails."""
    question = _questions(NUMBER)[0]
    query = analyse(question)
    passages = assistant.retriever.retrieve(question)
    scored = sorted([(llm_judge.judge(query, [q], passages, assistant.reader), q) for q in _sentences(passages)
                     if any(candidates(q.text, NUMBER))], key=lambda pair: pair[0].support)
    low, high = scored[0][0], scored[-1][0]
    assert low.support < high.support
    if low.support < llm_judge.JUDGE_MIN_SUPPORT:
        assert not low.ok and "not about what was asked" in low.why
    assert high.ok


def test_the_models_own_dont_know_and_its_choice_are_read() -> None:
    assert llm_judge.says_dont_know("The articles do not say.") and llm_judge.says_dont_know("the articles don't say")
    assert not llm_judge.says_dont_know('The articles say "30 died" [1].')
    assert llm_judge.chosen_number("2", 4) == 2 and llm_judge.chosen_number("Sentence 3.", 4) == 3
    assert llm_judge.chosen_number("0", 4) is None and llm_judge.chosen_number("7", 4) is None
    assert llm_judge.chosen_number("none of them", 4) is None


def test_a_dont_know_reply_is_kept_as_an_abstention(server, bundled_settings: Settings, embedder) -> None:
    settings = bundled_settings.replace(answer_mode="llm", llm_base_url=url_of(server), llm_model="dunno", llm_timeout=5)
    answer = Assistant.from_settings(settings, encoder=embedder).ask(_questions(NUMBER)[0])
    assert answer.abstained and answer.mode == "llm" and not answer.quotes
    assert any("found no answer" in n for n in answer.notes)
