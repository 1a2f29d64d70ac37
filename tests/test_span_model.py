"""The learned span ranker (rag.answer.span_model): the committed model loads, ranks, matches its model card on a
held-out SQuAD slice, and picks the count of the asked thing in sentences written here (not from any bundled
article). Real parts: the committed model, spaCy's parser, the packaged ONNX encoder, the SQuAD excerpt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rag.answer import squad
from rag.answer.question import analyse
from rag.answer.span_model import MODEL_PATH, ScoredSpan, SpanRanker
from rag.errors import RagError

CARD = MODEL_PATH.parent / "SPANS.md"
SLICE = 300  # held-out questions scored (original wording), of the model card's held-out split
TOLERANCE = 0.06  # a slice of 300 drawn from ~1,000: its EM/F1 may stray a few points from the whole split's


@pytest.fixture(scope="module")
def ranker() -> SpanRanker:
    return SpanRanker.load()


def test_committed_model_loads_and_ranks_every_candidate(ranker: SpanRanker) -> None:
    sentence = "The mayor, Lina Osei, opened the new bridge over the Varn river on 4 May after 18 months of work."
    ranked = ranker.rank(analyse("Who opened the new bridge?"), sentence)
    assert ranked and all(isinstance(s, ScoredSpan) for s in ranked)
    assert all(sentence[s.start : s.end] == s.text for s in ranked)
    probabilities = [s.probability for s in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    assert "Lina Osei" in ranked[0].text
    assert ranker.rank(analyse("Who opened it?"), "...") == []


@pytest.mark.parametrize(("question", "sentence", "want", "not_want"), [
    ("How many North Korean troops were deployed to Russia?",
     "Pyongyang's decision to dispatch roughly 12,000 soldiers to the Kursk front surprised analysts, while at "
     "least 40 were killed or wounded in the first week of fighting.", "12,000", "40"),
    ("how many volunteers were sent to the flooded valley",
     "The charity sent about 350 volunteers to the flooded valley last weekend, and 12 of them were treated for "
     "minor injuries.", "350", "12"),
    ("How many ships did the navy send to the strait?",
     "After the collision, which left 9 sailors injured, the navy sent six ships to the strait to escort "
     "merchant traffic.", "six", "9"),
])
def test_the_count_of_the_asked_thing_ranks_first(ranker: SpanRanker, question: str, sentence: str, want: str,
                                                  not_want: str) -> None:
    top = ranker.rank(analyse(question), sentence)[0].text
    assert want in top and not re.search(rf"\b{not_want}\b", top), top


@pytest.mark.parametrize(("question", "sentence", "want"), [
    ("Which intelligence agency reported the transfer?",
     "The transfer was first reported by the Defence Intelligence Directorate, citing data shared with the "
     "Interior Ministry.", "Defence Intelligence Directorate"),
    ("Where were the residents moved to?",
     "About 4,000 residents of the coastal district were moved to schools in Elmford after the river burst its "
     "banks.", "Elmford"),
    ("when did the new terminal open",
     "The airport authority said the new terminal, which cost 2 billion euros, opened on 12 March 2024.",
     "12 March 2024"),
])
def test_the_asked_kind_of_name_ranks_first(ranker: SpanRanker, question: str, sentence: str, want: str) -> None:
    assert ranker.rank(analyse(question), sentence)[0].text == want


def test_bad_model_files_raise_a_clear_rag_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(RagError, match="not found"):
        SpanRanker.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(RagError, match="cannot be read"):
        SpanRanker.load(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    with pytest.raises(RagError, match="not a span-ranker model"):
        SpanRanker.load(other)
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    data["features"] = data["features"][:-1]
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RagError, match="other features"):
        SpanRanker.load(shifted)
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    data.pop("trees", None)
    data.pop("coef", None)
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RagError, match="not a span-ranker model"):
        SpanRanker.load(cut)


def _card_figures() -> dict[str, float]:
    """The model's held-out exact match and F1 (original wording) stated in the model card's "Figures"."""
    text = CARD.read_text(encoding="utf-8")
    section = text.split("## Figures", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| original"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return {"em": float(cells[2]), "f1": float(cells[3])}


@pytest.mark.skipif(not squad.data_path().exists(), reason="the SQuAD excerpt is not in ../shared/data/")
def test_held_out_slice_matches_the_model_card(ranker: SpanRanker) -> None:
    from rag.answer.span_scoring import exact, f1
    from rag.answer.train_spans import questions

    paragraphs = squad.load()
    assert squad.sha256(squad.data_path()) == squad.EXPECTED_SHA256
    _, held, titles = squad.split_by_article(paragraphs)
    assert list(titles) == ranker.meta["held_out"]
    items = questions(held)
    picked = [items[i] for i in sorted(np.random.default_rng(7).choice(len(items), SLICE, replace=False))]
    ems, f1s = [], []
    for _title, _qid, question, sentence, answer in picked:
        ranked = ranker.rank(analyse(question), sentence)
        top = ranked[0].text if ranked else sentence
        ems.append(exact(top, answer))
        f1s.append(f1(top, answer))
    card = _card_figures()
    assert abs(np.mean(ems) - card["em"]) <= TOLERANCE, (np.mean(ems), card)
    assert abs(np.mean(f1s) - card["f1"]) <= TOLERANCE, (np.mean(f1s), card)
