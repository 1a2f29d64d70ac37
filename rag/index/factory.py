"""The index backend chosen by the `index_backend` setting, as txtai's `ann/dense/factory.py` picks its ANN.

`local` (the embedded default): segments on disk under `index_dir` (FAISS + bm25s + SQLite).
`postgres`: one PostgreSQL database with pgvector at `database_url`, shared by any number of app replicas.
Every caller opens, builds and describes an index through these three functions, so a new backend is one more
branch here. The local backend's modules are rag/index/*.py; the postgres backend's are rag/index/postgres/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag.config import Settings
from rag.errors import SettingsError
from rag.protocols import Encoder, SearchIndex

Progress = Callable[[int, int], None]


def open_search_index(settings: Settings, encoder: Encoder | None = None, progress: Progress | None = None,
                      on_build: Callable[[str], None] | None = None) -> SearchIndex:
    """The index for `settings`, built or updated first when stale and `settings.auto_build` is on."""
    if settings.index_backend == "local":
        from rag.index.local import open_index

        return open_index(settings, encoder, progress, on_build)
    if settings.index_backend == "postgres":
        from rag.index.postgres.search import open_postgres_index

        return open_postgres_index(settings, encoder, progress, on_build)
    raise SettingsError(f"unknown index_backend {settings.index_backend!r}")


def build_search_index(settings: Settings, encoder: Encoder | None = None, progress: Progress | None = None,
                       rebuild: bool = False):  # -> BuildReport
    """Build or update the index of `settings.articles_dir` in the chosen backend."""
    if settings.index_backend == "local":
        from rag.index.build import build_index

        return build_index(settings, encoder, progress, rebuild=rebuild)
    if settings.index_backend == "postgres":
        from rag.index.postgres.build import build_postgres

        return build_postgres(settings, encoder, progress, rebuild=rebuild)
    raise SettingsError(f"unknown index_backend {settings.index_backend!r}")


def describe_search_index(settings: Settings) -> dict[str, Any]:
    """What `rag index info` shows: `path` (the folder, or the database URL without its password), `manifest`
    (what built the index, its counts and build time) and `size_bytes`; IndexMissingError when there is none."""
    if settings.index_backend == "local":
        from rag.index.local import index_size, missing_index, read_manifest

        manifest = read_manifest(settings.index_dir)
        if manifest is None:
            raise missing_index(settings.index_dir)
        return {"path": str(settings.index_dir), "manifest": manifest, "size_bytes": index_size(settings.index_dir)}
    if settings.index_backend == "postgres":
        from rag.index.postgres.schema import safe_url
        from rag.index.postgres.search import PostgresIndex

        pg = PostgresIndex(settings)
        try:
            return {"path": safe_url(settings.database_url), "manifest": pg.manifest, "size_bytes": pg.size_bytes()}
        finally:
            pg.close()
    raise SettingsError(f"unknown index_backend {settings.index_backend!r}")
