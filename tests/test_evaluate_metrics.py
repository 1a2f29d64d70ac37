"""Each evaluation metric on hand-made cases, edge cases included; no model, no index (the figures are pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import EvalError
from rag.eval import metrics
from rag.eval.report import compare_reports, render_comparison, render_markdown, render_table
from rag.eval.run import MULTIHOP, EvalQuestion, check_thresholds, load_questions, load_report, score
from rag.text import quote_is_verbatim
from rag.types import Answer, Quote, Retrieved

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------- answer matching


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,000 troops", "10000 troops"),
        ("Eight  soldiers", "8 soldiers"),
        ("twenty-one", "21"),
        ("one hundred and five", "105"),
        ("two thousand three hundred", "2300"),
        ("1,000,000", "1000000"),
        ("It’s a “four‑month” incursion", "it's a \"4-month\" incursion"),
        ("KIM Jong-un\n\tsaid", "kim jong-un said"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert metrics.normalize(text) == expected


def test_gold_in_is_case_and_number_format_insensitive() -> None:
    assert metrics.gold_in("About 10000 were sent", ["10,000"])
    assert metrics.gold_in("Eight divisions moved", ["8 divisions"])
    assert metrics.gold_in("a four-month incursion", ["four-month", "four months"])
    assert metrics.gold_in("the WASHINGTON think tank", ["washington"])
    assert not metrics.gold_in("nothing here", ["washington"])


def test_gold_in_does_not_match_a_number_inside_a_longer_one() -> None:
    assert not metrics.gold_in("about 3,000 killed", ["30"])
    assert not metrics.gold_in("about 300 killed", ["30"])
    assert not metrics.gold_in("it cost 1.5 million", ["5 million"])
    assert metrics.gold_in("about 30 killed", ["30"])
    assert metrics.gold_in("(30)", ["30"])


def test_gold_in_any_versus_all_and_no_gold() -> None:
    assert metrics.gold_in("Kursk and Belgorod", ["Kursk", "Donetsk"])
    assert not metrics.gold_in("Kursk and Belgorod", ["Kursk", "Donetsk"], answers_all=True)
    assert metrics.gold_in("Kursk and Belgorod", ["kursk", "belgorod"], answers_all=True)
    assert not metrics.gold_in("anything", [])


# ---------------------------------------------------------------- retrieval and citations


def test_retrieval_uses_the_first_rank_of_each_article() -> None:
    m = metrics.retrieval_metrics(["a", "a", "a", "b", "c"], ["b"])
    assert m["first_gold_rank"] == 2  # "a" counts once
    assert (m["hit@1"], m["hit@3"], m["hit@5"]) == (0.0, 1.0, 1.0)
    assert m["mrr"] == 0.5
    assert m["recall@5"] == 1.0


def test_retrieval_recall_and_misses() -> None:
    m = metrics.retrieval_metrics(["a", "b", "c", "d", "e", "f"], ["f", "c"])
    assert m["first_gold_rank"] == 3 and m["recall@5"] == 0.5 and m["hit@1"] == 0.0
    miss = metrics.retrieval_metrics(["a", "b"], ["z"])
    assert miss["first_gold_rank"] is None and miss["mrr"] == 0.0 and miss["hit@5"] == 0.0 and miss["recall@5"] == 0.0
    assert metrics.retrieval_metrics([], ["z"])["mrr"] == 0.0


def test_retrieval_without_gold_sources_is_undefined() -> None:
    assert all(v is None for v in metrics.retrieval_metrics(["a"], []).values())


def test_citation_precision_and_recall() -> None:
    m = metrics.citation_metrics(["a", "a", "x", "b"], ["a", "b", "c"])
    assert m["citation_precision"] == 0.75
    assert m["citation_recall"] == pytest.approx(2 / 3)


def test_citations_with_no_quotes_or_no_gold() -> None:
    assert metrics.citation_metrics([], ["a"]) == {"citation_precision": None, "citation_recall": 0.0}
    assert metrics.citation_metrics(["a"], []) == {"citation_precision": None, "citation_recall": None}


def test_markers_and_verbatim_quotes() -> None:
    assert metrics.bad_markers("Kursk [1], and [3]; also [2]", [1, 2]) == [3]
    assert metrics.bad_markers("no markers", []) == []
    text = "Alpha beta gamma."
    assert quote_is_verbatim(text, 6, 10, "beta")
    assert not quote_is_verbatim(text, 5, 9, "beta")  # off by one
    assert not quote_is_verbatim(text, 6, 100, "beta gamma.")  # out of bounds
    assert not quote_is_verbatim(text, 3, 3, "")
    assert not quote_is_verbatim(None, 0, 5, "Alpha")  # unknown article


# ---------------------------------------------------------------- MultiHop-RAG


def test_multihop_chunk_metrics_by_hand() -> None:
    facts = ["The cat sat.", "The dog ran."]
    chunks = ["nothing", "x The  cat\nsat. y", "nothing", "nothing", "The dog ran. The cat sat."]
    m = metrics.multihop_chunk_metrics(chunks, facts)
    assert m["hits@4"] == 1.0 and m["hits@10"] == 1.0
    assert m["mrr@10"] == 0.5
    # rank 2 finds fact 1 (1/2), rank 5 finds fact 2 only, fact 1 already found (1/5); over min(2, 10)
    assert m["map@10"] == pytest.approx((1 / 2 + 1 / 5) / 2)


def test_multihop_chunk_metrics_beyond_ten_and_no_hit() -> None:
    m = metrics.multihop_chunk_metrics(["no"] * 10 + ["fact"], ["fact"])
    assert m == {"hits@4": 0.0, "hits@10": 0.0, "mrr@10": 0.0, "map@10": 0.0}
    late = metrics.multihop_chunk_metrics(["no"] * 5 + ["the fact"], ["fact"])
    assert late["hits@4"] == 0.0 and late["hits@10"] == 1.0 and late["mrr@10"] == pytest.approx(1 / 6)


# ---------------------------------------------------------------- aggregates


def test_abstention_summary_edge_cases() -> None:
    every = metrics.abstention_summary([True, True, True], [False, True, True])
    assert every["abstention_precision"] == pytest.approx(1 / 3)
    assert every["abstention_recall"] == 1.0
    assert every["false_abstention_rate"] == 1.0
    none = metrics.abstention_summary([False, False], [False, True])
    assert none == {"abstention_precision": None, "abstention_recall": 0.0, "false_abstention_rate": 0.0}
    only_answerable = metrics.abstention_summary([False], [True])
    assert only_answerable["abstention_recall"] is None


def test_latency_summary() -> None:
    assert metrics.latency_summary([]) == {"p50_ms": None, "p95_ms": None, "max_ms": None}
    got = metrics.latency_summary([10.0, 20.0, 30.0, 40.0, 1000.0])
    assert got["p50_ms"] == 30.0 and got["max_ms"] == 1000.0 and 40.0 < got["p95_ms"] < 1000.0


def test_mean_skips_undefined() -> None:
    assert metrics.mean([None, 1.0, 0.0]) == 0.5
    assert metrics.mean([None]) is None


# ---------------------------------------------------------------- scoring one answer

ARTICLES = {"a.txt": "Troops fought in Kursk. About 3,000 were hurt.", "b.txt": "Kim Jong-un leads North Korea."}


def _quote(n: int, article_id: str, start: int, end: int, text: str | None = None) -> Quote:
    return Quote(n, article_id, article_id, start, end, ARTICLES[article_id][start:end] if text is None else text)


def _retrieved(*ids: str) -> tuple[Retrieved, ...]:
    return tuple(Retrieved(i, a, a, 0, 10, 1.0 / i) for i, a in enumerate(ids, start=1))


def test_score_a_correct_cited_answer() -> None:
    q = EvalQuestion("q1", "Where?", answers=("Kursk",), sources=("a.txt",))
    answer = Answer("Where?", "In Kursk [1].", quotes=(_quote(1, "a.txt", 0, 23),), retrieved=_retrieved("b.txt", "a.txt"))
    row = score(q, answer, 12.345, ARTICLES.get)
    assert row["correct"] and row["in_quotes"] and not row["abstained"]
    assert row["first_gold_rank"] == 2 and row["citation_precision"] == 1.0 and row["citation_recall"] == 1.0
    assert row["quotes"] == 1 and row["valid_quotes"] == 1 and row["invalid_quotes"] == [] and row["bad_markers"] == []
    assert row["latency_ms"] == 12.35


def test_score_flags_a_bad_quote_and_a_dangling_marker() -> None:
    q = EvalQuestion("q1", "Where?", answers=("Kursk",), sources=("a.txt",))
    bad = _quote(1, "a.txt", 1, 24, "Troops fought in Kursk.")  # right text, wrong offsets
    answer = Answer("Where?", "In Kursk [1][2].", quotes=(bad,))
    row = score(q, answer, 1.0, ARTICLES.get)
    assert row["invalid_quotes"] == ["1"] and row["valid_quotes"] == 0
    assert row["bad_markers"] == [2] and row["markers"] == 2


def test_score_abstentions_and_no_quotes() -> None:
    answerable = EvalQuestion("q1", "Who?", answers=("Kim",), sources=("b.txt",))
    dont_know = Answer("Who?", "The articles don't say. Nothing in them mentions Kim.", abstained=True)
    row = score(answerable, dont_know, 1.0, ARTICLES.get)
    assert row["correct"] is False  # an abstention is never a right answer, whatever its text names
    assert row["in_quotes"] is False and row["citation_precision"] is None and row["citation_recall"] == 0.0
    assert row["quotes"] == 0 and row["first_gold_rank"] is None
    unanswerable = EvalQuestion("q2", "Population of Mars?", type="unanswerable")
    row = score(unanswerable, dont_know, 1.0, ARTICLES.get)
    assert row["correct"] is True and row["answerable"] is False and row["in_quotes"] is None
    assert row["citation_precision"] is None and row["hit@5"] is None
    wrongly_answered = score(unanswerable, Answer("?", "It is 3,000 [1].", quotes=(_quote(1, "a.txt", 24, 46),)), 1.0, ARTICLES.get)
    assert wrongly_answered["correct"] is False


def test_score_a_refused_question() -> None:
    q = EvalQuestion("q1", "Who?", answers=("Kim",), sources=("b.txt",))
    row = score(q, None, 1.0, ARTICLES.get, error="the question is empty")
    assert row["error"] == "the question is empty" and row["correct"] is False and row["quotes"] == 0


def test_aggregate_counts_errors_as_wrong_and_pools_quotes() -> None:
    rows = [
        score(EvalQuestion("1", "?", answers=("Kursk",), sources=("a.txt",)),
              Answer("?", "Kursk [1]", quotes=(_quote(1, "a.txt", 0, 23),), retrieved=_retrieved("a.txt")), 10, ARTICLES.get),
        score(EvalQuestion("2", "?", answers=("Kim",), sources=("b.txt",)),
              Answer("?", "Kim [1]", quotes=(_quote(1, "b.txt", 0, 5, "wrong"),), retrieved=_retrieved("a.txt", "b.txt")), 20, ARTICLES.get),
        score(EvalQuestion("3", "?", type="unanswerable"), Answer("?", "The articles don't say.", abstained=True), 30, ARTICLES.get),
        score(EvalQuestion("4", "?", answers=("x",), sources=("a.txt",)), None, 40, ARTICLES.get, error="refused"),
    ]
    agg = metrics.aggregate(rows)
    assert agg["questions"] == 4 and agg["errors"] == 1
    assert agg["accuracy"] == pytest.approx(3 / 4)  # 1, 2 and 3 right; the refused one counts as wrong
    assert agg["quote_validity"] == 0.5 and agg["quotes"] == 2
    assert agg["hit@1"] == 0.5 and agg["mrr"] == pytest.approx(0.75)
    assert agg["abstention_precision"] == 1.0 and agg["abstention_recall"] == 1.0 and agg["false_abstention_rate"] == 0.0
    assert agg["max_ms"] == 30.0  # the refused question's time is not an answer's latency


def test_aggregate_with_no_quotes_at_all() -> None:
    rows = [score(EvalQuestion("3", "?", type="unanswerable"), Answer("?", "No.", abstained=True), 1, ARTICLES.get)]
    agg = metrics.aggregate(rows)
    assert agg["quote_validity"] is None and agg["citation_precision"] is None and agg["hit@5"] is None
    assert agg["accuracy_answerable"] is None and agg["accuracy"] == 1.0


# ---------------------------------------------------------------- question files


def test_load_our_format(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "question": "Q?", "answers": ["A"], "sources": ["a.txt"], "type": "fact"}\n\n'
                    '{"id": "u", "question": "Z?", "history": ["earlier"], "answers": []}\n', encoding="utf-8")
    qset = load_questions(path)
    assert [q.id for q in qset.questions] == ["1", "u"]
    assert qset.questions[1].type == "unanswerable" and qset.questions[1].history == ("earlier",)
    assert not qset.questions[1].answerable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "question": "Q?"}\n{"id": "b", "question": \n', "line 2: bad JSON"),
        ('{"id": "a"}\n', "line 1: missing 'question'"),
        ('{"id": "a", "question": "Q?", "answers": "A"}\n', "'answers' must be a list of strings"),
        ('{"id": "a", "question": "Q?"}\n{"id": "a", "question": "R?"}\n', "appears twice"),
        ("\n\n", "holds no questions"),
        ("[1, 2", "bad JSON"),
        ("[42]", "record 1: expected a JSON object"),
    ],
)
def test_bad_question_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EvalError, match=message):
        load_questions(path)


def test_unreadable_question_file(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(EvalError, match="cannot read"):
        load_questions(tmp_path / "bin.jsonl")


def test_load_multihop_format() -> None:
    qset = load_questions(DATA / "multihop_queries.json")
    assert qset.format == MULTIHOP
    null = [q for q in qset.questions if q.type == "null_query"]
    assert len(null) == 1 and not null[0].answerable and null[0].evidence == ()
    first = qset.questions[0]
    assert first.answers == ("Marlow",) and len(first.evidence) == 2 and first.evidence[0].url.startswith("https://")


# ---------------------------------------------------------------- gating and comparing


def test_check_thresholds() -> None:
    overall = {"accuracy": 0.7, "hit@5": 0.9, "quote_validity": 1.0, "marker_validity": 0.5, "abstention_recall": None}
    assert check_thresholds(overall, {"accuracy": 0.6, "hit5": 0.9}) == []
    missed = check_thresholds(overall, {"accuracy": 0.8, "abstention_recall": 0.5, "quote_validity": 1.0})
    assert any(m.startswith("accuracy 0.700 < 0.8") for m in missed)
    assert any("abstention_recall is undefined" in m for m in missed)
    assert any(m.startswith("marker_validity") for m in missed)
    # every marker broken is a miss, not a pass (0.0 is a figure, not a missing one)
    assert check_thresholds({"quote_validity": 1.0, "marker_validity": 0.0}, {"quote_validity": 0.9}) == [
        "marker_validity 0.000 < 0.9"]
    assert check_thresholds({"quote_validity": 1.0, "marker_validity": None}, {"quote_validity": 0.9}) == []


def _report(correct: dict[str, bool], top_k: int = 8) -> dict:
    rows = []
    for qid, ok in correct.items():
        q = EvalQuestion(qid, f"{qid}?", answers=("Kursk",), sources=("a.txt",))
        text = "Kursk [1]" if ok else "Moscow [1]"
        answer = Answer(q.question, text, quotes=(_quote(1, "a.txt", 0, 23),), retrieved=_retrieved("a.txt"))
        rows.append({"id": qid, "question": q.question, "type": "fact", "answer": answer.to_dict(),
                     "metrics": score(q, answer, 5, ARTICLES.get)})
    overall = metrics.aggregate([r["metrics"] for r in rows])
    return {"format": "rag-eval-report/1", "settings": {"top_k": top_k}, "index_manifest": {}, "notes": [],
            "questions": rows, "aggregate": {"overall": overall, "by_type": {"fact": overall}}}


def test_compare_reports_question_by_question(tmp_path: Path) -> None:
    before = _report({"a": True, "b": False, "c": True})
    after = _report({"a": True, "b": True, "c": False, "d": True}, top_k=10)
    diff = compare_reports(before, after)
    assert diff["fixed"] == ["b"] and diff["broken"] == ["c"] and diff["only_after"] == ["d"]
    assert [c["id"] for c in diff["questions"]] == ["b", "c"]
    assert diff["settings"] == {"top_k": {"before": 8, "after": 10}}
    text = render_comparison(diff)
    assert "fixed (1): b" in text and "broken (1): c" in text and "Moscow [1]" in text and "setting top_k: 8 -> 10" in text
    same = compare_reports(before, before)
    assert same["questions"] == [] and same["aggregate"] == {}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(before), encoding="utf-8")
    assert load_report(path)["questions"][0]["id"] == "a"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(EvalError, match="not a report"):
        load_report(path)


def test_renderings_show_every_question_and_type() -> None:
    report = _report({"a": True, "b": False})
    table = render_table(report)
    assert table.splitlines()[0].split()[:3] == ["type", "n", "acc"]
    assert "50.0%" in table and "Wrong or refused (1): b" in table
    md = render_markdown(report)
    assert "| a | fact | yes |" in md and "| b | fact | no |" in md
