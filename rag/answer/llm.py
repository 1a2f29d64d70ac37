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

import contextlib
import dataclasses
import importlib
import re
import string
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.answer import llm_judge
from rag.answer.guard import Guarded, guard, settled_end
from rag.answer.local_model import llama_cpp_available, load_transformers, packaged_gguf
from rag.config import PROJECT_ROOT, Settings
from rag.errors import LlmError, PromptError
from rag.protocols import Reader
from rag.text import words
from rag.types import Answer, Claim, Conflict, Passage, Query, Quote

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


class ChatModel(Protocol):
    """What the reader needs of a model: a lock held for one generation, and the reply streamed in pieces.

    `stream` raises TimeoutError past `deadline` (time.monotonic()) and LlmError on a model failure; `busy`
    says whether a generation is running now (a question asked meanwhile waits its turn)."""

    lock: Any  # threading.Lock or Semaphore: acquire(blocking, timeout) / release()

    @property
    def busy(self) -> bool: ...

    def stream(self, messages: list[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]: ...


class LlamaIndexChat:
    """Any llama-index LLM (`OpenAILike` for a server, `HuggingFaceLLM` in-process) as a `ChatModel`.

    A server answers several requests at once, so its lock only caps them; an in-process model runs one
    generation at a time. The deadline is checked as pieces arrive: a server's client has its own read timeout,
    transformers its own `max_time`."""

    def __init__(self, llm: Any, exclusive: bool = True) -> None:
        from llama_index.core.llms import ChatMessage  # imported here: it takes seconds the first time

        if not exclusive:  # the OpenAI client loads its resources on the first request (seconds): not on the clock
            with contextlib.suppress(ImportError):
                importlib.import_module("openai.resources")
        self._message = ChatMessage
        self.llm = llm
        self.exclusive = exclusive
        self.lock: Any = threading.Lock() if exclusive else threading.BoundedSemaphore(32)

    @property
    def busy(self) -> bool:
        return self.exclusive and self.lock.locked()

    def stream(self, messages: list[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        chat = [self._message(role=m["role"], content=m["content"]) for m in messages]
        for response in self.llm.stream_chat(chat):
            if time.monotonic() > deadline:
                raise TimeoutError("no complete reply in time")
            delta = response.delta
            if isinstance(delta, str) and delta:
                yield delta


def build_model(settings: Settings) -> ChatModel:
    """The configured model: an OpenAI-compatible server when llm_base_url is set, else the local llm_path,
    else the packaged model (assembled into the cache folder on first use)."""
    if settings.llm_base_url:
        return LlamaIndexChat(build_llm(settings), exclusive=False)
    if settings.llm_path:
        path = Path(settings.llm_path).expanduser().resolve()
        if not path.exists():
            raise LlmError(f"llm_path {path} does not exist; give a GGUF file or a transformers model folder")
        packaged = False
    else:
        path, packaged = packaged_gguf(), True
    runtime = settings.llm_runtime
    if runtime == "auto":
        if path.is_file() and llama_cpp_available():
            runtime = "llama-cpp"
        elif packaged:
            raise LlmError(
                "the packaged model needs llama-cpp-python: run `make llm` (or set llm_runtime = \"transformers\" "
                "to read it with transformers, which is slow: ~90 s to load and 7 GB of memory)"
            )
        else:
            runtime = "transformers"
    if runtime == "llama-cpp":  # in its own process, niced and short of one core: it never starves the rest
        from rag.answer.model_process import shared_model_process

        return shared_model_process(path)
    return LlamaIndexChat(load_transformers(path, settings.llm_max_tokens, settings.llm_timeout))


def build_llm(settings: Settings) -> Any:  # -> llama_index.core.llms.LLM
    """The llama-index LLM for a server (llm_base_url) or a local llm_path read by transformers."""
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
        return load_transformers(Path(settings.llm_path).expanduser().resolve(), settings.llm_max_tokens, settings.llm_timeout)
    raise LlmError("build_llm needs llm_base_url or llm_path; the packaged model is built by build_model")


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


EXTRACTIVE_DRAFT_NOTE = "extractive answer shown while the language model writes"
WAITING_NOTE = "waiting for the language model: it is answering another question"
CONDENSE_SECONDS = 15  # a follow-up's rewrite is short; it never holds the answer up for longer
# What replaces a model answer the guard drops: the extractive answer, the looser guard's repair of the model's
# answer, or the model's choice among the best few sentences (a second, short generation). And what replaces one
# that passes the guard but not the judge (rag.answer.llm_judge): an abstention, or the same second chance.
FALLBACKS = ("extractive", "repair", "choose")
ON_JUDGED = ("abstain", "fallback")
DEFAULT_FALLBACK, DEFAULT_ON_JUDGED = "extractive", "fallback"  # by measurement: docs/llm.md


class LlmReader:
    """Answers from the passages with a language model, keeping only what the citation guard verifies."""

    name = "llm"

    def __init__(self, settings: Settings, llm: Any = None, judge: Reader | None = None,
                 fallback: str = DEFAULT_FALLBACK, on_judged: str = DEFAULT_ON_JUDGED) -> None:
        if fallback not in FALLBACKS or on_judged not in ON_JUDGED:
            raise ValueError(f"fallback must be one of {FALLBACKS} and on_judged one of {ON_JUDGED}")
        self.settings = settings
        self.judge = judge  # the rule reader: its confidence() judges whether quotes are about the question
        self.fallback, self.on_judged = fallback, on_judged
        self.min_support = llm_judge.JUDGE_MIN_SUPPORT
        self.choose_prompt = load_prompt("choose")
        self.system = load_prompt("system")
        self.prompt = load_prompt("answer")
        self.condense_prompt = load_prompt("condense")
        self.example = load_prompt("example")  # passages, question, answer, separated by lines "---"
        if self.example.template.count("\n---\n") != 2:
            raise PromptError("prompt 'example' must hold passages, question and answer separated by lines '---'")
        if llm is None:
            self.model: ChatModel = build_model(settings)
        elif hasattr(llm, "stream") and hasattr(llm, "lock"):
            self.model = llm
        else:  # a llama-index LLM
            self.model = LlamaIndexChat(llm)

    @property
    def busy(self) -> bool:
        """True while the model is writing an answer: a question asked now waits its turn (up to llm_timeout)."""
        return bool(self.model.busy)

    def _messages(self, user: str, example: bool = False) -> list[dict[str, str]]:
        """System prompt, then (for answers) one worked example as an earlier exchange, then `user`: a small
        model copies the form of a previous answer more faithfully than it follows a described format."""
        messages = [{"role": "system", "content": self.system.fill()}]
        if example:
            passages, question, answer = (part.strip() for part in self.example.template.split("\n---\n"))
            messages += [{"role": "user", "content": self.prompt.fill(passages=passages, question=question)},
                         {"role": "assistant", "content": answer}]
        return [*messages, {"role": "user", "content": user}]

    def _pieces(self, user: str, deadline: float, example: bool = False) -> Iterator[str]:
        """The reply so far, growing piece by piece; call with the model's lock held. Raises past `deadline`."""
        text = ""
        for piece in self.model.stream(self._messages(user, example), self.settings.llm_max_tokens, deadline):
            text += piece
            yield text
        if not text:
            raise LlmError("the language model failed: its reply had no text")

    def generate(self, user: str, seconds: float | None = None, wait: bool = True, example: bool = False) -> str:
        """The whole reply to one user message, within `seconds` (llm_timeout) of getting the model."""
        got = self.model.lock.acquire(timeout=self.settings.llm_timeout) if wait else self.model.lock.acquire(blocking=False)
        if not got:
            raise LlmError("the language model is busy with another question")
        try:
            deadline = time.monotonic() + (seconds or self.settings.llm_timeout)
            *_, text = self._pieces(user, deadline, example)
            return text
        finally:
            self.model.lock.release()

    def condense(self, question: str, history: Sequence[str]) -> str:
        """A standalone version of a follow-up question; raises LlmError when the model's rewrite is unusable.
        Never waits for a busy model: the rule-based reading of the follow-up is used instead."""
        user = self.condense_prompt.fill(history="\n".join(f"- {h}" for h in history), question=question)
        try:
            text = self.generate(user, seconds=min(CONDENSE_SECONDS, self.settings.llm_timeout), wait=False)
        except Exception as exc:  # any failure of the model only costs the rewrite, never the answer
            raise LlmError(describe_failure(exc, self.settings)) from None
        line = next((ln.strip(" -*\"'") for ln in text.splitlines() if ln.strip()), "")
        line = re.sub(r"^(?:standalone )?question:\s*", "", line, flags=re.IGNORECASE)
        known = set(words(question)) | {w for h in history for w in words(h)}
        if not line or len(line) > 4 * (len(question) + 50) or not set(words(line)) & known:
            raise LlmError("the language model's rewrite of the follow-up question was unusable")
        return line

    def read_stream(self, query: Query, passages: Sequence[Passage], fallback: Answer) -> Generator[Answer, None, Answer]:
        """Yield drafts of the guarded answer while the model writes; return the final answer.

        If another question holds the model, a draft of `fallback` with WAITING_NOTE is yielded first and the
        wait lasts at most llm_timeout; then llm_timeout bounds the generation, prompt reading included.
        A model draft is the guard's result for the sentences that are complete so far (`settled_end`), exactly
        what the guard makes of them in the whole reply, so a draft's text is always the start of the final
        text and holds only checked markers and verified quotes. It is yielded only when it grew and has a
        quote. If the model then fails, or nothing in the whole reply survives, the final answer is the
        extractive fallback: the drafts are replaced, never merged with it.
        """
        shown = llm_judge.windows(query, passages, self.settings.llm_passages)
        if not shown:
            return _fall_back(fallback, "no passages were found to give the language model")
        user = self.prompt.fill(passages=format_passages(shown), question=query.resolved)
        lock = self.model.lock
        if not lock.acquire(blocking=False):
            yield dataclasses.replace(fallback, notes=(*fallback.notes, WAITING_NOTE))
            if not lock.acquire(timeout=self.settings.llm_timeout):
                return _fall_back(fallback, f"the language model was busy with other questions for {self.settings.llm_timeout} s")
        started = time.perf_counter()
        text, settled, drafted = "", 0, ""
        try:
            deadline = time.monotonic() + self.settings.llm_timeout
            for text in self._pieces(user, deadline, example=True):
                end = settled_end(text)
                if end <= settled:
                    continue
                settled = end
                draft = guard(text[:end], shown)
                # a draft is shown only when the judge would keep it: what it refuses is never shown as an answer
                if not draft.failed and draft.text != drafted and llm_judge.judge(
                        query, draft.quotes, shown, self.judge, self.min_support).ok:
                    drafted = draft.text
                    yield _as_llm_answer(fallback, draft, notes=())
        except Exception as exc:  # timeout, connection, server or decoding error: the user still gets an answer
            return _fall_back(fallback, describe_failure(exc, self.settings))
        finally:
            lock.release()
        generate_ms = round((time.perf_counter() - started) * 1000, 2)
        checked = guard(text, shown)
        timings = {**fallback.timings, "generate_ms": generate_ms}
        if checked.failed and llm_judge.says_dont_know(text):  # the model's own "the articles do not say" is kept
            return dataclasses.replace(
                llm_judge.abstention(fallback, "the language model found no answer in the passages", "llm"), timings=timings)
        if checked.failed:
            final = self._second_chance(query, passages, text, fallback,
                                        "no sentence of the language model's answer had a quote that checks out")
            return dataclasses.replace(final, guard=checked.report, timings=timings, notes=(*final.notes, *checked.flags))
        verdict = llm_judge.judge(query, checked.quotes, shown, self.judge, self.min_support)
        if not verdict.ok:
            why = f"the language model's answer was not shown: {verdict.why}"
            final = (llm_judge.abstention(fallback, why, "extractive") if self.on_judged == "abstain"
                     else self._second_chance(query, passages, text, fallback, why))
            return dataclasses.replace(final, guard=checked.report, timings=timings)
        final = _as_llm_answer(fallback, checked, notes=(summary(checked.report), *checked.flags), final=True)
        return dataclasses.replace(final, timings=timings)

    def _second_chance(self, query: Query, passages: Sequence[Passage], text: str, fallback: Answer, why: str) -> Answer:
        """The answer shown when the model's own was dropped, by `self.fallback`; the extractive one when the
        chosen strategy yields nothing that passes the judge."""
        if self.fallback == "repair":
            shown = llm_judge.windows(query, passages, self.settings.llm_passages)
            loose = guard(text, shown, require_quote=False)
            if not loose.failed and llm_judge.judge(query, loose.quotes, shown, self.judge, self.min_support).ok:
                return _as_llm_answer(fallback, loose, notes=(f"repaired by the looser citation guard: {why}",), final=True)
        elif self.fallback == "choose":
            picked, listed = llm_judge.choice_list(query, passages)
            try:
                reply = self.generate(self.choose_prompt.fill(sentences=listed, question=query.resolved))
            except Exception as exc:  # noqa: BLE001  (the second try only ever costs itself)
                return _fall_back(fallback, f"{why}; the second try failed: {describe_failure(exc, self.settings)}")
            n = llm_judge.chosen_number(reply, len(picked))
            if n is not None:
                chosen = llm_judge.chosen_answer(query, picked[n - 1], self.judge, fallback)
                if llm_judge.judge(query, chosen.quotes, picked, self.judge, self.min_support).ok:
                    return dataclasses.replace(chosen, notes=(*chosen.notes, why))
        return _fall_back(fallback, why)


def _as_llm_answer(fallback: Answer, checked: Guarded, notes: tuple[str, ...], final: bool = False) -> Answer:
    """The guarded model answer in the fallback's frame. The final answer keeps the extractive answer's
    conflicts, their quote markers renumbered into this answer's quotes (a conflict quote the model did not
    use is added after the model's own, so drafts' quotes stay a prefix of the final answer's)."""
    quotes, conflicts = checked.quotes, ()
    if final and fallback.conflicts:
        quotes, conflicts = _carry_conflicts(fallback, checked.quotes)
    return dataclasses.replace(
        fallback,
        text=checked.text,
        quotes=quotes,
        abstained=False,
        conflicts=conflicts,
        related=(),
        mode="llm",
        guard=checked.report,
        notes=notes,
    )


def _carry_conflicts(fallback: Answer, quotes: tuple[Quote, ...]) -> tuple[tuple[Quote, ...], tuple[Conflict, ...]]:
    out = list(quotes)
    where = {(q.article_id, q.start, q.end): q.n for q in quotes}
    old = {q.n: q for q in fallback.quotes}
    renumber: dict[int, int] = {}
    for n in (n for c in fallback.conflicts for claim in c.claims for n in claim.quotes):
        q = old.get(n)
        if q is None or n in renumber:
            continue
        key = (q.article_id, q.start, q.end)
        if key not in where:
            where[key] = len(out) + 1
            out.append(dataclasses.replace(q, n=where[key]))
        renumber[n] = where[key]
    conflicts = tuple(
        Conflict(c.about, tuple(Claim(cl.value, tuple(renumber[n] for n in cl.quotes if n in renumber)) for cl in c.claims))
        for c in fallback.conflicts
    )
    return tuple(out), conflicts


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
