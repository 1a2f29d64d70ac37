"""The persisted index: build it (incrementally, crash-safely, resumably) and open it.

Layout of `index_dir`:
    catalog.sqlite   the live state, changed only inside one SQLite transaction: settings signature and
                     counts (meta), the live segments in order, tombstones (article rows of a segment that
                     were changed or deleted since), every article's hash and place, every file's size, mtime
                     and sha256
    gen-NNNNNN/      immutable segments (see rag.store): a large base and small deltas
    .scratch/        vectors of article batches embedded by a build that has not finished yet
A build embeds only new or changed articles into a new delta segment, tombstones the old copies and
commits the catalog; nothing that did not change is rewritten. When a delta grows to a quarter of the
segment before it (or a segment is a quarter dead) they are merged, reusing stored vectors, so the number
of segments stays logarithmic. A killed build leaves the last committed catalog, whose segments are intact;
its finished embedding batches stay in .scratch/ and the next build reuses them. A full build (first build,
--rebuild, other settings) writes a whole new catalog and swaps it in with os.replace.
FAISS and segment row numbers never leave this module and rag.store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunk import chunk_article
from rag.config import Settings
from rag.embed import Embedder
from rag.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, RagError
from rag.ingest import file_id, list_article_files, load_file
from rag.store import EXACT_MAX_SENTENCES, Segment, SegmentStats, SegmentWriter
from rag.text import terms
from rag.types import Article, Chunk, Skipped

FORMAT_VERSION = 2
REBUILD_HINT = "rebuild it with: rag index build --rebuild"
CATALOG = "catalog.sqlite"
SCRATCH_SENTENCES = 1024  # sentences per resumable embedding batch
MERGE_RATIO = 4  # merge a segment into the next when it is no more than this many times its size
DEAD_LIMIT = 0.25  # rewrite a segment once this share of its sentences is tombstoned

Progress = Callable[[int, int], None]  # (sentences embedded so far, sentences to embed)

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
class BuildReport:
    path: str
    articles: int
    chunks: int
    sentences: int
    embedded: int
    reused: int
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    seconds: float
    unchanged: bool = False
    resumed: int = 0  # sentences whose vectors a killed earlier build had already embedded
    merged: tuple[str, ...] = ()  # segments folded into the new one


@dataclass(frozen=True, slots=True)
class Freshness:
    """How the index on disk compares with the articles folder."""

    exists: bool
    stale: bool
    reason: str = ""
    problems: tuple[str, ...] = field(default=())


def _settings_signature(settings: Settings) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": settings.embed_model,
        "chunking": {"splitter": "punkt+lines", "max_chars": settings.chunk_max_chars, "overlap": settings.chunk_overlap},
        "lexical": {"library": "bm25s", "tokenizer": "rag.text.terms/v2"},
    }


def _connect(path: Path) -> sqlite3.Connection:
    """A catalog connection. Opening read-write lets SQLite roll back what a killed build left half-done."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"the index catalog {path} is unreadable ({exc}); {REBUILD_HINT}") from None
    return db


def _current_generation(index_dir: Path) -> Path | None:
    """The folder holding the live index (kept for `rag index info`, which sums its file sizes)."""
    return index_dir if (index_dir / CATALOG).exists() else None


def _read_meta(db: sqlite3.Connection) -> dict[str, Any]:
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
    db = _connect(catalog)
    try:
        manifest = _read_meta(db)
        manifest["segments"] = [
            {"name": n, "articles": a, "sentences": s, "kind": k}
            for n, a, s, k in db.execute("SELECT name, articles, sentences, kind FROM segments ORDER BY seq")
        ]
    finally:
        db.close()
    return manifest


def check_compatible(manifest: dict[str, Any], settings: Settings) -> None:
    """Raise IndexMismatchError when the index was built by another model, chunking or format."""
    want = _settings_signature(settings)
    for key, label in (("format_version", "format version"), ("model", "embedding model"), ("chunking", "chunking"), ("lexical", "lexical index")):
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


def _scan_files(root: Path, previous: dict[str, tuple[int, int, str]]) -> dict[str, tuple[Path, int, int, str]]:
    """fid -> (path, size, mtime_ns, sha256) of every article file; the hash is reused when size and mtime match."""
    table = {}
    for path in list_article_files(root):
        fid = file_id(root, path)
        try:
            stat = path.stat()
        except OSError:
            continue
        old = previous.get(fid)
        if old and old[0] == stat.st_size and old[1] == stat.st_mtime_ns:
            digest = old[2]
        else:
            try:
                digest = _file_digest(path)
            except OSError:
                digest = ""
        table[fid] = (path, stat.st_size, stat.st_mtime_ns, digest)
    return table


def _file_rows(db: sqlite3.Connection) -> dict[str, tuple[int, int, str]]:
    return {fid: (size, mtime, sha) for fid, size, mtime, sha in db.execute("SELECT fid, size, mtime_ns, sha256 FROM files")}


def freshness(settings: Settings) -> Freshness:
    """Whether the index exists and still matches the articles folder (cheap: stat first, hash on change)."""
    catalog = settings.index_dir / CATALOG
    if not catalog.exists():
        if (settings.index_dir / "CURRENT").exists():
            return Freshness(True, True, "it was built by an older version")
        return Freshness(exists=False, stale=True, reason="there is no index yet")
    db = _connect(catalog)
    try:
        meta = _read_meta(db)
        old = _file_rows(db)
    finally:
        db.close()
    if Path(meta.get("articles_dir", "")) != settings.articles_dir.resolve():
        return Freshness(True, True, f"it was built from {meta.get('articles_dir')}")
    files = _scan_files(settings.articles_dir, old)
    if {k: v[3] for k, v in files.items()} != {k: v[2] for k, v in old.items()}:
        return Freshness(True, True, "the articles changed")
    return Freshness(True, False)


def _article_hash(article: Article) -> str:
    return hashlib.sha256(
        json.dumps([article.title, article.text, article.url, article.published_at, article.source]).encode()
    ).hexdigest()


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Pending:
    """A new or changed article on its way into a segment."""

    fid: str
    article: Article
    digest: str
    spans: list[tuple[int, int]]
    chunks: list[tuple[int, int, int, int]]


def _prepare(fid: str, article: Article, settings: Settings) -> _Pending:
    article_chunks = chunk_article(article, settings.chunk_max_chars, settings.chunk_overlap)
    spans = sorted({span for chunk in article_chunks for span in chunk.sentences})
    position = {span: i for i, span in enumerate(spans)}
    chunks = [(c.start, c.end, position[c.sentences[0]], position[c.sentences[-1]]) for c in article_chunks]
    return _Pending(fid, article, _article_hash(article), spans, chunks)


def _chunk_terms(article: Article, chunks: list[tuple[int, int, int, int]]) -> list[list[str]]:
    return [terms(f"{article.title}\n{article.text[s:e]}" if s == 0 else article.text[s:e]) for s, e, _, _ in chunks]


def _embed_resumably(index_dir: Path, pending: list[_Pending], embedder: Embedder, model: str,
                     progress: Progress | None) -> tuple[list[np.ndarray], int]:
    """Vectors for each pending article, embedded in batches saved to .scratch/ so a killed build resumes."""
    scratch = index_dir / ".scratch"
    scratch.mkdir(exist_ok=True)
    total = sum(len(p.spans) for p in pending)
    batches: list[list[int]] = [[]]
    size = 0
    for i, item in enumerate(pending):
        if size and size + len(item.spans) > SCRATCH_SENTENCES:
            batches.append([])
            size = 0
        batches[-1].append(i)
        size += len(item.spans)
    out: list[np.ndarray] = [np.zeros(0)] * len(pending)
    done = resumed = 0
    if progress:
        progress(0, total)
    for batch in batches:
        if not batch:
            continue
        key = hashlib.sha256("\n".join([model, *(pending[i].digest for i in batch)]).encode()).hexdigest()[:32]
        path = scratch / f"{key}.npy"
        texts = [pending[i].article.text[s:e] for i in batch for s, e in pending[i].spans]
        vectors = None
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                vectors = np.load(path, mmap_mode="r")
            if vectors is not None and vectors.shape[0] != len(texts):
                vectors = None
            if vectors is not None:
                resumed += len(texts)
        if vectors is None:
            base = done

            def step(n: int, base: int = base) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total)

            vectors = embedder.encode_documents(texts, progress=step)
            done = base
            tmp = scratch / f"{key}.tmp.npy"
            np.save(tmp, vectors)
            os.replace(tmp, path)
            # hold the batch as a file-backed map, so a large build does not keep every vector in RAM
            vectors = np.load(path, mmap_mode="r")
        cursor = 0
        for i in batch:
            n = len(pending[i].spans)
            out[i] = vectors[cursor : cursor + n]
            cursor += n
        done += len(texts)
        if progress:
            progress(done, total)
    return out, resumed


def _next_segment_name(index_dir: Path) -> str:
    numbers = [int(p.name[4:]) for p in index_dir.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _remove_unlisted(index_dir: Path, live: set[str]) -> None:
    """Segments a merge replaced, a killed build left behind, or an older layout used."""
    for path in index_dir.glob("gen-*"):
        if path.name not in live:
            shutil.rmtree(path, ignore_errors=True)
    for name in ("CURRENT", "CURRENT.tmp", CATALOG + ".new"):
        with contextlib.suppress(FileNotFoundError):
            (index_dir / name).unlink()


def build_index(
    settings: Settings,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
    exact_max: int = EXACT_MAX_SENTENCES,
) -> BuildReport:
    """Build or update the index for `settings.articles_dir`, embedding only new or changed articles.

    `exact_max`: segments with more sentence vectors than this get an approximate (IVF) FAISS index.
    """
    started = time.perf_counter()
    index_dir = settings.index_dir
    with _build_lock(index_dir):
        db: sqlite3.Connection | None = None
        if not rebuild and (index_dir / CATALOG).exists():
            with contextlib.suppress(RagError):
                db = _connect(index_dir / CATALOG)
            if db is not None and not _usable(db, settings):
                db.close()
                db = None  # another model or format, or a damaged segment: build everything anew
        try:
            return _build(settings, db, embedder, progress, exact_max, started)
        finally:
            if db is not None:
                db.close()


def _usable(db: sqlite3.Connection, settings: Settings) -> bool:
    try:
        check_compatible(_read_meta(db), settings)
        for segment in _open_segments(settings.index_dir, db).values():
            segment.close()
    except RagError:
        return False
    return True


def _build(settings: Settings, db: sqlite3.Connection | None, embedder: Embedder | None, progress: Progress | None,
           exact_max: int, started: float) -> BuildReport:
    index_dir = settings.index_dir
    old_files = _file_rows(db) if db else {}
    files = _scan_files(settings.articles_dir, old_files)
    touched = [fid for fid, v in files.items() if old_files.get(fid, (None, None, None))[2] != v[3]]
    gone = sorted(set(old_files) - set(files))
    restat = [fid for fid, v in files.items() if fid in old_files and old_files[fid][:2] != v[1:3] and fid not in touched]

    old_articles: dict[str, tuple[str, str, int, str, int, int]] = {}  # id -> file, segment, row, hash, chunks, sentences
    if db:
        wanted = set(touched) | set(gone)
        for fid in wanted:
            for row in db.execute("SELECT id, file, segment, row, hash, chunks, sentences FROM articles WHERE file = ?", (fid,)):
                old_articles[row[0]] = row[1:]
    pending: list[_Pending] = []
    skipped_by_file: dict[str, list[Skipped]] = {}
    added, changed = [], []
    seen: set[str] = set()
    for fid in touched:
        got, bad = load_file(files[fid][0], fid)
        skipped_by_file[fid] = bad
        for article in got:
            seen.add(article.id)
            digest = _article_hash(article)
            old = old_articles.get(article.id)
            if old and old[3] == digest:
                continue
            pending.append(_prepare(fid, article, settings))
            (changed if old else added).append(article.id)
    removed = sorted(a for a in old_articles if a not in seen)
    dead = [(old_articles[a][1], old_articles[a][2], old_articles[a][4], old_articles[a][5]) for a in (*changed, *removed)]

    if db and not pending and not removed and not gone and not touched and not restat:
        counts = _read_meta(db).get("counts", {})
        return BuildReport(str(index_dir), counts.get("articles", 0), counts.get("chunks", 0), counts.get("sentences", 0),
                           0, counts.get("sentences", 0), (), (), (), _all_skipped(db), time.perf_counter() - started,
                           unchanged=True)

    embedder = embedder or Embedder(settings.embed_model, settings.embed_batch_size)
    vectors, resumed = _embed_resumably(index_dir, pending, embedder, settings.embed_model, progress)
    embedded_now = sum(len(p.spans) for p in pending)
    dim = int(vectors[0].shape[1]) if pending else int(_read_meta(db)["dimension"]) if db else embedder.dimension

    merge: list[str] = []
    if db:
        merge = _merge_plan(db, dead, embedded_now)
    stats: SegmentStats | None = None
    placed: list[tuple[str, str, int, str, int, int]] = []
    if db is None or pending or merge:
        stats, placed = _write_segment(index_dir, db, pending, vectors, merge, dead, dim, exact_max)

    meta = {
        **_settings_signature(settings),
        "dimension": dim,
        "normalized": True,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "articles_dir": str(settings.articles_dir.resolve()),
    }
    file_rows = [(fid, files[fid][1], files[fid][2], files[fid][3],
                  json.dumps([[s.path, s.reason] for s in skipped_by_file.get(fid, [])]) or None)
                 for fid in touched]
    if db is None and stats is not None:  # a full build always writes a segment
        live = _commit_full(index_dir, meta, stats, placed, file_rows)
    elif db is not None:
        live = _commit_delta(db, meta, stats, placed, merge, dead, removed, gone, file_rows,
                             [(files[f][1], files[f][2], f) for f in restat])
    _remove_unlisted(index_dir, live)
    shutil.rmtree(index_dir / ".scratch", ignore_errors=True)
    check = _connect(index_dir / CATALOG)
    try:
        counts, skipped = _read_meta(check)["counts"], _all_skipped(check)
    finally:
        check.close()
    return BuildReport(
        str(index_dir), counts["articles"], counts["chunks"], counts["sentences"], embedded_now - resumed,
        counts["sentences"] - embedded_now, tuple(added), tuple(changed), tuple(removed), skipped,
        time.perf_counter() - started, resumed=resumed, merged=tuple(merge),
    )


def _write_segment(index_dir: Path, db: sqlite3.Connection | None, pending: list[_Pending], vectors: list[np.ndarray],
                   merge: list[str], dead: list[tuple[str, int, int, int]], dim: int, exact_max: int,
                   ) -> tuple[SegmentStats, list[tuple[str, str, int, str, int, int]]]:
    """A new segment holding the live articles of the `merge` segments (stored vectors) and the pending ones."""
    name = _next_segment_name(index_dir)
    old_segments = _open_segments(index_dir, db, only=merge) if merge and db else {}
    dead_rows = {(s, r) for s, r, _, _ in dead}
    carried: list[tuple[str, _Pending, np.ndarray]] = []  # file, parts, vectors
    try:
        for seg_name in merge:
            segment = old_segments[seg_name]
            files = {row: (aid, fid) for aid, fid, row in db.execute(
                "SELECT id, file, row FROM articles WHERE segment = ?", (seg_name,))}
            for row in segment.live_rows():
                if (seg_name, row) in dead_rows or row not in files:
                    continue
                article, digest, spans, chunks = segment.article_parts(row)
                carried.append((files[row][1], _Pending("", article, digest, spans, chunks), segment.article_vectors(row)))
        total = sum(len(c[1].spans) for c in carried) + sum(len(p.spans) for p in pending)
        writer = SegmentWriter(index_dir / name, dim, total, exact_max)
        placed: list[tuple[str, str, int, str, int, int]] = []  # id, file, row, hash, chunks, sentences
        for fid, item, vecs in [*carried, *((p.fid, p, v) for p, v in zip(pending, vectors, strict=True))]:
            writer.add(item.article, item.digest, item.spans, item.chunks, _chunk_terms(item.article, item.chunks), vecs)
            placed.append((item.article.id, fid, len(placed), item.digest, len(item.chunks), len(item.spans)))
    finally:
        for segment in old_segments.values():
            segment.close()
    return writer.finish(), placed


def _merge_plan(db: sqlite3.Connection, dead: list[tuple[str, int, int, int]], new_sentences: int) -> list[str]:
    """Trailing segments to fold into the new one: those no more than MERGE_RATIO times what follows them,
    and any that would be more than DEAD_LIMIT tombstoned."""
    dead_now = dict(db.execute("SELECT segment, sum(sentences) FROM tombstones GROUP BY segment").fetchall())
    for seg, _, _, n in dead:
        dead_now[seg] = dead_now.get(seg, 0) + n
    segments = db.execute("SELECT name, sentences FROM segments ORDER BY seq").fetchall()
    merge: list[str] = []
    carried = new_sentences
    for name, sentences in reversed(segments):
        live = sentences - dead_now.get(name, 0)
        if live <= MERGE_RATIO * carried or (sentences and dead_now.get(name, 0) > DEAD_LIMIT * sentences):
            merge.append(name)
            carried += live
        else:
            break
    merge += [n for n, s in segments if n not in merge and s and dead_now.get(n, 0) > DEAD_LIMIT * s]
    return merge


def _all_skipped(db: sqlite3.Connection) -> tuple[Skipped, ...]:
    out = []
    for (raw,) in db.execute("SELECT skipped FROM files WHERE skipped IS NOT NULL AND skipped != '[]' ORDER BY fid"):
        out.extend(Skipped(p, r) for p, r in json.loads(raw))
    return tuple(out)


def _set_counts(db: sqlite3.Connection, meta: dict[str, Any]) -> None:
    a, c, s = db.execute("SELECT coalesce(sum(articles),0), coalesce(sum(chunks),0), coalesce(sum(sentences),0) FROM segments").fetchone()
    ta, tc, ts = db.execute("SELECT count(*), coalesce(sum(chunks),0), coalesce(sum(sentences),0) FROM tombstones").fetchone()
    meta = {**meta, "counts": {"articles": a - ta, "chunks": c - tc, "sentences": s - ts}}
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])


def _commit_full(index_dir: Path, meta: dict[str, Any], stats: SegmentStats, placed: list, file_rows: list) -> set[str]:
    """A whole new catalog, written beside the live one and swapped in atomically."""
    path = index_dir / (CATALOG + ".new")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(_CATALOG_SCHEMA)
        db.execute("BEGIN")
        db.execute("INSERT INTO segments VALUES (?, 1, ?, ?, ?, ?)", (stats.name, stats.articles, stats.chunks, stats.sentences, stats.kind))
        db.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(aid, fid, stats.name, row, h, c, s) for aid, fid, row, h, c, s in placed])
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)", file_rows)
        _set_counts(db, meta)
        db.execute("COMMIT")
    finally:
        db.close()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    for leftover in ("-journal", "-wal", "-shm"):  # never let an old journal meet the new file
        with contextlib.suppress(FileNotFoundError):
            (index_dir / (CATALOG + leftover)).unlink()
    os.replace(path, index_dir / CATALOG)
    _fsync_dir(index_dir)
    return {stats.name}


def _commit_delta(db: sqlite3.Connection, meta: dict[str, Any], stats: SegmentStats | None, placed: list, merge: list[str],
                  dead: list[tuple[str, int, int, int]], removed: list[str], gone: list[str], file_rows: list,
                  restat: list[tuple[int, int, str]]) -> set[str]:
    """One transaction: the new segment in, merged segments out, tombstones, articles and files updated."""
    db.execute("BEGIN IMMEDIATE")
    try:
        seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM segments").fetchone()[0]
        for name in merge:
            db.execute("DELETE FROM segments WHERE name = ?", (name,))
            db.execute("DELETE FROM tombstones WHERE segment = ?", (name,))
        if stats is not None:
            db.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?)",
                       (stats.name, seq, stats.articles, stats.chunks, stats.sentences, stats.kind))
        db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", [d for d in dead if d[0] not in merge])
        db.executemany("DELETE FROM articles WHERE id = ?", [(a,) for a in removed])
        db.executemany("INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(aid, fid, stats.name, row, h, c, s) for aid, fid, row, h, c, s in placed] if stats else [])
        db.executemany("DELETE FROM files WHERE fid = ?", [(f,) for f in gone])
        db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", file_rows)
        db.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE fid = ?", restat)
        _set_counts(db, meta)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return {name for (name,) in db.execute("SELECT name FROM segments")}


def _open_segments(index_dir: Path, db: sqlite3.Connection, only: list[str] | None = None) -> dict[str, Segment]:
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


class Index:
    """The loaded live segments, seen as one index with global row numbers. Read-only."""

    def __init__(self, path: Path, manifest: dict[str, Any], segments: list[Segment]) -> None:
        self.path = path
        self.manifest = manifest
        self._segments = segments
        self._s_off = np.cumsum([0] + [s.info["sentences"] for s in segments])
        self._c_off = np.cumsum([0] + [s.info["chunks"] for s in segments])
        self._a_off = np.cumsum([0] + [s.info["articles"] for s in segments])
        self._dim = int(manifest.get("dimension") or (segments[0].info["dimension"] if segments else 0))
        self._cache: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        n_docs = sum(s.num_docs for s in segments)
        self._idf_cache: dict[str, float] = {}
        self._total_docs = n_docs

    @classmethod
    def load(cls, index_dir: Path, settings: Settings) -> Index:
        """Open the live segments; refuse an index built by another model, chunking or format."""
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexMissingError(f"there is no index in {index_dir}; build it with: rag index build")
        check_compatible(manifest, settings)
        db = _connect(index_dir / CATALOG)
        try:
            segments = _open_segments(index_dir, db)
        finally:
            db.close()
        return cls(index_dir, manifest, list(segments.values()))

    def close(self) -> None:
        for segment in self._segments:
            segment.close()

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def num_chunks(self) -> int:
        return int(self.manifest.get("counts", {}).get("chunks", self._c_off[-1]))

    @property
    def num_articles(self) -> int:
        return int(self.manifest.get("counts", {}).get("articles", 0))

    def _at(self, offsets: np.ndarray, row: int) -> tuple[int, int]:
        i = int(np.searchsorted(offsets, row, side="right")) - 1
        return i, row - int(offsets[i])

    def article_ids(self) -> list[str]:
        return [aid for segment in self._segments for aid in segment.live_ids()]

    def _field(self, article_row: int, name: str) -> str:
        key = (article_row, name)
        value = self._cache.get(key)
        if value is None:
            i, local = self._at(self._a_off, article_row)
            value = self._segments[i].field(local, name)
            with self._lock:
                if len(self._cache) > 1024:
                    self._cache.clear()
                self._cache[key] = value
        return value

    def title(self, article_row: int) -> str:
        return self._field(article_row, "title")

    def article(self, article_id: str) -> Article | None:
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article(row)
        return None

    def article_vectors(self, article_id: str) -> np.ndarray | None:
        for segment in reversed(self._segments):
            row = segment.find(article_id)
            if row is not None:
                return segment.article_vectors(row)
        return None

    def chunk(self, row: int) -> Chunk:
        i, local = self._at(self._c_off, row)
        segment = self._segments[i]
        article_row, start, end, first, last = (int(x) for x in segment.chunks[local])
        spans = tuple((int(s), int(e)) for _, s, e in segment.sentences[first : last + 1])
        global_article = int(self._a_off[i]) + article_row
        article_id = self._field(global_article, "id")
        text = self._field(global_article, "text")
        return Chunk(f"{article_id}:{start}-{end}", article_id, text[start:end], start, end, spans)

    def chunk_article_row(self, row: int) -> int:
        i, local = self._at(self._c_off, row)
        return int(self._a_off[i]) + int(self._segments[i].chunks[local, 0])

    def chunks_of_sentence(self, sentence_row: int) -> list[int]:
        i, local = self._at(self._s_off, sentence_row)
        chunks = self._segments[i].chunks
        first = int(np.searchsorted(chunks[:, 4], local, side="left"))
        out = []
        for row in range(first, len(chunks)):
            if chunks[row, 3] > local:
                break
            out.append(int(self._c_off[i]) + row)
        return out

    def chunk_sentence_rows(self, row: int) -> range:
        i, local = self._at(self._c_off, row)
        chunk = self._segments[i].chunks[local]
        base = int(self._s_off[i])
        return range(base + int(chunk[3]), base + int(chunk[4]) + 1)

    def dense_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sentence rows, cosine scores), best first, over every live sentence."""
        rows, scores = [], []
        for i, segment in enumerate(self._segments):
            r, s = segment.search(query, k)
            rows.append(r + int(self._s_off[i]))
            scores.append(s)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:k]
        return all_rows[best].astype(np.int64), all_scores[best].astype(np.float32)

    def sentence_scores(self, query: np.ndarray, rows: range) -> np.ndarray:
        i, local = self._at(self._s_off, rows.start)
        return np.asarray(self._segments[i].vectors[local : local + len(rows)]) @ query

    def _idf(self, term: str) -> float:
        # the Lucene IDF bm25s uses, over every segment's chunks
        df = self.doc_freq(term)
        return float(np.log(1 + (self._total_docs - df + 0.5) / (df + 0.5)))

    def lexical_search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rows, BM25 scores), best first; only chunks that share a term with the query.

        The largest segment scores with its own statistics (it holds most of the corpus); smaller ones are
        re-weighted to the whole index's IDF so a fresh delta is not ranked by its own tiny vocabulary.
        """
        if k <= 0 or not any(self.doc_freq(t) for t in query_terms):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        largest = max(range(len(self._segments)), key=lambda i: self._segments[i].num_docs)
        rows, scores = [], []
        for i, segment in enumerate(self._segments):
            weights = None
            if i != largest:
                weights = {}
                for t in set(query_terms):
                    df = segment.df(t)
                    if df:
                        local = np.log(1 + (segment.num_docs - df + 0.5) / (df + 0.5))
                        weights[t] = self._idf(t) / local if local > 0 else 1.0
            r, s = segment.lexical(query_terms, k, weights)
            rows.append(r + int(self._c_off[i]))
            scores.append(s)
        all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:k]
        return all_rows[best], all_scores[best]

    def doc_freq(self, term: str) -> int:
        return sum(segment.df(term) for segment in self._segments)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and ".scratch" not in p.parts)


def open_index(settings: Settings, embedder: Embedder | None = None, progress: Progress | None = None) -> Index:
    """The index for `settings`, built first when missing or stale and `settings.auto_build` is on."""
    state = freshness(settings)
    if state.stale:
        if not settings.auto_build:
            if not state.exists:
                raise IndexMissingError(f"there is no index in {settings.index_dir}; build it with: rag index build")
        else:
            manifest = read_manifest(settings.index_dir)
            if manifest is not None:
                check_compatible(manifest, settings)
            build_index(settings, embedder, progress)
    return Index.load(settings.index_dir, settings)
