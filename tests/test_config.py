"""Settings: defaults, then rag.toml, then RAG_* variables, then explicit overrides; bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings, load_settings
from rag.errors import SettingsError


def test_layers_apply_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text('top_k = 5\nembed_model = "from-file"\narticles_dir = "news"\n', encoding="utf-8")
    settings = load_settings(toml, environ={"RAG_TOP_K": "7"}, max_quotes=2)
    assert settings.top_k == 7  # the variable beats the file
    assert settings.embed_model == "from-file"
    assert settings.articles_dir == tmp_path / "news"  # relative to the file
    assert settings.max_quotes == 2
    assert load_settings(toml, environ={}, top_k=9).top_k == 9


def test_environment_names(tmp_path: Path) -> None:
    env = {"RAG_ARTICLES_DIR": str(tmp_path), "RAG_INDEX_DIR": str(tmp_path / "i"), "RAG_TOP_K": "3",
           "RAG_EMBED_MODEL": "x/y", "RAG_AUTO_BUILD": "no"}
    settings = load_settings(None, environ=env)
    assert (settings.articles_dir, settings.index_dir, settings.top_k, settings.embed_model, settings.auto_build) == (
        tmp_path, tmp_path / "i", 3, "x/y", False)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.top_k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [({"top_k": 0}, "top_k"), ({"top_k": 1000}, "top_k"), ({"chunk_overlap": 9}, "chunk_overlap"),
     ({"embed_model": " "}, "embed_model"), ({"chunk_max_chars": 50}, "chunk_max_chars")],
)
def test_bad_values_are_named(changes: dict, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings().replace(**changes)


def test_unknown_setting_in_file(tmp_path: Path) -> None:
    toml = tmp_path / "rag.toml"
    toml.write_text("colour = 'blue'\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(toml, environ={})


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
