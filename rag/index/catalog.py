"""The index catalog: the one SQLite file that says which segments are live and what built them.

catalog.sqlite holds the settings signature and counts (meta), the live segments in order, tombstones
(article rows of a segment changed or deleted since it was written), every article's hash and place and
every file's size, mtime and sha256. An incremental build changes it inside one transaction, so a build
killed at any moment leaves the last committed state; a full build writes a new catalog beside it and
swaps it in with os.replace. Reading it is cheap: nothing here grows with the corpus except the file table
that `freshness` compares with the articles folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import IndexCorruptError, IndexMismatchError
from rag.index.segment import Segment, SegmentStats
from rag.ingest.files import walk_article_files
from rag.types import Skipped

# 3: the catalog records the backend; large segments keep 8-bit codes instead of float16 vectors (rag.index.dense)
FORMAT_VERSION = 3


REBUILD_HINT = "rebuild it with: rag index build --rebuild"


CATALOG = "catalog.sqlite"


_CATALOG_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE segments (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, articles INTEGER NOT NULL,
    chunks INTEGER NOT NULL, sentences INTEGER NOT NULL, kind TEXT NOT NULL);
CREATE TABLE tombstones (segment TEXT NOT NULL, row INTEGER NOT NULL, chunks INTEGER NOT NULL,
    sentences INTEGER NOT NULL, PRIMARY KEY (segment, row));
CREATE TABLE articles (id TEXT PRIMARY KEY, file TEXT NOT NULL, segment TEXT NOT NULL, row INTEGER NOT NULL,
    hash TEXT NOT NULL, chunks INTEGER NOT NULL, sentences INTEGER NOT NULL);
CREATE INDEX articles_file ON articles (file);
CREATE INDEX articles_segment ON articles (segment);
CREATE TABLE files (fid TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
    skipped TEXT);
"""


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """The catalog's row for a live article: where it is stored and what it was built from."""

    id: str
    file: str
    segment: str
    row: int
    hash: str
    chunks: int
    sentences: int


@dataclass(frozen=True, slots=True)
class Tombstone:
    """An article row of a segment that was changed or deleted after the segment was written."""

    segment: str
    row: int
    chunks: int
    sentences: int


@dataclass(frozen=True, slots=True)
class FileRow:
    """An article file as the last build saw it; `skipped` is the JSON list of its skipped parts."""

    fid: str
    size: int
    mtime_ns: int
    sha256: str
    skipped: str | None


@dataclass(frozen=True, slots=True)
class Delta:
    """What one incremental build changes, committed in one transaction by `commit_delta`."""

    stats: SegmentStats | None  # the new segment, if one was written
    placed: tuple[StoredArticle, ...]  # the articles in it
    merge: tuple[str, ...]  # segments folded into it
    dead: tuple[Tombstone, ...]  # rows of older segments that changed or went
    removed: tuple[str, ...]  # article ids that are gone
    gone: tuple[str, ...]  # file ids that are gone
    files: tuple[FileRow, ...]  # files read again
    restat: tuple[tuple[int, int, str], ...]  # (size, mtime_ns, fid) of files touched but unchanged


def _article_rows(placed: tuple[StoredArticle, ...] | list[StoredArticle]) -> list[tuple]:
    return [(a.id, a.file, a.segment, a.row, a.hash, a.chunks, a.sentences) for a in placed]


def _file_rows(files: tuple[FileRow, ...] | list[FileRow]) -> list[tuple]:
    return [(f.fid, f.size, f.mtime_ns, f.sha256, f.skipped) for f in files]


def stored_articles(db: sqlite3.Connection, file_ids: set[str]) -> dict[str, StoredArticle]:
    """The catalog's articles of the files `file_ids`, by article id."""
    out = {}
    for fid in file_ids:
        for row in db.execute("SELECT id, file, segment, row, hash, chunks, sentences FROM articles WHERE file = ?", (fid,)):
            out[row[0]] = StoredArticle(*row)
    return out


@dataclass(frozen=True, slots=True)
class Freshness:
    """How the index on disk compares with the articles folder."""

    exists: bool
    stale: bool
    reason: str = ""
    problems: tuple[str, ...] = field(default=())


def settings_signature(settings: Settings) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "backend": settings.index_backend,
        "model": settings.embed_model,
        "chunking": {"splitter": "punkt+lines", "max_chars": settings.chunk_max_chars, "overlap": settings.chunk_overlap},
        "lexical": {"library": "bm25s", "tokenizer": "rag.text.terms/v2"},
    }


def connect(path: Path) -> sqlite3.Connection:
    """A catalog connection. Opening read-write lets SQLite roll back what a killed build left half-done."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"the index catalog {path} is unreadable ({exc}); {REBUILD_HINT}") from None
    return db


def current_generation(index_dir: Path) -> Path | None:
    """The folder holding the live index (kept for `rag index info`, which sums its file sizes)."""
    return index_dir if (index_dir / CATALOG).exists() else None


def read_meta(db: sqlite3.Connection) -> dict[str, Any]:
    try:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    except (sqlite3.Error, ValueError) as exc:
        raise IndexCorruptError(f"the index catalog is unreadable ({exc}); {REBUILD_HINT}") from None


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """What built the live index and its counts, or None when there is no index."""
    catalog = index_dir / CATALOG
    if not catalog.exists():
        if (index_dir / "CURRENT").exists():  # the one-generation layout of format 1
            return {"format_version": 1}
        return None
    db = connect(catalog)
    try:
        manifest = read_meta(db)
        manifest["segments"] = [
            {"name": n, "articles": a, "sentences": s, "kind": k}
            for n, a, s, k in db.execute("SELECT name, articles, sentences, kind FROM segments ORDER BY seq")
        ]
    finally:
        db.close()
    return manifest


def check_compatible(manifest: dict[str, Any], settings: Settings) -> None:
    """Raise IndexMismatchError when the index was built by another format, backend, model or chunking."""
    want = settings_signature(settings)
    checks = (("format_version", "format version"), ("backend", "index backend"), ("model", "embedding model"),
              ("chunking", "chunking"), ("lexical", "lexical index"))
    for key, label in checks:
        if manifest.get(key) != want[key]:
            raise IndexMismatchError(
                f"the index in {settings.index_dir} was built with {label} {manifest.get(key)!r}, "
                f"but the settings ask for {want[key]!r}; {REBUILD_HINT}"
            )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_files(root: Path, previous: dict[str, tuple[int, int, str]]) -> dict[str, tuple[str, int, int, str]]:
    """fid -> (path, size, mtime_ns, sha256) of every article file; the hash is reused when size and mtime
    match (size -1 and an empty hash: the file cannot be stat'ed or read)."""
    table = {}
    get = previous.get
    for fid, path, stat in walk_article_files(root):
        if stat is None:
            table[fid] = (path, -1, -1, "")
            continue
        size, mtime = stat.st_size, stat.st_mtime_ns
        old = get(fid)
        if old and old[0] == size and old[1] == mtime:
            table[fid] = (path, size, mtime, old[2])
            continue
        try:
            digest = _file_digest(Path(path))
        except OSError:
            digest = ""
        table[fid] = (path, size, mtime, digest)
    return table


def file_changes(files: dict[str, tuple[str, int, int, str]], old: dict[str, tuple[int, int, str]],
                 ) -> tuple[list[str], list[str], list[str]]:
    """(touched: new or content changed, restat: only size or mtime changed, gone) between a `scan_files`
    table and the catalog's `file_rows`."""
    touched, restat = [], []
    for fid, (_, size, mtime, digest) in files.items():
        before = old.get(fid)
        if before is None or before[2] != digest:
            touched.append(fid)
        elif before[0] != size or before[1] != mtime:
            restat.append(fid)
    return touched, restat, sorted(set(old) - set(files))


def file_rows(db: sqlite3.Connection) -> dict[str, tuple[int, int, str]]:
    return {fid: (size, mtime, sha) for fid, size, mtime, sha in db.execute("SELECT fid, size, mtime_ns, sha256 FROM files")}


def freshness(settings: Settings) -> Freshness:
    """Whether the index exists and still matches the articles folder (cheap: stat first, hash on change)."""
    catalog = settings.index_dir / CATALOG
    if not catalog.exists():
        if (settings.index_dir / "CURRENT").exists():
            return Freshness(True, True, "it was built by an older version")
        return Freshness(exists=False, stale=True, reason="there is no index yet")
    db = connect(catalog)
    try:
        meta = read_meta(db)
        old = file_rows(db)
    finally:
        db.close()
    if Path(meta.get("articles_dir", "")) != settings.articles_dir.resolve():
        return Freshness(True, True, f"it was built from {meta.get('articles_dir')}")
    touched, _, gone = file_changes(scan_files(settings.articles_dir, old), old)
    if touched or gone:
        return Freshness(True, True, "the articles changed")
    return Freshness(True, False)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_unlisted(index_dir: Path, live: set[str]) -> None:
    """Segments a merge replaced, a killed build left behind, or an older layout used."""
    for path in index_dir.glob("gen-*"):
        if path.name not in live:
            shutil.rmtree(path, ignore_errors=True)
    for name in ("CURRENT", "CURRENT.tmp", CATALOG + ".new"):
        with contextlib.suppress(FileNotFoundError):
            (index_dir / name).unlink()


def all_skipped(db: sqlite3.Connection) -> tuple[Skipped, ...]:
    out = []
    for (raw,) in db.execute("SELECT skipped FROM files WHERE skipped IS NOT NULL AND skipped != '[]' ORDER BY fid"):
        out.extend(Skipped(p, r) for p, r in json.loads(raw))
    return tuple(out)


def set_counts(db: sqlite3.Connection, meta: dict[str, Any]) -> None:
    a, c, s = db.execute("SELECT coalesce(sum(articles),0), coalesce(sum(chunks),0), coalesce(sum(sentences),0) FROM segments").fetchone()
    ta, tc, ts = db.execute("SELECT count(*), coalesce(sum(chunks),0), coalesce(sum(sentences),0) FROM tombstones").fetchone()
    meta = {**meta, "counts": {"articles": a - ta, "chunks": c - tc, "sentences": s - ts}}
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])


def commit_full(index_dir: Path, meta: dict[str, Any], stats: SegmentStats, placed: list[StoredArticle],
                files: list[FileRow]) -> set[str]:
    """A whole new catalog, written beside the live one and swapped in atomically."""
    path = index_dir / (CATALOG + ".new")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(_CATALOG_SCHEMA)
        db.execute("BEGIN")
        db.execute("INSERT INTO segments VALUES (?, 1, ?, ?, ?, ?)", (stats.name, stats.articles, stats.chunks, stats.sentences, stats.kind))
        db.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)", _article_rows(placed))
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)", _file_rows(files))
        set_counts(db, meta)
        db.execute("COMMIT")
    finally:
        db.close()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    for leftover in ("-journal", "-wal", "-shm"):  # never let an old journal meet the new file
        with contextlib.suppress(FileNotFoundError):
            (index_dir / (CATALOG + leftover)).unlink()
    os.replace(path, index_dir / CATALOG)
    fsync_dir(index_dir)
    return {stats.name}


def commit_delta(db: sqlite3.Connection, meta: dict[str, Any], delta: Delta) -> set[str]:
    """One transaction: the new segment in, merged segments out, tombstones, articles and files updated."""
    db.execute("BEGIN IMMEDIATE")
    try:
        seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM segments").fetchone()[0]
        for name in delta.merge:
            db.execute("DELETE FROM segments WHERE name = ?", (name,))
            db.execute("DELETE FROM tombstones WHERE segment = ?", (name,))
        stats = delta.stats
        if stats is not None:
            db.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?)",
                       (stats.name, seq, stats.articles, stats.chunks, stats.sentences, stats.kind))
        db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)",
                       [(d.segment, d.row, d.chunks, d.sentences) for d in delta.dead if d.segment not in delta.merge])
        db.executemany("DELETE FROM articles WHERE id = ?", [(a,) for a in delta.removed])
        db.executemany("INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)",
                       _article_rows(delta.placed) if stats else [])
        db.executemany("DELETE FROM files WHERE fid = ?", [(f,) for f in delta.gone])
        db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", _file_rows(delta.files))
        db.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE fid = ?", delta.restat)
        set_counts(db, meta)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return {name for (name,) in db.execute("SELECT name FROM segments")}


def open_segments(index_dir: Path, db: sqlite3.Connection, only: list[str] | None = None) -> dict[str, Segment]:
    """The catalog's segments in order, each masked by its tombstones."""
    try:
        rows = db.execute("SELECT name, articles, chunks, sentences FROM segments ORDER BY seq").fetchall()
        dead: dict[str, set[int]] = {}
        for seg, row in db.execute("SELECT segment, row FROM tombstones"):
            dead.setdefault(seg, set()).add(row)
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"the index catalog in {index_dir} is unreadable ({exc}); {REBUILD_HINT}") from None
    out: dict[str, Segment] = {}
    try:
        for name, articles, chunks, sentences in rows:
            if only is not None and name not in only:
                continue
            path = index_dir / name
            try:
                segment = Segment(path, frozenset(dead.get(name, ())))
            except Exception as exc:  # any unreadable part means the same thing to the user
                raise IndexCorruptError(
                    f"the index in {path} is damaged ({type(exc).__name__}: {exc}); {REBUILD_HINT}"
                ) from None
            out[name] = segment
            if (segment.info["articles"], segment.info["chunks"], segment.info["sentences"]) != (articles, chunks, sentences):
                raise IndexCorruptError(f"the index in {path} is inconsistent (row counts differ); {REBUILD_HINT}")
    except BaseException:
        for segment in out.values():
            segment.close()
        raise
    return out
