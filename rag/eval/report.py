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


# the per-wording table (sets whose lines name their `wording`, rag.eval.groups)
WORDING_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("questions", "n", False),
    ("accuracy", "acc", True),
    ("accuracy_answerable", "acc-answerable", True),
    ("abstention_recall", "abst-R", True),
    ("false_abstention_rate", "false-abst", True),
)
WORDING_ORDER = ("original", "synonym", "casual", "reorder")


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
    """One row overall and one per type; with an --as-chat run each cell reads "alone / as chat"."""
    agg = report["aggregate"]
    chat = (report.get("as_chat") or {}).get("aggregate")
    named = [("all", agg["overall"]), *sorted(agg["by_type"].items())]
    rows = []
    for name, summary in named:
        other = None if chat is None else (chat["overall"] if name == "all" else chat["by_type"].get(name, {}))
        cells = []
        for key, _, pct in COLUMNS:
            cell = fmt(summary.get(key), pct)
            if other is not None and key != "questions":
                cell += " / " + fmt(other.get(key), pct)
            cells.append(cell)
        rows.append([name, *cells])
    return rows


def _wordings(names: Any) -> list[str]:
    return sorted(names, key=lambda w: (WORDING_ORDER.index(w) if w in WORDING_ORDER else len(WORDING_ORDER), w))


def _chat_aggregate(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return (report.get("as_chat") or {}).get("aggregate")


def _wording_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """One row per wording (empty when the set names none); with an --as-chat run each cell reads "alone / as chat"."""
    by_wording = report["aggregate"].get("by_wording") or {}
    chat = _chat_aggregate(report)
    chat_by = None if chat is None else chat.get("by_wording") or {}
    rows = []
    for name in _wordings(by_wording):
        cells = [name]
        for key, _, pct in WORDING_COLUMNS:
            cell = fmt(by_wording[name].get(key), pct)
            if chat_by is not None and key != "questions":
                cell += " / " + fmt((chat_by.get(name) or {}).get(key), pct)
            cells.append(cell)
        rows.append(cells)
    return rows


def _wording_header(report: Mapping[str, Any]) -> list[str]:
    return ["wording" + (" (alone / as chat)" if report.get("as_chat") else ""), *(h for _, h, _ in WORDING_COLUMNS)]


def consistency_line(report: Mapping[str, Any]) -> str:
    """How alike the wordings of one question were answered; empty when no group has two wordings."""
    figures = report["aggregate"].get("consistency")
    if not figures:
        return ""
    chat = (_chat_aggregate(report) or {}).get("consistency") if report.get("as_chat") else None

    def cell(key: str) -> str:
        return fmt(figures.get(key), True) + ("" if chat is None else " / " + fmt(chat.get(key), True))

    mixed = figures.get("mixed") or []
    return (f"Consistency over {figures['groups']} groups of wordings{' (alone / as chat)' if chat else ''}: "
            f"every wording correct {cell('all_correct')}; all wordings alike (all right or all wrong) "
            f"{cell('same_correctness')}; groups answered unevenly: {', '.join(mixed) if mixed else 'none'}")


def _header(report: Mapping[str, Any]) -> list[str]:
    return ["type" + (" (alone / as chat)" if report.get("as_chat") else ""), *(h for _, h, _ in COLUMNS)]


def _reader_line(settings: Mapping[str, Any]) -> str:
    reader = settings.get("reader") or {}
    config = reader.get("config") or {}
    if not config:
        return ""
    values = ", ".join(f"{k} {v}" for k, v in config.items() if k != "pos_weights")
    model = f" (model {reader['model_version']})" if reader.get("model_version") else ""
    return f"- reader `{reader.get('name')}`{model}: {values}; pos_weights {config.get('pos_weights')}"


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
    parts = [_grid(_header(report), _rows(report))]
    if wording_rows := _wording_rows(report):
        parts += ["", _grid(_wording_header(report), wording_rows)]
    if line := consistency_line(report):
        parts.append(line)
    if line := _multihop_line(overall):
        parts.append(line)
    wrong = wrong_ids(report)
    parts.append(f"Wrong or refused ({len(wrong)}): {', '.join(wrong) if wrong else 'none'}")
    if report.get("as_chat"):
        wrong_chat = wrong_ids(report["as_chat"])
        parts.append(f"Wrong or refused as chat ({len(wrong_chat)}): {', '.join(wrong_chat) if wrong_chat else 'none'}")
    if overall.get("errors"):
        errs = [f"{q['id']} ({q['metrics']['error']})" for q in report["questions"] if q["metrics"].get("error")]
        parts.append(f"Refused by the pipeline: {'; '.join(errs)}")
    reader = report.get("settings", {}).get("reader") or {}
    if reader.get("name"):
        model = f", model {reader['model_version']}" if reader.get("model_version") else ""
        parts.append(f"Reader: {reader['name']}{model}")
    parts.extend(f"Note: {n}" for n in report.get("notes", ()))
    return "\n".join(parts)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: provenance, the summary table, then one row per question."""
    settings = report.get("settings", {})
    manifest = report.get("index_manifest", {})
    counts = manifest.get("counts", {})
    header = _header(report)
    reader_line = _reader_line(settings)
    lines = [
        "# Evaluation report",
        "",
        f"- questions: `{report.get('question_file')}` ({report.get('question_format')})",
        f"- run at {report.get('created_at')}; index built at {manifest.get('built_at')} from "
        f"`{manifest.get('articles_dir')}` ({counts.get('articles')} articles, {counts.get('chunks')} chunks)",
        f"- model `{settings.get('embed_model')}`, top_k {settings.get('top_k')}, max_quotes {settings.get('max_quotes')}, "
        f"chunk_max_chars {settings.get('chunk_max_chars')}",
        *([reader_line] if reader_line else []),
        *(f"- note: {n}" for n in report.get("notes", ())),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in _rows(report)),
        "",
    ]
    if wording_rows := _wording_rows(report):
        wording_header = _wording_header(report)
        lines += ["| " + " | ".join(wording_header) + " |", "|" + "---|" * len(wording_header),
                  *("| " + " | ".join(row) + " |" for row in wording_rows), ""]
    if line := consistency_line(report):
        lines += [line, ""]
    if line := _multihop_line(report["aggregate"]["overall"]):
        lines += [line, ""]
    runs = [("", report["questions"])]
    if report.get("as_chat"):
        runs.append(("Asked as one chat", report["as_chat"]["questions"]))
    for title, questions in runs:
        if title:
            lines += ["", f"## {title}", ""]
        lines += ["| id | type | correct | abstained | first gold rank | cite-P | cite-R | ms | read as | answer |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for q in questions:
            m = q["metrics"]
            answer = q["answer"] or {}
            text = answer.get("text") or f"error: {m.get('error')}"
            text = " ".join(text.split()).replace("|", "\\|")
            resolved = answer.get("resolved_question") or ""
            read_as = "" if resolved in ("", q["question"]) else " ".join(resolved.split()).replace("|", "\\|")[:120]
            lines.append(
                f"| {q['id']} | {q['type']} | {fmt(m['correct'])} | {fmt(m['abstained'])} | {fmt(m.get('first_gold_rank'))} "
                f"| {fmt(m.get('citation_precision'), True)} | {fmt(m.get('citation_recall'), True)} | {m['latency_ms']:.0f} "
                f"| {read_as} | {text[:160]} |"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- comparing two runs

_TRACKED = ("correct", "abstained", "first_gold_rank", "citation_precision", "citation_recall", "valid_quotes")


def compare_reports(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from run `a` to run `b`: aggregate deltas, and per question the metrics and answer text.

    When both reports hold an --as-chat run, its changes are under "as_chat" in the same shape."""
    diff = _compare_runs(a, b)
    diff["settings"] = _settings_changed(a.get("settings", {}), b.get("settings", {}))
    if a.get("as_chat") and b.get("as_chat"):
        diff["as_chat"] = _compare_runs(a["as_chat"], b["as_chat"])
    return diff


def _settings_changed(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.update(_settings_changed(va, vb, f"{prefix}{key}."))
        elif va != vb:
            out[f"{prefix}{key}"] = {"before": va, "after": vb}
    return out


def _compare_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
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
    return {
        "aggregate": deltas,
        **_compare_wordings(a["aggregate"], b["aggregate"]),
        "questions": changed,
        "fixed": [c["id"] for c in changed if c["changes"].get("correct", {}).get("after") is True],
        "broken": [c["id"] for c in changed if c["changes"].get("correct", {}).get("after") is False],
        "only_before": sorted(set(qa) - set(qb)),
        "only_after": sorted(set(qb) - set(qa)),
    }


def _compare_wordings(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy per wording and the consistency figures, before and after (nothing when neither run has wordings)."""
    wa, wb = a.get("by_wording") or {}, b.get("by_wording") or {}
    if not wa and not wb:
        return {}
    ca, cb = a.get("consistency") or {}, b.get("consistency") or {}
    return {
        "by_wording": {w: {"before": (wa.get(w) or {}).get("accuracy"), "after": (wb.get(w) or {}).get("accuracy")}
                       for w in _wordings(set(wa) | set(wb))},
        "consistency": {k: {"before": ca.get(k), "after": cb.get(k)} for k in ("groups", "all_correct", "same_correctness")},
    }


def render_comparison(diff: Mapping[str, Any]) -> str:
    lines = []
    for key, change in diff.get("settings", {}).items():
        lines.append(f"setting {key}: {change['before']} -> {change['after']}")
    lines += _render_run(diff)
    if diff.get("as_chat"):
        lines += ["", "== asked as one chat (--as-chat) ==", *_render_run(diff["as_chat"])]
    return "\n".join(lines)


def _render_run(diff: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    pct = {key: p for key, _, p in COLUMNS}
    for key, change in diff["aggregate"].items():
        lines.append(f"{key}: {fmt(change['before'], pct[key])} -> {fmt(change['after'], pct[key])}")
    if not diff["aggregate"]:
        lines.append("aggregate figures: unchanged")
    for wording, change in (diff.get("by_wording") or {}).items():
        lines.append(f"accuracy, {wording} wording: {fmt(change['before'], True)} -> {fmt(change['after'], True)}")
    for key, change in (diff.get("consistency") or {}).items():
        lines.append(f"consistency {key}: {fmt(change['before'], key != 'groups')} -> {fmt(change['after'], key != 'groups')}")
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
    return lines
