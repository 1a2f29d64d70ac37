"""The postgres backend against a real PostgreSQL 18 + pgvector server (tests/pg_support.py), with the real model.

Same answers as the local index on the dev questions; BM25 scores equal to bm25s's; incremental updates,
deletions and a build killed with SIGKILL and resumed; readers never see a half-written article; a schema or
settings mismatch and an unreachable database give one clear line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexMismatchError, RagError
from rag.index.catalog import REBUILD_HINT
from rag.index.factory import build_search_index, open_search_index
from rag.index.postgres.schema import DatabaseError, connect
from rag.index.postgres.search import PostgresIndex
from rag.pipeline import Assistant
from rag.protocols import SearchIndex
from rag.text import terms
from tests.conftest import BUNDLED, DEV_QUESTIONS, make_settings
from tests.pg_support import CachingEncoder, fresh_database, pg_server  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cached(embedder) -> CachingEncoder:
    return CachingEncoder(embedder)


@pytest.fixture(scope="module")
def pg_bundled(pg_server, tmp_path_factory, cached):  # noqa: F811
    """The bundled articles built into a fresh database; the settings."""
    root = tmp_path_factory.mktemp("pg_bundled")
    shutil.copytree(BUNDLED, root / "articles")
    settings = make_settings(root / "articles", root / "index", index_backend="postgres",
                             database_url=fresh_database(pg_server))
    build_search_index(settings, cached)
    return settings


def _copy(tmp_path: Path, pg_server, **changes):  # noqa: F811
    shutil.copytree(BUNDLED, tmp_path / "articles")
    return make_settings(tmp_path / "articles", tmp_path / "index", index_backend="postgres",
                         database_url=fresh_database(pg_server), **changes)


def _consistent(settings) -> dict[str, int]:
    """Recount everything from the rows and compare with what the build maintains (counts, term frequencies)."""
    conn = connect(settings.database_url)
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            counts = conn.execute("SELECT value FROM rag_meta WHERE key = 'counts'").fetchone()[0]
            real = conn.execute("SELECT (SELECT count(*) FROM rag_articles), (SELECT count(*) FROM rag_chunks), "
                                "(SELECT count(*) FROM rag_sentences), (SELECT coalesce(sum(length), 0) FROM rag_chunks)").fetchone()
            bad = conn.execute("SELECT count(*) FROM rag_articles a WHERE a.chunks != (SELECT count(*) FROM rag_chunks c "
                               "WHERE c.article_id = a.id) OR a.sentences != (SELECT count(*) FROM rag_sentences s "
                               "WHERE s.article_id = a.id)").fetchone()[0]
            postings, lexemes = conn.execute("SELECT (SELECT count(*) FROM rag_postings), "
                                             "(SELECT coalesce(sum(length(terms)), 0) FROM rag_chunks)").fetchone()
            df = dict(conn.execute("SELECT term, df FROM rag_terms").fetchall())
            recount = dict(conn.execute("SELECT w, count(*) FROM rag_chunks, unnest(tsvector_to_array(terms)) w "
                                        "GROUP BY w").fetchall())
    finally:
        conn.close()
    assert (counts["articles"], counts["chunks"], counts["sentences"], counts["length"]) == tuple(real)
    assert bad == 0
    assert df == recount and postings == lexemes
    return counts


def test_it_is_a_search_index_and_ranks_lexically_like_bm25s(pg_bundled, assistant, embedder):
    index = open_search_index(pg_bundled, embedder)
    try:
        assert isinstance(index, SearchIndex)
        local = assistant.index
        assert (index.num_articles, index.num_chunks, index.dimension) == (local.num_articles, local.num_chunks, local.dimension)
        for question in ("How many troops did North Korea send?", "Kursk region fighting", "sanctions on Pyongyang"):
            q = terms(question)
            want = [(h.chunk_id, h.score) for h in local.lexical_search(q, 10)]
            got = [(h.chunk_id, h.score) for h in index.lexical_search(q, 10)]
            assert [c for c, _ in got] == [c for c, _ in want]
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=1e-4)
            assert all(index.doc_freq(t) == local.doc_freq(t) for t in q)
            vector = embedder.encode_query(question)
            local_chunks = [h.chunk_id for h in local.dense_search(vector, 12)]
            assert len(local_chunks) >= 3
            assert [h.chunk_id for h in index.dense_search(vector, 12)] == local_chunks
        first = index.dense_search(embedder.encode_query("troops"), 3)[0].chunk_id
        passage = index.passage(first, embedder.encode_query("troops"))
        article = index.article(passage.chunk.article_id)
        assert article.text[passage.chunk.start : passage.chunk.end] == passage.chunk.text
        assert all(article.text[s:e] for s, e in passage.chunk.sentences)
        assert len(passage.sentence_scores) == len(passage.chunk.sentences)
        assert index.chunk(first) == passage.chunk
        with pytest.raises(KeyError):
            index.passage("no-such-article:0-1", embedder.encode_query("x"))
        assert index.article("missing") is None
        assert [h.id for h in index.article_headers()] == [h.id for h in local.article_headers()]
    finally:
        index.close()


def test_same_answers_as_the_local_index_on_the_dev_questions(pg_bundled, assistant, embedder):
    pg = Assistant.from_settings(pg_bundled, encoder=embedder)
    try:
        questions = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
        assert len(questions) >= 10
        for question in questions:
            want, got = assistant.ask(question), pg.ask(question)
            assert (got.text, got.abstained, got.quotes) == (want.text, want.abstained, want.quotes), question
            assert [r.article_id for r in got.retrieved] == [r.article_id for r in want.retrieved], question
    finally:
        pg.close()


def test_incremental_change_delete_add(tmp_path, pg_server, cached):  # noqa: F811
    settings = _copy(tmp_path, pg_server)
    first = build_search_index(settings, cached)
    files = sorted((tmp_path / "articles").iterdir())
    changed, gone = files[0], files[1]
    changed.write_text(changed.read_text() + "\nThe harbour master counted 4242 herons on Tuesday.\n")
    gone.unlink()
    (tmp_path / "articles" / "new.txt").write_text("Lighthouse keepers strike\n\nThe keepers of the lighthouse went on strike.\n")
    report = build_search_index(settings, cached)
    assert report.changed == (changed.name,) and report.removed == (gone.name,) and report.added == ("new.txt",)
    assert 0 < report.embedded < first.embedded
    index = PostgresIndex(settings)
    try:
        assert index.article(gone.name) is None
        assert "4242 herons" in index.article(changed.name).text
        hits = index.lexical_search(terms("herons"), 5)
        assert hits and hits[0].chunk_id.startswith(changed.name)
        assert index.num_articles == first.articles
    finally:
        index.close()
    _consistent(settings)
    assert build_search_index(settings, cached).unchanged


_KILLABLE = """
import sys, time
import rag.index.postgres.build as pb
from rag.config import load_settings
pb.BATCH_SENTENCES = 20
settings = load_settings(config_file=None, environ={}, articles_dir=sys.argv[1], index_dir=sys.argv[2],
                         index_backend="postgres", database_url=sys.argv[3])
pb.build_postgres(settings, progress=lambda done, total: print(done, total, flush=True))
"""


def test_a_build_killed_with_sigkill_resumes_and_loses_nothing(tmp_path, pg_server, cached):  # noqa: F811
    settings = _copy(tmp_path, pg_server)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(settings.articles_dir), str(settings.index_dir),
                             settings.database_url], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    conn = connect(settings.database_url, autocommit=True)
    try:
        deadline = time.monotonic() + 240
        committed = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if conn.execute("SELECT to_regclass('rag_articles') IS NOT NULL").fetchone()[0]:
                committed = conn.execute("SELECT count(*) FROM rag_articles").fetchone()[0]
                if committed >= 1:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the build finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        after_kill = conn.execute("SELECT count(*) FROM rag_articles").fetchone()[0]
    finally:
        conn.close()
    assert 1 <= after_kill < 5
    _consistent(settings)  # what was committed is whole
    report = build_search_index(settings, cached)
    assert report.articles == 5 and len(report.added) == 5 - after_kill
    assert 0 < report.embedded < report.sentences  # the committed batches were not embedded again
    counts = _consistent(settings)
    assert counts["articles"] == 5


def test_readers_never_see_a_half_written_article(tmp_path, pg_server, cached, monkeypatch):  # noqa: F811
    import rag.index.postgres.build as pb

    monkeypatch.setattr(pb, "BATCH_SENTENCES", 10)
    settings = _copy(tmp_path, pg_server)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            build_search_index(settings, cached)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    build = threading.Thread(target=run)
    build.start()
    seen = set()
    while build.is_alive():
        try:
            conn = connect(settings.database_url)
        except DatabaseError:
            continue
        try:
            if conn.execute("SELECT to_regclass('rag_articles') IS NOT NULL").fetchone()[0]:
                # READ COMMITTED, like the backend: each statement sees whole batches only
                bad = conn.execute("SELECT count(*) FROM rag_articles a WHERE a.sentences != (SELECT count(*) FROM "
                                   "rag_sentences s WHERE s.article_id = a.id) OR a.chunks != (SELECT count(*) FROM "
                                   "rag_chunks c WHERE c.article_id = a.id)").fetchone()[0]
                assert bad == 0
                seen.add(conn.execute("SELECT count(*) FROM rag_articles").fetchone()[0])
        finally:
            conn.close()
        time.sleep(0.02)
    build.join()
    assert not errors
    assert len(seen) >= 2  # the reader did look while the batches went in
    _consistent(settings)


def test_mismatch_and_newer_schema_give_the_rebuild_hint(pg_bundled):
    other = pg_bundled.replace(chunk_max_chars=400)
    with pytest.raises(IndexMismatchError, match="chunking") as info:
        PostgresIndex(other)
    assert REBUILD_HINT in str(info.value)
    conn = connect(pg_bundled.database_url)
    try:
        with conn.transaction():
            conn.execute("UPDATE rag_meta SET value = '99' WHERE key = 'format_version'")
        with pytest.raises(IndexMismatchError, match="schema version 99") as info:
            PostgresIndex(pg_bundled)
        assert REBUILD_HINT in str(info.value)
    finally:
        with conn.transaction():
            conn.execute("UPDATE rag_meta SET value = '1' WHERE key = 'format_version'")
        conn.close()


def test_unreachable_database_wrong_password_and_no_pgvector_are_one_line(pg_server, tmp_path):  # noqa: F811
    from rag.index.postgres.server import free_port

    settings = make_settings(BUNDLED, tmp_path, index_backend="postgres",
                             database_url=f"postgresql://postgres:x@127.0.0.1:{free_port()}/rag")
    with pytest.raises(DatabaseError, match="cannot connect") as info:
        open_search_index(settings)
    assert "\n" not in str(info.value) and ":x@" not in str(info.value)
    wrong = settings.replace(database_url=pg_server.url(password="wrong-password"))
    with pytest.raises(DatabaseError, match="password authentication failed") as info:
        open_search_index(wrong)
    assert "wrong-password" not in str(info.value)
    # a role that may not create extensions, in a database without pgvector
    pg_server.psql("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plain') THEN "
                   "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'; END IF; END$$", "postgres")
    pg_server.psql("DROP DATABASE IF EXISTS novector", "postgres")
    pg_server.psql("CREATE DATABASE novector OWNER plain", "postgres")
    plain = settings.replace(database_url=f"postgresql://plain:plain-pw@127.0.0.1:{pg_server.port}/novector")
    with pytest.raises(DatabaseError, match="pgvector") as info:
        build_search_index(plain)
    assert "\n" not in str(info.value)
    assert issubclass(DatabaseError, RagError)


def test_cli_reports_a_down_database_in_one_line(tmp_path):
    from rag.index.postgres.server import free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_INDEX_BACKEND": "postgres",
           "RAG_DATABASE_URL": f"postgresql://postgres:secret@127.0.0.1:{free_port()}/rag"}
    result = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Who leads North Korea?"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect to the index database" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr


def test_sharded_over_three_servers_builds_and_answers_like_one_database(pg_bundled, cached, tmp_path):
    """bench/shards.py's layout: a coordinator and two shards, partitions as postgres_fdw foreign tables."""
    from bench.shards import create_sharded, rows_per_shard

    shutil.copytree(BUNDLED, tmp_path / "articles")
    base = make_settings(tmp_path / "articles", tmp_path / "index")
    setup, settings = create_sharded(base, cached.dimension, shards=2)
    try:
        report = build_search_index(settings, cached)
        assert report.articles == 5
        shares = rows_per_shard(setup)
        assert sum(s["articles"] for s in shares) == 5 and all(s["articles"] for s in shares)
        assert sum(s["sentences"] for s in shares) == report.sentences
        one, sharded = Assistant.from_settings(pg_bundled, encoder=cached), Assistant.from_settings(settings, encoder=cached)
        try:
            for line in DEV_QUESTIONS.read_text().splitlines()[:6]:
                question = json.loads(line)["question"]
                want, got = one.ask(question), sharded.ask(question)
                assert (got.text, got.quotes) == (want.text, want.quotes), question
        finally:
            one.close()
            sharded.close()
        gone = sorted((tmp_path / "articles").iterdir())[0]
        gone.unlink()
        assert build_search_index(settings, cached).removed == (gone.name,)
        assert sum(s["articles"] for s in rows_per_shard(setup)) == 4
        _consistent(settings)
    finally:
        setup.stop()


def test_cli_index_info_and_build_on_postgres(pg_bundled):
    from click.testing import CliRunner

    from rag.cli import main

    env = {"RAG_INDEX_BACKEND": "postgres", "RAG_DATABASE_URL": pg_bundled.database_url,
           "RAG_ARTICLES_DIR": str(pg_bundled.articles_dir)}
    result = CliRunner().invoke(main, ["index", "info", "--json"], env=env)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["articles"] == 5 and info["model"] == pg_bundled.embed_model and info["size_bytes"] > 0
    assert "***" in info["path"] and "rag-local" not in result.output
    result = CliRunner().invoke(main, ["index", "build"], env=env)
    assert result.exit_code == 0 and "up to date" in result.output, result.output
