"""Evaluation: read a scripted question set, run each question through `Assistant.ask`, score, aggregate.

`Assistant.ask` is the one call the chat and the API make too, so a figure here is a figure of what users get.
Two question formats are read: our JSONL (/work/shared/eval/README.md: id, question, history, answers,
answers_all, sources, type) and MultiHop-RAG's query file (a JSON list of {query, answer, question_type,
evidence_list[{title, url, fact}]}), whose evidence is mapped to indexed articles by url, then by title.
The figures themselves are computed in `rag.eval.metrics`; rendering and comparing reports is in `rag.eval.report`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.answer.parse import is_heading
from rag.errors import EvalError, QuestionError
from rag.eval import metrics
from rag.eval.groups import aggregate_dict, as_chat, by_field, wording_aggregates
from rag.text import quote_is_verbatim, terms
from rag.types import Answer

REPORT_FORMAT = "rag-eval-report/1"
MULTIHOP = "multihop-rag"
JSONL = "jsonl"
MULTIHOP_NULL = "null_query"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One MultiHop-RAG evidence item: the fact and the article (title, url) it comes from."""

    title: str
    url: str
    fact: str


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One scripted question with its gold data. No `answers` means the articles cannot answer it."""

    id: str
    question: str
    history: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    answers_all: bool = False
    sources: tuple[str, ...] = ()
    type: str = "fact"
    evidence: tuple[Evidence, ...] = ()
    # optional grouping (rag.eval.groups): how this line is worded, which lines word the same question, which chat
    wording: str = ""
    group: str = ""
    conversation: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True, slots=True)
class QuestionSet:
    questions: tuple[EvalQuestion, ...]
    format: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """One question, the full `Answer` it got (None when the pipeline refused it) and its metrics."""

    question: EvalQuestion
    answer: Answer | None
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        return {
            "id": q.id,
            "question": q.question,
            "history": list(q.history),
            "type": q.type,
            **{k: getattr(q, k) for k in ("wording", "group", "conversation") if getattr(q, k)},
            "gold": {"answers": list(q.answers), "answers_all": q.answers_all, "sources": list(q.sources),
                     **({"evidence": [dataclasses.asdict(e) for e in q.evidence]} if q.evidence else {})},
            "answer": self.answer.to_dict() if self.answer else None,
            "metrics": self.metrics,
        }


@dataclass(frozen=True, slots=True)
class ChatRun:
    """The question set asked as one chat: per-question results (their `history` is what was sent) and aggregates."""

    results: tuple[QuestionResult, ...]
    overall: dict[str, Any]
    by_type: dict[str, dict[str, Any]]
    by_wording: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    consistency: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"questions": [r.to_dict() for r in self.results],
                "aggregate": aggregate_dict(self.overall, self.by_type, self.by_wording, self.consistency)}


@dataclass(frozen=True, slots=True)
class Report:
    """Per-question results, aggregates overall and per type, and what produced them (settings, manifest)."""

    results: tuple[QuestionResult, ...]
    overall: dict[str, Any]
    by_type: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    manifest: dict[str, Any]
    question_file: str = ""
    question_format: str = JSONL
    notes: tuple[str, ...] = ()
    created_at: str = ""
    # --as-chat: the same questions asked as chats (each with the earlier questions of its conversation as history)
    chat: ChatRun | None = None
    # when the set names wordings (rag.eval.groups): aggregates per wording, and whether a group's wordings agree
    by_wording: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    consistency: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        chat = {"as_chat": self.chat.to_dict()} if self.chat is not None else {}
        return {
            "format": REPORT_FORMAT,
            "created_at": self.created_at,
            "question_file": self.question_file,
            "question_format": self.question_format,
            "settings": self.settings,
            "index_manifest": self.manifest,
            "notes": list(self.notes),
            "questions": [r.to_dict() for r in self.results],
            "aggregate": aggregate_dict(self.overall, self.by_type, self.by_wording, self.consistency),
            **chat,
        }

    def invalid_quotes(self) -> list[str]:
        """`id:[n]` for every quote that is not verbatim and every marker that points nowhere: always a bug."""
        bad = []
        for r in (*self.results, *(self.chat.results if self.chat else ())):
            bad += [f"{r.question.id}:{n}" for n in r.metrics.get("invalid_quotes") or ()]
            bad += [f"{r.question.id}:marker [{n}]" for n in r.metrics.get("bad_markers") or ()]
        return bad


# ---------------------------------------------------------------- reading question files


def _str_list(value: Any, field: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalError(f"{where}: '{field}' must be a list of strings")
    return tuple(value)


def _our_question(record: Any, where: str) -> EvalQuestion:
    if not isinstance(record, dict):
        raise EvalError(f"{where}: expected a JSON object")
    qid, text = record.get("id"), record.get("question")
    if not isinstance(qid, str | int) or isinstance(qid, bool) or not str(qid).strip():
        raise EvalError(f"{where}: missing 'id'")
    if not isinstance(text, str) or not text.strip():
        raise EvalError(f"{where}: missing 'question'")
    answers = _str_list(record.get("answers"), "answers", where)
    answers_all = record.get("answers_all", False)
    if not isinstance(answers_all, bool):
        raise EvalError(f"{where}: 'answers_all' must be true or false")
    qtype = record.get("type") or ("fact" if answers else "unanswerable")
    if not isinstance(qtype, str):
        raise EvalError(f"{where}: 'type' must be a string")
    grouping = {key: record.get(key) or "" for key in ("wording", "group", "conversation")}
    for key, value in grouping.items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise EvalError(f"{where}: '{key}' must be a string")
    return EvalQuestion(str(qid), text, _str_list(record.get("history"), "history", where), answers, answers_all,
                        _str_list(record.get("sources"), "sources", where), qtype,
                        **{key: str(value) for key, value in grouping.items()})


def _multihop_question(record: Any, number: int, where: str) -> EvalQuestion:
    if not isinstance(record, dict) or not isinstance(record.get("query"), str) or not record["query"].strip():
        raise EvalError(f"{where}: expected an object with a 'query'")
    qtype = record.get("question_type") or "query"
    evidence = []
    for item in record.get("evidence_list") or []:
        if not isinstance(item, dict) or not isinstance(item.get("fact", ""), str):
            raise EvalError(f"{where}: each 'evidence_list' item must be an object with a 'fact'")
        evidence.append(Evidence(str(item.get("title") or ""), str(item.get("url") or ""), item.get("fact") or ""))
    answer = record.get("answer")
    answers = () if qtype == MULTIHOP_NULL or not isinstance(answer, str) or not answer.strip() else (answer,)
    return EvalQuestion(str(record.get("id") or f"q{number:04d}"), record["query"], answers=answers,
                        type=str(qtype), evidence=tuple(evidence))


def load_questions(path: Path) -> QuestionSet:
    """Read a question file: our JSONL, or a MultiHop-RAG JSON list (recognised by its `query` fields)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read question file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}, line {exc.lineno}: bad JSON ({exc.msg}, column {exc.colno})") from None
        multihop = any(isinstance(r, dict) and "query" in r for r in data)
        questions = [
            _multihop_question(r, i, f"{path}, record {i}") if multihop else _our_question(r, f"{path}, record {i}")
            for i, r in enumerate(data, start=1)
        ]
        fmt = MULTIHOP if multihop else JSONL
    else:
        questions, fmt = [], JSONL
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalError(f"{path}, line {number}: bad JSON ({exc.msg}, column {exc.colno})") from None
            questions.append(_our_question(record, f"{path}, line {number}"))
    if not questions:
        raise EvalError(f"{path} holds no questions")
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise EvalError(f"{path}: question id {q.id!r} appears twice")
        seen.add(q.id)
    return QuestionSet(tuple(questions), fmt, str(path))


# ---------------------------------------------------------------- running


def _evidence_mapper(index: Any) -> Callable[[Evidence], tuple[str, ...]]:
    """Map MultiHop-RAG evidence to indexed article ids: by url when it has one that matches, else by title."""
    by_url: dict[str, list[str]] = {}
    by_title: dict[str, list[str]] = {}
    for article_id in index.article_ids():
        article = index.article(article_id)
        if article is None:
            continue
        if article.url:
            by_url.setdefault(article.url.strip(), []).append(article_id)
        by_title.setdefault(" ".join(article.title.split()).lower(), []).append(article_id)

    def lookup(evidence: Evidence) -> tuple[str, ...]:
        hits = by_url.get(evidence.url.strip()) if evidence.url.strip() else None
        return tuple(hits or by_title.get(" ".join(evidence.title.split()).lower(), ()))

    return lookup


def score(question: EvalQuestion, answer: Answer | None, latency_ms: float, article_text: Callable[[str], str | None],
          error: str | None = None) -> dict[str, Any]:
    """Every per-question metric of one answer. `article_text(id)` gives the stored text an offset points into."""
    gold = question.sources
    row: dict[str, Any] = {"answerable": question.answerable, "latency_ms": round(latency_ms, 2), "error": error}
    if answer is None:
        return {**row, "abstained": False, "correct": False, "in_quotes": None, "quotes": 0, "valid_quotes": 0,
                "invalid_quotes": [], "markers": 0, "bad_markers": [], "multihop": None,
                **metrics.retrieval_metrics((), gold), **metrics.citation_metrics((), gold)}
    if question.answerable:
        correct = not answer.abstained and metrics.gold_in(answer.text, question.answers, question.answers_all)
        in_quotes: bool | None = metrics.gold_in("\n".join(q.text for q in answer.quotes), question.answers,
                                                 question.answers_all)
    else:
        correct, in_quotes = answer.abstained, None
    checked = [(str(q.n), q) for q in answer.quotes] + [(f"related {i}", q) for i, q in enumerate(answer.related, 1)]
    invalid = [label for label, q in checked if not quote_is_verbatim(article_text(q.article_id), q.start, q.end, q.text)]
    row.update(
        abstained=answer.abstained,
        correct=bool(correct),
        in_quotes=in_quotes,
        **metrics.retrieval_metrics([r.article_id for r in answer.retrieved], gold),
        **metrics.citation_metrics([q.article_id for q in answer.quotes], gold),
        quotes=len(checked),
        valid_quotes=len(checked) - len(invalid),
        invalid_quotes=invalid,
        markers=len(metrics.markers(answer.text)),
        bad_markers=metrics.bad_markers(answer.text, (q.n for q in answer.quotes)),
        multihop=None,
        # a section heading quoted as the answer (its first quote): never right, counted on its own
        heading_quoted=bool(answer.quotes) and not answer.abstained and is_heading(
            article_text(answer.quotes[0].article_id) or "", answer.quotes[0].start, answer.quotes[0].end),
    )
    if question.evidence and question.type != MULTIHOP_NULL:
        texts = [(article_text(r.article_id) or "")[r.start : r.end] for r in answer.retrieved]
        row["multihop"] = {**metrics.multihop_chunk_metrics(texts, [e.fact for e in question.evidence]),
                           "retrieved": len(texts)}
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def offtopic_antecedents(results: Sequence[QuestionResult]) -> int:
    """Turns read against an off-topic turn (type "offtopic") of their history: the resolved question carries
    a word of the off-topic question that the turn itself does not have and no other earlier turn has."""
    by_question = {r.question.question: r.question for r in results}
    count = 0
    for r in results:
        if r.answer is None or not r.question.history:
            continue
        offtopic = [h for h in r.question.history if by_question.get(h) is not None and by_question[h].type == "offtopic"]
        if not offtopic:
            continue
        others = set(terms(r.question.question)).union(
            *(terms(h) for h in r.question.history if h not in offtopic))
        added = set(terms(r.answer.resolved_question)) - others
        count += any(added & set(terms(h)) for h in offtopic)
    return count


def _by_type(results: Sequence[QuestionResult]) -> dict[str, dict[str, Any]]:
    return by_field(results, "type")


def _reader_settings(assistant: Any) -> dict[str, Any]:
    """The reader's name and frozen config (thresholds), when it has them."""
    reader = getattr(assistant, "reader", None)
    config = getattr(reader, "config", None)
    out: dict[str, Any] = {"name": getattr(reader, "name", type(reader).__name__)}
    if config is not None and hasattr(config, "to_dict"):
        out["config"] = config.to_dict()
    if isinstance(getattr(reader, "version", None), str):  # the learned reader's model version
        out["model_version"] = reader.version
    return out


def evaluate(assistant: Any, questions: QuestionSet | Sequence[EvalQuestion],
             progress: Callable[[int, int], None] | None = None, notes: Sequence[str] = (),
             warmup: bool = True, chat: bool = False) -> Report:
    """Ask every question through `assistant.ask` (the chat's and the API's path) and score the answers.

    With `chat`, the set is asked a second time as one conversation (`as_chat`) and both runs are reported.
    A question the pipeline refuses (QuestionError) is recorded with its message and counted as wrong;
    any other error stops the run, since it means the assistant itself is broken.
    """
    qset = questions if isinstance(questions, QuestionSet) else QuestionSet(tuple(questions), JSONL)
    index = assistant.index
    texts: dict[str, str | None] = {}

    def article_text(article_id: str) -> str | None:
        if article_id not in texts:
            article = index.article(article_id)
            texts[article_id] = article.text if article else None
        return texts[article_id]

    all_notes = list(notes)
    prepared = list(qset.questions)
    if any(q.evidence for q in prepared):
        lookup = _evidence_mapper(index)
        unmapped = 0
        for i, q in enumerate(prepared):
            ids: dict[str, None] = {}
            for e in q.evidence:
                found = lookup(e)
                unmapped += not found
                ids.update(dict.fromkeys(found))
            prepared[i] = dataclasses.replace(q, sources=tuple(ids) or q.sources)
        if unmapped:
            all_notes.append(f"{unmapped} evidence item(s) matched no indexed article by url or title")
        all_notes.append(f"MultiHop-RAG chunk metrics over the top {assistant.settings.top_k} retrieved passages "
                         "(top_k); Hits@10 needs top_k >= 10")
    if warmup and prepared:
        # the first call loads lazy parts (spaCy, caches); a chat pays that once per session, not per question
        with contextlib.suppress(QuestionError):
            assistant.ask(prepared[0].question, prepared[0].history)
        all_notes.append("latency measured after one unscored warm-up question")
    total = len(prepared) * (2 if chat else 1)

    def run(batch: Sequence[EvalQuestion], offset: int) -> list[QuestionResult]:
        results = []
        for done, q in enumerate(batch):
            started = time.perf_counter()
            answer, error = None, None
            try:
                answer = assistant.ask(q.question, q.history)
            except QuestionError as exc:
                error = str(exc)
            latency = (time.perf_counter() - started) * 1000
            results.append(QuestionResult(q, answer, score(q, answer, latency, article_text, error)))
            if progress:
                progress(offset + done + 1, total)
        return results

    results = run(prepared, 0)
    chat_run = None
    if chat:
        chat_results = run(as_chat(prepared), len(prepared))
        overall = {**metrics.aggregate([r.metrics for r in chat_results]),
                   "offtopic_antecedents": offtopic_antecedents(chat_results)}
        chat_run = ChatRun(tuple(chat_results), overall, _by_type(chat_results), *wording_aggregates(chat_results))
        all_notes.append("--as-chat: each question also asked after every earlier question of its conversation "
                         "(the whole set when no question names one) as its history")
    return Report(
        results=tuple(results),
        overall=metrics.aggregate([r.metrics for r in results]),
        by_type=_by_type(results),
        settings=_jsonable({**dataclasses.asdict(assistant.settings), "reader": _reader_settings(assistant),
                            # what "auto" meant on this machine (the model installed or not): figures compare
                            **({"answer_mode_used": assistant.answer_mode()} if hasattr(assistant, "answer_mode")
                               else {})}),
        manifest=_jsonable(dict(index.manifest)),
        question_file=qset.path,
        question_format=qset.format,
        notes=tuple(all_notes),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        chat=chat_run,
        **dict(zip(("by_wording", "consistency"), wording_aggregates(results), strict=True)),
    )


# ---------------------------------------------------------------- gating

# option name -> the aggregates it gates: the first must be defined; the others count when they are defined
# (quote validity gates marker validity too: a marker pointing nowhere is as broken as an invented quote)
THRESHOLDS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "hit5": ("hit@5",),
    "recall5": ("recall@5",),
    "mrr": ("mrr",),
    "citation_precision": ("citation_precision",),
    "citation_recall": ("citation_recall",),
    "quote_validity": ("quote_validity", "marker_validity"),
    "abstention_recall": ("abstention_recall",),
    "abstention_precision": ("abstention_precision",),
}


def check_thresholds(overall: Mapping[str, Any], minimums: Mapping[str, float]) -> list[str]:
    """One message per missed minimum; a figure that is undefined for this set counts as missed."""
    missed = []
    for name, minimum in minimums.items():
        first, *also = THRESHOLDS[name]
        if overall.get(first) is None:
            missed.append(f"{first} is undefined for this question set (needed >= {minimum})")
        for key in (first, *also):
            value = overall.get(key)
            if value is not None and value < minimum:
                missed.append(f"{key} {value:.3f} < {minimum}")
    return missed


def load_report(path: Path) -> dict[str, Any]:
    """A report written by `rag eval --json`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read report {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}, line {exc.lineno}: bad JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise EvalError(f"{path} is not a report written by rag eval --json")
    return data
