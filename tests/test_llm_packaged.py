"""The packaged model: joining its slices into the cache, the sha256 pin, and a few answers from the real model.

The assembly tests build small stand-in part packages in `tmp_path` (real files, real imports) so they run
without the 1.1 GB model. The last tests run the packaged Qwen2.5-Coder-1.5B-Instruct with llama.cpp, as a
user gets it after `make llm`; each generation costs seconds on two shared cores, so they are few and short.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import time

import pytest

from rag.answer.local_model import QWEN_1_5B, PackagedModel, cache_dir, packaged_gguf, part_paths
from rag.errors import LlmError
from tests.conftest import DEV_QUESTIONS


def fake_model(tmp_path, monkeypatch, slices: list[bytes], pinned: bytes | None = None) -> PackagedModel:
    """Part packages `fakepart{i}` holding `slices`, importable from tmp_path; pinned to `pinned` (their join)."""
    root = tmp_path / "site"
    for i, data in enumerate(slices, 1):
        folder = root / f"fakepart{i}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    whole = b"".join(slices) if pinned is None else pinned
    return PackagedModel("fake model", "fakepart", len(slices), len(whole), hashlib.sha256(whole).hexdigest(), "fake.gguf")


def test_the_parts_are_joined_once_into_the_cache_and_checked(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path, monkeypatch, [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7])
    cache = tmp_path / "cache"
    path = packaged_gguf(model, cache)
    assert path == cache / "fake.gguf" and path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50 + b"c" * 7
    assert [p.name for p in cache.iterdir()] == ["fake.gguf"]  # no partial file left behind
    stamp = path.stat().st_mtime_ns
    assert packaged_gguf(model, cache) == path and path.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_a_cached_file_that_does_not_match_the_pin_is_refused(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path, monkeypatch, [b"GGUF1234", b"5678"])
    path = packaged_gguf(model, tmp_path / "cache")
    path.write_bytes(b"GGUF1234567X")  # same size, one byte changed
    with pytest.raises(LlmError, match="does not match its pinned sha256.*delete the file"):
        packaged_gguf(model, tmp_path / "cache")


def test_parts_that_join_to_the_wrong_file_are_refused(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path, monkeypatch, [b"GGUF1234", b"5678"], pinned=b"GGUF12345679")
    with pytest.raises(LlmError, match="do(es)? not match its pinned sha256"):
        packaged_gguf(model, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written stays in the cache


def test_a_missing_part_says_how_to_install_the_model(tmp_path, monkeypatch) -> None:
    model = fake_model(tmp_path, monkeypatch, [b"GGUF", b"x"])
    missing = PackagedModel(model.name, model.package, 3, 6, model.sha256, "fake.gguf")
    with pytest.raises(LlmError, match=r"fakepart3 is missing.*make llm"):
        part_paths(missing)


def test_the_cache_folder_follows_the_environment(tmp_path) -> None:
    assert cache_dir({"RAG_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "newsrag"
    assert cache_dir({}).parts[-2:] == (".cache", "newsrag")


# ---------------------------------------------------------------- the real packaged model (after `make llm`)

def _installed() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (make llm)"
    try:
        part_paths(QWEN_1_5B)
    except LlmError as exc:
        return str(exc)
    return None


real = pytest.mark.skipif(_installed() is not None, reason=_installed() or "")


@pytest.fixture(scope="module")
def qwen(bundled_settings, embedder):
    from rag.pipeline import Assistant

    settings = bundled_settings.replace(answer_mode="llm", llm_max_tokens=80, llm_timeout=900)  # a loaded CI machine is slow
    assistant = Assistant.from_settings(settings, encoder=embedder)
    assistant.llm_reader()  # assembled (first time only), checked and loaded once for the module
    return assistant


def _dev(count: int) -> list[str]:
    rows = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("answers") and not r.get("history")][:count]


@pytest.mark.llm
@real
def test_the_packaged_model_answers_with_verified_quotes_streamed(qwen) -> None:
    question = _dev(1)[0]
    events = list(qwen.ask_stream(question))
    first, final = events[0].answer, events[-1].answer
    assert first.mode == "extractive" and not events[0].final and events[-1].final
    assert final.mode in ("llm", "extractive")
    for answer in (e.answer for e in events):
        assert all(qwen.verify(q) for q in answer.quotes)
        assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= {q.n for q in answer.quotes}
    if final.mode == "llm":  # every sentence the model kept carries a verbatim quote of where its [n] points
        assert final.quotes  # a quoted or a passage-supported sentence, cited where its quote was found
        for draft in (e.answer for e in events[1:-1]):
            assert draft.mode == "extractive" or final.text.startswith(draft.text)
    assert qwen.ask(question, mode="llm").text == final.text  # greedy: ask is the stream's last event


@pytest.mark.llm
@real
def test_the_timeout_stops_the_model_while_it_reads_the_prompt(qwen) -> None:
    """One second is far less than reading three passages takes here (~8 s): the abort callback must stop it."""
    reader = qwen.llm_reader()
    old = reader.settings
    reader.settings = old.replace(llm_timeout=1)
    try:
        started = time.monotonic()
        answer = qwen.ask(_dev(2)[1])
        elapsed = time.monotonic() - started
    finally:
        reader.settings = old
    assert answer.mode == "extractive" and any("did not answer within 1 s" in n for n in answer.notes), answer.notes
    assert elapsed < 6, f"the model was not stopped in time ({elapsed:.1f} s)"
    assert not reader.busy
    after = qwen.ask(_dev(1)[0])  # the model still answers normally after an abort
    assert all(qwen.verify(q) for q in after.quotes) and not any("did not answer" in n for n in after.notes)


@pytest.mark.llm
@real
def test_an_unanswerable_question_gets_no_unquoted_claim(qwen) -> None:
    answer = qwen.ask("What is the population of Kyiv?")
    assert all(qwen.verify(q) for q in answer.quotes)
    if answer.mode == "llm":
        assert not re.search(r"\d{4,}|\d+ (?:million|thousand)", re.sub(r"“[^”]*”|\"[^\"]*\"", "", answer.text))


def test_the_installed_parts_add_up_to_the_pinned_size() -> None:
    try:
        paths = part_paths(QWEN_1_5B)
    except LlmError as exc:
        pytest.skip(str(exc))
    assert sum(p.stat().st_size for p in paths) == QWEN_1_5B.size
