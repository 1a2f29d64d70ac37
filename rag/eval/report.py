"""Showing evaluation reports: the terminal table, the markdown report, and the question-by-question diff.

Everything here works on the JSON-ready dict of a report (`Report.to_dict()` or a saved `--json` file), so a
report from last week compares with today's without re-running anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rag.eval.metrics import MULTIHOP_KEYS

# (aggregate key, column heading, is a percentage)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("questions", "n", False),
    ("accuracy", "acc", True),
    ("answer_in_quotes", "in-quotes", True),
    ("hit@1", "hit@1", True),
    ("hit@5", "hit@5", True),
    ("mrr", "MRR", False),
    ("citation_precision", "cite-P", True),
    ("citation_recall", "cite-R", True),
    ("quote_validity", "verbatim", True),
    ("abstention_precision", "abst-P", True),
    ("abstention_recall", "abst-R", True),
    ("false_abstention_rate", "false-abst", True),
    ("p50_ms", "p50 ms", False),
    ("p95_ms", "p95 ms", False),
    ("max_ms", "max ms", False),
)


def fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if percent:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _rows(report: Mapping[str, Any]) -> list[list[str]]:
    agg = report["aggregate"]
    named = [("all", agg["overall"]), *sorted(agg["by_type"].items())]
    return [[name, *(fmt(summary.get(key), pct) for key, _, pct in COLUMNS)] for name, summary in named]


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _multihop_line(overall: Mapping[str, Any]) -> str:
    mh = overall.get("multihop")
    if not mh:
        return ""
    figures = ", ".join(f"{k.replace('hits', 'Hits').replace('mrr', 'MRR').replace('map', 'MAP')} {fmt(mh[k])}" for k in MULTIHOP_KEYS)
    return f"MultiHop-RAG retrieval ({mh['queries']} non-null queries, chunk-level): {figures}"


def wrong_ids(report: Mapping[str, Any]) -> list[str]:
    return [q["id"] for q in report["questions"] if not q["metrics"]["correct"]]


def render_table(report: Mapping[str, Any]) -> str:
    """The end-of-run summary: one row overall and one per question type, then what needs attention."""
    overall = report["aggregate"]["overall"]
    parts = [_grid(["type", *(h for _, h, _ in COLUMNS)], _rows(report))]
    if line := _multihop_line(overall):
        parts.append(line)
    wrong = wrong_ids(report)
    parts.append(f"Wrong or refused ({len(wrong)}): {', '.join(wrong) if wrong else 'none'}")
    if overall.get("errors"):
        errs = [f"{q['id']} ({q['metrics']['error']})" for q in report["questions"] if q["metrics"].get("error")]
        parts.append(f"Refused by the pipeline: {'; '.join(errs)}")
    parts.extend(f"Note: {n}" for n in report.get("notes", ()))
    return "\n".join(parts)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: provenance, the summary table, then one row per question."""
    settings = report.get("settings", {})
    manifest = report.get("index_manifest", {})
    counts = manifest.get("counts", {})
    header = ["type", *(h for _, h, _ in COLUMNS)]
    lines = [
        "# Evaluation report",
        "",
        f"- questions: `{report.get('question_file')}` ({report.get('question_format')})",
        f"- run at {report.get('created_at')}; index built at {manifest.get('built_at')} from "
        f"`{manifest.get('articles_dir')}` ({counts.get('articles')} articles, {counts.get('chunks')} chunks)",
        f"- model `{settings.get('embed_model')}`, top_k {settings.get('top_k')}, max_quotes {settings.get('max_quotes')}, "
        f"chunk_max_chars {settings.get('chunk_max_chars')}",
        *(f"- note: {n}" for n in report.get("notes", ())),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in _rows(report)),
        "",
    ]
    if line := _multihop_line(report["aggregate"]["overall"]):
        lines += [line, ""]
    lines += ["| id | type | correct | abstained | first gold rank | cite-P | cite-R | ms | answer |", "|---|---|---|---|---|---|---|---|---|"]
    for q in report["questions"]:
        m = q["metrics"]
        text = (q["answer"] or {}).get("text") or f"error: {m.get('error')}"
        text = " ".join(text.split()).replace("|", "\\|")
        lines.append(
            f"| {q['id']} | {q['type']} | {fmt(m['correct'])} | {fmt(m['abstained'])} | {fmt(m.get('first_gold_rank'))} "
            f"| {fmt(m.get('citation_precision'), True)} | {fmt(m.get('citation_recall'), True)} | {m['latency_ms']:.0f} "
            f"| {text[:160]} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- comparing two runs

_TRACKED = ("correct", "abstained", "first_gold_rank", "citation_precision", "citation_recall", "valid_quotes")


def compare_reports(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from run `a` to run `b`: aggregate deltas, and per question the metrics and answer text."""
    overall_a, overall_b = a["aggregate"]["overall"], b["aggregate"]["overall"]
    deltas = {}
    for key, _, _ in COLUMNS:
        va, vb = overall_a.get(key), overall_b.get(key)
        if va != vb:
            deltas[key] = {"before": va, "after": vb}
    qa = {q["id"]: q for q in a["questions"]}
    qb = {q["id"]: q for q in b["questions"]}
    changed = []
    for qid in [i for i in qa if i in qb]:
        ma, mb = qa[qid]["metrics"], qb[qid]["metrics"]
        diffs = {k: {"before": ma.get(k), "after": mb.get(k)} for k in _TRACKED if ma.get(k) != mb.get(k)}
        text_a, text_b = (qa[qid]["answer"] or {}).get("text"), (qb[qid]["answer"] or {}).get("text")
        if diffs or text_a != text_b:
            changed.append({"id": qid, "changes": diffs, "answer_before": text_a, "answer_after": text_b})
    settings_changed = {k: {"before": v, "after": b.get("settings", {}).get(k)}
                        for k, v in a.get("settings", {}).items() if b.get("settings", {}).get(k) != v}
    return {
        "aggregate": deltas,
        "settings": settings_changed,
        "questions": changed,
        "fixed": [c["id"] for c in changed if c["changes"].get("correct", {}).get("after") is True],
        "broken": [c["id"] for c in changed if c["changes"].get("correct", {}).get("after") is False],
        "only_before": sorted(set(qa) - set(qb)),
        "only_after": sorted(set(qb) - set(qa)),
    }


def render_comparison(diff: Mapping[str, Any]) -> str:
    lines = []
    for key, change in diff["settings"].items():
        lines.append(f"setting {key}: {change['before']} -> {change['after']}")
    pct = {key: p for key, _, p in COLUMNS}
    for key, change in diff["aggregate"].items():
        lines.append(f"{key}: {fmt(change['before'], pct[key])} -> {fmt(change['after'], pct[key])}")
    if not diff["aggregate"]:
        lines.append("aggregate figures: unchanged")
    lines.append(f"fixed ({len(diff['fixed'])}): {', '.join(diff['fixed']) or 'none'}")
    lines.append(f"broken ({len(diff['broken'])}): {', '.join(diff['broken']) or 'none'}")
    if diff["only_before"] or diff["only_after"]:
        lines.append(f"only in the first run: {', '.join(diff['only_before']) or 'none'}; "
                     f"only in the second: {', '.join(diff['only_after']) or 'none'}")
    for change in diff["questions"]:
        lines.append("")
        lines.append(f"{change['id']}:")
        for key, c in change["changes"].items():
            lines.append(f"  {key}: {fmt(c['before'])} -> {fmt(c['after'])}")
        if change["answer_before"] != change["answer_after"]:
            lines.append(f"  answer before: {change['answer_before']}")
            lines.append(f"  answer after:  {change['answer_after']}")
    return "\n".join(lines)
