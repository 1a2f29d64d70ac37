"""The LLM answer mode over the OpenAI-compatible protocol, plus prompts and settings.

No real model server can be installed here, so tests/llm_support.py holds a small HTTP server of our own that
speaks the OpenAI chat-completions protocol, streamed or not (the one stand-in this feature allows). Its replies
are built from the passages it is sent, so nothing depends on a known question; the client is llama-index's real
`OpenAILike`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from rag.answer.llm import EXTRACTIVE_DRAFT_NOTE, Prompt, build_llm, load_prompt
from rag.cli import main
from rag.config import Settings, load_settings
from rag.errors import LlmError, PromptError, SettingsError
from rag.pipeline import Assistant
from tests.llm_support import model_server, url_of

QUESTION = "In which region are the North Korean troops fighting?"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with model_server() as httpd:
        yield httpd


def llm_assistant(base: Settings, embedder, url: str, model: str, **changes: object) -> Assistant:
    settings = base.replace(answer_mode="llm", llm_base_url=url, llm_model=model, llm_api_key="sk-secret-123", llm_timeout=1, **changes)
    assistant = Assistant.from_settings(settings, encoder=embedder)
    return assistant


def test_a_guarded_answer_from_an_openai_compatible_server(server, bundled_settings, embedder) -> None:
    assistant = llm_assistant(bundled_settings, embedder, url_of(server), "echo")
    answer = assistant.ask(QUESTION)
    assert answer.mode == "llm"
    assert answer.guard["markers_checked"] == 3 and answer.guard["quotes_checked"] == 2
    assert answer.guard["markers_removed"] >= 1  # the [9]
    assert "[9]" not in answer.text
    assert answer.quotes and all(assistant.verify(q) for q in answer.quotes)
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= {q.n for q in answer.quotes}
    assert answer.notes[0].startswith("citation guard:")
    request = server.requests[-1]
    assert request["path"].endswith("/chat/completions")
    assert request["auth"] == "Bearer sk-secret-123"
    assert [m["role"] for m in request["body"]["messages"]] == ["system", "user", "assistant", "user"]  # one example
    assert "sk-secret-123" not in json.dumps(answer.to_dict()) and "sk-secret-123" not in repr(assistant.settings)


def test_an_answer_that_fails_the_guard_falls_back_to_the_extractive_answer(server, bundled_settings, embedder) -> None:
    answer = llm_assistant(bundled_settings, embedder, url_of(server), "uncited").ask(QUESTION)
    assert answer.mode == "extractive"
    assert any("had a quote that checks out" in note for note in answer.notes)
    assert answer.text and "Europe" not in answer.text


@pytest.mark.parametrize(
    ("model", "why"),
    [("slow", "did not answer within 1 s"), ("garbage", "language model failed"), ("no-choices", "language model failed")],
)
def test_timeouts_and_malformed_replies_fall_back(server, bundled_settings, embedder, model: str, why: str) -> None:
    answer = llm_assistant(bundled_settings, embedder, url_of(server), model).ask(QUESTION)
    assert answer.mode == "extractive"
    assert any(why in note for note in answer.notes), answer.notes
    assert answer.quotes or answer.abstained


def test_an_unreachable_server_falls_back(bundled_settings, embedder) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = llm_assistant(bundled_settings, embedder, f"http://127.0.0.1:{port}/v1", "echo").ask(QUESTION)
    assert answer.mode == "extractive"
    assert any("could not be reached" in note for note in answer.notes), answer.notes


def test_rag_ask_mode_llm_on_the_command_line(server, bundled_settings, monkeypatch) -> None:
    for name, value in {"RAG_LLM_BASE_URL": url_of(server), "RAG_LLM_MODEL": "echo", "RAG_LLM_API_KEY": "sk-secret-123"}.items():
        monkeypatch.setenv(name, value)
    args = ["ask", QUESTION, "--mode", "llm", "--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["mode"] == "llm" and data["guard"]["markers_checked"] == 3
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0 and "written by a language model" in text.output
    assert "sk-secret-123" not in result.output + text.output


def test_llm_mode_with_an_unusable_model_is_a_clean_error(bundled_settings, monkeypatch) -> None:
    for name in ("RAG_LLM_BASE_URL", "RAG_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_LLM_PATH", "/nonexistent/model.gguf")
    args = ["ask", QUESTION, "--mode", "llm", "--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
    with pytest.raises(LlmError, match="does not exist"):
        build_llm(load_settings(config_file=None, environ={}, llm_path="/nonexistent/model.gguf"))
    with pytest.raises(LlmError, match="llm_model"):
        build_llm(load_settings(config_file=None, environ={}, llm_base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(SettingsError, match="llm_runtime"):
        load_settings(config_file=None, environ={"RAG_LLM_RUNTIME": "vllm"})


def test_settings_for_the_llm_mode() -> None:
    settings = load_settings(config_file=None, environ={"RAG_ANSWER_MODE": "llm", "RAG_LLM_TIMEOUT": "5", "RAG_LLM_API_KEY": "k-123"})
    assert settings.answer_mode == "llm" and settings.llm_timeout == 5 and settings.llm_api_key == "k-123"
    assert "k-123" not in repr(settings)
    with pytest.raises(SettingsError, match="answer_mode"):
        load_settings(config_file=None, environ={"RAG_ANSWER_MODE": "poetry"})
    with pytest.raises(SettingsError, match="llm_max_tokens"):
        load_settings(config_file=None, environ={}, llm_max_tokens=0)


def test_prompt_templates_fill_and_refuse_a_missing_variable(tmp_path) -> None:
    answer = load_prompt("answer")
    filled = answer.fill(passages="[1] (T) a {brace} and $dollar", question="Q?")
    assert "[1] (T) a {brace} and $dollar" in filled and "Q?" in filled
    with pytest.raises(PromptError, match=r"\$question"):
        answer.fill(passages="p")
    assert load_prompt("condense").fill(history="- a", question="b")
    assert load_prompt("system").fill()
    with pytest.raises(PromptError, match="cannot read"):
        load_prompt("nope", tmp_path)
    with pytest.raises(PromptError, match="bad placeholder"):
        Prompt("x", "cost: $").fill()


# ---------------------------------------------------------------- streaming: verified sentences as they arrive

QUOTED = re.compile(r"[\"“]([^\"“”]+)[\"”]")


def assert_only_verified(assistant: Assistant, answer) -> None:
    """Every quote is its article's text at its offsets, every [n] names one, every quoted span is article text."""
    assert all(assistant.verify(q) for q in answer.quotes)
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= {q.n for q in answer.quotes}
    texts = [assistant.index.article(i).text for i in assistant.index.article_ids()]
    for inner in QUOTED.findall(answer.text):
        assert any(" ".join(inner.split()).strip(" .,;:!?") in " ".join(t.split()) for t in texts), inner


def test_a_multi_sentence_reply_streams_drafts_then_the_final_answer(server, bundled_settings, embedder) -> None:
    assistant = llm_assistant(bundled_settings, embedder, url_of(server), "echo")
    events = list(assistant.ask_stream(QUESTION))
    assert server.requests[-1]["body"].get("stream") is True  # llama-index asked for Server-Sent Events
    assert len(events) > 1 and [e.final for e in events] == [False] * (len(events) - 1) + [True]
    final = events[-1].answer
    assert final.mode == "llm"
    first = events[0].answer  # the extractive answer, at once and labelled as such
    extractive = assistant.ask(QUESTION, mode="extractive")
    assert first.mode == "extractive" and EXTRACTIVE_DRAFT_NOTE in first.notes
    assert (first.text, first.quotes) == (extractive.text, extractive.quotes)
    for draft in (e.answer for e in events[1:-1]):
        assert draft.mode == "llm" and draft.quotes
        assert final.text.startswith(draft.text)  # what was shown is never taken back
        assert final.quotes[: len(draft.quotes)] == draft.quotes
        assert_only_verified(assistant, draft)
    texts = [e.answer.text for e in events[1:]]
    assert len(texts) > 1 and texts == sorted(texts, key=len) and len(set(texts[:-1])) == len(texts) - 1


def test_the_final_event_is_what_ask_returns(server, bundled_settings, embedder) -> None:
    for model in ("echo", "liar", "uncited"):
        assistant = llm_assistant(bundled_settings, embedder, url_of(server), model)
        streamed = list(assistant.ask_stream(QUESTION))[-1].answer
        asked = assistant.ask(QUESTION)
        assert {**streamed.to_dict(), "timings": None} == {**asked.to_dict(), "timings": None}, model


def test_an_invented_quote_and_a_bad_marker_mid_stream_are_never_shown(server, bundled_settings, embedder) -> None:
    assistant = llm_assistant(bundled_settings, embedder, url_of(server), "liar")
    events = list(assistant.ask_stream(QUESTION))
    final = events[-1].answer
    assert final.mode == "llm" and final.guard["quotes_removed"] == 1 and final.guard["markers_removed"] >= 1
    assert len(events) > 1
    for event in events:
        assert "elephants" not in event.answer.text and "[7]" not in event.answer.text
        assert_only_verified(assistant, event.answer)
    # the true quote after the invented one still arrives, in a later draft than the first
    assert final.text.count("[") >= 2 and events[0].answer.text != final.text


@pytest.mark.parametrize(
    ("model", "why"),
    [("slow", "did not answer within 1 s"), ("trickle", "did not answer within 1 s"),
     ("garbage", "language model failed"), ("no-choices", "language model failed"),
     ("broken-stream", "language model failed")],
)
def test_a_failing_stream_ends_with_the_extractive_answer(server, bundled_settings, embedder, model: str, why: str) -> None:
    assistant = llm_assistant(bundled_settings, embedder, url_of(server), model)
    events = list(assistant.ask_stream(QUESTION))
    final = events[-1].answer
    assert events[-1].final and final.mode == "extractive"
    assert any(why in note for note in final.notes), final.notes
    extractive = assistant.ask(QUESTION, mode="extractive")
    assert final.text == extractive.text and final.quotes == extractive.quotes
    for draft in (e.answer for e in events[:-1]):  # anything shown before the failure was verified
        assert_only_verified(assistant, draft)


def test_extractive_mode_streams_just_the_final_answer(bundled_settings, embedder) -> None:
    assistant = Assistant.from_settings(bundled_settings, encoder=embedder)
    events = list(assistant.ask_stream(QUESTION))
    assert len(events) == 1 and events[0].final
    assert {**events[0].answer.to_dict(), "timings": None} == {**assistant.ask(QUESTION).to_dict(), "timings": None}


def test_a_second_question_waits_for_a_busy_in_process_model(bundled_settings, embedder) -> None:
    """One model that runs one generation at a time (as an in-process model does): the server's "gated" reply
    holds it; a second question meanwhile gets the extractive answer at once, then a waiting draft, and its
    model answer once the first is done. An extractive question is never held up."""
    import threading

    from rag.answer.llm import WAITING_NOTE, LlamaIndexChat, LlmReader

    with model_server() as httpd:
        settings = bundled_settings.replace(answer_mode="llm", llm_base_url=url_of(httpd), llm_model="gated", llm_timeout=30)
        reader = LlmReader(settings, llm=LlamaIndexChat(build_llm(settings), exclusive=True))
        assistant = Assistant.from_settings(settings, encoder=embedder)
        assistant._llm = reader
        first: list = []
        holder = threading.Thread(target=lambda: first.extend(assistant.ask_stream(QUESTION)))
        holder.start()
        for _ in range(300):
            if reader.busy and len(httpd.requests) == 1:
                break
            threading.Event().wait(0.05)
        assert reader.busy
        assert assistant.ask(QUESTION, mode="extractive").mode == "extractive"  # not blocked by the model
        second = assistant.ask_stream(QUESTION)
        early = [next(second), next(second)]
        assert early[0].answer.mode == "extractive" and EXTRACTIVE_DRAFT_NOTE in early[0].answer.notes
        assert early[1].answer.mode == "extractive" and WAITING_NOTE in early[1].answer.notes
        httpd.gate.set()
        rest = list(second)
        holder.join(timeout=30)
        assert first[-1].final and first[-1].answer.mode == "llm"
        assert rest[-1].final and rest[-1].answer.mode == "llm" and not reader.busy


def test_the_extractive_conflicts_survive_into_the_llm_answer(bundled_settings, embedder, server) -> None:
    """The rule reader's conflict list, its markers renumbered into the guarded answer's quotes."""
    import dataclasses

    from rag.answer.llm import LlmReader
    from rag.types import Claim, Conflict

    settings = bundled_settings.replace(answer_mode="llm", llm_base_url=url_of(server), llm_model="echo", llm_timeout=5)
    assistant = Assistant.from_settings(settings, encoder=embedder)
    query_passages = assistant.retriever.retrieve(QUESTION)
    from rag.answer.question import analyse

    query = analyse(QUESTION, (), 2000)
    base = assistant.reader.read(query, query_passages)
    # two of the passages' sentences as extractive quotes that disagree (built from the passages, not a known answer)
    quotes = []
    for n, passage in enumerate(query_passages[:2], 1):
        s, e = passage.chunk.sentences[0]
        article = assistant.index.article(passage.chunk.article_id)
        quotes.append(dataclasses.replace(base.quotes[0], n=n, article_id=passage.chunk.article_id, title=passage.title,
                                          start=s, end=e, text=article.text[s:e]))
    conflict = Conflict("what the passages open with", (Claim("one", (1,)), Claim("other", (2,))))
    fallback = dataclasses.replace(base, quotes=tuple(quotes), conflicts=(conflict,))
    steps = LlmReader(settings).read_stream(query, query_passages, fallback)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            final = stop.value
            break
    assert final.mode == "llm" and len(final.conflicts) == 1
    by_n = {q.n: q for q in final.quotes}
    for claim, old in zip(final.conflicts[0].claims, quotes, strict=True):
        (n,) = claim.quotes
        assert (by_n[n].article_id, by_n[n].start, by_n[n].end) == (old.article_id, old.start, old.end)
        assert assistant.verify(by_n[n])
