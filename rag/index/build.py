"""Building the index: scan the articles folder, embed only new or changed articles (resumably), write a
segment, commit the catalog. The layout it writes and the crash-safety argument are in rag.index.
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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.chunk import chunk_article
from rag.config import Settings
from rag.embed import Embedder
from rag.errors import RagError
from rag.index.catalog import (
    CATALOG,
    Delta,
    FileRow,
    StoredArticle,
    Tombstone,
    all_skipped,
    check_compatible,
    commit_delta,
    commit_full,
    connect,
    file_changes,
    file_rows,
    open_segments,
    read_meta,
    remove_unlisted,
    scan_files,
    settings_signature,
    stored_articles,
)
from rag.index.dense import EXACT_MAX_SENTENCES
from rag.index.segment import SegmentStats, SegmentWriter
from rag.ingest.files import load_file
from rag.text import terms
from rag.types import Article, Skipped

SCRATCH_SENTENCES = 1024  # sentences per resumable embedding batch
MERGE_RATIO = 4  # merge a segment into the next when it is no more than this many times its size
DEAD_LIMIT = 0.25  # rewrite a segment once this share of its sentences is tombstoned

Progress = Callable[[int, int], None]  # (sentences embedded so far, sentences to embed)


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


def article_hash(article: Article) -> str:
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


@dataclass(slots=True)
class PendingArticle:
    """A new or changed article on its way into a segment."""

    fid: str
    article: Article
    digest: str
    spans: list[tuple[int, int]]
    chunks: list[tuple[int, int, int, int]]


def prepare_article(fid: str, article: Article, settings: Settings) -> PendingArticle:
    article_chunks = chunk_article(article, settings.chunk_max_chars, settings.chunk_overlap)
    spans = sorted({span for chunk in article_chunks for span in chunk.sentences})
    position = {span: i for i, span in enumerate(spans)}
    chunks = [(c.start, c.end, position[c.sentences[0]], position[c.sentences[-1]]) for c in article_chunks]
    return PendingArticle(fid, article, article_hash(article), spans, chunks)


def chunk_terms(article: Article, chunks: list[tuple[int, int, int, int]]) -> list[list[str]]:
    """BM25 terms of each chunk; the first chunk also carries the title. Every backend uses this one rule."""
    return [terms(f"{article.title}\n{article.text[s:e]}" if s == 0 else article.text[s:e]) for s, e, _, _ in chunks]


def _embed_resumably(index_dir: Path, pending: list[PendingArticle], embedder: Embedder, model: str,
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
                db = connect(index_dir / CATALOG)
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
        check_compatible(read_meta(db), settings)
        for segment in open_segments(settings.index_dir, db).values():
            segment.close()
    except RagError:
        return False
    return True


def _build(settings: Settings, db: sqlite3.Connection | None, embedder: Embedder | None, progress: Progress | None,
           exact_max: int, started: float) -> BuildReport:
    index_dir = settings.index_dir
    old_files = file_rows(db) if db else {}
    files = scan_files(settings.articles_dir, old_files)
    touched, restat, gone = file_changes(files, old_files)

    old_articles = stored_articles(db, set(touched) | set(gone)) if db else {}
    pending: list[PendingArticle] = []
    skipped_by_file: dict[str, list[Skipped]] = {}
    added, changed = [], []
    seen: set[str] = set()
    for fid in touched:
        got, bad = load_file(Path(files[fid][0]), fid)
        skipped_by_file[fid] = bad
        for article in got:
            seen.add(article.id)
            digest = article_hash(article)
            old = old_articles.get(article.id)
            if old and old.hash == digest:
                continue
            pending.append(prepare_article(fid, article, settings))
            (changed if old else added).append(article.id)
    removed = sorted(a for a in old_articles if a not in seen)
    dead = [Tombstone(old.segment, old.row, old.chunks, old.sentences)
            for old in (old_articles[a] for a in (*changed, *removed))]

    if db and not pending and not removed and not gone and not touched and not restat:
        counts = read_meta(db).get("counts", {})
        return BuildReport(str(index_dir), counts.get("articles", 0), counts.get("chunks", 0), counts.get("sentences", 0),
                           0, counts.get("sentences", 0), (), (), (), all_skipped(db), time.perf_counter() - started,
                           unchanged=True)

    embedder = embedder or Embedder(settings.embed_model, settings.embed_batch_size)
    vectors, resumed = _embed_resumably(index_dir, pending, embedder, settings.embed_model, progress)
    embedded_now = sum(len(p.spans) for p in pending)
    dim = int(vectors[0].shape[1]) if pending else int(read_meta(db)["dimension"]) if db else embedder.dimension

    merge: list[str] = []
    if db:
        merge = _merge_plan(db, dead, embedded_now)
    stats: SegmentStats | None = None
    placed: list[StoredArticle] = []
    if db is None or pending or merge:
        stats, placed = _write_segment(index_dir, db, pending, vectors, merge, dead, dim, exact_max)

    meta = {
        **settings_signature(settings),
        "dimension": dim,
        "normalized": True,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "articles_dir": str(settings.articles_dir.resolve()),
    }
    changed_files = [FileRow(fid, files[fid][1], files[fid][2], files[fid][3],
                             json.dumps([[s.path, s.reason] for s in skipped_by_file.get(fid, [])]) or None)
                     for fid in touched]
    if db is None and stats is not None:  # a full build always writes a segment
        live = commit_full(index_dir, meta, stats, placed, changed_files)
    elif db is not None:
        live = commit_delta(db, meta, Delta(stats, tuple(placed), tuple(merge), tuple(dead), tuple(removed), tuple(gone),
                                            tuple(changed_files), tuple((files[f][1], files[f][2], f) for f in restat)))
    remove_unlisted(index_dir, live)
    shutil.rmtree(index_dir / ".scratch", ignore_errors=True)
    check = connect(index_dir / CATALOG)
    try:
        counts, skipped = read_meta(check)["counts"], all_skipped(check)
    finally:
        check.close()
    return BuildReport(
        str(index_dir), counts["articles"], counts["chunks"], counts["sentences"], embedded_now - resumed,
        counts["sentences"] - embedded_now, tuple(added), tuple(changed), tuple(removed), skipped,
        time.perf_counter() - started, resumed=resumed, merged=tuple(merge),
    )


def _write_segment(index_dir: Path, db: sqlite3.Connection | None, pending: list[PendingArticle], vectors: list[np.ndarray],
                   merge: list[str], dead: list[Tombstone], dim: int, exact_max: int,
                   ) -> tuple[SegmentStats, list[StoredArticle]]:
    """A new segment holding the live articles of the `merge` segments (stored vectors) and the pending ones."""
    name = _next_segment_name(index_dir)
    old_segments = open_segments(index_dir, db, only=merge) if merge and db else {}
    dead_rows = {(d.segment, d.row) for d in dead}
    carried: list[tuple[str, PendingArticle, np.ndarray]] = []  # file, parts, vectors
    try:
        for seg_name in merge:
            segment = old_segments[seg_name]
            files = {row: (aid, fid) for aid, fid, row in db.execute(
                "SELECT id, file, row FROM articles WHERE segment = ?", (seg_name,))}
            for row in segment.live_rows():
                if (seg_name, row) in dead_rows or row not in files:
                    continue
                parts = segment.article_parts(row)
                carried.append((files[row][1], PendingArticle("", parts.article, parts.digest, list(parts.spans), list(parts.chunks)),
                                segment.article_vectors(row)))
        total = sum(len(c[1].spans) for c in carried) + sum(len(p.spans) for p in pending)
        writer = SegmentWriter(index_dir / name, dim, total, exact_max)
        placed: list[StoredArticle] = []
        for fid, item, vecs in [*carried, *((p.fid, p, v) for p, v in zip(pending, vectors, strict=True))]:
            writer.add(item.article, item.digest, item.spans, item.chunks, chunk_terms(item.article, item.chunks), vecs)
            placed.append(StoredArticle(item.article.id, fid, name, len(placed), item.digest, len(item.chunks), len(item.spans)))
    finally:
        for segment in old_segments.values():
            segment.close()
    return writer.finish(), placed


def _merge_plan(db: sqlite3.Connection, dead: list[Tombstone], new_sentences: int) -> list[str]:
    """Trailing segments to fold into the new one: those no more than MERGE_RATIO times what follows them,
    and any that would be more than DEAD_LIMIT tombstoned."""
    dead_now = dict(db.execute("SELECT segment, sum(sentences) FROM tombstones GROUP BY segment").fetchall())
    for d in dead:
        dead_now[d.segment] = dead_now.get(d.segment, 0) + d.sentences
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
