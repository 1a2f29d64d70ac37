"""The local language model in its own process, so a model answer never starves the extractive ones.

One llama.cpp generation keeps every core it is given busy for tens of seconds. Run inside the server it
would take those cores, and its Python side the interpreter lock, from every extractive answer asked
meanwhile. Here it runs in a child process (`python -m rag.answer.model_process GGUF`) at a lower priority
(nice +10) with llama.cpp's threads capped at cores − 1 (at least 1), so one core always stays with the
server, and when the cores are contended the scheduler prefers the server's work anyway.

`ModelProcess` is a `ChatModel` (rag/answer/llm.py): the reader sees the same `lock`, `busy` and `stream`
as with the in-process `LlamaCppChat`, which the child runs. The two talk in JSON lines:
  to the child (stdin):   {"id", "messages", "max_tokens", "seconds"}  or  {"cancel": id}
  from the child:         {"ready": true}  {"id", "piece"}  {"id", "done": true}  {"id", "error", "message"}
The child writes on a private copy of its stdout (fd 1 itself points at stderr, so nothing a library prints
can corrupt a reply) and exits when its stdin closes, i.e. when the server goes. A child that dies mid-answer
becomes one LlmError for that answer ("the language model process stopped…"), and the next question starts
a fresh one. A reader that stops listening (a closed page) sends "cancel", which stops the generation at its
next step, prompt reading included.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rag.errors import LlmError

log = logging.getLogger(__name__)
NICE = 10  # added to the child's priority: the server's answers come first when the cores are contended
START_SECONDS = 180.0  # loading the 1.1 GB model takes ~2 s on an idle machine; a loaded one is far slower
GRACE_SECONDS = 5.0  # past its deadline the child stops itself; one that does not within this is killed


def model_threads(cores: int | None = None) -> int:
    """llama.cpp threads for the model's process: all cores but one, at least one."""
    return max(1, (cores if cores is not None else os.cpu_count() or 1) - 1)


class ModelProcess:
    """A GGUF model run by llama.cpp in a child process, one generation at a time (a `ChatModel`)."""

    def __init__(self, path: Path, context: int = 4096, threads: int | None = None, nice: int = NICE,
                 start_seconds: float = START_SECONDS) -> None:
        self.path = Path(path)
        self.context = context
        self.threads = threads or model_threads()
        self.nice = nice
        self.start_seconds = start_seconds
        self.lock = threading.Lock()  # held by the reader for one generation (the ChatModel contract)
        self._starting = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._ids = itertools.count(1)
        self._running()  # a model that cannot load is an error now, not at the first question
        weakref.finalize(self, _stop, self.__dict__)

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def stream(self, messages: list[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        """The reply piece by piece; call with `lock` held. TimeoutError past `deadline` (time.monotonic()),
        LlmError when the model fails or its process stops."""
        self._running()
        rid = next(self._ids)
        self._send({"id": rid, "messages": messages, "max_tokens": max_tokens,
                    "seconds": max(0.0, deadline - time.monotonic())})
        finished = False
        try:
            while True:
                try:
                    reply = self._replies.get(timeout=max(0.05, deadline - time.monotonic() + GRACE_SECONDS))
                except queue.Empty:
                    finished = True
                    self.close()
                    raise TimeoutError("the model did not finish in time (its process was stopped)") from None
                if reply is None:
                    finished = True
                    raise LlmError(self._stopped_message())
                if reply.get("id") != rid:  # the tail of an answer nobody listens to any more
                    continue
                if "piece" in reply:
                    yield reply["piece"]
                elif reply.get("done"):
                    finished = True
                    return
                else:
                    finished = True
                    if reply.get("error") == "timeout":
                        raise TimeoutError(reply.get("message") or "the model did not finish in time")
                    raise LlmError(reply.get("message") or "the language model failed")
        finally:
            if not finished:
                self._send({"cancel": rid}, quiet=True)

    def close(self) -> None:
        """Stop the child (it exits when its stdin closes; killed if it does not within a few seconds)."""
        _stop(self.__dict__)

    # ------------------------------------------------------------------------------------------ internals

    def _running(self) -> subprocess.Popen[bytes]:
        with self._starting:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                return proc
            if proc is not None:
                log.warning("the language model process had stopped (%s); starting it again", proc.returncode)
            return self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        if not self.path.is_file():
            raise LlmError(f"the language model file {self.path} does not exist")
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the rag package the server runs
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
               "OMP_NUM_THREADS": str(self.threads)}
        cmd = [sys.executable, "-m", "rag.answer.model_process", str(self.path), "--context", str(self.context),
               "--threads", str(self.threads), "--nice", str(self.nice)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, close_fds=True)
        except OSError as exc:
            raise LlmError(f"cannot start the language model process: {exc.strerror or exc}") from None
        self._proc, self._replies, self._stderr = proc, queue.Queue(), collections.deque(maxlen=20)
        threading.Thread(target=_read_replies, args=(proc.stdout, self._replies), name="model-replies",
                         daemon=True).start()
        threading.Thread(target=_read_stderr, args=(proc.stderr, self._stderr), name="model-stderr",
                         daemon=True).start()
        try:
            first = self._replies.get(timeout=self.start_seconds)
        except queue.Empty:
            self.close()
            raise LlmError(f"the language model process did not load {self.path.name} within "
                           f"{self.start_seconds:.0f} s") from None
        if first is None or not first.get("ready"):
            why = first.get("message") if first else self._stopped_message()
            self.close()
            raise LlmError(why or "the language model process could not start")
        return proc

    def _send(self, message: dict[str, Any], quiet: bool = False) -> None:
        proc = self._proc
        try:
            if proc is None or proc.stdin is None:
                raise BrokenPipeError
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            if not quiet:
                raise LlmError(self._stopped_message()) from None

    def _stopped_message(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if proc is not None and code is None:
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        last = next((line for line in reversed(self._stderr) if line.strip()), "")
        return ("the language model process stopped" + (f" (exit code {code})" if code is not None else "")
                + (f": {last[:200]}" if last else "") + "; it is started again for the next question")


def _stop(state: dict[str, Any]) -> None:
    proc = state.get("_proc")
    if proc is None or proc.poll() is not None:
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=GRACE_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=GRACE_SECONDS)


def _read_replies(stream: BinaryIO, replies: queue.Queue[dict[str, Any] | None]) -> None:
    try:
        for line in stream:
            try:
                replies.put(json.loads(line))
            except ValueError:
                log.warning("the language model process wrote a line that is not a reply: %r", line[:200])
    finally:
        replies.put(None)  # the child is gone


def _read_stderr(stream: BinaryIO, lines: collections.deque[str]) -> None:
    for line in stream:
        text = line.decode("utf-8", "replace").rstrip()
        lines.append(text)
        log.debug("language model process: %s", text)


@functools.lru_cache(maxsize=2)
def shared_model_process(path: Path, context: int = 4096) -> ModelProcess:
    """One model process per file and server: every reader (and every Assistant) shares it and its lock."""
    return ModelProcess(path, context)


# -------------------------------------------------------------------------------------------- the child


def _serve(path: Path, context: int, threads: int, out: BinaryIO) -> None:
    from rag.answer.local_model import LlamaCppChat

    write_lock = threading.Lock()

    def reply(message: dict[str, Any]) -> None:
        with write_lock:
            out.write(json.dumps(message).encode() + b"\n")
            out.flush()

    try:
        model = LlamaCppChat(path, context, threads=threads)
    except LlmError as exc:
        reply({"ready": False, "message": str(exc)})
        return
    requests: queue.Queue[dict[str, Any]] = queue.Queue()
    cancelled: set[int] = set()
    current: list[int] = [0]

    def listen() -> None:
        for line in sys.stdin.buffer:
            message = json.loads(line)
            if "cancel" in message:
                cancelled.add(message["cancel"])
                if current[0] == message["cancel"]:
                    model._deadline = 0.0  # ggml's abort callback stops the prompt reading too
            else:
                requests.put(message)
        os._exit(0)  # stdin closed: the server is gone or stopping us

    threading.Thread(target=listen, name="requests", daemon=True).start()
    reply({"ready": True})
    while True:
        request = requests.get()
        rid = request["id"]
        if rid in cancelled:
            continue
        current[0] = rid
        try:
            for piece in model.stream(request["messages"], request["max_tokens"], time.monotonic() + request["seconds"]):
                if rid in cancelled:
                    break
                reply({"id": rid, "piece": piece})
            else:
                reply({"id": rid, "done": True})
        except TimeoutError as exc:
            reply({"id": rid, "error": "timeout", "message": str(exc)})
        except LlmError as exc:
            reply({"id": rid, "error": "llm", "message": str(exc)})
        except Exception as exc:  # reported to the server as this answer's failure; the process goes on
            reply({"id": rid, "error": "llm", "message": f"the language model failed ({type(exc).__name__})"})
        finally:
            current[0] = 0
            cancelled.discard(rid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the language model's process (started by the server)")
    parser.add_argument("path", type=Path)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=model_threads())
    parser.add_argument("--nice", type=int, default=NICE)
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "wb")  # the replies' own channel; fd 1 becomes stderr for whatever else prints
    os.dup2(2, 1)
    if args.nice:
        os.nice(args.nice)
    _serve(args.path, args.context, args.threads, out)


if __name__ == "__main__":
    main()
