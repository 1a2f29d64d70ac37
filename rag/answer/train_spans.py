"""`python -m rag.answer.train_spans`: rebuild the span ranker (rag/answer/model/spans.json) from SQuAD 2.0.

Data: the shared SQuAD 2.0 train excerpt (rag.answer.squad; never fetched, never a dev-v2.0.json), split by
article (`split_by_article`: 2 whole articles held out). Each answerable question is paired with the sentence
that holds its answer; the candidate spans of that sentence are labelled by their overlap with the answer.
Every question is also asked in two generated wordings (rows labelled "generated"): casual lowercase without
the question mark, and a word-order change (a trailing phrase moved to the front).

The model (logistic regression or gradient boosting, labels by token F1 >= 0.5 or by exact match) is chosen on
one more article held out of the training articles, refitted on all of them, and scored on the held-out
split: exact match and F1 of its top span against the answer, per wording, beside the rule reader's choice on
the same sentences. Parsed sentences, vectors and feature rows are cached in /tmp/spans-cache.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import pickle
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

from rag.answer import squad
from rag.answer.kinds import DESCRIPTION
from rag.answer.span_features import FEATURES, features, read_sentence
from rag.answer.span_model import FORMAT, MODEL_PATH, VERSION, BatchEncoder, _Scorer
from rag.answer.span_scoring import Row, exact, f1, reorder, rule_choice
from rag.chunk import split_sentences
from rag.errors import RagError

CACHE = Path("/tmp/spans-cache")
CARD = MODEL_PATH.parent / "SPANS.md"
SEED = 13
WORDINGS = ("original", "casual", "reordered")


def _code_key(name: str) -> str:
    """What a cache depends on: the parse of sentences on spans.py and read_sentence; questions on question.py,
    spans.py and the wordings; so a change to the question-time features keeps the slow caches."""
    from rag.answer import question, span_features, span_scoring, spans

    sources = {"sentences": [inspect.getsource(spans), inspect.getsource(span_features.read_sentence),
                             inspect.getsource(span_features.SpanInfo)],
               "queries": [inspect.getsource(question), inspect.getsource(spans), inspect.getsource(span_scoring.reorder)]}
    sources["questions"] = sources["queries"]
    return hashlib.sha256("\n".join(sources[name]).encode()).hexdigest()[:12]


def _cached(name: str, make):  # noqa: ANN001, ANN202
    """A local cache of intermediate results (not the model): pickled under /tmp/spans-cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{_code_key(name)}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    value = make()
    path.write_bytes(pickle.dumps(value))
    return value


def questions(paragraphs) -> list[tuple[str, str, str, str, str]]:  # noqa: ANN001
    """(title, question id, question, sentence, answer) for each answerable question whose answer lies in one sentence."""
    out = []
    for para in paragraphs:
        text = para.article.text
        sentences = split_sentences(text)
        for q in para.questions:
            if q.impossible or not q.answers:
                continue
            start, answer = q.answers[0]
            for s, e in sentences:
                if s <= start and start + len(answer) <= e:
                    out.append((para.title, q.id, q.question, text[s:e], answer))
                    break
    return out


def build_rows(items, log) -> list[Row]:  # noqa: ANN001
    """One Row per (question, wording): its Query, sentence, answer, feature matrix, and span texts."""
    from rag.answer.question import analyse

    sentences = sorted({item[3] for item in items})
    log(f"reading {len(sentences)} sentences (parse + encode)...")
    batch = BatchEncoder(threads=2)

    def read_all():  # noqa: ANN202
        out = {}
        for sentence in sentences:
            info = read_sentence(sentence)
            out[sentence] = (info, batch.encode(info.texts()) if info.spans else np.zeros((0, 384), np.float32))
        return out

    read = _cached("sentences", read_all)
    log("analysing questions in three wordings...")

    def analyse_all():  # noqa: ANN202
        out = []
        for title, qid, question, sentence, answer in items:
            for wording, text in zip(WORDINGS, (question, question.lower().rstrip(" ?"), reorder(question)), strict=True):
                if text:
                    try:
                        out.append((title, qid, wording, analyse(text), sentence, answer))
                    except RagError:
                        continue
        return out

    analysed = _cached("queries", analyse_all)
    log(f"encoding {len(analysed)} questions...")

    def vectors_all():  # noqa: ANN202
        texts = [a[3].resolved for a in analysed]
        return np.concatenate([batch.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    qvecs = _cached("questions", vectors_all)
    log("computing features...")
    rows = []
    for (title, qid, wording, query, sentence, answer), qv in zip(analysed, qvecs, strict=True):
        info, vectors = read[sentence]
        x = features(query, info, qv, vectors)
        rows.append(Row(title, qid, wording, query, sentence, answer, x, tuple(s.text for s in info.spans),
                        tuple((s.start, s.end) for s in info.spans)))
    return rows


def labels(rows: list[Row], how: str) -> np.ndarray:
    out = []
    for row in rows:
        for text in row.texts:
            out.append(exact(text, row.answer) if how == "exact" else (f1(text, row.answer) >= 0.5 or exact(text, row.answer)))
    return np.asarray(out, dtype=np.int8)


def fit(rows: list[Row], model: str, how: str) -> dict:
    """The model's JSON parameters, fitted on `rows`."""
    x = np.concatenate([r.x for r in rows])
    y = labels(rows, how)
    if model.startswith("logistic"):
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-6] = 1.0
        c = float(model.split(":")[1])
        clf = LogisticRegression(C=c, max_iter=400, random_state=SEED).fit((x - mean) / scale, y)
        return {"model": "logistic", "mean": mean.round(7).tolist(), "scale": scale.round(7).tolist(),
                "coef": clf.coef_[0].round(7).tolist(), "intercept": float(clf.intercept_[0])}
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=40,
                                         l2_regularization=1.0, random_state=SEED, early_stopping=False).fit(x, y)
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        trees.append({"feature": nodes["feature_idx"].tolist(), "threshold": [round(float(t), 7) for t in nodes["num_threshold"]],
                      "left": nodes["left"].tolist(), "right": nodes["right"].tolist(),
                      "value": [round(float(v), 7) for v in nodes["value"]], "leaf": nodes["is_leaf"].astype(int).tolist(),
                      "missing_left": nodes["missing_go_to_left"].astype(int).tolist()})
    return {"model": "trees", "baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}


def evaluate(rows: list[Row], scorer: _Scorer | None) -> dict[str, dict[str, float]]:
    """Exact match and F1 of the top span (the model's, or the rule reader's when `scorer` is None), per wording."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        if scorer is None:
            choice = rule_choice(row.query, row.sentence)
        else:
            choice = row.texts[int(np.argmax(scorer.probabilities(row.x)))] if row.texts else row.sentence
        keys = (row.wording, "all", "typed") if row.query.answer_type != DESCRIPTION else (row.wording, "all")
        for key in keys:
            sums.setdefault(key, []).append((exact(choice, row.answer), f1(choice, row.answer)))
    return {k: {"n": len(v), "em": round(float(np.mean([a for a, _ in v])), 4), "f1": round(float(np.mean([b for _, b in v])), 4)}
            for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.answer.train_spans", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where to write the model JSON")
    parser.add_argument("--quick", action="store_true", help="logistic regression only, no model selection")
    parser.add_argument("--select", action="store_true",
                        help="choose the model and labelling on a held-out training article (6 fits, ~15 min more "
                             "on 2 loaded cores); by default fit the chosen one, boosted trees with F1 labels")
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - wall:6.1f}s] {message}", flush=True)

    try:
        path = squad.data_path()
        digest = squad.sha256(path)
        if digest != squad.EXPECTED_SHA256:
            log(f"warning: {path} has sha256 {digest}, the model card expects {squad.EXPECTED_SHA256}")
        train_paras, test_paras, held = squad.split_by_article(squad.load(path))
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    random.seed(SEED)
    np.random.seed(SEED)
    train_items, test_items = questions(train_paras), questions(test_paras)
    log(f"{len(train_items)} training and {len(test_items)} held-out questions (held out: {', '.join(held)})")
    rows = build_rows(train_items + test_items, log)
    test_ids = {item[1] for item in test_items}
    train = [r for r in rows if r.qid not in test_ids]
    test = [r for r in rows if r.qid in test_ids]
    titles = sorted({r.title for r in train})
    check = random.Random(SEED).choice(titles)  # one more article, to choose the model without the held-out split
    fit_rows, check_rows = [r for r in train if r.title != check], [r for r in train if r.title == check]
    configs = [("logistic:1.0", "f1")] if args.quick else [("trees", "f1")] if not args.select else [
        (m, h) for m in ("logistic:0.1", "logistic:1.0", "trees") for h in ("f1", "exact")]
    selection = {}
    chosen, best = configs[0], -1.0
    if len(configs) > 1:
        for model, how in configs:
            scores = evaluate(check_rows, _Scorer({**fit(fit_rows, model, how)}, "candidate"))["all"]
            log(f"choosing on {check!r}: {model:13s} labels={how:5s} EM {scores['em']:.3f} F1 {scores['f1']:.3f}")
            selection[f"{model} labels={how}"] = scores
            if scores["em"] + scores["f1"] > best:
                chosen, best = (model, how), scores["em"] + scores["f1"]
    log(f"chose {chosen}; fitting {chosen[0]} (labels by {chosen[1]}) on {len(train)} rows...")
    params = fit(train, *chosen)
    scorer = _Scorer(params, "fitted")
    figures = {"model": evaluate(test, scorer), "rules": evaluate(test, None), "oracle": oracle(test)}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    timing = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
              "max_rss_mb": round(usage.ru_maxrss / 1024)}
    meta = {"data": str(path.name), "sha256": digest, "held_out": list(held), "model_selection_article": check,
            "seed": SEED, "chosen": {"model": chosen[0], "labels": chosen[1]}, "selection": selection,
            "rows": {w: sum(r.wording == w for r in train) for w in WORDINGS},
            "generated_wordings": ["casual", "reordered"], "figures_held_out_gold_sentence": figures, "training": timing}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"format": FORMAT, "version": VERSION, "features": list(FEATURES), **params,
                                    "trained": meta}, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"\nheld-out split ({', '.join(held)}), gold sentence given; top span vs the answer:")
    print(f"{'wording':10s} {'n':>5s} {'model EM':>9s} {'model F1':>9s} {'rules EM':>9s} {'rules F1':>9s} {'oracle EM':>10s}")
    for w in (*WORDINGS, "all", "typed"):
        m, r, o = figures["model"].get(w), figures["rules"].get(w), figures["oracle"].get(w)
        if m:
            print(f"{w:10s} {m['n']:5d} {m['em']:9.3f} {m['f1']:9.3f} {r['em']:9.3f} {r['f1']:9.3f} {o['em']:10.3f}")
    if args.out.resolve() == MODEL_PATH.resolve() and CARD.is_file():
        write_card_figures(figures, meta)
        print(f"updated the Figures section of {CARD}")
    print(f"\nwrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); training wall {timing['wall_s']} s, "
          f"CPU {timing['cpu_s']} s, max RSS {timing['max_rss_mb']} MB")
    return 0


def figures_table(figures: dict, meta: dict) -> str:
    """The model card's "Figures" section body: held-out EM/F1 per wording, model beside the rules."""
    lines = [f"Held-out split: {', '.join(meta['held_out'])} (whole articles), the gold sentence given; the top span "
             f"against SQuAD's answer. Model: {meta['chosen']['model']}, labels by {meta['chosen']['labels']}. "
             f"Rules: the rule reader's first typed span, or the whole sentence when it has none.", "",
             "| wording | questions | model EM | model F1 | rules EM | rules F1 | oracle EM |",
             "|---|---|---|---|---|---|---|"]
    for w in (*WORDINGS, "all", "typed"):
        m, r, o = figures["model"].get(w), figures["rules"].get(w), figures["oracle"].get(w)
        if m:
            lines.append(f"| {w} | {m['n']} | {m['em']:.3f} | {m['f1']:.3f} | {r['em']:.3f} | {r['f1']:.3f} | {o['em']:.3f} |")
    t = meta["training"]
    lines += ["", f"Oracle: the share whose answer is exactly one of the candidates. Training: {t['wall_s']} s wall, "
              f"{t['cpu_s']} s CPU (max RSS {t['max_rss_mb']} MB) on this machine, caches cold or warm as the run found them."]
    return "\n".join(lines)


def write_card_figures(figures: dict, meta: dict) -> None:
    text = CARD.read_text(encoding="utf-8")
    head, rest = text.split("## Figures\n", 1)
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    CARD.write_text(f"{head}## Figures\n\n{figures_table(figures, meta)}\n" + (f"\n## {tail}" if tail else ""), encoding="utf-8")


def oracle(rows: list[Row]) -> dict[str, dict[str, float]]:
    """The best any candidate could do: the share of questions whose answer is among the candidates."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        hit = float(any(exact(t, row.answer) for t in row.texts))
        keys = (row.wording, "all", "typed") if row.query.answer_type != DESCRIPTION else (row.wording, "all")
        for key in keys:
            sums.setdefault(key, []).append(hit)
    return {k: {"n": len(v), "em": round(float(np.mean(v)), 4)} for k, v in sums.items()}


if __name__ == "__main__":
    raise SystemExit(main())
