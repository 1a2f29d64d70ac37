"""The blind question sets (tests/data/wordings, tests/data/conversations) are well formed, and their gold is
taken from the articles: every answer string of an answerable line occurs verbatim (ignoring case) in one of
the articles the line names as its sources. This checks the gold data, not the reader."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from rag.config import PROJECT_ROOT
from rag.eval.run import load_questions

DATA = PROJECT_ROOT / "tests" / "data"
CORPORA = {"bundled": PROJECT_ROOT / "articles", "harbour": DATA / "harbour", "lakeside": DATA / "lakeside"}
WORDING_FILES = sorted((DATA / "wordings").glob("*.jsonl"))
CONVERSATION_FILES = sorted((DATA / "conversations").glob("*.jsonl"))
WORDINGS = {"original", "synonym", "casual", "reorder"}
ANSWER_FORMS = {"fact", "followup", "said", "who_is", "why", "overview", "offtopic", "unanswerable"}
UNANSWERED_FORMS = {"offtopic", "unanswerable"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _corpus(path: Path, line: dict) -> str:
    """bundled.jsonl, harbour_storm.jsonl -> the corpus the file is asked against; cross_*.jsonl say it per line."""
    return line["corpus"] if path.stem.startswith("cross_") else path.stem.split("_")[0]


def _article_texts(corpus: str) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8").lower().replace("\u2019", "'") for p in CORPORA[corpus].iterdir()}


def _check_line(path: Path, line: dict) -> None:
    where = f"{path.name} {line.get('id')}"
    assert isinstance(line.get("id"), str) and isinstance(line.get("question"), str) and line["question"].strip(), where
    corpus = _corpus(path, line)
    assert corpus in CORPORA, where
    texts = _article_texts(corpus)
    for source in line["sources"]:
        assert source in texts, f"{where}: source {source} is not an article of {corpus}"
    if line["answers"]:
        assert line["sources"], f"{where}: an answerable line names its sources"
        for answer in line["answers"]:
            needle = answer.lower().replace("\u2019", "'")
            assert any(needle in texts[s] for s in line["sources"]), f"{where}: {answer!r} is in none of its sources"
    else:
        assert line["type"] in UNANSWERED_FORMS and not line.get("answers_all"), where


def test_the_set_folders_hold_what_was_written() -> None:
    assert {p.stem for p in WORDING_FILES} >= {"bundled", "harbour", "lakeside", "cross_bundled", "cross_harbour",
                                               "cross_lakeside"}
    assert len(CONVERSATION_FILES) >= 6
    assert all(sum(p.stem.startswith(c) for p in CONVERSATION_FILES) >= 2 for c in CORPORA)


def test_ids_are_unique_across_all_sets_and_the_evaluator_reads_every_file() -> None:
    ids = Counter(line["id"] for path in (*WORDING_FILES, *CONVERSATION_FILES) for line in _lines(path))
    assert [i for i, n in ids.items() if n > 1] == []
    for path in (*WORDING_FILES, *CONVERSATION_FILES):
        assert len(load_questions(path).questions) == len(_lines(path))


@pytest.mark.parametrize("path", WORDING_FILES, ids=lambda p: p.name)
def test_wording_file(path: Path) -> None:
    lines = _lines(path)
    groups: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        _check_line(path, line)
        assert line["wording"] in WORDINGS and line["type"] in {"fact", "number", "conflict", "unanswerable"}
        assert line["id"].startswith(line["group"]), line["id"]
        if line["type"] == "conflict":
            assert line.get("answers_all") and len(line["answers"]) >= 2 and len(set(line["sources"])) >= 1, line["id"]
        if line["wording"] == "casual":
            assert line["question"] == line["question"].lower() and "?" not in line["question"], line["id"]
        groups[line["group"]].append(line)
    for group, members in groups.items():
        wordings = [m["wording"] for m in members]
        assert len(set(wordings)) == len(wordings), group
        assert len({json.dumps([m["answers"], m["sources"], m["type"]]) for m in members}) == 1, group
        if members[0]["answers"]:
            assert set(wordings) == WORDINGS, group
        elif not path.stem.startswith("cross_"):
            assert {"original", "casual"} <= set(wordings), group
    if path.stem.startswith("cross_"):
        assert all(not line["answers"] and line["corpus"] == path.stem.removeprefix("cross_") for line in lines)
    else:
        answerable = {g for g, m in groups.items() if m[0]["answers"]}
        assert len(answerable) >= 20 and len(groups) - len(answerable) >= 10
        assert {"fact", "number", "conflict"} <= {m[0]["type"] for m in groups.values()}


@pytest.mark.parametrize("path", CONVERSATION_FILES, ids=lambda p: p.name)
def test_conversation_file(path: Path) -> None:
    turns = _lines(path)
    assert len(turns) >= 8
    assert len({t.get("conversation") for t in turns}) == 1
    for turn in turns:
        _check_line(path, turn)
        assert turn["type"] in ANSWER_FORMS, turn["id"]
        assert "history" not in turn, turn["id"]
    forms = [t["type"] for t in turns]
    # an unanswered turn is followed by a turn that must lean on the conversation (a pronoun, an elided subject)
    after_unanswered = [forms[i + 1] for i in range(len(forms) - 1) if forms[i] in UNANSWERED_FORMS]
    assert after_unanswered and all(f not in UNANSWERED_FORMS for f in after_unanswered)
    assert "followup" in forms and len(set(forms)) >= 5


def test_every_answer_form_appears_at_least_twice() -> None:
    forms = Counter(t["type"] for path in CONVERSATION_FILES for t in _lines(path))
    assert {f: forms[f] for f in ANSWER_FORMS if forms[f] < 2} == {}
