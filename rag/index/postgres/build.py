"""Building the PostgreSQL index: scan the articles folder, embed only new or changed articles, and write them
in batches, one transaction per batch, so the database itself is the crash-safety argument.

A batch of articles (about BATCH_SENTENCES sentences) is embedded first, outside any transaction; then one
transaction deletes the articles' old versions (and their term counts), inserts the new rows (articles,
chunks with their terms, sentences with their vectors), updates the term frequencies and counts and, for a
file whose last article is in the batch, the file's row. Readers (READ COMMITTED) see a batch all at once
or not at all, so never a half-written article. A build killed at any moment (kill -9) leaves the batches
committed so far; the next build re-scans, finds those articles' hashes already stored and embeds only the
rest: nothing is lost and little is redone. Only one build runs at a time (a session advisory lock).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.errors import IndexMismatchError
from rag.index.build import BuildReport, PendingArticle, article_hash, chunk_terms, prepare_article
from rag.index.catalog import file_changes, scan_files
from rag.index.postgres.schema import (
    LOCK_KEY,
    SCHEMA_VERSION,
    check_compatible,
    connect,
    drop,
    migrate,
    read_meta,
    safe_url,
)
from rag.ingest.files import load_file
from rag.protocols import Encoder
from rag.types import Skipped

BATCH_SENTENCES = 2048  # sentences per transaction (and per embedding call)
MAX_POSITION = 16383  # tsvector's largest position

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _Work:
    """What the scan found: files to update, articles to write and to remove."""

    files: dict[str, tuple[str, int, int, str]]
    touched: list[str]
    restat: list[str]
    gone: list[str]
    pending: list[PendingArticle]
    removed_by_file: dict[str, list[str]]  # file -> article ids no longer in it (or the file is gone)
    skipped: dict[str, list[Skipped]]
    added: list[str]
    changed: list[str]


def tsvector_literal(words: Sequence[str]) -> str:
    """Our stemmed terms as a tsvector with positions (tf = number of positions), so no text search
    configuration of PostgreSQL re-stems or drops them."""
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(words, start=1):
        positions.setdefault(word, []).append(min(i, MAX_POSITION))
    parts = []
    for word, where in positions.items():
        quoted = word.replace("\\", "\\\\").replace("'", "''")
        parts.append(f"'{quoted}':" + ",".join(str(p) for p in where[:256]))
    return " ".join(parts)


def _scan(conn, settings: Settings) -> _Work:
    old_files = {fid: (size, mtime, sha) for fid, size, mtime, sha in
                 conn.execute("SELECT fid, size, mtime_ns, sha256 FROM rag_files")}
    files = scan_files(settings.articles_dir, old_files)
    touched, restat, gone = file_changes(files, old_files)
    wanted = list(set(touched) | set(gone))
    old_articles: dict[str, tuple[str, str]] = {}  # id -> file, hash
    for aid, fid, digest in conn.execute("SELECT id, file, hash FROM rag_articles WHERE file = ANY(%s)", (wanted,)):
        old_articles[aid] = (fid, digest)
    conn.commit()
    pending: list[PendingArticle] = []
    skipped: dict[str, list[Skipped]] = {}
    added, changed = [], []
    seen: set[str] = set()
    for fid in touched:
        got, bad = load_file(Path(files[fid][0]), fid)
        skipped[fid] = bad
        for article in got:
            seen.add(article.id)
            old = old_articles.get(article.id)
            if old and old[1] == article_hash(article):
                continue
            pending.append(prepare_article(fid, article, settings))
            (changed if old else added).append(article.id)
    removed_by_file: dict[str, list[str]] = {}
    for aid, (fid, _) in old_articles.items():
        if aid not in seen:
            removed_by_file.setdefault(fid, []).append(aid)
    return _Work(files, touched, restat, gone, pending, removed_by_file, skipped, added, changed)


def _batches(pending: list[PendingArticle]) -> list[list[int]]:
    out: list[list[int]] = [[]]
    size = 0
    for i, item in enumerate(pending):
        if size and size + len(item.spans) > BATCH_SENTENCES:
            out.append([])
            size = 0
        out[-1].append(i)
        size += len(item.spans)
    return [b for b in out if b]


def _remove(conn, article_ids: list[str]) -> dict[str, int]:
    """Delete articles with their chunks and sentences; returns the count deltas (negative)."""
    if not article_ids:
        return {"articles": 0, "chunks": 0, "sentences": 0, "length": 0}
    rows = conn.execute("SELECT tsvector_to_array(terms), length FROM rag_chunks WHERE article_id = ANY(%s)",
                        (article_ids,)).fetchall()
    df: dict[str, int] = {}
    for words, _ in rows:
        for word in words:
            df[word] = df.get(word, 0) - 1
    _apply_df(conn, df)
    conn.execute("DELETE FROM rag_postings WHERE article_id = ANY(%s)", (article_ids,))
    sentences = conn.execute("DELETE FROM rag_sentences WHERE article_id = ANY(%s)", (article_ids,)).rowcount
    conn.execute("DELETE FROM rag_chunks WHERE article_id = ANY(%s)", (article_ids,))
    articles = conn.execute("DELETE FROM rag_articles WHERE id = ANY(%s)", (article_ids,)).rowcount
    return {"articles": -articles, "chunks": -len(rows), "sentences": -sentences, "length": -sum(n for _, n in rows)}


def _apply_df(conn, df: dict[str, int]) -> None:
    changes = [(t, d) for t, d in sorted(df.items()) if d]
    if not changes:
        return
    conn.execute(
        "INSERT INTO rag_terms AS t (term, df) SELECT * FROM unnest(%s::text[], %s::int[]) "
        "ON CONFLICT (term) DO UPDATE SET df = t.df + excluded.df",
        ([t for t, _ in changes], [d for _, d in changes]))
    conn.execute("DELETE FROM rag_terms WHERE term = ANY(%s) AND df <= 0", ([t for t, d in changes if d < 0],))


def _insert(conn, items: list[PendingArticle], vectors: list[np.ndarray]) -> dict[str, int]:
    """Insert new article versions with COPY; returns the count deltas."""
    delta = {"articles": len(items), "chunks": 0, "sentences": 0, "length": 0}
    df: dict[str, int] = {}
    seqs = [r[0] for r in conn.execute("SELECT nextval('rag_article_seq') FROM generate_series(1, %s)", (len(items),))]
    with conn.cursor() as cur:
        with cur.copy("COPY rag_articles (id, file, seq, title, path, url, published_at, source, text, hash, chunks, "
                      "sentences) FROM STDIN") as copy:
            for item, seq in zip(items, seqs, strict=True):
                a = item.article
                copy.write_row((a.id, item.fid, seq, a.title, a.path, a.url, a.published_at, a.source, a.text,
                                item.digest, len(item.chunks), len(item.spans)))
        postings = []
        with cur.copy("COPY rag_chunks (article_id, ord, id, seq, start, stop, first_sentence, last_sentence, length, "
                      "terms) FROM STDIN") as copy:
            for item, seq in zip(items, seqs, strict=True):
                a = item.article
                for ord_, ((start, end, first, last), words) in enumerate(
                        zip(item.chunks, chunk_terms(a, item.chunks), strict=True)):
                    chunk_id = f"{a.id}:{start}-{end}"
                    copy.write_row((a.id, ord_, chunk_id, seq, start, end, first, last, len(words),
                                    tsvector_literal(words)))
                    tf: dict[str, int] = {}
                    for word in words:
                        tf[word] = tf.get(word, 0) + 1
                    for word, count in tf.items():
                        df[word] = df.get(word, 0) + 1
                        postings.append((a.id, ord_, word, count, len(words), chunk_id, seq))
                    delta["chunks"] += 1
                    delta["length"] += len(words)
        with cur.copy("COPY rag_postings (article_id, ord, term, tf, length, chunk_id, seq) FROM STDIN") as copy:
            for row in postings:
                copy.write_row(row)
        with cur.copy("COPY rag_sentences (article_id, ord, seq, start, stop, embedding) FROM STDIN") as copy:
            for item, seq, vecs in zip(items, seqs, vectors, strict=True):
                for ord_, ((start, end), vec) in enumerate(zip(item.spans, vecs, strict=True)):
                    copy.write_row((item.article.id, ord_, seq, start, end, _vector_text(vec)))
                delta["sentences"] += len(item.spans)
    _apply_df(conn, df)
    return delta


def _vector_text(vec: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vec, dtype=np.float32)) + "]"


def _add_counts(conn, *deltas: dict[str, int]) -> None:
    counts = conn.execute("SELECT value FROM rag_meta WHERE key = 'counts' FOR UPDATE").fetchone()[0]
    for delta in deltas:
        for key, value in delta.items():
            counts[key] = counts.get(key, 0) + value
    conn.execute("UPDATE rag_meta SET value = %s WHERE key = 'counts'", (json.dumps(counts),))


def _file_rows(conn, work: _Work, fids: list[str]) -> None:
    for fid in fids:
        _, size, mtime, digest = work.files[fid]
        skipped = json.dumps([[s.path, s.reason] for s in work.skipped.get(fid, [])])
        conn.execute("INSERT INTO rag_files VALUES (%s, %s, %s, %s, %s) ON CONFLICT (fid) DO UPDATE SET "
                     "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
                     "skipped = excluded.skipped", (fid, size, mtime, digest, skipped))


def build_postgres(settings: Settings, encoder: Encoder | None = None, progress: Progress | None = None,
                   rebuild: bool = False) -> BuildReport:
    """Build or update the index at `settings.database_url` from `settings.articles_dir`."""
    started = time.perf_counter()
    conn = connect(settings.database_url, autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        conn.autocommit = False
        meta = read_meta(conn)
        conn.commit()
        if meta is not None and (rebuild or _incompatible(meta, settings)):
            drop(conn)
            meta = None
        if encoder is None:
            from rag.embed import Embedder

            encoder = Embedder(settings.embed_model, settings.embed_batch_size)
        if meta is None or meta.get("format_version") != SCHEMA_VERSION:
            meta = migrate(conn, settings, encoder.dimension)
        return _build(conn, settings, encoder, progress, started)
    finally:
        conn.close()  # also releases the advisory lock


def _incompatible(meta: dict, settings: Settings) -> bool:
    try:
        check_compatible(meta, settings)
    except IndexMismatchError:
        return meta.get("format_version", 0) >= SCHEMA_VERSION  # an older schema is migrated, not dropped
    return False


def _build(conn, settings: Settings, encoder: Encoder, progress: Progress | None, started: float) -> BuildReport:
    work = _scan(conn, settings)
    pending = work.pending
    total = sum(len(p.spans) for p in pending)
    done = 0
    if progress:
        progress(0, total)
    # the batch holding a file's last pending article also commits the file's row and its removals
    last_batch_of: dict[str, int] = {}
    batches = _batches(pending)
    for b, batch in enumerate(batches):
        for i in batch:
            last_batch_of[pending[i].fid] = b
    for b, batch in enumerate(batches):
        items = [pending[i] for i in batch]
        texts = [p.article.text[s:e] for p in items for s, e in p.spans]
        base = done

        def step(n: int, base: int = base) -> None:
            nonlocal done
            done = min(done + n, total)
            if progress:
                progress(done, total)

        matrix = encoder.encode_documents(texts, progress=step)
        done = base + len(texts)
        vectors, cursor = [], 0
        for item in items:
            vectors.append(matrix[cursor : cursor + len(item.spans)])
            cursor += len(item.spans)
        finished_files = sorted({p.fid for p in items if last_batch_of[p.fid] == b})
        gone_articles = [a for f in finished_files for a in work.removed_by_file.get(f, [])]
        with conn.transaction():
            removed = _remove(conn, [p.article.id for p in items] + gone_articles)
            inserted = _insert(conn, items, vectors)
            _file_rows(conn, work, finished_files)
            _add_counts(conn, removed, inserted)
        if progress:
            progress(done, total)
    # files with nothing to embed: unchanged contents, only removals, restats, deleted files
    rest = [f for f in work.touched if f not in last_batch_of]
    with conn.transaction():
        gone_articles = [a for f in [*rest, *work.gone] for a in work.removed_by_file.get(f, [])]
        removed = _remove(conn, gone_articles)
        _file_rows(conn, work, rest + work.restat)
        if work.gone:
            conn.execute("DELETE FROM rag_files WHERE fid = ANY(%s)", (work.gone,))
        _add_counts(conn, removed)
        for key, value in (("built_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
                           ("articles_dir", str(settings.articles_dir.resolve()))):
            conn.execute("INSERT INTO rag_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, json.dumps(value)))
    counts = conn.execute("SELECT value FROM rag_meta WHERE key = 'counts'").fetchone()[0]
    skipped = [Skipped(p, r) for (raw,) in conn.execute("SELECT skipped FROM rag_files WHERE skipped IS NOT NULL ORDER BY fid")
               for p, r in (raw or [])]
    conn.commit()
    removed_ids = sorted(a for ids in work.removed_by_file.values() for a in ids)
    unchanged = not pending and not removed_ids and not work.gone
    return BuildReport(safe_url(settings.database_url), counts["articles"], counts["chunks"], counts["sentences"], total,
                       counts["sentences"] - total, tuple(work.added), tuple(work.changed), tuple(removed_ids),
                       tuple(skipped), time.perf_counter() - started, unchanged=unchanged)
