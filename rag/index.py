"""The persisted index: build it (incrementally, atomically) and open it.

Layout of `index_dir`:
    CURRENT              name of the live generation, replaced atomically (os.replace) at the end of a build
    gen-NNNNNN/          one complete index:
        manifest.json    model, dimension, chunking, format version, per-file and per-article hashes, counts
        vectors.faiss    FAISS inner-product index over unit sentence vectors (row = sentence row)
        sentences.npy    int64 [n, 3]: article row, start, end
        chunks.npy       int64 [m, 5]: article row, start, end, first sentence row, last sentence row
        store.sqlite     article metadata and text
        bm25/            bm25s index over chunk texts (doc = chunk row)
A build writes a new generation beside the live one and only then points CURRENT at it, so a build killed
at any moment leaves the previous index intact and loadable. FAISS row numbers never leave this module.
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
from rag.ingest import file_id, list_article_files, load_articles
from rag.text import terms
from rag.types import Article, Chunk, Skipped

FORMAT_VERSION = 1
REBUILD_HINT = "rebuild it with: rag index build --rebuild"

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


def _current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {pointer}: {exc}; {REBUILD_HINT}") from None
    if not name.startswith("gen-") or not (index_dir / name).is_dir():
        raise IndexCorruptError(f"{pointer} points at {name!r}, which is not there; {REBUILD_HINT}")
    return index_dir / name


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The live generation's manifest, or None when there is no index."""
    gen = _current_generation(index_dir)
    if gen is None:
        return None
    try:
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"the index manifest in {gen} is unreadable ({exc}); {REBUILD_HINT}") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"the index manifest in {gen} is not an object; {REBUILD_HINT}")
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


def _file_table(root: Path, previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """size, mtime and sha256 of every article file; the hash is reused when size and mtime are unchanged."""
    table = {}
    for path in list_article_files(root):
        fid = file_id(root, path)
        try:
            stat = path.stat()
        except OSError:
            continue
        old = previous.get(fid)
        if old and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
            digest = old["sha256"]
        else:
            try:
                digest = _file_digest(path)
            except OSError:
                digest = ""
        table[fid] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return table


def freshness(settings: Settings) -> Freshness:
    """Whether the index exists and still matches the articles folder (cheap: stat first, hash on change)."""
    manifest = read_manifest(settings.index_dir)
    if manifest is None:
        return Freshness(exists=False, stale=True, reason="there is no index yet")
    if Path(manifest.get("articles_dir", "")) != settings.articles_dir.resolve():
        return Freshness(True, True, f"it was built from {manifest.get('articles_dir')}")
    old_files = manifest.get("files", {})
    files = _file_table(settings.articles_dir, old_files)
    if {k: v["sha256"] for k, v in files.items()} != {k: v.get("sha256") for k, v in old_files.items()}:
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


def build_index(
    settings: Settings,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
) -> BuildReport:
    """Build or update the index for `settings.articles_dir`, embedding only new or changed articles."""
    started = time.perf_counter()
    index_dir = settings.index_dir
    with _build_lock(index_dir):
        ingest = load_articles(settings.articles_dir)
        old: Index | None = None
        if not rebuild:
            with contextlib.suppress(RagError):
                manifest = read_manifest(index_dir)
                if manifest is not None:
                    check_compatible(manifest, settings)
                    old = Index.load(index_dir, settings)
        embedder = embedder or Embedder(settings.embed_model, settings.embed_batch_size)
        old_articles = old.manifest.get("articles", {}) if old else {}

        sentences: list[tuple[int, int, int]] = []
        chunks: list[tuple[int, int, int, int, int]] = []
        chunk_texts: list[list[str]] = []
        vectors: list[np.ndarray | None] = []  # per article: reused vectors or None (to embed)
        to_embed: list[str] = []
        meta: dict[str, dict[str, Any]] = {}
        added, changed = [], []
        for row, article in enumerate(ingest.articles):
            digest = _article_hash(article)
            article_chunks = chunk_article(article, settings.chunk_max_chars, settings.chunk_overlap)
            spans = sorted({span for chunk in article_chunks for span in chunk.sentences})
            first_row = len(sentences)
            position = {span: first_row + i for i, span in enumerate(spans)}
            sentences.extend((row, start, end) for start, end in spans)
            for chunk in article_chunks:
                chunks.append((row, chunk.start, chunk.end, position[chunk.sentences[0]], position[chunk.sentences[-1]]))
                chunk_texts.append(terms(f"{article.title}\n{chunk.text}" if chunk.start == 0 else chunk.text))
            reused = old.article_vectors(article.id) if old and old_articles.get(article.id, {}).get("hash") == digest else None
            if reused is not None and len(reused) != len(spans):
                reused = None
            if reused is None:
                to_embed.extend(article.text[s:e] for s, e in spans)
                (changed if article.id in old_articles else added).append(article.id)
            vectors.append(reused)
            meta[article.id] = {"title": article.title, "hash": digest, "sentences": len(spans), "chunks": len(article_chunks)}
        removed = tuple(sorted(set(old_articles) - set(meta)))
        files = _file_table(settings.articles_dir, old.manifest.get("files", {}) if old else {})

        if old and not added and not changed and not removed and old.manifest.get("files") == files:
            return BuildReport(str(index_dir), len(meta), len(chunks), len(sentences), 0, len(sentences),
                               (), (), (), ingest.skipped, time.perf_counter() - started, unchanged=True)

        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, len(to_embed))

        if progress:
            progress(0, len(to_embed))
        fresh = embedder.encode_documents(to_embed, progress=step)
        dim = fresh.shape[1] if len(to_embed) else (old.dimension if old else embedder.dimension)
        matrix = np.zeros((len(sentences), dim), dtype=np.float32)
        cursor = fresh_cursor = 0
        for reused, article in zip(vectors, ingest.articles, strict=False):
            count = meta[article.id]["sentences"]
            if reused is None:
                matrix[cursor : cursor + count] = fresh[fresh_cursor : fresh_cursor + count]
                fresh_cursor += count
            else:
                matrix[cursor : cursor + count] = reused
            cursor += count
        if old:
            old.close()

        manifest = {
            **_settings_signature(settings),
            "dimension": int(dim),
            "normalized": True,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "articles_dir": str(settings.articles_dir.resolve()),
            "counts": {"articles": len(meta), "chunks": len(chunks), "sentences": len(sentences)},
            "files": files,
            "articles": meta,
            "skipped": [{"path": s.path, "reason": s.reason} for s in ingest.skipped],
        }
        _write_generation(index_dir, manifest, ingest.articles, matrix, sentences, chunks, chunk_texts)
        return BuildReport(
            str(index_dir), len(meta), len(chunks), len(sentences), len(to_embed), len(sentences) - len(to_embed),
            tuple(added), tuple(changed), removed, ingest.skipped, time.perf_counter() - started,
        )


def _write_generation(
    index_dir: Path,
    manifest: dict[str, Any],
    articles: tuple[Article, ...],
    matrix: np.ndarray,
    sentences: list[tuple[int, int, int]],
    chunks: list[tuple[int, int, int, int, int]],
    chunk_texts: list[list[str]],
) -> None:
    import bm25s
    import faiss

    existing = sorted(p.name for p in index_dir.glob("gen-*"))
    number = int(existing[-1][4:]) + 1 if existing and existing[-1][4:].isdigit() else 1
    gen = index_dir / f"gen-{number:06d}"
    shutil.rmtree(gen, ignore_errors=True)
    gen.mkdir()
    flat = faiss.IndexFlatIP(matrix.shape[1])
    if len(matrix):
        flat.add(matrix)
    faiss.write_index(flat, str(gen / "vectors.faiss"))
    np.save(gen / "sentences.npy", np.asarray(sentences, dtype=np.int64).reshape(-1, 3))
    np.save(gen / "chunks.npy", np.asarray(chunks, dtype=np.int64).reshape(-1, 5))
    db = sqlite3.connect(gen / "store.sqlite")
    with db:
        db.execute(
            "CREATE TABLE articles (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT, path TEXT, "
            "url TEXT, published_at TEXT, source TEXT, text TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((i, a.id, a.title, a.path, a.url, a.published_at, a.source, a.text) for i, a in enumerate(articles)),
        )
    db.close()
    retriever = bm25s.BM25()
    # bm25s refuses an empty corpus; a placeholder token keeps an empty index loadable.
    retriever.index(chunk_texts if chunk_texts else [["\x00empty"]], show_progress=False)
    retriever.save(str(gen / "bm25"), show_progress=False)
    (gen / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    for path in gen.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(gen)
    pointer = index_dir / "CURRENT.tmp"
    with open(pointer, "w", encoding="utf-8") as handle:
        handle.write(gen.name)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    _fsync_dir(index_dir)
    for name in existing:  # older generations, and any a killed build left behind
        if name != gen.name:
            shutil.rmtree(index_dir / name, ignore_errors=True)


class Index:
    """A loaded generation: vectors, chunk and sentence tables, BM25 and the article store. Read-only."""

    def __init__(self, path: Path, manifest: dict[str, Any], faiss_index: Any, sentences: np.ndarray,
                 chunks: np.ndarray, bm25: Any, db: sqlite3.Connection) -> None:
        self.path = path
        self.manifest = manifest
        self._faiss = faiss_index
        self._sentences = sentences
        self._chunks = chunks
        self._bm25 = bm25
        self._db = db
        self._lock = threading.Lock()
        rows = db.execute("SELECT row, id, title FROM articles ORDER BY row").fetchall()
        self._article_ids = [r[1] for r in rows]
        self._titles = [r[2] for r in rows]
        self._article_row = {r[1]: r[0] for r in rows}
        self._text_cache: dict[int, str] = {}
        # first chunk whose last sentence is at or after a sentence row: chunks are ordered by sentence
        self._chunk_last = chunks[:, 4] if len(chunks) else np.zeros(0, dtype=np.int64)
        vocab = bm25.vocab_dict or {}
        indptr = np.asarray(bm25.scores["indptr"])
        self._df = {t: int(indptr[i + 1] - indptr[i]) for t, i in vocab.items() if t and i + 1 < len(indptr)}

    @classmethod
    def load(cls, index_dir: Path, settings: Settings) -> Index:
        """Open the live generation; refuse one built by another model, chunking or format."""
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexMissingError(f"there is no index in {index_dir}; build it with: rag index build")
        check_compatible(manifest, settings)
        gen = _current_generation(index_dir)
        assert gen is not None  # read_manifest returned a manifest, so there is a generation
        try:
            import bm25s
            import faiss

            faiss_index = faiss.read_index(str(gen / "vectors.faiss"))
            sentences = np.load(gen / "sentences.npy")
            chunks = np.load(gen / "chunks.npy")
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                bm25 = bm25s.BM25.load(str(gen / "bm25"), show_progress=False)
            db = sqlite3.connect(f"file:{gen / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            db.execute("SELECT count(*) FROM articles").fetchone()
        except Exception as exc:  # any unreadable part means the same thing to the user
            raise IndexCorruptError(f"the index in {gen} is damaged ({type(exc).__name__}: {exc}); {REBUILD_HINT}") from None
        counts = manifest.get("counts", {})
        if faiss_index.ntotal != len(sentences) or counts.get("sentences") != len(sentences) or counts.get("chunks") != len(chunks):
            raise IndexCorruptError(f"the index in {gen} is inconsistent (row counts differ); {REBUILD_HINT}")
        return cls(gen, manifest, faiss_index, sentences, chunks, bm25, db)

    def close(self) -> None:
        self._db.close()

    @property
    def dimension(self) -> int:
        return int(self._faiss.d)

    @property
    def num_chunks(self) -> int:
        return len(self._chunks)

    @property
    def num_articles(self) -> int:
        return len(self._article_ids)

    def article_ids(self) -> list[str]:
        return list(self._article_ids)

    def title(self, article_row: int) -> str:
        return self._titles[article_row]

    def _text(self, article_row: int) -> str:
        text = self._text_cache.get(article_row)
        if text is None:
            with self._lock:
                text = self._db.execute("SELECT text FROM articles WHERE row = ?", (article_row,)).fetchone()[0]
            if len(self._text_cache) > 512:
                self._text_cache.clear()
            self._text_cache[article_row] = text
        return text

    def article(self, article_id: str) -> Article | None:
        row = self._article_row.get(article_id)
        if row is None:
            return None
        with self._lock:
            r = self._db.execute(
                "SELECT id, title, text, path, url, published_at, source FROM articles WHERE row = ?", (row,)
            ).fetchone()
        return Article(*r)

    def article_vectors(self, article_id: str) -> np.ndarray | None:
        row = self._article_row.get(article_id)
        if row is None:
            return None
        rows = np.flatnonzero(self._sentences[:, 0] == row)
        if not len(rows):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._faiss.reconstruct_n(int(rows[0]), len(rows))

    def chunk(self, row: int) -> Chunk:
        article_row, start, end, first, last = (int(x) for x in self._chunks[row])
        spans = tuple((int(s), int(e)) for _, s, e in self._sentences[first : last + 1])
        article_id = self._article_ids[article_row]
        return Chunk(f"{article_id}:{start}-{end}", article_id, self._text(article_row)[start:end], start, end, spans)

    def chunk_article_row(self, row: int) -> int:
        return int(self._chunks[row, 0])

    def chunks_of_sentence(self, sentence_row: int) -> list[int]:
        first = int(np.searchsorted(self._chunk_last, sentence_row, side="left"))
        out = []
        for row in range(first, len(self._chunks)):
            if self._chunks[row, 3] > sentence_row:
                break
            out.append(row)
        return out

    def chunk_sentence_rows(self, row: int) -> range:
        return range(int(self._chunks[row, 3]), int(self._chunks[row, 4]) + 1)

    def dense_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sentence rows, cosine scores), best first."""
        k = min(k, self._faiss.ntotal)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, rows = self._faiss.search(query.reshape(1, -1).astype(np.float32), k)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]

    def sentence_scores(self, query: np.ndarray, rows: range) -> np.ndarray:
        vectors = self._faiss.reconstruct_n(rows.start, len(rows))
        return vectors @ query

    def lexical_search(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rows, BM25 scores), best first; only chunks that share a term with the query."""
        k = min(k, len(self._chunks))
        if k <= 0 or not any(t in self._df for t in query_terms):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        with self._lock:
            docs, scores = self._bm25.retrieve([query_terms], k=k, show_progress=False, n_threads=1)
        keep = scores[0] > 0
        return docs[0][keep], scores[0][keep]

    def doc_freq(self, term: str) -> int:
        return self._df.get(term, 0)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


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
