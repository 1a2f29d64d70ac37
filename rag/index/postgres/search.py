"""The PostgreSQL + pgvector index backend (read side): a `SearchIndex` over one database shared by any number
of app replicas. Building it is rag.index.postgres.build; the schema is rag.index.postgres.schema.

Dense search is pgvector's HNSW index (inner product on unit vectors) over sentences, reported per chunk the
way the local index does (a chunk scores by its best sentence). Lexical search is BM25 computed in SQL from
the stored term frequencies (rag_postings) of our own stemmed terms, with bm25s's formula and constants, so it ranks as the
local index's bm25s does; PostgreSQL's `ts_rank` has no IDF and another stemmer and stop list, which would
change rankings and make the reader's `doc_freq` count other terms than the ones it looks up.

We write plain SQL (psycopg 3) rather than llama-index's `PGVectorStore`: that store keys rows by its own
node ids, keeps one text column per node, and ranks text with ts_rank_cd, while this backend must keep our
chunk ids, exact sentence offsets and per-sentence vectors and rank lexically like the local index.

Every method takes a pooled connection for one statement and gives it back; nothing is cached across calls,
so every replica always sees the last committed build batch and never a half-written article.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import IndexMissingError
from rag.index.postgres.schema import (
    K1,
    B,
    DatabaseError,
    check_compatible,
    connect,
    describe,
    read_meta,
    register,
    safe_url,
)
from rag.protocols import Hit
from rag.text import bm25_idf
from rag.types import Article, ArticleHeader, Chunk, Passage

# the chunk row and its sentences read in one snapshot, so a batch committed between the two statements
# cannot pair an old chunk with a new version's sentences
_ONE_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
EF_SEARCH_MIN = 400  # HNSW candidate list: at least this, and 4x the results asked for (recall, see docs/scale.md)


class PostgresIndex:
    """A read-only `SearchIndex` over the rag_* tables at `settings.database_url`. Thread-safe (a connection pool)."""

    def __init__(self, settings: Settings, pool_size: int = 8) -> None:
        self.url = settings.database_url
        conn = connect(self.url)  # the clear one-line error for a bad URL, a wrong password or a server that is down
        try:
            meta = read_meta(conn)
            if meta is None or "dimension" not in meta:
                raise IndexMissingError(f"there is no index in the database {safe_url(self.url)}; build it with: "
                                        "RAG_INDEX_BACKEND=postgres rag index build")
            check_compatible(meta, settings)
        finally:
            conn.close()
        self.meta = meta
        self._dim = int(meta["dimension"])
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(self.url, min_size=1, max_size=pool_size, configure=register, open=True,
                                    kwargs={"connect_timeout": 10}, timeout=30)
        self._closed = False
        self._lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise DatabaseError(f"the index database {safe_url(self.url)} is not answering: {describe(exc)}") from None
        except psycopg.errors.UndefinedTable:
            raise IndexMissingError(f"the index tables are gone from {safe_url(self.url)}; rebuild it with: "
                                    "rag index build --rebuild") from None

    @property
    def manifest(self) -> dict[str, Any]:
        """rag_meta as it is now: what built the index, its counts and build time (the local index's manifest keys)."""
        with self._conn() as conn:
            return {k: v for k, v in conn.execute("SELECT key, value FROM rag_meta")}

    def _counts(self, conn) -> dict[str, int]:
        return conn.execute("SELECT value FROM rag_meta WHERE key = 'counts'").fetchone()[0]

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def num_chunks(self) -> int:
        with self._conn() as conn:
            return int(self._counts(conn)["chunks"])

    @property
    def num_articles(self) -> int:
        with self._conn() as conn:
            return int(self._counts(conn)["articles"])

    @property
    def num_sentences(self) -> int:
        with self._conn() as conn:
            return int(self._counts(conn)["sentences"])

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[Hit, ...]:
        """Chunks of the `k` sentences nearest `vector` (HNSW, inner product), best first, each chunk once."""
        if k <= 0:
            return ()
        q = np.asarray(vector, dtype=np.float32)
        with self._conn() as conn:
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH_MIN, 4 * int(k))}")
            rows = conn.execute(
                "WITH top AS (SELECT article_id, ord, seq, embedding <#> %s AS d FROM rag_sentences "
                "ORDER BY embedding <#> %s LIMIT %s) "
                "SELECT c.id, -top.d FROM top JOIN rag_chunks c ON c.article_id = top.article_id "
                "AND top.ord BETWEEN c.first_sentence AND c.last_sentence ORDER BY top.d, top.seq, top.ord, c.ord",
                (q, q, int(k)),
            ).fetchall()
        seen: dict[str, float] = {}
        for chunk_id, score in rows:
            seen.setdefault(chunk_id, float(score))
        return tuple(Hit(c, s) for c, s in seen.items())

    def lexical_search(self, terms: Sequence[str], k: int) -> tuple[Hit, ...]:
        """BM25 (bm25s's Lucene variant: k1 1.5, b 0.75) over chunk terms, computed in SQL; best first."""
        if k <= 0 or not terms:
            return ()
        counts: dict[str, int] = {}
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
        with self._conn() as conn:
            stats = self._counts(conn)
            n_docs, length = int(stats["chunks"]), int(stats["length"])
            dfs = dict(conn.execute("SELECT term, df FROM rag_terms WHERE term = ANY(%s) AND df > 0", (list(counts),)).fetchall())
            if not dfs or not n_docs:
                return ()
            names = sorted(dfs)
            weights = [bm25_idf(dfs[t], n_docs) * counts[t] for t in names]
            avgdl = max(length / n_docs, 1e-9)
            rows = conn.execute(
                "SELECT p.chunk_id, sum(q.w * p.tf / (p.tf + %s * (1 - %s + %s * p.length / %s))) AS s, min(p.seq) AS seq, "
                "min(p.ord) AS ord FROM unnest(%s::text[], %s::float8[]) AS q(term, w) "
                "JOIN rag_postings p ON p.term = q.term GROUP BY p.chunk_id ORDER BY s DESC, seq, ord LIMIT %s",
                (K1, B, B, avgdl, names, weights, int(k)),
            ).fetchall()
        return tuple(Hit(c, float(s)) for c, s, _, _ in rows if s > 0)

    def doc_freq(self, term: str) -> int:
        with self._conn() as conn:
            row = conn.execute("SELECT df FROM rag_terms WHERE term = %s", (term,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _article_of(chunk_id: str) -> str:
        article_id, sep, _ = chunk_id.rpartition(":")
        if not sep:
            raise KeyError(chunk_id)
        return article_id

    def _chunk_sentences(self, chunk_id: str, columns: str, params: tuple[Any, ...] = ()) -> tuple[Chunk, str, list[tuple]]:
        """The chunk `chunk_id` (no sentence spans yet), its article's title, and `columns` of rag_sentences for
        each of its sentences in order (`params` fill the %s in `columns`), read in one snapshot."""
        article_id = self._article_of(chunk_id)
        with self._conn() as conn, conn.transaction():
            conn.execute(_ONE_SNAPSHOT)
            row = conn.execute(
                "SELECT c.start, c.stop, c.first_sentence, c.last_sentence, substr(a.text, c.start + 1, c.stop - c.start), "
                "a.title FROM rag_chunks c JOIN rag_articles a ON a.id = c.article_id "
                "WHERE c.article_id = %s AND c.id = %s", (article_id, chunk_id)).fetchone()
            if row is None:
                raise KeyError(chunk_id)
            start, stop, first, last, text, title = row
            sentences = conn.execute(f"SELECT {columns} FROM rag_sentences WHERE article_id = %s AND ord BETWEEN %s AND %s "
                                     "ORDER BY ord", (*params, article_id, first, last)).fetchall()
        return Chunk(chunk_id, article_id, text, start, stop), title, sentences

    def chunk(self, chunk_id: str) -> Chunk:
        chunk, _, spans = self._chunk_sentences(chunk_id, "start, stop")
        return _with_spans(chunk, spans)

    def passage(self, chunk_id: str, vector: np.ndarray) -> Passage:
        """The chunk, its article's title and `vector`'s similarity to each of its sentences (score, rank 0)."""
        q = np.asarray(vector, dtype=np.float32)
        chunk, title, rows = self._chunk_sentences(chunk_id, "start, stop, -(embedding <#> %s)", (q,))
        return Passage(_with_spans(chunk, [(s, e) for s, e, _ in rows]), title, 0.0, 0,
                       tuple(float(x) for _, _, x in rows))

    def article(self, article_id: str) -> Article | None:
        with self._conn() as conn:
            row = conn.execute("SELECT id, title, text, path, url, published_at, source FROM rag_articles WHERE id = %s",
                               (article_id,)).fetchone()
        return Article(*row) if row else None

    def article_headers(self) -> list[ArticleHeader]:
        with self._conn() as conn:
            rows = conn.execute("SELECT id, title, published_at FROM rag_articles ORDER BY seq").fetchall()
        return [ArticleHeader(*r) for r in rows]

    def article_ids(self) -> list[str]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM rag_articles ORDER BY seq")]

    def size_bytes(self) -> int:
        """Bytes the rag_* tables and their indexes take (on a coordinator: only its own share)."""
        with self._conn() as conn:
            return int(conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON "
                "n.oid = c.relnamespace WHERE c.relname LIKE 'rag\\_%%' AND c.relkind IN ('r', 'p', 'm') "
                "AND n.nspname = current_schema()").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._pool.close()


def _with_spans(chunk: Chunk, spans: Sequence[tuple[int, int]]) -> Chunk:
    return Chunk(chunk.id, chunk.article_id, chunk.text, chunk.start, chunk.end, tuple((int(s), int(e)) for s, e in spans))


def open_postgres_index(settings: Settings, encoder=None, progress=None, on_build=None) -> PostgresIndex:
    """The index at `settings.database_url`, built first when the database holds none and auto_build is on
    (a replica never scans a folder: builds are `rag index build`'s job, so many replicas can start at once)."""
    if settings.auto_build:
        conn = connect(settings.database_url)
        try:
            meta = read_meta(conn)
        finally:
            conn.close()
        if meta is None or "dimension" not in meta:
            from rag.index.postgres.build import build_postgres

            if on_build is not None:
                on_build("there is no index in the database yet")
            build_postgres(settings, encoder, progress)
    return PostgresIndex(settings)
