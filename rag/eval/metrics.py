"""Evaluation metrics: pure functions from one answer (and its gold data) to figures, and from many to aggregates.

Kept apart from `rag.eval.run` (which runs questions and writes reports) so each figure can be unit-tested on
hand-made cases without a model or an index. A figure that is undefined for a question (citation precision
with no quotes, retrieval with no gold sources) is `None`, and aggregates skip `None`s rather than count them
as zero or one, so "no data" never looks like "perfect" or "failed".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# ---------------------------------------------------------------- answer text normalisation

# Our own number-word reader rather than a dependency: the available packages (word2number, text2num) are
# either unmaintained or much larger than the 40 lines needed for English cardinals up to the billions.
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"hundred"}
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"',
                         "–": "-", "—": "-", "‑": "-", "\u00a0": " "})
_WORD = re.compile(r"[a-z]+|[^a-z]+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _words_value(words: Sequence[str]) -> int:
    total = current = 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[word]
            current = 0
    return total + current


def _numbers_to_digits(text: str) -> str:
    """Replace runs of number words ("twenty-one", "one hundred and five") by digits; `text` is lower-case."""
    tokens = _WORD.findall(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] not in _NUMBER_WORDS:
            out.append(tokens[i])
            i += 1
            continue
        run, j = [tokens[i]], i + 1
        while True:  # a run goes on over "-" or " " (or " and ") between number words
            if j + 1 < len(tokens) and tokens[j] in ("-", " ") and tokens[j + 1] in _NUMBER_WORDS:
                run.append(tokens[j + 1])
                j += 2
            elif tokens[j : j + 3] == [" ", "and", " "] and j + 3 < len(tokens) and tokens[j + 3] in _NUMBER_WORDS:
                run.append(tokens[j + 3])
                j += 4
            else:
                break
        out.append(str(_words_value(run)))
        i = j
    return "".join(out)


def normalize(text: str) -> str:
    """Lower-case, straight quotes and dashes, "10,000"→"10000", "eight"→"8", collapsed whitespace."""
    text = " ".join(text.translate(_QUOTES).lower().split())
    text = _THOUSANDS.sub("", text)
    return _numbers_to_digits(text)


def _contains(haystack: str, needle: str) -> bool:
    """Substring match that will not let a number match inside a longer one ("30" is not in "300")."""
    if not needle:
        return False
    pattern = re.escape(needle)
    if needle[0].isdigit():
        pattern = r"(?<![\d.])" + pattern
    if needle[-1].isdigit():
        pattern += r"(?!\.?\d)"
    return re.search(pattern, haystack) is not None


def gold_in(text: str, answers: Sequence[str], answers_all: bool = False) -> bool:
    """Whether the gold string(s) appear in `text`: any of them, or every one when `answers_all`."""
    if not answers:
        return False
    haystack = normalize(text)
    found = [_contains(haystack, normalize(a)) for a in answers]
    return all(found) if answers_all else any(found)


# ---------------------------------------------------------------- per-question metrics


def article_order(retrieved_article_ids: Iterable[str]) -> list[str]:
    """Distinct articles in the order they first appear among the retrieved passages."""
    seen: dict[str, None] = {}
    for article_id in retrieved_article_ids:
        seen.setdefault(article_id, None)
    return list(seen)


def retrieval_metrics(retrieved_article_ids: Sequence[str], gold: Iterable[str]) -> dict[str, Any]:
    """hit@1/3/5, reciprocal rank and recall@5 of the gold articles, over distinct retrieved articles."""
    gold_set = set(gold)
    if not gold_set:
        return {"first_gold_rank": None, "hit@1": None, "hit@3": None, "hit@5": None, "mrr": None, "recall@5": None}
    order = article_order(retrieved_article_ids)
    rank = next((i for i, a in enumerate(order, start=1) if a in gold_set), None)
    return {
        "first_gold_rank": rank,
        **{f"hit@{k}": float(rank is not None and rank <= k) for k in (1, 3, 5)},
        "mrr": 1.0 / rank if rank else 0.0,
        "recall@5": len(gold_set.intersection(order[:5])) / len(gold_set),
    }


def citation_metrics(quoted_article_ids: Sequence[str], gold: Iterable[str]) -> dict[str, float | None]:
    """Precision: share of quotes from a gold article. Recall: share of gold articles quoted at least once."""
    gold_set = set(gold)
    if not gold_set:
        return {"citation_precision": None, "citation_recall": None}
    precision = sum(a in gold_set for a in quoted_article_ids) / len(quoted_article_ids) if quoted_article_ids else None
    return {"citation_precision": precision, "citation_recall": len(gold_set.intersection(quoted_article_ids)) / len(gold_set)}


_MARKER = re.compile(r"\[(\d+)\]")


def markers(text: str) -> list[int]:
    """The numbers of the [n] citation markers in `text`, in order."""
    return [int(m) for m in _MARKER.findall(text)]


def bad_markers(text: str, quote_numbers: Iterable[int]) -> list[int]:
    """The [n] markers in `text` that point at no quote."""
    known = set(quote_numbers)
    return [n for n in markers(text) if n not in known]


# ---------------------------------------------------------------- MultiHop-RAG chunk metrics

MULTIHOP_KEYS = ("hits@4", "hits@10", "mrr@10", "map@10")  # the official retrieval_evaluate.py figures


def _squash(text: str) -> str:
    # exactly the official script's normalisation (spaces and newlines removed), so figures compare
    return text.replace(" ", "").replace("\n", "")


def multihop_chunk_metrics(retrieved_texts: Sequence[str], facts: Sequence[str]) -> dict[str, float]:
    """MultiHop-RAG's retrieval metrics for one query, as its `retrieval_evaluate.py` computes them.

    A retrieved chunk is a hit when it contains a gold fact (spaces and newlines removed). AP@10 sums, at each
    hit rank, the number of not-yet-found facts it contains divided by the rank, over min(#facts, 10).
    """
    gold = [_squash(f) for f in facts]
    found: list[str] = []
    first = None
    hit4 = hit10 = False
    ap_sum = 0.0
    for rank, chunk in enumerate((_squash(t) for t in retrieved_texts[:10]), start=1):
        if not any(g in chunk for g in gold):
            continue
        hit10 = True
        hit4 = hit4 or rank <= 4
        first = first or rank
        new = [g for g in gold if g in chunk and g not in found]
        found.extend(new)
        ap_sum += len(new) / rank
    return {
        "hits@4": float(hit4),
        "hits@10": float(hit10),
        "mrr@10": 1.0 / first if first else 0.0,
        "map@10": ap_sum / min(len(gold), 10) if gold else 0.0,
    }


# ---------------------------------------------------------------- aggregates


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None when there are none."""
    got = [float(v) for v in values if v is not None]
    return sum(got) / len(got) if got else None


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    import numpy as np  # here, not at the top: `rag --help` imports this module (the eval options) and needs no numpy

    values = np.asarray(latencies_ms, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "max_ms": round(float(values.max()), 2),
    }


def abstention_summary(abstained: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | None]:
    """Precision and recall of abstaining on unanswerable questions; false-abstention rate on answerable ones."""
    pairs = list(zip(abstained, answerable, strict=True))
    abstains = [a for a, ok in pairs if a]
    right = sum(1 for a, ok in pairs if a and not ok)
    unanswerable = sum(1 for _, ok in pairs if not ok)
    answerable_n = sum(1 for _, ok in pairs if ok)
    return {
        "abstention_precision": right / len(abstains) if abstains else None,
        "abstention_recall": right / unanswerable if unanswerable else None,
        "false_abstention_rate": sum(1 for a, ok in pairs if a and ok) / answerable_n if answerable_n else None,
    }


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-question metric dicts (as `rag.eval.run` builds them) into one summary."""
    ok = [r for r in rows if r.get("error") is None]  # a refused question counts as wrong, and nowhere else
    answerable = [r for r in ok if r["answerable"]]
    quotes = sum(r["quotes"] for r in ok)
    valid = sum(r["valid_quotes"] for r in ok)
    markers = sum(r["markers"] for r in ok)
    summary: dict[str, Any] = {
        "questions": len(rows),
        "errors": len(rows) - len(ok),
        "accuracy": mean(r["correct"] for r in rows),
        "accuracy_answerable": mean(r["correct"] for r in rows if r["answerable"]),
        "answer_in_quotes": mean(r["in_quotes"] for r in answerable),
        **{key: mean(r[key] for r in ok) for key in ("hit@1", "hit@3", "hit@5", "mrr", "recall@5")},
        "citation_precision": mean(r["citation_precision"] for r in ok),
        "citation_recall": mean(r["citation_recall"] for r in ok),
        "quotes": quotes,
        "heading_quotes": sum(bool(r.get("heading_quoted")) for r in ok),
        "quote_validity": valid / quotes if quotes else None,
        "markers": markers,
        "marker_validity": (markers - sum(len(r["bad_markers"]) for r in ok)) / markers if markers else None,
        **abstention_summary([r["abstained"] for r in ok], [r["answerable"] for r in ok]),
        **latency_summary([r["latency_ms"] for r in ok]),
    }
    chunk_rows = [r["multihop"] for r in ok if r.get("multihop")]
    if chunk_rows:
        summary["multihop"] = {
            "queries": len(chunk_rows),
            **{key: mean(c[key] for c in chunk_rows) for key in MULTIHOP_KEYS},
        }
    return summary
