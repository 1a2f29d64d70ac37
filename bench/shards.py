"""Sharding the postgres backend across servers: a coordinator and N shards on this machine, the article,
chunk and sentence tables hash-partitioned by article id with every partition on a shard (postgres_fdw
foreign tables), and the unchanged backend code building and answering against the coordinator.

    python -m bench.shards                       # 3 servers, the bundled articles, the dev questions
    python -m bench.shards --articles DIR --shards 2 --keep

Layout: each shard holds real tables rag_{articles,chunks,sentences,postings}_pN with their own indexes (primary keys,
GIN on the terms, HNSW on the vectors, the postings' term index); the coordinator holds the partitioned parents (no indexes: a foreign
partition has none), the small tables (rag_meta, rag_files, rag_terms) and the article sequence. All rows of
one article land on one shard (the same hash of the same article id in the three tables). The chunk terms are
a tsvector computed by the builder in Python, not a generated column, so they arrive intact on the shards
(a generated column on the coordinator would reach them NULL; a shard would have to compute its own).

What this does NOT give: no atomic commit across shards (postgres_fdw commits each shard's part of a batch
one after the other and then the coordinator's, without two-phase commit: a crash in between can leave a
batch on some shards only, with the coordinator's counts and term frequencies not matching; `rag index build
--rebuild` is the repair); no rebalancing (the modulus is fixed when the tables are made; adding a shard means
re-partitioning); no replication or failover of a shard; the coordinator merges every shard's top-k itself. Citus (distributed tables with the same schema, 2PC, rebalancer) or a managed PostgreSQL with
pgvector is the production route; this script shows the schema and the code already work that way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rag.config import PROJECT_ROOT, Settings, load_settings
from rag.index.postgres.schema import connect, ensure_extension, write_meta
from rag.index.postgres.server import LocalServer, start, stop

DEV = PROJECT_ROOT.parent / "shared" / "eval" / "seed_questions_dev.jsonl"


def _shard_ddl(i: int, dim: int) -> list[str]:
    return [
        f"CREATE TABLE rag_articles_p{i} (id text PRIMARY KEY, file text NOT NULL, seq bigint NOT NULL, title text NOT NULL, "
        "path text NOT NULL, url text NOT NULL, published_at text NOT NULL, source text NOT NULL, text text NOT NULL, "
        "hash text NOT NULL, chunks int NOT NULL, sentences int NOT NULL)",
        f"CREATE INDEX ON rag_articles_p{i} (file)",
        f"CREATE TABLE rag_chunks_p{i} (article_id text NOT NULL, ord int NOT NULL, id text NOT NULL, seq bigint NOT NULL, "
        "start int NOT NULL, stop int NOT NULL, first_sentence int NOT NULL, last_sentence int NOT NULL, "
        "length int NOT NULL, terms tsvector NOT NULL, PRIMARY KEY (article_id, ord))",
        f"CREATE INDEX ON rag_chunks_p{i} (id)",
        f"CREATE INDEX ON rag_chunks_p{i} USING gin (terms)",
        f"CREATE TABLE rag_sentences_p{i} (article_id text NOT NULL, ord int NOT NULL, seq bigint NOT NULL, "
        f"start int NOT NULL, stop int NOT NULL, embedding vector({dim}) NOT NULL, PRIMARY KEY (article_id, ord))",
        f"CREATE INDEX ON rag_sentences_p{i} USING hnsw (embedding vector_ip_ops)",
        f"CREATE TABLE rag_postings_p{i} (article_id text NOT NULL, ord int NOT NULL, term text NOT NULL, tf int NOT NULL, "
        "length int NOT NULL, chunk_id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (article_id, ord, term))",
        f"CREATE INDEX ON rag_postings_p{i} (term) INCLUDE (tf, length, chunk_id, seq, ord)",
    ]


_PARENTS = {
    "rag_articles": ("(id text, file text, seq bigint, title text, path text, url text, published_at text, source text, "
                     "text text, hash text, chunks int, sentences int)", "id"),
    "rag_chunks": ("(article_id text, ord int, id text, seq bigint, start int, stop int, first_sentence int, "
                   "last_sentence int, length int, terms tsvector)", "article_id"),
    "rag_sentences": ("(article_id text, ord int, seq bigint, start int, stop int, embedding vector({dim}))", "article_id"),
    "rag_postings": ("(article_id text, ord int, term text, tf int, length int, chunk_id text, seq bigint)", "article_id"),
}


@dataclass(frozen=True, slots=True)
class ShardedSetup:
    coordinator: LocalServer
    shards: tuple[LocalServer, ...]

    def stop(self) -> None:
        for server in (self.coordinator, *self.shards):
            stop(server.data_dir, remove=True)


def create_sharded(settings: Settings, dim: int, shards: int = 2, root: Path | None = None) -> tuple[ShardedSetup, Settings]:
    """Start a coordinator and `shards` shard servers, make the partitioned schema; the settings for the coordinator."""
    root = Path(tempfile.mkdtemp(prefix="ragshards-")) if root is None else root
    root.chmod(0o755)
    servers: list[LocalServer] = []
    try:
        for i in range(shards + 1):
            servers.append(start(root / f"server{i}", settings={"fsync": "off"}))
        coordinator, members = servers[0], tuple(servers[1:])
        for i, shard in enumerate(members):
            for statement in _shard_ddl(i, dim):
                shard.psql(statement)
            shard.psql("ALTER DATABASE rag SET hnsw.ef_search = 200")
        url = coordinator.url()
        conn = connect(url)
        try:
            ensure_extension(conn)
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
                for i, shard in enumerate(members):
                    conn.execute(f"CREATE SERVER shard{i} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', "
                                 f"port '{shard.port}', dbname 'rag', extensions 'vector', fetch_size '1000', "
                                 "async_capable 'true', batch_size '500')")
                    conn.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER shard{i} OPTIONS (user 'postgres', "
                                 f"password '{shard.password}')")
                for table, (columns, key) in _PARENTS.items():
                    conn.execute(f"CREATE TABLE {table} {columns.format(dim=dim)} PARTITION BY HASH ({key})")
                    for i in range(len(members)):
                        conn.execute(f"CREATE FOREIGN TABLE {table}_p{i} PARTITION OF {table} FOR VALUES WITH "
                                     f"(MODULUS {len(members)}, REMAINDER {i}) SERVER shard{i} OPTIONS "
                                     f"(table_name '{table}_p{i}')")
                conn.execute("CREATE TABLE rag_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
                conn.execute("CREATE TABLE rag_files (fid text PRIMARY KEY, size bigint NOT NULL, mtime_ns bigint NOT NULL, "
                             "sha256 text NOT NULL, skipped jsonb)")
                conn.execute("CREATE TABLE rag_terms (term text PRIMARY KEY, df int NOT NULL)")
                conn.execute("CREATE SEQUENCE rag_article_seq")
                write_meta(conn, settings.replace(index_backend="postgres", database_url=url), dim)
        finally:
            conn.close()
    except BaseException:
        for server in servers:
            stop(server.data_dir, remove=True)
        raise
    return ShardedSetup(coordinator, members), settings.replace(index_backend="postgres", database_url=url)


def rows_per_shard(setup: ShardedSetup) -> list[dict[str, int]]:
    out = []
    for i, shard in enumerate(setup.shards):
        counts = shard.psql(f"SELECT (SELECT count(*) FROM rag_articles_p{i}), (SELECT count(*) FROM rag_chunks_p{i}), "
                            f"(SELECT count(*) FROM rag_sentences_p{i})").strip().split("|")
        out.append(dict(zip(("articles", "chunks", "sentences"), map(int, counts), strict=True)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build and query the postgres backend sharded over local servers.")
    parser.add_argument("--articles", type=Path, default=PROJECT_ROOT / "articles")
    parser.add_argument("--questions", type=Path, default=DEV if DEV.exists() else PROJECT_ROOT / "tests" / "data" / "seed_questions_dev.jsonl")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the servers running and print the URL")
    args = parser.parse_args(argv)
    from rag.embed import Embedder
    from rag.index.factory import build_search_index
    from rag.pipeline import Assistant

    work = Path(tempfile.mkdtemp(prefix="ragshards-run-"))
    base = load_settings(config_file=None, environ={}, answer_mode="extractive", articles_dir=args.articles, index_dir=work / "local")
    encoder = Embedder(base.embed_model, base.embed_batch_size)
    started = time.perf_counter()
    setup, settings = create_sharded(base, encoder.dimension, args.shards, work / "servers")
    print(f"started {1 + args.shards} servers and made the schema in {time.perf_counter() - started:.1f} s")
    try:
        report = build_search_index(settings, encoder)
        print(f"built through the coordinator: {report.articles} articles, {report.sentences} sentences in {report.seconds:.1f} s")
        print("rows per shard:", json.dumps(rows_per_shard(setup)))
        build_search_index(base, encoder)
        local, sharded = Assistant.from_settings(base, encoder=encoder), Assistant.from_settings(settings, encoder=encoder)
        same = total = 0
        for line in args.questions.read_text().splitlines():
            if not line.strip():
                continue
            question = json.loads(line)["question"]
            a, b = local.ask(question), sharded.ask(question)
            total += 1
            if (a.text, a.quotes) == (b.text, b.quotes):
                same += 1
            else:
                print(f"differs: {question!r}\n  local:   {a.text}\n  sharded: {b.text}")
        print(f"same answer as the local index: {same}/{total}")
        local.close()
        sharded.close()
        if args.keep:
            print(f"RAG_INDEX_BACKEND=postgres RAG_DATABASE_URL={settings.database_url}")
            return 0
        return 0 if same == total else 1
    finally:
        if not args.keep:
            setup.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
