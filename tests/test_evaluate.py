"""`evaluate()` and `rag eval` end to end: the real model, a real index on disk, the dev questions, a MultiHop-RAG sample.

The figures in the reports are re-derived here from the answers themselves (retrieved passages, quotes, the
article files on disk) rather than trusted, so a wrong metric fails a test whatever the assistant answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.config import Settings
from rag.eval.run import Report, evaluate, load_questions
from tests.conftest import DEV_QUESTIONS

DATA = Path(__file__).parent / "data"


def _run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _first_ranks(retrieved: list[dict]) -> list[str]:
    order: list[str] = []
    for r in sorted(retrieved, key=lambda r: r["rank"]):
        if r["article_id"] not in order:
            order.append(r["article_id"])
    return order


@pytest.fixture(scope="module")
def dev_report(assistant) -> Report:
    return evaluate(assistant, load_questions(DEV_QUESTIONS))


def test_evaluate_runs_every_question_through_the_pipeline(dev_report: Report) -> None:
    lines = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert [r.question.id for r in dev_report.results] == [line["id"] for line in lines]
    for result, line in zip(dev_report.results, lines, strict=True):
        assert result.answer is not None and result.answer.question == line["question"]
        assert result.metrics["error"] is None and result.metrics["latency_ms"] > 0
    assert set(dev_report.by_type) == {line["type"] for line in lines}
    assert sum(t["questions"] for t in dev_report.by_type.values()) == dev_report.overall["questions"] == len(lines)


def test_retrieval_and_citation_figures_match_the_answers(dev_report: Report) -> None:
    for r in dev_report.results:
        gold = set(r.question.sources)
        m = r.metrics
        if not gold:
            assert m["mrr"] is None and m["citation_precision"] is None
            continue
        order = _first_ranks(r.answer.to_dict()["retrieved"])
        rank = next((i for i, a in enumerate(order, 1) if a in gold), None)
        assert m["first_gold_rank"] == rank
        assert m["hit@5"] == (1.0 if rank and rank <= 5 else 0.0)
        assert m["mrr"] == pytest.approx(1 / rank if rank else 0.0)
        cited = [q.article_id for q in r.answer.quotes]
        if cited:
            assert m["citation_precision"] == pytest.approx(sum(a in gold for a in cited) / len(cited))
        assert m["citation_recall"] == pytest.approx(len(gold & set(cited)) / len(gold))
    defined = [r.metrics["mrr"] for r in dev_report.results if r.metrics["mrr"] is not None]
    assert dev_report.overall["mrr"] == pytest.approx(sum(defined) / len(defined))


def test_quotes_are_checked_against_the_files_on_disk(dev_report: Report, bundled_settings: Settings) -> None:
    total = 0
    for r in dev_report.results:
        labelled = [(str(q.n), q) for q in r.answer.quotes] + [(f"related {i}", q) for i, q in enumerate(r.answer.related, 1)]
        for label, q in labelled:
            text = (bundled_settings.articles_dir / q.article_id).read_text(encoding="utf-8")
            assert (text[q.start : q.end] == q.text) == (label not in r.metrics["invalid_quotes"])
            total += 1
    assert dev_report.overall["quotes"] == total
    assert dev_report.overall["quote_validity"] == 1.0, dev_report.invalid_quotes()


def test_accuracy_and_abstention_match_the_answers(dev_report: Report) -> None:
    for r in dev_report.results:
        q, a = r.question, r.answer
        if not q.answerable:
            assert r.metrics["correct"] == a.abstained
        elif all(ans.isalpha() or " " in ans and not any(c.isdigit() for c in ans) for ans in q.answers):
            # word answers: a plain case-insensitive substring test must agree with the normalising matcher
            plain = any(ans.lower() in a.text.lower() for ans in q.answers)
            if not any(w in ans.lower() for ans in q.answers for w in ("one", "two", "ten")):
                assert r.metrics["correct"] == (plain and not a.abstained), q.id
    correct = [r.metrics["correct"] for r in dev_report.results]
    assert dev_report.overall["accuracy"] == pytest.approx(sum(correct) / len(correct))
    unanswerable = [r for r in dev_report.results if not r.question.answerable]
    if unanswerable:
        recall = sum(r.answer.abstained for r in unanswerable) / len(unanswerable)
        assert dev_report.overall["abstention_recall"] == pytest.approx(recall)


def test_cli_report_holds_answers_as_rag_ask_prints_them(bundled_settings: Settings, tmp_path: Path) -> None:
    where = ["--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = _run("eval", str(DEV_QUESTIONS), *where, "--json", str(out_json), "--markdown", str(out_md),
                  "--min-quote-validity", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:3] == ["type", "n", "acc"]
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["format"] == "rag-eval-report/1"
    assert report["settings"]["index_dir"] == str(bundled_settings.index_dir)
    assert report["index_manifest"]["counts"]["articles"] == len(list(bundled_settings.articles_dir.iterdir()))
    assert set(report["aggregate"]) == {"overall", "by_type"}
    for q in report["questions"]:
        assert set(q) >= {"id", "question", "answer", "metrics"}
    first = report["questions"][0]
    asked = _run("ask", "--json", first["question"], *where, *(a for h in first["history"] for a in ("--history", h)))
    printed = json.loads(asked.stdout)
    printed.pop("timings"), first["answer"].pop("timings")
    assert first["answer"] == printed
    md = out_md.read_text(encoding="utf-8")
    assert md.startswith("# Evaluation report") and all(f"| {q['id']} |" in md for q in report["questions"])

    changed = json.loads(out_json.read_text(encoding="utf-8"))
    flipped = changed["questions"][0]
    flipped["metrics"]["correct"] = not flipped["metrics"]["correct"]
    (tmp_path / "b.json").write_text(json.dumps(changed), encoding="utf-8")
    diff = _run("eval", "--compare", str(out_json), str(tmp_path / "b.json"))
    assert diff.exit_code == 0 and f"{flipped['id']}:" in diff.stdout and "correct:" in diff.stdout


def test_cli_exit_status_when_a_threshold_is_missed(bundled_settings: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "x", "question": "Who leads North Korea?", "answers": ["qzxqzx"],
                                     "sources": ["nowhere.txt"], "type": "fact"}) + "\n", encoding="utf-8")
    where = ["--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    missed = _run("eval", str(questions), *where, "--min-accuracy", "0.5", "--min-hit5", "0.5")
    assert missed.exit_code == 1
    assert "accuracy 0.000 < 0.5" in missed.stderr and "hit@5 0.000 < 0.5" in missed.stderr
    undefined = _run("eval", str(questions), *where, "--min-abstention-recall", "0.5")
    assert undefined.exit_code == 1 and "abstention_recall is undefined" in undefined.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "question": "Q?"}\nnot json\n', "line 2: bad JSON"),
        ('{"id": "a", "answers": []}\n', "line 1: missing 'question'"),
    ],
)
def test_cli_bad_question_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(content, encoding="utf-8")
    result = _run("eval", str(path))
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_cli_bad_arguments(tmp_path: Path) -> None:
    missing = _run("eval", str(tmp_path / "none.jsonl"))
    assert missing.exit_code == 2 and "cannot read question file" in missing.stderr
    assert _run("eval").exit_code == 2
    (tmp_path / "x.json").write_text("[]", encoding="utf-8")
    not_reports = _run("eval", "--compare", str(tmp_path / "x.json"), str(tmp_path / "x.json"))
    assert not_reports.exit_code == 2 and "not a report" in not_reports.stderr
    assert _run("eval", str(DEV_QUESTIONS), "--min-accuracy", "1.5").exit_code == 2


def test_cli_multihop_rag_corpus_and_queries(tmp_path: Path) -> None:
    corpus, queries = DATA / "multihop_corpus.json", DATA / "multihop_queries.json"
    where = ["--articles", str(corpus), "--index", str(tmp_path / "index")]
    built = _run("index", "build", *where)
    assert built.exit_code == 0, built.output
    out = tmp_path / "mh.json"
    result = _run("eval", str(queries), *where, "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "MultiHop-RAG retrieval" in result.stdout and "Hits@10" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["question_format"] == "multihop-rag" and report["settings"]["top_k"] == 10
    assert any("top_k" in note for note in report["notes"])
    raw = json.loads(queries.read_text(encoding="utf-8"))
    bodies = {r["title"]: r["body"] for r in json.loads(corpus.read_text(encoding="utf-8"))}
    non_null = [q for q in raw if q["question_type"] != "null_query"]
    assert report["aggregate"]["overall"]["multihop"]["queries"] == len(non_null)
    for q, r in zip(raw, report["questions"], strict=True):
        if q["question_type"] == "null_query":
            assert r["metrics"]["multihop"] is None and r["gold"]["sources"] == []
            continue
        # every evidence item maps to its article (by url, or by title when the url is empty)
        assert len(r["gold"]["sources"]) == len({e["title"] for e in q["evidence_list"]})
        assert all(s.startswith("multihop_corpus.json#") for s in r["gold"]["sources"])
        chunks = [bodies[p["title"]][p["start"] : p["end"]] for p in r["answer"]["retrieved"][:10]]
        facts = ["".join(e["fact"].split()) for e in q["evidence_list"]]
        hit = next((i for i, c in enumerate(chunks, 1) if any(f in "".join(c.split()) for f in facts)), None)
        assert r["metrics"]["multihop"]["hits@10"] == (1.0 if hit else 0.0)
        assert r["metrics"]["multihop"]["mrr@10"] == pytest.approx(1 / hit if hit else 0.0)
