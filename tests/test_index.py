"""The index on disk: incremental builds, crash safety, mismatches, corruption, save -> load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.config import PROJECT_ROOT
from rag.embed import Embedder
from rag.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from rag.index import Index, build_index, freshness, open_index
from rag.retrieve import Retriever
from tests.conftest import BUNDLED, make_settings


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    shutil.copytree(BUNDLED, folder)
    return folder


def test_incremental_build_embeds_only_what_changed(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    first = build_index(settings, embedder)
    assert first.embedded == first.sentences > 0 and len(first.added) == 5

    again = build_index(settings, embedder)
    assert again.unchanged and again.embedded == 0

    (corpus / "new.txt").write_text("Flood warning\nThe river rose four metres overnight in Dresden.\n", encoding="utf-8")
    changed_path = sorted(corpus.glob("00*.txt"))[0]
    changed_path.write_text(changed_path.read_text(encoding="utf-8") + "\nA new closing sentence was added.\n", encoding="utf-8")
    removed_path = sorted(corpus.glob("00*.txt"))[1]
    removed_path.unlink()
    before = Index.load(settings.index_dir, settings)
    unchanged_id = sorted(corpus.glob("00*.txt"))[-1].name
    old_vectors = before.article_vectors(unchanged_id)
    before.close()

    report = build_index(settings, embedder)
    assert report.added == ("new.txt",)
    assert report.changed == (changed_path.name,)
    assert report.removed == (removed_path.name,)
    index = Index.load(settings.index_dir, settings)
    new_sentences = len(index.article_vectors("new.txt"))
    changed_sentences = len(index.article_vectors(changed_path.name))
    assert report.embedded == new_sentences + changed_sentences
    assert removed_path.name not in index.article_ids()
    np.testing.assert_array_equal(index.article_vectors(unchanged_id), old_vectors)
    hits = Retriever(index, embedder, top_k=3).retrieve("Which river rose overnight?")
    assert hits[0].chunk.article_id == "new.txt"
    live = {segment["name"] for segment in index.manifest["segments"]}
    assert {p.name for p in settings.index_dir.glob("gen-*")} == live  # merged or replaced segments are gone


def test_save_then_load_gives_the_same_results(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    question = "How many troops did North Korea send?"
    first = Retriever(Index.load(settings.index_dir, settings), embedder).retrieve(question)
    build_index(settings, embedder, rebuild=True)
    second = Retriever(Index.load(settings.index_dir, settings), embedder).retrieve(question)
    assert [(p.chunk.id, p.rank) for p in first] == [(p.chunk.id, p.rank) for p in second]
    assert np.allclose([p.score for p in first], [p.score for p in second])


def test_killed_build_leaves_the_previous_index_loadable(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    before = Retriever(Index.load(settings.index_dir, settings), embedder).retrieve("Who leads North Korea?")
    # Enough new text that embedding takes a while, so the kill lands mid-build.
    for i in range(40):
        sentences = " ".join(f"Report {i} sentence {j} describes event number {i * 100 + j} in town {j}." for j in range(60))
        (corpus / f"bulk_{i:02d}.txt").write_text(f"Bulk {i}\n{sentences}\n", encoding="utf-8")
    env = {**os.environ, "RAG_ARTICLES_DIR": str(corpus), "RAG_INDEX_DIR": str(settings.index_dir), "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "index", "build"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        cwd=tmp_path, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "Embedding" not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += proc.stderr.readline()
        assert proc.poll() is None, f"the build ended before it could be killed: {seen}"
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = Retriever(Index.load(settings.index_dir, settings), embedder).retrieve("Who leads North Korea?")
    assert [p.chunk.id for p in after] == [p.chunk.id for p in before]
    assert freshness(settings).stale  # the new articles are still waiting


def test_half_written_generation_is_ignored_and_cleaned(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    junk = settings.index_dir / "gen-999999"
    junk.mkdir()
    (junk / "vectors.faiss").write_bytes(b"partial")
    Index.load(settings.index_dir, settings).close()  # the live generation is untouched
    (corpus / "extra.txt").write_text("Extra\nOne more article about elections.\n", encoding="utf-8")
    build_index(settings, embedder)
    assert [p.name for p in settings.index_dir.glob("gen-*")] != ["gen-999999"]
    assert not junk.exists()
    Index.load(settings.index_dir, settings).close()


def test_index_built_by_another_model_is_refused_with_a_rebuild_hint(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    other = settings.replace(embed_model="some/other-model")
    with pytest.raises(IndexMismatchError, match="rag index build --rebuild"):
        Index.load(settings.index_dir, other)
    with pytest.raises(IndexMismatchError):
        open_index(other, embedder)


def test_index_of_another_format_version_is_refused(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    with sqlite3.connect(settings.index_dir / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (json.dumps(999),))
    with pytest.raises(IndexMismatchError, match="format version"):
        Index.load(settings.index_dir, settings)


@pytest.mark.parametrize("damage", ["catalog", "vectors", "segment", "rows"])
def test_corrupt_index_is_reported_not_crashed(tmp_path: Path, corpus: Path, embedder: Embedder, damage: str) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    gen = next(settings.index_dir.glob("gen-*"))
    if damage == "catalog":
        (settings.index_dir / "catalog.sqlite").write_bytes(b"{broken" * 100)
    elif damage == "vectors":
        (gen / "vectors.faiss").write_bytes(b"not a faiss file")
    elif damage == "segment":
        shutil.rmtree(gen)
    else:
        np.save(gen / "sentences.npy", np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        Index.load(settings.index_dir, settings)
    build_index(settings, embedder, rebuild=True)  # and a rebuild repairs it
    Index.load(settings.index_dir, settings).close()


def test_missing_index_without_auto_build(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index", auto_build=False)
    with pytest.raises(IndexMissingError, match="rag index build"):
        open_index(settings, embedder)


def test_open_index_builds_when_missing_and_updates_when_stale(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    assert not freshness(settings).exists
    index = open_index(settings, embedder)
    assert index.num_articles == 5 and not freshness(settings).stale
    (corpus / "late.md").write_text("# Late news\n\nA late article about a ferry strike.\n", encoding="utf-8")
    assert freshness(settings).stale
    assert "late.md" in open_index(settings, embedder).article_ids()


def test_empty_folder_gives_an_empty_but_valid_index(tmp_path: Path, embedder: Embedder) -> None:
    (tmp_path / "empty").mkdir()
    settings = make_settings(tmp_path / "empty", tmp_path / "index")
    report = build_index(settings, embedder)
    assert report.articles == 0
    index = Index.load(settings.index_dir, settings)
    assert Retriever(index, embedder).retrieve("anything at all") == ()
