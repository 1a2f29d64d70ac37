"""Questions that belong together: conversations and wordings.

A question file may say which questions form one conversation (`conversation`) and which lines are the same
question worded differently (`group`, with `wording` naming the way it is worded: original, synonym, casual,
reorder...). `as_chat` uses the first: under `--as-chat` a question is asked after the earlier questions of its
own conversation only (a file without the field is one conversation). The rest uses the second: figures per
wording, like those per type, and a consistency figure per set — does the assistant answer a question however
it is worded, and does it at least answer all wordings of one question alike?
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from rag.eval import metrics


# What this module reads of rag.eval.run's EvalQuestion and QuestionResult, said structurally: importing them,
# even only for type checking, would make an import circle (run imports this module).
class _Question(Protocol):
    @property
    def question(self) -> str: ...
    @property
    def conversation(self) -> str: ...
    @property
    def history(self) -> tuple[str, ...]: ...


class QuestionResult(Protocol):
    @property
    def question(self) -> Any: ...  # an EvalQuestion
    @property
    def metrics(self) -> Any: ...


EvalQuestion = TypeVar("EvalQuestion", bound=_Question)


def as_chat(questions: Sequence[EvalQuestion]) -> list[EvalQuestion]:
    """The questions as chats: each asked after every earlier question of the same `conversation` (all of the set
    when no question names one), then its own history, when it has one (the turns it was written to follow)."""
    return [dataclasses.replace(q, history=(*(p.question for p in questions[:i] if p.conversation == q.conversation),
                                            *q.history))
            for i, q in enumerate(questions)]


def by_field(results: Sequence[QuestionResult], field: str) -> dict[str, dict[str, Any]]:
    """Aggregates per value of a question field (`type`, `wording`); questions with an empty value are left out."""
    values = sorted({getattr(r.question, field) for r in results} - {""})
    return {v: metrics.aggregate([r.metrics for r in results if getattr(r.question, field) == v]) for v in values}


def consistency(pairs: Iterable[tuple[str, bool]]) -> dict[str, Any] | None:
    """Over the groups with more than one wording, given (group, correct) per question: how many groups, the
    share whose wordings are all correct, the share whose wordings are all correct or all wrong, and the groups
    whose wordings disagree. None when no group has two wordings. Questions without a group are left out."""
    groups: dict[str, list[bool]] = {}
    for group, correct in pairs:
        if group:
            groups.setdefault(group, []).append(bool(correct))
    several = {g: v for g, v in groups.items() if len(v) > 1}
    if not several:
        return None
    return {
        "groups": len(several),
        "all_correct": metrics.mean(all(v) for v in several.values()),
        "same_correctness": metrics.mean(len(set(v)) == 1 for v in several.values()),
        "mixed": sorted(g for g, v in several.items() if len(set(v)) > 1),
    }


def wording_aggregates(results: Sequence[QuestionResult]) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(by_wording, consistency) of a run; ({}, None) when no question names its wording."""
    if not any(r.question.wording for r in results):
        return {}, None
    return by_field(results, "wording"), consistency((r.question.group, r.metrics["correct"]) for r in results)


def aggregate_dict(overall: Mapping[str, Any], by_type: Mapping[str, Any], by_wording: Mapping[str, Any],
                   consistency_figures: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `aggregate` object of a JSON report: the wording figures only when the set names wordings."""
    out: dict[str, Any] = {"overall": overall, "by_type": by_type}
    if by_wording:
        out.update(by_wording=by_wording, consistency=consistency_figures)
    return out
