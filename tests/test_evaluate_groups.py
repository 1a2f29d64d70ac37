"""Wordings and conversations in question files: the fields, `--as-chat` per conversation, the per-wording
figures and the consistency figure. Hand-made answers scored by the real `score`; the last test asks a few
lines of the blind wording set through the real pipeline (model, index on disk) to check the report's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.config import Settings
from rag.errors import EvalError
from rag.eval import metrics
from rag.eval.groups import as_chat, consistency, wording_aggregates
from rag.eval.report import compare_reports, render_comparison, render_markdown, render_table
from rag.eval.run import EvalQuestion, QuestionResult, Report, evaluate, load_questions, score
from rag.types import Answer, Quote, Retrieved

ARTICLE = {"a.txt": "Troops fought in Kursk. About 3,000 were hurt."}
WORDINGS = Path(__file__).parent / "data" / "wordings"


def _line(qid: str, **extra: object) -> str:
    return json.dumps({"id": qid, "question": f"{qid}?", "answers": ["Kursk"], "sources": ["a.txt"], **extra})


def test_load_questions_reads_wording_group_and_conversation(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join([_line("a", wording="synonym", group="g1", conversation="c1"), _line("b")]) + "\n",
                    encoding="utf-8")
    a, b = load_questions(path).questions
    assert (a.wording, a.group, a.conversation) == ("synonym", "g1", "c1")
    assert (b.wording, b.group, b.conversation) == ("", "", "")
    written = QuestionResult(a, None, {}).to_dict()
    assert (written["wording"], written["group"], written["conversation"]) == ("synonym", "g1", "c1")
    assert not {"wording", "group", "conversation"} & set(QuestionResult(b, None, {}).to_dict())
    path.write_text(_line("a", wording=["synonym"]) + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match="line 1: 'wording' must be a string"):
        load_questions(path)


def test_as_chat_keeps_each_conversation_apart() -> None:
    q = [EvalQuestion("1", "one", conversation="x"), EvalQuestion("2", "two", conversation="y"),
         EvalQuestion("3", "three", conversation="x"), EvalQuestion("4", "four", history=("own",), conversation="y")]
    assert [c.history for c in as_chat(q)] == [(), (), ("one",), ("two", "own")]
    plain = [EvalQuestion("1", "one"), EvalQuestion("2", "two"), EvalQuestion("3", "three")]
    assert [c.history for c in as_chat(plain)] == [(), ("one",), ("one", "two")]


def test_consistency_over_groups_with_several_wordings() -> None:
    pairs = [("g1", True), ("g1", True), ("g1", True), ("g1", True),
             ("g2", True), ("g2", False),
             ("g3", False), ("g3", False),
             ("g4", True),  # one wording only: not counted
             ("", False)]   # no group: not counted
    figures = consistency(pairs)
    assert figures == {"groups": 3, "all_correct": pytest.approx(1 / 3), "same_correctness": pytest.approx(2 / 3),
                       "mixed": ["g2"]}
    assert consistency([("g1", True), ("g2", False)]) is None


def _result(qid: str, wording: str, group: str, correct: bool, answerable: bool = True) -> QuestionResult:
    q = EvalQuestion(qid, f"{qid}?", answers=("Kursk",) if answerable else (), sources=("a.txt",) if answerable else (),
                     type="fact" if answerable else "unanswerable", wording=wording, group=group)
    quote = Quote(1, "a.txt", "a.txt", 0, 23, ARTICLE["a.txt"][:23])
    retrieved = (Retrieved(1, "a.txt", "a.txt", 0, 10, 1.0),)
    if answerable or not correct:  # a wrong unanswerable one answers instead of abstaining
        answer = Answer(q.question, "Kursk [1]" if correct or not answerable else "Moscow [1]", quotes=(quote,),
                        retrieved=retrieved)
    else:
        answer = Answer(q.question, "", abstained=True, retrieved=retrieved)
    return QuestionResult(q, answer, score(q, answer, 5, ARTICLE.get))


def _report(results: list[QuestionResult]) -> dict:
    by_wording, figures = wording_aggregates(results)
    overall = metrics.aggregate([r.metrics for r in results])
    return Report(tuple(results), overall, {"fact": overall}, {}, {}, by_wording=by_wording,
                  consistency=figures).to_dict()


def test_by_wording_and_consistency_in_report_table_markdown_and_compare() -> None:
    before = _report([_result("g1-o", "original", "g1", True), _result("g1-s", "synonym", "g1", False),
                      _result("g2-o", "original", "g2", True), _result("g2-s", "synonym", "g2", True),
                      _result("u1-o", "original", "u1", True, answerable=False),
                      _result("u1-c", "casual", "u1", False, answerable=False)])
    by = before["aggregate"]["by_wording"]
    assert list(by) == ["casual", "original", "synonym"]
    assert by["original"]["accuracy"] == 1.0 and by["synonym"]["accuracy"] == 0.5 and by["casual"]["accuracy"] == 0.0
    assert by["original"]["abstention_recall"] == 1.0 and by["casual"]["abstention_recall"] == 0.0
    assert before["aggregate"]["consistency"] == {"groups": 3, "all_correct": pytest.approx(1 / 3),
                                                  "same_correctness": pytest.approx(1 / 3), "mixed": ["g1", "u1"]}
    table = render_table(before)
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.split()}
    assert rows["wording"][:3] == ["wording", "n", "acc"]
    assert rows["synonym"][1:3] == ["2", "50.0%"] and rows["original"][1:3] == ["3", "100.0%"]
    assert "Consistency over 3 groups" in table and "unevenly: g1, u1" in table
    md = render_markdown(before)
    assert "| synonym | 2 | 50.0% |" in md and "every wording correct 33.3%" in md

    after = _report([_result("g1-o", "original", "g1", True), _result("g1-s", "synonym", "g1", True),
                     _result("g2-o", "original", "g2", True), _result("g2-s", "synonym", "g2", True),
                     _result("u1-o", "original", "u1", True, answerable=False),
                     _result("u1-c", "casual", "u1", True, answerable=False)])
    diff = compare_reports(before, after)
    assert diff["by_wording"]["synonym"] == {"before": 0.5, "after": 1.0}
    assert diff["consistency"]["all_correct"] == {"before": pytest.approx(1 / 3), "after": 1.0}
    text = render_comparison(diff)
    assert "accuracy, synonym wording: 50.0% -> 100.0%" in text and "consistency all_correct: 33.3% -> 100.0%" in text


def test_a_set_without_wordings_reports_as_before() -> None:
    results = [_result("a", "", "", True), _result("b", "", "", False)]
    report = _report(results)
    assert set(report["aggregate"]) == {"overall", "by_type"}
    assert "wording" not in render_table(report) and "Consistency" not in render_markdown(report)
    assert "by_wording" not in compare_reports(report, report)


def test_blind_wordings_through_the_pipeline_report_per_wording(assistant, bundled_settings: Settings,
                                                                tmp_path: Path) -> None:
    lines = [json.loads(line) for line in (WORDINGS / "bundled.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [line for line in lines if line["group"] in ("wb03", "bu01")]
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in picked), encoding="utf-8")
    report = evaluate(assistant, load_questions(path), chat=True)
    assert sorted(report.by_wording) == sorted({line["wording"] for line in picked})
    assert sum(w["questions"] for w in report.by_wording.values()) == len(picked)
    for wording, figures in report.by_wording.items():
        mine = [r for r in report.results if r.question.wording == wording]
        assert figures["accuracy"] == pytest.approx(sum(r.metrics["correct"] for r in mine) / len(mine))
    assert report.consistency is not None and report.consistency["groups"] == 2
    assert report.chat is not None and sorted(report.chat.by_wording) == sorted(report.by_wording)
    data = report.to_dict()
    assert data["questions"][0]["wording"] == picked[0]["wording"]
    assert set(data["aggregate"]) == set(data["as_chat"]["aggregate"]) == {"overall", "by_type", "by_wording",
                                                                            "consistency"}
    out = tmp_path / "r.json"
    where = ["--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    run = CliRunner().invoke(main, ["eval", str(path), *where, "--json", str(out)], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "Consistency over 2 groups" in run.stdout
    assert json.loads(out.read_text(encoding="utf-8"))["aggregate"]["consistency"]["groups"] == 2
