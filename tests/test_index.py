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
from rag.index.build import build_index
from rag.index.local import Index, freshness, open_index
from rag.retrieve.hybrid import HybridRetriever
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
    hits = HybridRetriever(index, embedder, top_k=3).retrieve("Which river rose overnight?")
    assert hits[0].chunk.article_id == "new.txt"
    live = {segment["name"] for segment in index.manifest["segments"]}
    assert {p.name for p in settings.index_dir.glob("gen-*")} == live  # merged or replaced segments are gone


def test_save_then_load_gives_the_same_results(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    question = "How many troops did North Korea send?"
    first = HybridRetriever(Index.load(settings.index_dir, settings), embedder).retrieve(question)
    build_index(settings, embedder, rebuild=True)
    second = HybridRetriever(Index.load(settings.index_dir, settings), embedder).retrieve(question)
    assert [(p.chunk.id, p.rank) for p in first] == [(p.chunk.id, p.rank) for p in second]
    assert np.allclose([p.score for p in first], [p.score for p in second])


def test_killed_build_leaves_the_previous_index_loadable(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    before = HybridRetriever(Index.load(settings.index_dir, settings), embedder).retrieve("Who leads North Korea?")
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
    after = HybridRetriever(Index.load(settings.index_dir, settings), embedder).retrieve("Who leads North Korea?")
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
        db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (json.dumps(2),))  # the previous format
    with pytest.raises(IndexMismatchError, match="format version 2.*rag index build --rebuild"):
        Index.load(settings.index_dir, settings)
    report = build_index(settings, embedder)  # a plain build replaces it
    assert report.embedded == report.sentences > 0
    Index.load(settings.index_dir, settings).close()


def test_index_of_another_backend_is_refused(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    other = settings.replace(index_backend="postgres", database_url="postgresql://rag@127.0.0.1/none")
    with pytest.raises(IndexMismatchError, match="index backend 'local'.*'postgres'.*--rebuild"):
        Index.load(settings.index_dir, other)


@pytest.mark.parametrize("damage", ["catalog", "vectors", "segment", "rows"])
def test_corrupt_index_is_reported_not_crashed(tmp_path: Path, corpus: Path, embedder: Embedder, damage: str) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    gen = next(settings.index_dir.glob("gen-*"))
    if damage == "catalog":
        (settings.index_dir / "catalog.sqlite").write_bytes(b"{broken" * 100)
    elif damage == "vectors":
        (gen / "vectors.npy").write_bytes(b"not a numpy file")
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
    assert HybridRetriever(index, embedder).retrieve("anything at all") == ()


def _located(index: Index, query: np.ndarray, k: int) -> tuple[list[tuple[str, int, int]], np.ndarray]:
    """The k best sentences as (article id, start, end) and their scores: comparable across indexes whose row
    numbers differ."""
    found, scores = index.sentence_search(query, k)
    by_name = {segment.name: segment for segment in index.segments}
    out = []
    for name, row in found:
        segment = by_name[name]
        article_row, start, end = (int(x) for x in segment.sentences[row])
        out.append((segment.field(article_row, "id"), start, end))
    return out, scores


def test_delta_segment_tombstones_changed_and_removed_articles(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    (corpus / "tiny.txt").write_text("Ferry strike\nThe ferry crews in Kiel stopped work on Monday.\n", encoding="utf-8")
    report = build_index(settings, embedder)
    assert report.added == ("tiny.txt",) and not report.merged  # one short article: a small delta, no merge
    index = Index.load(settings.index_dir, settings)
    assert len(index.manifest["segments"]) == 2
    index.close()

    files = sorted(corpus.glob("00*.txt"))
    changed, removed = files[0], files[1]
    old_text = changed.read_text(encoding="utf-8")
    changed.write_text(old_text.replace(old_text.splitlines()[2][:40], "The harbour master counted nine herons"), encoding="utf-8")
    removed.unlink()
    report = build_index(settings, embedder)
    assert report.changed == (changed.name,) and report.removed == (removed.name,)
    index = Index.load(settings.index_dir, settings)
    ids = index.article_ids()
    assert len(ids) == len(set(ids)) == 5 and removed.name not in ids
    assert index.article(changed.name).text == changed.read_text(encoding="utf-8")
    assert index.article(removed.name) is None
    # the article list reads the same live articles, in the same order, without their text
    assert [(h.id, h.title, h.published_at) for h in index.article_headers()] == [
        (a.id, a.title, a.published_at) for a in map(index.article, ids)]
    retriever = HybridRetriever(index, embedder, top_k=8)
    for question in ("How many herons did the harbour master count?", old_text.splitlines()[2][:80], "ferry strike in Kiel"):
        for passage in retriever.retrieve(question):
            article = index.article(passage.chunk.article_id)
            assert article is not None and article.text[passage.chunk.start : passage.chunk.end] == passage.chunk.text
    assert retriever.retrieve("How many herons did the harbour master count?")[0].chunk.article_id == changed.name

    # the same articles built from scratch: dense search finds the same sentences with the same scores
    fresh_settings = make_settings(corpus, tmp_path / "fresh")
    build_index(fresh_settings, embedder)
    fresh = Index.load(fresh_settings.index_dir, fresh_settings)
    query = embedder.encode_query("Who leads North Korea?")
    located, scores = _located(index, query, 20)
    fresh_located, fresh_scores = _located(fresh, query, 20)
    assert located == fresh_located
    np.testing.assert_allclose(scores, fresh_scores, rtol=1e-5)
    assert [h.chunk_id for h in index.dense_search(query, 20)] == [h.chunk_id for h in fresh.dense_search(query, 20)]
    assert index.num_chunks == fresh.num_chunks and index.num_articles == fresh.num_articles


def test_merges_keep_few_segments_and_reuse_stored_vectors(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    towns = ["Tromso", "Bergen", "Lyon", "Porto", "Gdansk", "Valletta"]
    for i, town in enumerate(towns):
        (corpus / f"update_{i}.txt").write_text(
            f"Update {i}\n" + " ".join(f"The council of {town} approved budget line {j}." for j in range(3 + 4 * i)),
            encoding="utf-8",
        )
        report = build_index(settings, embedder)
        assert report.embedded == len(Index.load(settings.index_dir, settings).article_vectors(f"update_{i}.txt"))
    index = Index.load(settings.index_dir, settings)
    assert len(index.manifest["segments"]) <= 3
    assert {p.name for p in settings.index_dir.glob("gen-*")} == {s["name"] for s in index.manifest["segments"]}
    assert sorted(index.article_ids()) == sorted(p.name for p in corpus.iterdir())
    hits = HybridRetriever(index, embedder, top_k=3).retrieve("What did the council of Gdansk approve?")
    assert hits[0].chunk.article_id == "update_4.txt"


def test_large_segments_get_an_approximate_index_that_finds_what_exact_search_finds(
    tmp_path: Path, corpus: Path, embedder: Embedder
) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    report = build_index(settings, embedder, exact_max=50)  # tiny threshold so five articles count as "large"
    index = Index.load(settings.index_dir, settings)
    assert [s["kind"] for s in index.manifest["segments"]] == ["ivf-sq8r"] and report.sentences > 50
    exact_settings = make_settings(corpus, tmp_path / "exact")
    build_index(exact_settings, embedder)
    exact = Index.load(exact_settings.index_dir, exact_settings)
    assert [s["kind"] for s in exact.manifest["segments"]] == ["flat"]
    # one copy of the vectors each: float32 searched in place when flat, only the 8-bit codes when large
    (big,), (small,) = index.segments, exact.segments
    assert big.vectors is None and (big.path / "vectors.faiss").exists()
    assert not (big.path / "vectors.npy").exists() and not (big.path / "vectors.build.npy").exists()
    assert small.vectors.dtype == np.float32 and not (small.path / "vectors.faiss").exists()
    # the codes decode to within ~1e-2 of the vectors they were made from
    np.testing.assert_allclose(big.dense.rows(0, report.sentences), small.dense.rows(0, report.sentences), atol=2e-2)
    overlap = []
    for question in ("Who leads North Korea?", "How many troops were sent?", "What happened to the economy?"):
        query = embedder.encode_query(question)
        got, got_scores = _located(index, query, 10)
        want, _ = _located(exact, query, 10)
        overlap.append(len(set(got) & set(want)) / 10)
        # results are scored by the codes: the same scores a passage's sentences get from the decoded vectors
        rows = [row for _, row in index.sentence_search(query, 10)[0]]
        np.testing.assert_allclose(got_scores, [big.dense.scores(r, 1, query)[0] for r in rows], atol=1e-4)
    assert min(overlap) >= 0.9


def test_killed_build_resumes_without_re_embedding_finished_batches(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    for i in range(60):
        sentences = " ".join(f"Dispatch {i} line {j} reports figure {i * 100 + j} from harbour {j}." for j in range(60))
        (corpus / f"bulk_{i:02d}.txt").write_text(f"Bulk {i}\n{sentences}\n", encoding="utf-8")
    env = {**os.environ, "RAG_ARTICLES_DIR": str(corpus), "RAG_INDEX_DIR": str(settings.index_dir), "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "index", "build"], env=env, stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, cwd=tmp_path)
    scratch = settings.index_dir / ".scratch"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not list(scratch.glob("*[0-9a-f].npy")):
            time.sleep(0.05)
        assert proc.poll() is None, "the build ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    Index.load(settings.index_dir, settings).close()  # the previous index is intact
    report = build_index(settings, embedder)
    new_sentences = report.embedded + report.resumed
    assert report.resumed >= 10 * 61 and report.embedded > 0  # whole batches came back from the scratch area
    assert new_sentences == 60 * 61 and len(report.added) == 60 and not scratch.exists()
    index = Index.load(settings.index_dir, settings)
    segment = next(s for s in index.segments if s.find("bulk_00.txt") is not None)
    first = segment.article_parts(segment.find("bulk_00.txt")).spans
    text = (corpus / "bulk_00.txt").read_text(encoding="utf-8")
    np.testing.assert_allclose(index.article_vectors("bulk_00.txt"), embedder.encode_documents([text[s:e] for s, e in first]), atol=1e-5)


def test_touching_a_file_re_embeds_nothing(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    settings = make_settings(corpus, tmp_path / "index")
    build_index(settings, embedder)
    path = next(corpus.glob("*.txt"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    report = build_index(settings, embedder)
    assert report.embedded == 0 and not report.changed and not freshness(settings).stale


def test_index_of_the_old_single_generation_layout_is_refused(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    index_dir = tmp_path / "index"
    (index_dir / "gen-000001").mkdir(parents=True)
    (index_dir / "CURRENT").write_text("gen-000001")
    settings = make_settings(corpus, index_dir, auto_build=False)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        Index.load(index_dir, settings)
    build_index(settings, embedder)  # a build replaces it
    assert not (index_dir / "CURRENT").exists() and not (index_dir / "gen-000001").exists()
    Index.load(index_dir, settings).close()


def test_unreadable_files_are_reported_by_the_build_and_stay_reported(tmp_path: Path, corpus: Path, embedder: Embedder) -> None:
    (corpus / "nested" / "deeper").mkdir(parents=True)
    (corpus / "nested" / "deeper" / "inner.txt").write_text("Harbour news\nThe ferry to Skye left at dawn.\n", encoding="utf-8")
    (corpus / "gone.txt").symlink_to(tmp_path / "missing-target.txt")  # dangling: cannot even be stat'ed
    (corpus / ".hidden.txt").write_text("Hidden\nNever indexed.\n", encoding="utf-8")
    settings = make_settings(corpus, tmp_path / "index")

    first = build_index(settings, embedder)
    assert [s.path for s in first.skipped if s.path.endswith("gone.txt")], first.skipped
    index = Index.load(settings.index_dir, settings)
    assert "nested/deeper/inner.txt" in index.article_ids() and ".hidden.txt" not in index.article_ids()
    index.close()

    again = build_index(settings, embedder)  # nothing changed: still reported, nothing re-read
    assert again.unchanged and [s.path for s in again.skipped if s.path.endswith("gone.txt")]
    assert not freshness(settings).stale
