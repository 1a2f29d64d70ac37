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

from rag.cli import main
from rag.config import Settings, load_settings
from rag.errors import LlmError, PromptError, SettingsError
from rag.llm import Prompt, build_llm, load_prompt
from rag.pipeline import Assistant
from tests.llm_support import model_server, url_of

QUESTION = "In which region are the North Korean troops fighting?"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    with model_server() as httpd:
        yield httpd


def llm_assistant(base: Settings, embedder, url: str, model: str, **changes: object) -> Assistant:
    settings = base.replace(answer_mode="llm", llm_base_url=url, llm_model=model, llm_api_key="sk-secret-123", llm_timeout=1, **changes)
    assistant = Assistant(settings)
    assistant.embedder = assistant.retriever.embedder = embedder
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
    assert [m["role"] for m in request["body"]["messages"]] == ["system", "user"]
    assert "sk-secret-123" not in json.dumps(answer.to_dict()) and "sk-secret-123" not in repr(assistant.settings)


def test_an_answer_that_fails_the_guard_falls_back_to_the_extractive_answer(server, bundled_settings, embedder) -> None:
    answer = llm_assistant(bundled_settings, embedder, url_of(server), "uncited").ask(QUESTION)
    assert answer.mode == "extractive"
    assert any("no citation that checks out" in note for note in answer.notes)
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


def test_llm_mode_without_a_model_is_a_clean_error(bundled_settings, monkeypatch) -> None:
    for name in ("RAG_LLM_BASE_URL", "RAG_LLM_PATH", "RAG_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = ["ask", QUESTION, "--mode", "llm", "--articles", str(bundled_settings.articles_dir), "--index", str(bundled_settings.index_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "RAG_LLM_BASE_URL" in result.output and "Traceback" not in result.output
    with pytest.raises(LlmError, match="does not exist"):
        build_llm(load_settings(config_file=None, environ={}, llm_path="/nonexistent/model.gguf"))
    with pytest.raises(LlmError, match="llm_model"):
        build_llm(load_settings(config_file=None, environ={}, llm_base_url="http://127.0.0.1:9/v1"))


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
