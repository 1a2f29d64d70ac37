"""The language-model reader's fallback and judge strategies, measured on question sets (prints figures).

    PYTHONPATH=. nice -n 10 python bench/llm_strategies.py SET.jsonl [SET2.jsonl ...] --articles A --index I \
        [--limit 40] [--as-chat] [--cache /tmp/llm-cache] [--out runs/strategies] [--threads 2]

Every set is run through `rag.eval.run.evaluate` (the chat's `Assistant.ask`) once per strategy. The model's
replies are cached on disk by their exact messages (greedy decoding: the same messages give the same reply),
so only the first strategy pays for generation and the others reuse it; each run's wall time, CPU time and
load average are printed, and `latency` counts only answers whose replies were generated, not read back.
Reports are saved as `rag eval --json` reports, so `rag eval --compare A.json B.json` reads them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STRATEGIES = {  # name -> (fallback on a guard drop, on a judge drop, judge on)
    "guard-only": ("extractive", "fallback", False),  # the reader as it was: no judge, extractive fallback
    "extractive": ("extractive", "fallback", True),
    "repair": ("repair", "fallback", True),
    "choose": ("choose", "fallback", True),
    "extractive+abstain": ("extractive", "abstain", True),
    "repair+abstain": ("repair", "abstain", True),
    "choose+abstain": ("choose", "abstain", True),
}


class CachedChat:
    """A ChatModel that replays replies stored under `folder` and generates (and stores) the others."""

    def __init__(self, model: Any, folder: Path) -> None:
        self.model, self.folder, self.lock = model, folder, model.lock
        self.generated = 0
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def busy(self) -> bool:
        return self.model.busy

    def stream(self, messages: list[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        key = hashlib.sha256(json.dumps([messages, max_tokens]).encode()).hexdigest()[:24]
        path = self.folder / f"{key}.json"
        if path.exists():
            yield json.loads(path.read_text())["reply"]
            return
        self.generated += 1
        started, cpu = time.perf_counter(), time.process_time()
        reply = "".join(self.model.stream(messages, max_tokens, deadline))
        path.write_text(json.dumps({"reply": reply, "wall_s": time.perf_counter() - started,
                                    "cpu_s": time.process_time() - cpu, "load": os.getloadavg()[0]}))
        yield reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--as-chat", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/llm-cache"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/llm-runs"))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--min-support", type=float, default=None)
    parser.add_argument("--strong-support", type=float, default=None,
                        help="the judge's bar when its reader refuses the quoted sentences (default JUDGE_STRONG_SUPPORT)")
    parser.add_argument("--reader", choices=("rules", "learned"), default="rules",
                        help="the extractive reader, which is also the judge (its confidence and its refusal)")
    args = parser.parse_args()

    from rag.answer import llm_judge
    from rag.answer.llm import LlmReader
    from rag.answer.local_model import LlamaCppChat, packaged_gguf
    from rag.config import load_settings
    from rag.eval.run import evaluate, load_questions
    from rag.pipeline import Assistant

    settings = load_settings(articles_dir=args.articles, index_dir=args.index, answer_mode="llm", llm_timeout=900,
                             reader=args.reader)
    if args.strong_support is not None:
        defaults = list(llm_judge.judge.__defaults__ or ())
        defaults[-1] = args.strong_support
        llm_judge.judge.__defaults__ = tuple(defaults)
    assistant = Assistant.from_settings(settings)
    chat = CachedChat(LlamaCppChat(packaged_gguf(), threads=args.threads or None), args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    extractive = settings.replace(answer_mode="extractive")
    for qpath in args.sets:
        qset = load_questions(qpath)
        questions = qset.questions[: args.limit]
        assistant.settings = extractive
        base = evaluate(assistant, questions, warmup=True, chat=args.as_chat)
        _save(args.out / f"{qpath.stem}-{args.reader}.json", base)
        _row(qpath.stem, args.reader, base, None)
        assistant.settings = settings
        for name in args.strategies.split(","):
            fallback, on_judged, judged = STRATEGIES[name]
            reader = LlmReader(settings, llm=chat, judge=assistant.reader, fallback=fallback, on_judged=on_judged)
            reader.min_support = args.min_support if args.min_support is not None else llm_judge.JUDGE_MIN_SUPPORT
            if not judged:
                reader.min_support, reader.judge = -1.0, None
                llm_judge_kind = llm_judge.judge
                llm_judge.judge = lambda *a, **k: llm_judge.Verdict(True, "", 2.0, True)  # noqa: E731
            assistant._llm = reader
            before, cpu, wall = chat.generated, time.process_time(), time.perf_counter()
            report = evaluate(assistant, questions, warmup=False, chat=args.as_chat)
            if not judged:
                llm_judge.judge = llm_judge_kind
            spent = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
                     "generated": chat.generated - before, "load": [round(x, 2) for x in os.getloadavg()]}
            _save(args.out / f"{qpath.stem}-{name}.json", report)
            _row(qpath.stem, name, report, spent)


def _save(path: Path, report: Any) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=1, default=str))


def _figures(results: Any, overall: dict[str, Any]) -> str:
    rows = [r for r in results]
    llm = sum(1 for r in rows if r.answer is not None and r.answer.mode == "llm" and not r.answer.abstained)
    answerable = [r for r in rows if r.question.answerable]
    unanswerable = [r for r in rows if not r.question.answerable]
    right = sum(1 for r in answerable if r.metrics["correct"])
    abst = sum(1 for r in unanswerable if r.metrics["abstained"])
    false_abst = sum(1 for r in answerable if r.metrics["abstained"])
    lat = sorted(r.metrics["latency_ms"] / 1000 for r in rows)
    p50 = statistics.median(lat) if lat else 0
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0
    return (f"acc {right}/{len(answerable)} | by model {llm}/{len(rows)} | abstain {abst}/{len(unanswerable)} "
            f"| false abstain {false_abst}/{len(answerable)} | p50 {p50:.1f}s p95 {p95:.1f}s | "
            f"quotes valid {overall.get('quote_validity')}")


def _row(name: str, strategy: str, report: Any, spent: dict[str, Any] | None) -> None:
    print(f"{name:24s} {strategy:20s} alone  {_figures(report.results, report.overall)}", flush=True)
    if report.chat is not None:
        print(f"{name:24s} {strategy:20s} chat   {_figures(report.chat.results, report.chat.overall)}", flush=True)
    if spent:
        print(f"{'':45s} {json.dumps(spent)}", flush=True)


if __name__ == "__main__":
    main()
