"""SQuAD 2.0 as training data for the learned reader: paragraphs, questions, answer spans, a split by article.

The data is `../shared/data/squad-v2.0-train-excerpt/train-v2.0-excerpt.json` (10 articles of SQuAD 2.0 train,
CC BY-SA 4.0, see its PROVENANCE.md), or the file `$RAG_SQUAD` names. Nothing is fetched: `make reader` runs
from what the repository and `../shared/` hold. SQuAD's dev set is never read (it is kept for an independent
check), and a file of that name is refused.

Each paragraph becomes one `Article` (id `<title>#<n>`), so SQuAD's `answer_start` offsets point into the
article text unchanged and a real index can be built over the paragraphs to train on the features the reader
sees at question time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.types import Article

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT.parent / "shared" / "data" / "squad-v2.0-train-excerpt" / "train-v2.0-excerpt.json"
EXPECTED_SHA256 = "53e67dd96e8597a8ef600e795d54d3fdef18486d42721884d38d652e2a2638cb"
FORBIDDEN_NAME = "dev-v2.0.json"


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    """One question; `answers` are (start, text) spans in its paragraph, empty when `impossible`."""

    id: str
    question: str
    article_id: str  # the paragraph's Article id
    answers: tuple[tuple[int, str], ...]
    impossible: bool
    plausible: tuple[tuple[int, str], ...] = ()  # SQuAD 2.0's plausible (but wrong) spans of an impossible question


@dataclass(frozen=True, slots=True)
class SquadParagraph:
    title: str  # the Wikipedia article's title (the unit of the train/held-out split)
    article: Article
    questions: tuple[SquadQuestion, ...]


def data_path() -> Path:
    """`$RAG_SQUAD` or the shared excerpt."""
    return Path(os.environ.get("RAG_SQUAD") or DEFAULT_PATH)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path | None = None) -> tuple[SquadParagraph, ...]:
    """Every paragraph of a SQuAD 2.0 file, in file order. Raises RagError with the reason for a missing,
    unreadable or malformed file, or for SQuAD's dev set."""
    path = path or data_path()
    if path.name == FORBIDDEN_NAME:
        raise RagError(f"{path}: SQuAD's dev set is kept for an independent check and is never used for training")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(f"{path}: not found (the SQuAD excerpt lives in ../shared/data/; or set RAG_SQUAD)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RagError(f"{path}: cannot be read as SQuAD JSON ({exc})") from None
    try:
        out = []
        for entry in data["data"]:
            title = str(entry["title"])
            for n, para in enumerate(entry["paragraphs"]):
                article = Article(id=f"{title}#{n}", title=title.replace("_", " "), text=para["context"])
                questions = tuple(
                    SquadQuestion(
                        str(qa["id"]), str(qa["question"]), article.id,
                        tuple((int(a["answer_start"]), str(a["text"])) for a in qa.get("answers", ())),
                        bool(qa.get("is_impossible", False)),
                        tuple((int(a["answer_start"]), str(a["text"])) for a in qa.get("plausible_answers", ())),
                    )
                    for qa in para["qas"]
                )
                out.append(SquadParagraph(title, article, questions))
    except (KeyError, TypeError, ValueError) as exc:
        raise RagError(f"{path}: not in SQuAD 2.0 form ({exc!r})") from None
    return tuple(out)


def split_by_article(paragraphs: Sequence[SquadParagraph], held_out: int = 2, seed: int = 13
                     ) -> tuple[tuple[SquadParagraph, ...], tuple[SquadParagraph, ...], tuple[str, ...]]:
    """(train, held-out, held-out titles): whole Wikipedia articles are held out, chosen by a seeded shuffle, so
    no held-out question's paragraph, or any paragraph of its article, is trained on."""
    titles = sorted({p.title for p in paragraphs})
    if not 0 < held_out < len(titles):
        raise ValueError(f"held_out must be between 1 and {len(titles) - 1} articles, got {held_out}")
    chosen = tuple(sorted(random.Random(seed).sample(titles, held_out)))
    train = tuple(p for p in paragraphs if p.title not in chosen)
    test = tuple(p for p in paragraphs if p.title in chosen)
    return train, test, chosen
