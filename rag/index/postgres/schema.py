"""The PostgreSQL backend's schema: its tables, its version, its migrations, and connecting with one-line errors.

Tables (all prefixed `rag_`; articles, chunks and sentences are keyed by article id first, so the same schema
can be hash-partitioned by article id across servers, see bench/shards.py):
    rag_meta       key -> jsonb: schema version, what built the index (model, chunking, lexical), dimension,
                   articles folder, counts and BM25 statistics (changed in the same transaction as the rows)
    rag_files      every article file's size, mtime, sha256 and what in it was skipped (the change scan)
    rag_articles   one row per live article: metadata, text, content hash, build order (seq)
    rag_chunks     chunk offsets, their sentence range, and `terms`: a tsvector of *our* stemmed terms
                   (rag.text.terms) with positions, GIN-indexed (full-text matching with @@)
    rag_sentences  sentence offsets and the sentence vector in vector(dim), HNSW-indexed (inner product)
    rag_postings   one row per (chunk, term): term frequency and chunk length, indexed by term (covering), from
                   which BM25 is computed in SQL; only the query terms' rows are read
    rag_terms      document frequency of every term (what the reader's IDF weights use)
The schema version lives in rag_meta; `migrate` applies the steps a database is missing, under an advisory
lock, in one transaction. A database built by another model, chunking or a newer schema is refused with the
local index's own rebuild hint.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rag.config import Settings
from rag.errors import IndexMismatchError, RagError
from rag.index.catalog import REBUILD_HINT

SCHEMA_VERSION = 1
LOCK_KEY = 7_261_044  # pg_advisory_lock key held by a build: one writer at a time
K1, B = 1.5, 0.75  # bm25s's defaults (Lucene variant), so SQL BM25 ranks as the local index does
TABLES = ("rag_postings", "rag_sentences", "rag_chunks", "rag_articles", "rag_terms", "rag_files", "rag_meta")


class DatabaseError(RagError):
    """The index database cannot be reached or used (down, wrong password, no pgvector); one line, no traceback."""


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password:
            host = parts.hostname or ""
            netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(unparsable database_url)"
    return url


def describe(exc: Exception) -> str:
    """The first meaningful line of a driver error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    for prefix in ("connection failed: ",):
        text = text.removeprefix(prefix)
    return text.replace("FATAL:  ", "")


def connect(url: str, autocommit: bool = False):  # -> psycopg.Connection
    """A connection with the vector type registered; any failure is one DatabaseError line."""
    try:
        import psycopg
    except ImportError:
        raise DatabaseError("the postgres backend needs the postgres extra: pip install 'newsrag[postgres]'") from None
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the index database {safe_url(url)}: {describe(exc)}") from None
    except Exception as exc:  # a malformed URL raises ProgrammingError or ValueError, both the user's to fix
        raise DatabaseError(f"bad database_url {safe_url(url)}: {describe(exc)}") from None
    register(conn)
    return conn


def register(conn) -> None:
    """Register pgvector's numpy adapter on `conn` (needs the extension; harmless when it is not there yet)."""
    import psycopg
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
    except psycopg.ProgrammingError:  # "vector type not found": created by migrate(), registered again there
        pass
    if not conn.autocommit:
        conn.commit()


def ensure_extension(conn) -> None:
    import psycopg

    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise DatabaseError(f"the index database has no usable pgvector extension (CREATE EXTENSION vector: {describe(exc)})") from None
    register(conn)


def _v1(dim: int) -> list[str]:
    return [
        "CREATE TABLE rag_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        "CREATE TABLE rag_files (fid text PRIMARY KEY, size bigint NOT NULL, mtime_ns bigint NOT NULL, "
        "sha256 text NOT NULL, skipped jsonb)",
        "CREATE TABLE rag_articles (id text PRIMARY KEY, file text NOT NULL, seq bigint NOT NULL, title text NOT NULL, "
        "path text NOT NULL, url text NOT NULL, published_at text NOT NULL, source text NOT NULL, text text NOT NULL, "
        "hash text NOT NULL, chunks int NOT NULL, sentences int NOT NULL)",
        "CREATE INDEX rag_articles_file ON rag_articles (file)",
        "CREATE TABLE rag_chunks (article_id text NOT NULL, ord int NOT NULL, id text NOT NULL, seq bigint NOT NULL, "
        "start int NOT NULL, stop int NOT NULL, first_sentence int NOT NULL, last_sentence int NOT NULL, "
        "length int NOT NULL, terms tsvector NOT NULL, PRIMARY KEY (article_id, ord))",
        "CREATE INDEX rag_chunks_id ON rag_chunks (id)",
        "CREATE INDEX rag_chunks_terms ON rag_chunks USING gin (terms)",
        f"CREATE TABLE rag_sentences (article_id text NOT NULL, ord int NOT NULL, seq bigint NOT NULL, start int NOT NULL, "
        f"stop int NOT NULL, embedding vector({int(dim)}) NOT NULL, PRIMARY KEY (article_id, ord))",
        "CREATE INDEX rag_sentences_hnsw ON rag_sentences USING hnsw (embedding vector_ip_ops)",
        "CREATE TABLE rag_postings (article_id text NOT NULL, ord int NOT NULL, term text NOT NULL, tf int NOT NULL, "
        "length int NOT NULL, chunk_id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (article_id, ord, term))",
        "CREATE INDEX rag_postings_term ON rag_postings (term) INCLUDE (tf, length, chunk_id, seq, ord)",
        "CREATE TABLE rag_terms (term text PRIMARY KEY, df int NOT NULL)",
        "CREATE SEQUENCE rag_article_seq",
    ]


# version -> the statements that bring a database from the version before to it
MIGRATIONS: dict[int, Any] = {1: _v1}


def signature(settings: Settings) -> dict[str, Any]:
    """What must match between the database and the settings (the local catalog's keys, with this schema)."""
    return {
        "format_version": SCHEMA_VERSION,
        "model": settings.embed_model,
        "chunking": {"splitter": "punkt+lines", "max_chars": settings.chunk_max_chars, "overlap": settings.chunk_overlap},
        "lexical": {"library": "postgres-bm25", "tokenizer": "rag.text.terms/v2", "k1": K1, "b": B},
    }


def read_meta(conn) -> dict[str, Any] | None:
    """The rag_meta table as a dict, or None when the database holds no index yet."""
    exists = conn.execute("SELECT to_regclass('rag_meta') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    return {k: v for k, v in conn.execute("SELECT key, value FROM rag_meta")}


def check_compatible(meta: dict[str, Any], settings: Settings) -> None:
    """Raise IndexMismatchError when the database was built by another model, chunking or schema version."""
    want = signature(settings)
    where = f"the index in the database {safe_url(settings.database_url)}"
    for key, label in (("format_version", "schema version"), ("model", "embedding model"), ("chunking", "chunking"),
                       ("lexical", "lexical index")):
        if meta.get(key) != want[key]:
            raise IndexMismatchError(
                f"{where} was built with {label} {meta.get(key)!r}, but the settings ask for {want[key]!r}; {REBUILD_HINT}"
            )


def migrate(conn, settings: Settings, dim: int) -> dict[str, Any]:
    """Create the schema, or apply missing migration steps; returns rag_meta. Runs under the build lock."""
    ensure_extension(conn)
    meta = read_meta(conn)
    have = int(meta.get("format_version", 0)) if meta else 0
    if have > SCHEMA_VERSION:
        raise IndexMismatchError(
            f"the index database {safe_url(settings.database_url)} has schema version {have}, newer than this "
            f"program's {SCHEMA_VERSION}; upgrade, or {REBUILD_HINT}"
        )
    with conn.transaction():
        for version in range(have + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version](dim):
                conn.execute(statement)
        if have < SCHEMA_VERSION:
            write_meta(conn, settings, dim)
    return read_meta(conn) or {}


def write_meta(conn, settings: Settings, dim: int) -> None:
    """The signature, dimension and zero counts of a new index (also called by bench/shards.py after it made
    the partitioned tables itself)."""
    base = {**signature(settings), "dimension": int(dim), "counts": {"articles": 0, "chunks": 0, "sentences": 0, "length": 0}}
    for key, value in base.items():
        conn.execute("INSERT INTO rag_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (key, json.dumps(value)))


def drop(conn) -> None:
    """Remove every table of the index (a rebuild, or a database built by other settings)."""
    with conn.transaction():
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        conn.execute("DROP SEQUENCE IF EXISTS rag_article_seq")
