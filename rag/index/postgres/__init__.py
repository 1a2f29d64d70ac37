"""The PostgreSQL + pgvector index backend: one database shared by any number of app replicas.

- search.py: `PostgresIndex`, the read side (a `SearchIndex`: HNSW dense search, BM25 in SQL), and
  `open_postgres_index`.
- build.py: `build_postgres`, the incremental, crash-safe build (one transaction per batch of articles).
- schema.py: the tables, their version and migrations, connecting with one-line errors.
- server.py: a local PostgreSQL server for tests, benchmarks and `make db`
  (`python -m rag.index.postgres.server start --dir .db`).

rag.index.factory chooses between this backend and the local one (rag/index/*.py); nothing else does.
Nothing is imported here, so `python -m rag.index.postgres.server` needs neither psycopg nor numpy.
"""
