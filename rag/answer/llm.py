"""The optional language-model answer mode: prompt a model with the numbered passages, then guard its answer.

The model is reached through llama-index's LLM integrations rather than our own client: `OpenAILike` for any
OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, a hosted API) and `HuggingFaceLLM` for a model
run in-process from a GGUF file or a transformers folder. Whatever the model writes goes through
`rag.guard.guard` before it reaches anyone; when the model fails (timeout, connection error, malformed reply)
or nothing it wrote survives the guard, the extractive answer is returned with a note saying why.

The reply is read with llama-index's `stream_chat`, so a chat can show the answer while it is written; what
is shown early is only ever the guard's result for the sentences that are already complete (see
`LlmReader.read_stream`; its return value is the final answer).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.answer.guard import Guarded, guard, settled_end
from rag.config import PROJECT_ROOT, Settings
from rag.errors import LlmError, PromptError
from rag.text import words
from rag.types import Answer, Passage, Query

PROMPTS_DIR = PROJECT_ROOT / "prompts"
_INSTALL_HINT = "install the llm extra: pip install '.[llm]'"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt template file. `$name` placeholders, filled by `string.Template.substitute`, which raises on a
    missing variable and never re-reads the filled-in values (article text may hold `{}` or `$`)."""

    name: str
    template: str

    def fill(self, **values: str) -> str:
        try:
            return string.Template(self.template).substitute(values)
        except KeyError as exc:
            raise PromptError(f"prompt {self.name!r} needs a value for ${exc.args[0]}") from None
        except ValueError as exc:
            raise PromptError(f"prompt {self.name!r} has a bad placeholder: {exc}") from None


def load_prompt(name: str, folder: Path = PROMPTS_DIR) -> Prompt:
    path = folder / f"{name}.txt"
    try:
        return Prompt(name, path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise PromptError(f"cannot read prompt template {path}: {exc.strerror or exc}") from None


def format_passages(passages: Sequence[Passage]) -> str:
    """The numbered passages as the model sees them: [n] (title) text, whitespace folded."""
    return "\n\n".join(f"[{i}] ({p.title}) {' '.join(p.chunk.text.split())}" for i, p in enumerate(passages, 1))


def build_llm(settings: Settings) -> Any:  # -> llama_index.core.llms.LLM
    """The configured model: an OpenAI-compatible server when llm_base_url is set, else the local llm_path."""
    if settings.llm_base_url:
        if not settings.llm_model:
            raise LlmError("llm_base_url is set but llm_model is not; set RAG_LLM_MODEL to the server's model name")
        try:
            from llama_index.llms.openai_like import OpenAILike
        except ImportError:
            raise LlmError(f"the OpenAI-compatible client is not installed; {_INSTALL_HINT}") from None
        return OpenAILike(
            model=settings.llm_model,
            api_base=settings.llm_base_url,
            api_key=settings.llm_api_key or "none",  # local servers ignore it; the client insists on one
            is_chat_model=True,
            context_window=8192,
            timeout=float(settings.llm_timeout),
            max_retries=0,  # a retry doubles the wait; the extractive answer is the better fallback
            max_tokens=settings.llm_max_tokens,
            temperature=0.0,
        )
    if settings.llm_path:
        return _local_llm(Path(settings.llm_path).expanduser().resolve(), settings.llm_max_tokens, settings.llm_timeout)
    raise LlmError(
        "answer mode llm needs a model: set RAG_LLM_BASE_URL and RAG_LLM_MODEL (an OpenAI-compatible server) "
        "or RAG_LLM_PATH (a GGUF file or a transformers model folder)"
    )


@functools.lru_cache(maxsize=2)
def _local_llm(path: Path, max_tokens: int, timeout: int) -> Any:
    """Load a local model once per process. transformers reads a GGUF file itself (de-quantising it, which
    needs the `gguf` package); `HuggingFaceLLM` takes the loaded model and tokenizer as they are."""
    if not path.exists():
        raise LlmError(f"llm_path {path} does not exist; give a GGUF file or a transformers model folder")
    try:
        from llama_index.llms.huggingface import HuggingFaceLLM
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise LlmError(f"the local model runner is not installed; {_INSTALL_HINT}") from None
    folder, kwargs = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise LlmError(f"cannot load the language model from {path}: {str(exc).splitlines()[0]}") from None
    model.eval()
    context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    return HuggingFaceLLM(
        model=model,
        tokenizer=tokenizer,
        context_window=min(context, 8192),
        max_new_tokens=max_tokens,
        # max_time is transformers' own wall-clock stop, the in-process equivalent of a request timeout
        generate_kwargs={"do_sample": False, "max_time": float(timeout)},
        is_chat_model=True,
    )


def describe_failure(exc: BaseException, settings: Settings) -> str:
    """Why the model gave no answer, in words a user can act on (never the API key)."""
    name = type(exc).__name__
    if isinstance(exc, LlmError):
        return str(exc)
    if "Timeout" in name:
        return f"the language model did not answer within {settings.llm_timeout} s"
    if "Connection" in name or "Connect" in name:
        return f"the language model server at {settings.llm_base_url} could not be reached"
    return f"the language model failed ({name})"


class LlmReader:
    """Answers from the passages with a language model, keeping only what the citation guard verifies."""

    name = "llm"

    def __init__(self, settings: Settings, llm: Any = None) -> None:
        self.settings = settings
        self.system = load_prompt("system")
        self.prompt = load_prompt("answer")
        self.condense_prompt = load_prompt("condense")
        self.llm = llm if llm is not None else build_llm(settings)
        self._lock = threading.Lock()  # an in-process model is not safe to call from two threads at once

    def _messages(self, user: str) -> list[Any]:  # -> list[ChatMessage]
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role="system", content=self.system.fill()), ChatMessage(role="user", content=user)]

    def generate(self, user: str) -> str:
        messages = self._messages(user)
        with self._lock:
            reply = self.llm.chat(messages)
        content = reply.message.content
        if not isinstance(content, str):
            raise LlmError("the language model's reply had no text")
        return content

    def generate_stream(self, user: str) -> Iterator[str]:
        """The model's reply so far, growing chunk by chunk (llama-index's `stream_chat` on either kind of model).

        A server's `llm_timeout` bounds each wait for bytes (the HTTP client's read timeout); here it also bounds
        the whole reply, which a server trickling tokens would otherwise stretch without limit. An in-process
        model is bounded by transformers' own `max_time` instead, which ends generation with what it has.
        """
        messages = self._messages(user)
        deadline = time.monotonic() + self.settings.llm_timeout if self.settings.llm_base_url else None
        text = ""
        with self._lock:
            for response in self.llm.stream_chat(messages):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"no complete reply within {self.settings.llm_timeout} s")
                delta = response.delta
                if isinstance(delta, str) and delta:
                    text += delta
                    yield text
        if not text:
            raise LlmError("the language model failed: its reply had no text")

    def condense(self, question: str, history: Sequence[str]) -> str:
        """A standalone version of a follow-up question; raises LlmError when the model's rewrite is unusable."""
        user = self.condense_prompt.fill(history="\n".join(f"- {h}" for h in history), question=question)
        try:
            text = self.generate(user)
        except Exception as exc:  # any failure of the model only costs the rewrite, never the answer
            raise LlmError(describe_failure(exc, self.settings)) from None
        line = next((ln.strip(" -*\"'") for ln in text.splitlines() if ln.strip()), "")
        line = re.sub(r"^(?:standalone )?question:\s*", "", line, flags=re.IGNORECASE)
        known = set(words(question)) | {w for h in history for w in words(h)}
        if not line or len(line) > 4 * (len(question) + 50) or not set(words(line)) & known:
            raise LlmError("the language model's rewrite of the follow-up question was unusable")
        return line

    def read_stream(self, query: Query, passages: Sequence[Passage], fallback: Answer) -> Generator[Answer, None, Answer]:
        """Yield drafts of the guarded answer while the model writes; return the final answer (`answer`'s result).

        A draft is the guard's result for the sentences that are complete so far (`settled_end`), exactly what
        the guard makes of them in the whole reply, so a draft's text is always the start of the final text and
        holds only checked markers and verified quotes. A draft is yielded only when it grew and has a quote.
        If the model then fails, or nothing in the whole reply survives, the final answer is still the
        extractive fallback: the drafts are replaced, never merged with it.
        """
        shown = tuple(passages[: self.settings.llm_passages])
        if not shown:
            return _fall_back(fallback, "no passages were found to give the language model")
        user = self.prompt.fill(passages=format_passages(shown), question=query.resolved)
        started = time.perf_counter()
        text, settled, drafted = "", 0, ""
        try:
            for text in self.generate_stream(user):
                end = settled_end(text)
                if end <= settled:
                    continue
                settled = end
                draft = guard(text[:end], shown)
                if not draft.failed and draft.text != drafted:
                    drafted = draft.text
                    yield _as_llm_answer(fallback, draft, notes=())
        except Exception as exc:  # timeout, connection, server or decoding error: the user still gets an answer
            return _fall_back(fallback, describe_failure(exc, self.settings))
        generate_ms = round((time.perf_counter() - started) * 1000, 2)
        checked = guard(text, shown)
        timings = {**fallback.timings, "generate_ms": generate_ms}
        if checked.failed:
            shown_instead = _fall_back(fallback, "the language model's answer had no citation that checks out")
            return dataclasses.replace(
                shown_instead, guard=checked.report, timings=timings, notes=(*shown_instead.notes, *checked.flags)
            )
        final = _as_llm_answer(fallback, checked, notes=(summary(checked.report), *checked.flags))
        return dataclasses.replace(final, timings=timings)


def _as_llm_answer(fallback: Answer, checked: Guarded, notes: tuple[str, ...]) -> Answer:
    return dataclasses.replace(
        fallback,
        text=checked.text,
        quotes=checked.quotes,
        abstained=False,
        conflicts=(),  # the extractive conflicts point at the extractive quote numbers
        related=(),
        mode="llm",
        guard=checked.report,
        notes=notes,
    )


def summary(report: dict[str, int]) -> str:
    """One line on what the guard did, shown with every LLM answer."""
    r = report
    return (
        f"citation guard: {r['markers_checked']} marker(s) and {r['quotes_checked']} quote(s) checked; "
        f"{r['markers_repaired'] + r['quotes_repaired']} repaired, {r['markers_removed'] + r['quotes_removed']} removed, "
        f"{r['sentences_flagged']} sentence(s) flagged as unsupported"
    )


def _fall_back(answer: Answer, why: str) -> Answer:
    return dataclasses.replace(answer, mode="extractive", notes=(*answer.notes, f"extractive answer shown: {why}"))
