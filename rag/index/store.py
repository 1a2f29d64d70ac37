"""The article store of a segment: one SQLite file (`store.sqlite`) with each article's text, metadata, content
hash and the place of its sentences and chunks in the segment's tables.

Rows are the segment's local article rows, in the order the articles were written. Only the segment uses
this module; what leaves the segment is `Article`s and ids.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.types import Article, ArticleHeader

FILE = "store.sqlite"

_SCHEMA = (
    "CREATE TABLE articles (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT, path TEXT, url TEXT, "
    "published_at TEXT, source TEXT, text TEXT NOT NULL, hash TEXT NOT NULL, first_sentence INTEGER NOT NULL, "
    "sentences INTEGER NOT NULL, first_chunk INTEGER NOT NULL, chunks INTEGER NOT NULL)"
)
FIELDS = frozenset({"title", "text", "id", "hash"})


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an article's sentences and chunks sit in its segment's tables."""

    first_sentence: int
    sentences: int
    first_chunk: int
    chunks: int


class StoreWriter:
    """Appends article rows; `close` commits the last ones."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(folder / FILE)
        self._db.execute(_SCHEMA)
        self._pending: list[tuple[Any, ...]] = []

    def add(self, row: int, article: Article, digest: str, place: Placement) -> None:
        self._pending.append((row, article.id, article.title, article.path, article.url, article.published_at,
                              article.source, article.text, digest, place.first_sentence, place.sentences,
                              place.first_chunk, place.chunks))
        if len(self._pending) >= 2000:
            self._flush()

    def _flush(self) -> None:
        with self._db:
            self._db.executemany("INSERT INTO articles VALUES (" + ",".join("?" * 13) + ")", self._pending)
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._db.close()


class ArticleStore:
    """Read-only access to a segment's articles. Thread-safe (one connection behind a lock)."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(f"file:{folder / FILE}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM articles").fetchone()[0])

    def find(self, article_id: str) -> int | None:
        """The row of `article_id`, or None."""
        with self._lock:
            row = self._db.execute("SELECT row FROM articles WHERE id = ?", (article_id,)).fetchone()
        return None if row is None else int(row[0])

    def article(self, row: int) -> Article:
        with self._lock:
            r = self._db.execute(
                "SELECT id, title, text, path, url, published_at, source FROM articles WHERE row = ?", (row,)
            ).fetchone()
        return Article(*r)

    def field(self, row: int, name: str) -> Any:
        """One of FIELDS of the article at `row`."""
        if name not in FIELDS:
            raise ValueError(name)
        with self._lock:
            return self._db.execute(f"SELECT {name} FROM articles WHERE row = ?", (row,)).fetchone()[0]

    def placement(self, row: int) -> Placement:
        with self._lock:
            r = self._db.execute("SELECT first_sentence, sentences, first_chunk, chunks FROM articles WHERE row = ?",
                                 (row,)).fetchone()
        return Placement(*(int(x) for x in r))

    def ids(self) -> list[tuple[int, str]]:
        """(row, id) of every article, in row order."""
        with self._lock:
            return self._db.execute("SELECT row, id FROM articles ORDER BY row").fetchall()

    def headers(self) -> list[tuple[int, ArticleHeader]]:
        """(row, header) of every article, in row order."""
        with self._lock:
            rows = self._db.execute("SELECT row, id, title, published_at FROM articles ORDER BY row").fetchall()
        return [(r, ArticleHeader(i, t, p)) for r, i, t, p in rows]

    def with_hash(self, row: int) -> tuple[Article, str, Placement]:
        """The article at `row`, its content hash and placement (for merges)."""
        with self._lock:
            r = self._db.execute(
                "SELECT id, title, text, path, url, published_at, source, hash, first_sentence, sentences, "
                "first_chunk, chunks FROM articles WHERE row = ?", (row,)
            ).fetchone()
        return Article(*r[:7]), r[7], Placement(*(int(x) for x in r[8:]))
