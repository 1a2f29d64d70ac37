"""The rule reader on hand-made passages, without the embedding model: figures keep their unit, "A of B", the noun a
figure counts, "which X" answered by the X's name, conflicts only for the same quantity, and ReaderConfig validation.

Sentence similarities are given by hand (a fake of the encoder's scores: the point is the rules, not the model).
"""

from __future__ import annotations

import pytest

from rag.answer.config import ReaderConfig
from rag.answer.extractive import RuleReader
from rag.answer.question import analyse
from rag.answer.spans import Span, candidates, counted_noun, number_value
from rag.types import Chunk, Passage


def _passages(*articles: tuple[str, list[tuple[str, float]]]) -> tuple[Passage, ...]:
    out = []
    for rank, (article_id, sentences) in enumerate(articles, start=1):
        text, spans, pos = "", [], 0
        for sentence, _ in sentences:
            spans.append((pos, pos + len(sentence)))
            text += sentence + " "
            pos += len(sentence) + 1
        chunk = Chunk(f"{article_id}#0", article_id, text.rstrip(), 0, len(text.rstrip()), tuple(spans))
        out.append(Passage(chunk, article_id, 1.0 / rank, rank, tuple(score for _, score in sentences)))
    return tuple(out)


def _reader() -> RuleReader:
    return RuleReader(lambda term: 1, 10)


@pytest.mark.parametrize(("sentence", "figure"), [
    ("The bloom covers roughly 40 square kilometres of the basin.", "roughly 40 square kilometres"),
    ("The closure would cost businesses around 3 million euros.", "around 3 million euros"),
    ("Winds of up to 140 kilometres per hour hit the city.", "up to 140 kilometres per hour"),
    ("Toxin levels were six times the safe limit.", "six times"),
    ("Losses exceeded half a million casualties.", "half a million"),
    ("Forces capture roughly 30 square kilometers (11.5 square miles) per day.", "roughly 30 square kilometers (11.5 square miles) per day"),
])
def test_figures_keep_their_unit_and_qualifier(sentence: str, figure: str) -> None:
    assert figure in [s.text for s in candidates(sentence, "number")]


def test_number_values_ignore_units_and_qualifiers() -> None:
    assert number_value("roughly 40 square kilometres") == (40.0,)
    assert number_value("half a million") == (500000.0,)
    assert number_value("around 3 million euros") == (3000000.0,)
    assert number_value("10,000 to 12,000") == (10000.0, 12000.0)


def test_the_noun_a_figure_counts() -> None:
    sentence = "The institute will measure phosphorus at twelve stations around the lake."
    twelve = next(s for s in candidates(sentence, "number"))
    assert counted_noun(sentence, twelve) == "stations"
    assert counted_noun("It cost 3 million euros.", Span(8, 23, "3 million euros")) == ""


@pytest.mark.parametrize(("question", "gold"), [
    ("How many drones did Ukraine shoot down?", "13"),
    ("How many drones were launched during the attacks?", "24"),
])
def test_a_of_b_figures(question: str, gold: str) -> None:
    passages = _passages(("a", [("Officials said Ukraine shot down 13 out of 24 Russian drones launched during the attacks.", 0.7)]))
    answer = _reader().read(analyse(question), passages)
    assert answer.text.split(" [")[0] == gold


def test_part_and_whole_of_members() -> None:
    passages = _passages(("a", [("The chair said that 220 of its 310 members had stopped fishing since the ban.", 0.7)]))
    assert _reader().read(analyse("How many members have stopped fishing?"), passages).text.startswith("220")
    assert _reader().read(analyse("How many members does the co-operative have?"), passages).text.startswith("310")


def test_a_count_of_a_noun_never_counted_abstains() -> None:
    passages = _passages(("a", [("Pyongyang sent more than 10,000 soldiers to Russia last year.", 0.7)]))
    assert _reader().read(analyse("How many soldiers did Pyongyang send to Russia?"), passages).text.startswith("more than 10,000")
    assert _reader().read(analyse("How many ships did Pyongyang send to Russia?"), passages).abstained


def test_which_x_is_answered_by_the_name_of_the_x() -> None:
    passages = _passages(("a", [
        ("“Communication problems between the forces will continue to cause friction.”", 0.8),
        ("– Institute for the Study of War", 0.2),
    ]))
    answer = _reader().read(analyse("Which think tank said communication problems will cause friction?"), passages)
    assert answer.text.startswith("Institute for the Study of War")
    agency = _passages(("a", [
        ("Reports say the first soldier taken prisoner by Ukrainian forces has died.", 0.7),
        ("South Korea's National Intelligence Service confirmed the soldier died.", 0.65),
    ]))
    answer = _reader().read(analyse("Which intelligence service confirmed the soldier died?"), agency)
    assert answer.text.startswith("National Intelligence Service")


def test_different_quantities_are_not_a_conflict() -> None:
    passages = _passages(
        ("a", [("About 10,000 North Korean soldiers have been sent to Russia.", 0.8)]),
        ("b", [("Around 8,000 North Korean soldiers have already arrived at Russian bases.", 0.75)]),
    )
    answer = _reader().read(analyse("How many North Korean soldiers have been sent to Russia?"), passages)
    assert not answer.conflicts and answer.text.startswith("About 10,000")


def test_different_values_of_the_same_quantity_are_a_conflict() -> None:
    passages = _passages(
        ("a", [("The mayor said that 1,200 residents had been evacuated from the docks.", 0.8)]),
        ("b", [("Officials now say that about 1,500 people were evacuated during the storm.", 0.78)]),
    )
    answer = _reader().read(analyse("How many residents were evacuated?"), passages)
    assert answer.conflicts and {c.value for c in answer.conflicts[0].claims} == {"1,200", "about 1,500"}


def test_reader_config_is_validated_and_reported() -> None:
    with pytest.raises(ValueError, match="min_dense"):
        ReaderConfig(min_dense=1.5)
    with pytest.raises(ValueError, match="followup_gate"):
        ReaderConfig(followup_gate="sometimes")
    with pytest.raises(ValueError, match="unknown reader setting"):
        ReaderConfig().replace(nonsense=1)
    with pytest.raises(ValueError, match="ReaderConfig"):
        RuleReader(lambda t: 1, 1, config={"min_support": 0.5})  # type: ignore[arg-type]
    assert ReaderConfig().to_dict()["min_support"] == ReaderConfig().min_support
