"""The learned reader (rag.answer.learned) with its committed model, on real indexes built in tmp_path.

Nothing here trains: the model file is the one `make reader` wrote and committed; these tests check that it
loads, answers with verbatim quotes, abstains where the corpus cannot answer, still reaches its model card's
figures on the card's slice, and that a broken model file falls back to the rule reader with a note.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer import squad
from rag.answer.learned import FALLBACK_NOTE, LearnedReader
from rag.answer.measure import slice_figures, slice_paragraphs
from rag.answer.model_io import MODEL_DIR, MODEL_PATH, ModelError, load_model
from rag.answer.question import analyse
from rag.config import PROJECT_ROOT, load_settings
from rag.errors import SettingsError
from rag.pipeline import Assistant

SLICE_TOLERANCE = 0.03  # the slice is re-indexed from scratch: the same code and data give the same figures
DEV = PROJECT_ROOT / "tests" / "data" / "questions" / "bundled_dev.jsonl"
squad_present = pytest.mark.skipif(not squad.data_path().exists(), reason="the SQuAD excerpt is not in ../shared/data/")


@pytest.fixture(scope="module")
def learned_assistant(assistant: Assistant) -> Assistant:
    reader = LearnedReader(assistant.reader)
    return Assistant(assistant.settings, index=assistant.index, encoder=assistant.encoder,
                     retriever=assistant.retriever, reader=reader)


def test_committed_model_loads_and_states_its_data() -> None:
    model = load_model()
    assert 0.0 < model.threshold < 1.0
    assert model.info["data_sha256"] == squad.EXPECTED_SHA256
    assert set(model.info["held_out_titles"]) == {"New_York_City", "To_Kill_a_Mockingbird"}
    assert MODEL_PATH.stat().st_size < 30 * 1024 * 1024
    card = (MODEL_DIR / "CARD.md").read_text(encoding="utf-8")
    assert model.version in card and squad.EXPECTED_SHA256 in card


def test_answers_dev_questions_with_verbatim_quotes(learned_assistant: Assistant) -> None:
    records = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = [r for r in records if r.get("answers")][:8]
    found = 0
    for record in answerable:
        answer = learned_assistant.ask(record["question"])
        assert answer.mode == "extractive"
        for quote in answer.quotes:
            article = learned_assistant.index.article(quote.article_id)
            assert article is not None and article.text[quote.start : quote.end] == quote.text
        quoted = " ".join(q.text for q in answer.quotes).lower()
        found += not answer.abstained and any(str(a).lower() in quoted for a in record["answers"])
    assert found >= 6, f"only {found} of {len(answerable)} dev answers were quoted"


@squad_present
def test_abstains_on_questions_from_another_corpus(learned_assistant: Assistant) -> None:
    """SQuAD's questions about a Wikipedia article asked of the news articles: no answer there by construction."""
    questions = [q.question for p in slice_paragraphs(squad.load()) for q in p.questions if not q.impossible][:10]
    abstained = sum(learned_assistant.ask(q).abstained for q in questions)
    assert abstained >= 8, f"answered {len(questions) - abstained} of {len(questions)} questions the articles cannot answer"
    assert 0.0 <= learned_assistant.reader.confidence(analyse(questions[0]), ()) <= 1.0


@squad_present
def test_matches_the_model_cards_slice_figures(tmp_path: Path) -> None:
    model = load_model()
    stated = model.info["figures"]["slice"]
    got = slice_figures(lambda rules: LearnedReader(rules, model=model), tmp_path / "articles", tmp_path / "index")
    assert got["n"] == stated["n"]
    for key in ("first", "f1", "abstained"):
        assert abs(got[key] - stated[key]) <= SLICE_TOLERANCE, (key, got, stated)
    card = (MODEL_DIR / "CARD.md").read_text(encoding="utf-8")
    assert f"{stated['first']:.3f}" in card, "the model card must state the slice figure"


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": "rag-learned-reader/1", "ranker": {}})])
def test_a_bad_model_file_falls_back_to_the_rules(tmp_path: Path, assistant: Assistant, content: str) -> None:
    bad = tmp_path / "reader.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError):
        load_model(bad)
    reader = LearnedReader(assistant.reader, model_path=bad)
    assert reader.model is None and str(bad) in reader.version
    query = analyse("How many North Korean troops were deployed to Russia?")
    passages = assistant.retriever.retrieve(query.resolved)
    answer, rules = reader.read(query, passages), assistant.reader.read(query, passages)
    assert answer.text == rules.text and answer.quotes == rules.quotes
    assert answer.notes[-1].startswith(FALLBACK_NOTE.split("(")[0])


def test_reader_setting_is_validated() -> None:
    assert load_settings(config_file=None, environ={"RAG_READER": "learned"}).reader == "learned"
    with pytest.raises(SettingsError, match="'cleverest'"):
        load_settings(config_file=None, environ={"RAG_READER": "cleverest"})
