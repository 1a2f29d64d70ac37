"""The web app's settings: validated in Settings.__post_init__ with the bad value in the message."""

from __future__ import annotations

import pytest

from rag.config import load_settings
from rag.errors import SettingsError


def test_web_settings_from_environment() -> None:
    env = {"RAG_PORT": "8080", "RAG_ROOT_PATH": "/wiki/rag", "RAG_API_TOKEN": "a" * 20,
           "RAG_ALLOWED_ORIGINS": "https://wiki.example.org, http://localhost:8090"}
    settings = load_settings(environ=env)
    assert settings.port == 8080 and settings.root_path == "/wiki/rag"
    assert settings.origins() == ("https://wiki.example.org", "http://localhost:8090")
    assert "a" * 20 not in repr(settings)  # the token never reaches a log line


def test_defaults_are_local_and_closed() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.api_token, settings.origins()) == ("127.0.0.1", 7860, "", ())


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("port", "0", "0"), ("port", "70000", "70000"), ("root_path", "rag/", "'rag/'"), ("root_path", "/rag/", "'/rag/'"),
    ("allowed_origins", "*", "'*'"), ("allowed_origins", "https://wiki.example.org/page", "'https://wiki.example.org/page'"),
    ("api_token", "short", "5 characters"), ("api_token", "x" * 20 + ";y", "22 characters"), ("host", "a b", "'a b'"),
])
def test_bad_web_settings_are_refused_with_the_value(name: str, value: str, shown: str) -> None:
    with pytest.raises(SettingsError, match=name) as caught:
        load_settings(environ={f"RAG_{name.upper()}": value})
    assert shown in str(caught.value)
    if name == "api_token":
        assert value not in str(caught.value)
