"""`python -m rag.answer.train` (`make reader`): train the learned reader from the SQuAD excerpt, seeded.

Steps: real indexes of the SQuAD paragraphs and of the news corpora (rag.answer.train_data), every question
analysed and retrieved as the pipeline does, generated wordings of SQuAD's questions (rag.answer.wordings,
labelled generated), features of every candidate sentence (rag.answer.features); a ranker (logistic regression
and HistGradientBoosting, the better on the held-out split kept) and an abstention model (logistic regression:
a calibrated probability) with its threshold chosen on the held-back split; then the figures of the baseline,
the rules and the learned reader per wording, written with the model to rag/answer/model/reader.json.
Prints its figures and its training time (wall and CPU). Caches indexes and retrievals under --cache.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import squad
from rag.answer.card import write_card
from rag.answer.features import SentenceTable, question_features, sentence_table
from rag.answer.learned import LearnedReader
from rag.answer.measure import baseline_first, in_gold, score_answer, slice_figures, summarise
from rag.answer.model_io import MODEL_PATH, ReaderModel, from_sklearn_linear, from_sklearn_trees, load_model
from rag.answer.train_data import (
    Asked,
    Item,
    ask_all,
    assistant_for,
    cross,
    news_items,
    reworded,
    squad_items,
    write_news_corpus,
    write_squad_corpus,
)
from rag.answer.wordings import SynonymTable, casual, reorder, vocabulary

SEED = 13
MAX_FALSE_ABSTENTION = 0.08  # the threshold: the highest at which at most this share of answerable rows abstain


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _synonyms(cache: Path, paragraphs: list[squad.SquadParagraph], encoder: Any) -> SynonymTable:
    words = vocabulary([p.article.text for p in paragraphs] + [q.question for p in paragraphs for q in p.questions])
    path = cache / f"vocab-{len(words)}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        vectors = np.asarray(encoder.encode_documents(words), dtype=np.float32)
        np.save(path, vectors)
    return SynonymTable(words, vectors)


def _generated(items: list[Item], synonyms: SynonymTable, cache: Path, name: str) -> list[Item]:
    """casual / reorder / synonym rewrites of each item (none when a rewrite is not possible), cached."""
    path = cache / f"wordings-{name}-{len(items)}.json"
    if path.exists():
        texts = json.loads(path.read_text())
    else:
        texts = {i.qid: {"casual": casual(i.text), "reorder": reorder(i.text), "synonym": synonyms.rewrite(i.text)}
                 for i in items}
        path.write_text(json.dumps(texts))
    return [reworded(i, w, t) for i in items for w, t in texts[i.qid].items() if t and t != i.text]


def _labels(asked: Asked, table: SentenceTable) -> np.ndarray:
    item = asked.item
    if not item.answerable:
        return np.zeros(len(table.candidates), dtype=bool)
    if item.gold:
        return np.array([in_gold(c.article_id, c.start, c.end, item.gold) for c in table.candidates], dtype=bool)
    wanted = [a.lower() for a in item.answers]
    return np.array([any(a in c.text.lower() for a in wanted) for c in table.candidates], dtype=bool)


def _top1(model: Any, rows: list[tuple[Asked, SentenceTable, np.ndarray]]) -> dict[str, float]:
    """Share of answerable rows whose best non-heading candidate holds the answer, per wording."""
    got: dict[str, list[float]] = {}
    for asked, table, labels in rows:
        if not asked.item.answerable or not len(table.candidates):
            continue
        scores = np.where(table.headings, -np.inf, model(table.matrix))
        got.setdefault(asked.item.wording, []).append(float(labels[int(np.argmax(scores))]))
    return {w: round(float(np.mean(v)), 4) for w, v in sorted(got.items())}


def _fit_ranker(rows: list[tuple[Asked, SentenceTable, np.ndarray]], kind: str, wordings: tuple[str, ...]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    use = [(t, y) for a, t, y in rows if a.item.wording in wordings and y.any()]
    x = np.vstack([t.matrix for t, _ in use])
    y = np.concatenate([lab for _, lab in use])
    if kind == "logistic":
        scaler = StandardScaler().fit(x)
        scaler.scale_[scaler.scale_ == 0] = 1.0
        fitted = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), y)
        return from_sklearn_linear(fitted, scaler)
    fitted = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=40,
                                            l2_regularization=1.0, random_state=SEED).fit(x, y)
    return from_sklearn_trees(fitted)


def _question_rows(rows: list[tuple[Asked, SentenceTable, np.ndarray]], ranker: Any) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for asked, table, labels in rows:
        scores = ranker.raw(table.matrix.astype(np.float64)) if len(table.candidates) else np.zeros(0)
        rule_confidence = table.candidates[0].dense + table.candidates[0].coverage if table.candidates else 0.0
        xs.append(question_features(asked.query, table, scores, rule_confidence))
        ys.append(bool(labels.any()))
    return np.vstack(xs), np.array(ys)


NEWS_WEIGHT = 5.0  # the product's own kind of text: few rows (the news dev questions), so each counts more


def _fit_abstention(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scaler.scale_[scaler.scale_ == 0] = 1.0
    return from_sklearn_linear(LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x), y, sample_weight=weight),
                               scaler)


def _threshold(p: np.ndarray, answerable: np.ndarray) -> tuple[float, dict[str, float]]:
    """The highest threshold at which at most MAX_FALSE_ABSTENTION of the answerable rows abstain."""
    best = 0.0
    for t in np.arange(0.0, 1.0, 0.005):
        if np.mean(p[answerable] < t) <= MAX_FALSE_ABSTENTION:
            best = float(t)
    abstain = p < best
    figures = {"false_abstention": float(np.mean(abstain[answerable])), "abstention": float(np.mean(abstain[~answerable])),
               "precision": float(np.mean(~answerable[abstain])) if abstain.any() else 0.0}
    return round(best, 3), {k: round(v, 4) for k, v in figures.items()}


def _measure(model: ReaderModel, held_q: list[tuple[Asked, SentenceTable, np.ndarray]], assistants: dict[str, Any],
             cache: Path) -> dict[str, Any]:
    """The baseline, the rules and the learned reader on the held-back rows, per wording; the card's slice."""
    measured = []
    for a, _table, _ in held_q:
        rules = assistants[a.item.corpus].reader
        learned = LearnedReader(rules, model=model)
        row = {"wording": a.item.wording, "answerable": a.item.answerable}
        if a.item.answerable:
            measured.append({**row, "reader": "baseline", "first": baseline_first(rules, a.query, a.passages, a.item.gold)})
        for name, reader in (("rules", rules), ("learned", learned)):
            answer = reader.read(a.query, a.passages)
            scores = score_answer(answer, a.item.gold, a.item.answers) if a.item.answerable else {
                "abstained": float(answer.abstained)}
            measured.append({**row, "reader": name, **scores})
    slice_dir = cache / "slice"
    return {"held_out": summarise(measured),
            "slice": slice_figures(lambda rules: LearnedReader(rules, model=model), slice_dir / "articles", slice_dir / "index")}


def _at(p: np.ndarray, answerable: np.ndarray, threshold: float) -> dict[str, float]:
    abstain = p < threshold
    return {"false_abstention": round(float(np.mean(abstain[answerable])), 4),
            "abstention": round(float(np.mean(abstain[~answerable])), 4),
            "precision": round(float(np.mean(~answerable[abstain])), 4) if abstain.any() else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.answer.train", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("RAG_LEARNED_CACHE", "/tmp/learned-cache")))
    parser.add_argument("--variants", type=int, default=600, help="train questions rewritten in each generated wording")
    parser.add_argument("--held-variants", type=int, default=400,
                        help="held-out questions rewritten in each generated wording for the figures")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--limit", type=int, default=0, help="at most this many questions per group (a smoke run)")
    parser.add_argument("--measure-only", action="store_true",
                        help="keep the model at --out, measure it again (after a reader change) and rewrite its figures")
    args = parser.parse_args(argv)
    random.seed(SEED)
    np.random.seed(SEED)
    wall, cpu = time.perf_counter(), time.process_time()
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    paragraphs = list(squad.load())
    digest = squad.sha256(squad.data_path())
    train_p, held_p, titles = squad.split_by_article(paragraphs)
    assistants = {"squad": assistant_for(write_squad_corpus(paragraphs, cache / "corpus-squad"), cache / "index-squad"),
                  "news": assistant_for(write_news_corpus(cache / "corpus-news"), cache / "index-news")}
    _log(f"indexes ready ({time.perf_counter() - wall:.0f} s)")
    train_items, held_items = squad_items(train_p, "train"), squad_items(held_p, "held")
    impossible = [i for i in train_items if not i.answerable]
    held_impossible = {i.qid for i in impossible[: len(impossible) // 3]}  # kept from the abstention model's training
    train_items = [Item(i.qid, i.text, i.wording, "held" if i.qid in held_impossible else i.split, *(
        i.source, i.corpus, i.answerable, i.gold, i.answers)) for i in train_items]
    answer_train = [i for i in train_items if i.answerable]
    answer_held = [i for i in held_items if i.answerable]
    synonyms = _synonyms(cache, paragraphs, assistants["squad"].encoder)
    generated_train = _generated(answer_train[: args.variants], synonyms, cache, "train")
    generated_held = _generated(answer_held, synonyms, cache, "held")
    chosen_held = {i.qid for i in random.Random(SEED).sample(answer_held, min(args.held_variants, len(answer_held)))}
    generated_held = [i for i in generated_held if i.qid.rsplit(":", 1)[0] in chosen_held]
    crossed = cross(answer_train, "news", "squad-vs-news", 500) + cross(answer_held, "news", "squad-vs-news", 300)
    groups = {"train": train_items, "held": held_items, "gen-train": generated_train, "gen-held": generated_held,
              "cross": crossed, "news": news_items()}
    if args.limit:
        groups = {name: items[: args.limit] for name, items in groups.items()}
    asked: list[Asked] = []
    for name, items in groups.items():
        started = time.perf_counter()
        asked += ask_all(items, assistants, cache, name, lambda n, total, name=name: _log(f"  {name}: {n}/{total}"))
        _log(f"asked {name}: {len(items)} questions ({time.perf_counter() - started:.0f} s)")
    rows = []
    for a in asked:
        table = sentence_table(assistants[a.item.corpus].reader, a.query, a.passages)
        rows.append((a, table, _labels(a, table)))
    _log(f"features: {sum(len(t.candidates) for _, t, _ in rows)} candidate rows ({time.perf_counter() - wall:.0f} s)")
    train_rows = [r for r in rows if r[0].item.split == "train"]
    held_rows = [r for r in rows if r[0].item.split == "held" and r[0].item.source == "squad"]
    held_q = [r for r in rows if r[0].item.split == "held"]
    if args.measure_only:
        old = load_model(args.out)
        figures = {**old.info.get("figures", {}), **_measure(old, held_q, assistants, cache)}
        model = ReaderModel(old.ranker, old.abstain, old.threshold, {**old.info, "figures": figures})
        model.save(args.out)
        if args.out == MODEL_PATH:
            write_card(model)
        print(json.dumps(figures, indent=1))
        return 0

    report: dict[str, Any] = {"augmentation": {}, "rankers": {}}
    plain = {"encoder alone": lambda m: m[:, 0]}
    report["rankers"]["encoder alone (baseline)"] = _top1(plain["encoder alone"], held_rows)
    steps = (("original",), ("original", "casual"), ("original", "reorder"), ("original", "synonym"),
             ("original", "casual", "reorder", "synonym"))
    for wordings in steps:
        ranker = _fit_ranker(train_rows, "logistic", wordings)
        report["augmentation"]["+".join(wordings)] = _top1(ranker.raw, held_rows)
    all_wordings = steps[-1]
    candidates = {kind: _fit_ranker(train_rows, kind, all_wordings) for kind in ("logistic", "trees")}
    for kind, ranker in candidates.items():
        report["rankers"][kind] = _top1(ranker.raw, held_rows)
    kind = max(candidates, key=lambda k: np.mean(list(report["rankers"][k].values())))
    ranker = candidates[kind]
    x_train, y_train = _question_rows(train_rows, ranker)
    news = np.array([r[0].item.source in ("news-dev", "news-vs-squad") for r in train_rows])
    abstain = _fit_abstention(x_train, y_train, np.where(news, NEWS_WEIGHT, 1.0))
    x_held, _ = _question_rows(held_q, ranker)
    p_held = 1 / (1 + np.exp(-abstain.raw(x_held.astype(np.float64))))
    threshold, abstention = _threshold(p_held, np.array([r[0].item.answerable for r in held_q]))
    # the product's own corpora: the news development questions must not abstain more either (tuning on *_dev only)
    dev = [r for r in rows if r[0].item.source in ("news-dev", "news-vs-squad")]
    x_dev, _ = _question_rows(dev, ranker)
    p_dev = 1 / (1 + np.exp(-abstain.raw(x_dev.astype(np.float64))))
    dev_threshold, dev_abstention = _threshold(p_dev, np.array([r[0].item.answerable for r in dev]))
    if dev_threshold < threshold:
        threshold = dev_threshold
        abstention = _at(p_held, np.array([r[0].item.answerable for r in held_q]), threshold)
    dev_abstention = _at(p_dev, np.array([r[0].item.answerable for r in dev]), threshold)
    version = f"{dt.date.today().isoformat()}-{kind}-{digest[:8]}"
    info: dict[str, Any] = {"version": version, "data_sha256": digest, "held_out_titles": list(titles), "seed": SEED,
                            "ranker_type": kind, "threshold_rule": f"highest with false abstention <= {MAX_FALSE_ABSTENTION}"
                            " on the held-back SQuAD rows and on the news dev questions", "held_back_abstention": abstention,
                            "news_dev_abstention": dev_abstention,
                            "rows": {name: len(items) for name, items in groups.items()}}
    model = ReaderModel(ranker, abstain, threshold, info)

    report.update(_measure(model, held_q, assistants, cache))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["training_time"] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
                               "max_rss_mb": round(usage.ru_maxrss / 1024), "load_average": list(os.getloadavg())}
    model = ReaderModel(ranker, abstain, threshold, {**info, "figures": report})
    model.save(args.out)
    if args.out == MODEL_PATH:
        write_card(model)
    for assistant in assistants.values():
        assistant.close()
    print(json.dumps(report, indent=1))
    _log(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB); threshold {threshold}; ranker {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
