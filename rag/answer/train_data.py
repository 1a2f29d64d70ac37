"""Training rows for the learned reader: questions asked of real indexes, the way the product asks them.

Two corpora, each a real local index built by rag.index with the packaged encoder under the cache folder:
- `squad`: every paragraph of the SQuAD excerpt (train and held-out articles together, one corpus, as the
  product would see it), one article each;
- `news`: the bundled articles and the two test corpora (harbour, lakeside) together.
Each question (`Item`) goes through `analyse` and the `HybridRetriever` of an `Assistant`, exactly as in the
pipeline; the (query, passages) pairs are cached (pickle, a cache only: never a model) so reruns are fast.
Unanswerable by construction: SQuAD questions asked of the news corpus, news questions asked of SQuAD.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.answer.question import analyse
from rag.answer.squad import SquadParagraph
from rag.config import PROJECT_ROOT, Settings
from rag.errors import QuestionError
from rag.pipeline import Assistant
from rag.types import Passage, Query

NEWS_SOURCES = (PROJECT_ROOT / "articles", PROJECT_ROOT / "tests" / "data" / "harbour",
                PROJECT_ROOT / "tests" / "data" / "lakeside")
NEWS_DEV = tuple(sorted((PROJECT_ROOT / "tests" / "data" / "questions").glob("*_dev.jsonl")))
SQUAD_FILE = "squad.jsonl"


@dataclass(frozen=True, slots=True)
class Item:
    """One question asked of one corpus. `gold` holds (article id, answer start) pairs in that corpus; `answers`
    the answer texts (SQuAD's spans, or a news set's answers)."""

    qid: str
    text: str
    wording: str  # original, casual, reorder, synonym (the last three generated)
    split: str  # train, held
    source: str  # squad, squad-impossible, squad-vs-news, news-dev, news-vs-squad
    corpus: str  # squad, news
    answerable: bool
    gold: tuple[tuple[str, int], ...] = ()
    answers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Asked:
    item: Item
    query: Query
    passages: tuple[Passage, ...]


def squad_article_id(paragraph_id: str) -> str:
    return f"{SQUAD_FILE}#{paragraph_id}"


def write_squad_corpus(paragraphs: Sequence[SquadParagraph], folder: Path) -> Path:
    """The paragraphs as one JSONL file of articles (ids `<title>#<n>`, so answer offsets point into them)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": p.article.id, "title": p.article.title, "text": p.article.text}) for p in paragraphs]
    path = folder / SQUAD_FILE
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return folder


def write_news_corpus(folder: Path) -> Path:
    """The bundled articles and the two test corpora, copied into one folder (one sub-folder each)."""
    for source in NEWS_SOURCES:
        target = folder / source.name
        if not target.exists():
            shutil.copytree(source, target)
    return folder


def assistant_for(articles: Path, index: Path) -> Assistant:
    """An assistant over `articles` with its index at `index` (built on first use with the packaged encoder)."""
    return Assistant.from_settings(Settings(articles_dir=articles, index_dir=index, reader="rules"))


def squad_items(paragraphs: Sequence[SquadParagraph], split: str, seed: int = 7) -> list[Item]:
    """SQuAD's own questions of `paragraphs`, answerable ones with their gold spans, impossible ones without."""
    out = []
    for p in paragraphs:
        aid = squad_article_id(p.article.id)
        for q in p.questions:
            if q.impossible:
                out.append(Item(q.id, q.question, "original", split, "squad-impossible", "squad", False))
            else:
                out.append(Item(q.id, q.question, "original", split, "squad", "squad", True,
                                tuple((aid, s) for s, _ in q.answers), tuple(t for _, t in q.answers)))
    random.Random(seed).shuffle(out)
    return out


def news_items() -> list[Item]:
    """The news development questions (tests/data/questions/*_dev.jsonl): asked of the news corpus they were
    written for (answerable when they have answers), and of SQuAD (unanswerable there by construction)."""
    out = []
    for path in NEWS_DEV:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            record = json.loads(line)
            answers = tuple(str(a) for a in record.get("answers") or ())
            qid = f"{path.stem}:{record.get('id', n)}"
            out.append(Item(qid, str(record["question"]), "original", "train", "news-dev", "news", bool(answers),
                            answers=answers))
            out.append(Item(qid + ":vs-squad", str(record["question"]), "original", "train", "news-vs-squad", "squad",
                            False))
    return out


def cross(items: Sequence[Item], corpus: str, source: str, n: int, seed: int = 11) -> list[Item]:
    """`n` of `items` asked of another corpus: unanswerable there by construction."""
    chosen = random.Random(seed).sample(list(items), min(n, len(items)))
    return [Item(f"{i.qid}:vs-{corpus}", i.text, i.wording, i.split, source, corpus, False) for i in chosen]


def reworded(item: Item, wording: str, text: str) -> Item:
    return Item(f"{item.qid}:{wording}", text, wording, item.split, item.source, item.corpus, item.answerable,
                item.gold, item.answers)


def ask_all(items: Sequence[Item], assistants: dict[str, Assistant], cache: Path, name: str,
            progress: Callable[[int, int], None] | None = None) -> list[Asked]:
    """Each item analysed and retrieved by its corpus's assistant (cached under `cache` by the items' content)."""
    digest = hashlib.sha256(json.dumps([(i.qid, i.text, i.corpus) for i in items]).encode()).hexdigest()[:16]
    path = cache / f"asked-{name}-{digest}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301  (our own cache file, written below)
    out = []
    for n, item in enumerate(items):
        assistant = assistants[item.corpus]
        try:
            query = analyse(item.text, (), assistant.settings.max_question_chars)
        except QuestionError:
            continue
        out.append(Asked(item, query, assistant.retriever.retrieve(query.resolved)))
        if progress and (n + 1) % 250 == 0:
            progress(n + 1, len(items))
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(out, fh)
    return out
