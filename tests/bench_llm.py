"""Benchmarks of the language-model mode (print figures, assert nothing).

    # the runtime of a local model: load time, prompt reading, tokens/s, peak memory (one process per run)
    PYTHONPATH=. python tests/bench_llm.py runtime [--runtime llama-cpp|transformers] [--path model.gguf]

    # the eval one question at a time (settings from RAG_* as usual), one saved report per question
    PYTHONPATH=. python tests/bench_llm.py eval questions.jsonl --articles A --index I --out runs/llm-dev

    # the llm-mode table from saved `rag eval --json` reports or `eval` folders (one per mode/model)
    PYTHONPATH=. python tests/bench_llm.py summary extractive.json runs/llm-dev ...

The summary reads what `rag eval` stored for each question (the answer's mode and guard counts), so the
figures are those of the real eval run: accuracy, the share of answerable questions answered by the model
(and passing the guard), fallbacks, guard repairs/removals, quote validity, unanswerable questions that got a
model answer, latency p50/p95.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def runtime(args: argparse.Namespace) -> None:
    from rag.answer.llm import LlamaIndexChat, format_passages, load_prompt
    from rag.answer.local_model import load_llama_cpp, load_transformers, packaged_gguf
    from rag.config import PROJECT_ROOT

    path = Path(args.path) if args.path else packaged_gguf()
    started = time.perf_counter()
    if args.runtime == "llama-cpp":
        model = load_llama_cpp(path)
    else:
        model = LlamaIndexChat(load_transformers(path, args.max_tokens, 600))
    load_s = time.perf_counter() - started
    # three real passages of the bundled articles, about the size the reader sends (llm_passages = 3)
    text = " ".join((PROJECT_ROOT / "articles" / "000_a357e0c64db65e6a.txt").read_text(encoding="utf-8").split())
    from rag.types import Chunk, Passage

    parts = [text[i : i + 1000] for i in (0, 1000, 2000)]
    passages = [Passage(Chunk(f"c{i}", "a", p, 0, len(p), ()), "Article", 1.0, i + 1) for i, p in enumerate(parts)]
    user = load_prompt("answer").fill(passages=format_passages(passages), question="How many North Korean troops were killed and wounded?")
    messages = [{"role": "system", "content": load_prompt("system").fill()}, {"role": "user", "content": user}]
    started = time.perf_counter()
    first = None
    pieces = 0
    reply = ""
    with model.lock:
        for piece in model.stream(messages, args.max_tokens, time.monotonic() + 600):
            if first is None:
                first = time.perf_counter() - started
            pieces += 1
            reply += piece
    total = time.perf_counter() - started
    tokens = pieces
    if args.runtime == "llama-cpp":
        tokens = len(model.model.tokenize(reply.encode(), add_bos=False)) or pieces
        prompt_tokens = len(model.model.tokenize((messages[0]["content"] + messages[1]["content"]).encode()))
    else:
        prompt_tokens = len(model.llm._tokenizer(messages[0]["content"] + messages[1]["content"])["input_ids"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    generate = total - (first or 0)
    print(json.dumps({
        "runtime": args.runtime, "model": path.name, "load_s": round(load_s, 1),
        "prompt_tokens": prompt_tokens, "first_token_s": round(first or 0, 1),
        "generated_tokens": tokens, "tokens_per_s": round(max(tokens - 1, 1) / generate, 1) if generate > 0 else None,
        "total_s": round(total, 1), "peak_rss_mb": round(peak_mb), "reply": reply[:200],
    }))


def run_eval(args: argparse.Namespace) -> None:
    """`rag eval` one question at a time (rag.eval.run.evaluate, no warm-up question: the model is loaded first),
    each report saved as soon as it is done, so a slow machine still leaves figures for the questions done."""
    from rag.config import load_settings
    from rag.eval.run import evaluate, load_questions
    from rag.pipeline import Assistant

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(articles_dir=Path(args.articles), index_dir=Path(args.index), answer_mode=args.mode)
    assistant = Assistant.from_settings(settings)
    if args.mode == "llm":
        started = time.perf_counter()
        assistant.llm_reader()
        print(f"model ready in {time.perf_counter() - started:.1f} s", flush=True)
    qset = load_questions(Path(args.questions))
    for q in qset.questions:
        target = out / f"{q.id}.json"
        if target.exists():
            continue
        report = evaluate(assistant, [q], warmup=False)
        target.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        a = report.results[0].answer
        print(f"{q.id}: {a.mode if a else '-'} {report.results[0].metrics['latency_ms'] / 1000:.1f} s "
              f"correct={report.results[0].metrics['correct']} {a.text[:100] if a else ''!r}", flush=True)
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _load(name: str) -> dict:
    """One saved report, or a folder of one-question reports from `eval` merged into one."""
    path = Path(name)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    from rag.eval.metrics import aggregate

    parts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.json"))]
    rows = [row for part in parts for row in part["questions"]]
    return {"settings": parts[0]["settings"], "questions": rows,
            "aggregate": {"overall": aggregate([r["metrics"] for r in rows])}}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def summary(args: argparse.Namespace) -> None:
    header = ("report", "mode", "acc", "acc_ans", "by_model", "fallback", "repaired", "removed", "unans_llm",
              "quotes", "valid", "p50_s", "p95_s")
    print(" | ".join(header))
    for name in args.reports:
        report = _load(name)
        rows = report["questions"]
        overall = report["aggregate"]["overall"]
        answerable = [r for r in rows if r["gold"]["answers"]]
        unanswerable = [r for r in rows if not r["gold"]["answers"]]
        answers = [r["answer"] for r in rows if r["answer"]]
        guarded = [a for a in answers if a.get("guard")]  # the model answered (kept or not)
        fell_back = [a for a in guarded if a["mode"] != "llm"] + [
            a for a in answers if any(n.startswith("extractive answer shown:") for n in a["notes"]) and not a.get("guard")]
        repaired = sum(a["guard"].get("markers_repaired", 0) + a["guard"].get("quotes_repaired", 0) for a in guarded)
        removed = sum(a["guard"].get("markers_removed", 0) + a["guard"].get("quotes_removed", 0)
                      + a["guard"].get("sentences_removed", 0) for a in guarded)
        by_model = sum(1 for r in answerable if r["answer"] and r["answer"]["mode"] == "llm")
        unans_llm = sum(1 for r in unanswerable if r["answer"] and r["answer"]["mode"] == "llm")
        latencies = [r["metrics"]["latency_ms"] / 1000 for r in rows if r["metrics"].get("error") is None]
        mode = report["settings"].get("answer_mode")

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{x:.0%}"

        print(" | ".join([
            Path(name).stem, mode, pct(overall["accuracy"]), pct(overall["accuracy_answerable"]),
            f"{by_model}/{len(answerable)} ({pct(by_model / len(answerable) if answerable else None)})",
            f"{len(fell_back)}/{len(rows)}" if mode == "llm" else "-",
            str(repaired), str(removed), f"{unans_llm}/{len(unanswerable)}", str(overall["quotes"]),
            pct(overall["quote_validity"]), f"{_pct(latencies, 0.5):.1f}", f"{_pct(latencies, 0.95):.1f}",
        ]))
        if args.verbose:
            for r in rows:
                a = r["answer"] or {}
                print(f"   {r['id']}: {a.get('mode', '-'):10} correct={r['metrics']['correct']!s:5} "
                      f"{r['metrics']['latency_ms'] / 1000:5.1f} s {a.get('text', '')[:110]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("runtime")
    run.add_argument("--runtime", choices=("llama-cpp", "transformers"), default="llama-cpp")
    run.add_argument("--path", help="a GGUF file (default: the packaged model)")
    run.add_argument("--max-tokens", type=int, default=60)
    run.set_defaults(func=runtime)
    ev = sub.add_parser("eval")
    ev.add_argument("questions")
    ev.add_argument("--articles", required=True)
    ev.add_argument("--index", required=True)
    ev.add_argument("--mode", default="llm", choices=("llm", "extractive"))
    ev.add_argument("--out", required=True, help="a folder: one report per question")
    ev.set_defaults(func=run_eval)
    summ = sub.add_parser("summary")
    summ.add_argument("reports", nargs="+")
    summ.add_argument("-v", "--verbose", action="store_true")
    summ.set_defaults(func=summary)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
