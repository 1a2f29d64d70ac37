"""A stand-in for an OpenAI-compatible model server, shared by tests/test_llm.py and tests/test_app_web.py.

No real model server can be installed here, so this small HTTP server of our own speaks the OpenAI
chat-completions protocol (the one stand-in the LLM feature allows), both as one JSON reply and, when the
request says `"stream": true`, as Server-Sent Events (`data: {chunk}` with `choices[0].delta.content`, ending
with `data: [DONE]`), which is what llama-index's `OpenAILike.stream_chat` asks for. Replies are built from the
passages the server is sent, so nothing depends on a known question. The request's `model` picks a behaviour.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def passages_of(user: str) -> dict[str, str]:
    """The numbered passages of the prompt's last "Passages:" section (the prompt's example comes before it)."""
    section = user.rsplit("Passages:", 1)[-1]
    return dict(re.findall(r"^\[(\d+)\] \([^)]*\) (.+)$", section, re.MULTILINE))


def first_sentence(passage: str) -> str:
    return re.split(r"(?<=[.!?])\s", passage)[0].rstrip(".")


def sentences_of(passage: str) -> list[str]:
    return [s.rstrip(".") for s in re.split(r"(?<=[.!?])\s+", passage) if s.strip()]


def question_of(user: str) -> str:
    """The question of the prompt's last "Question:" line (prompts/answer.txt)."""
    found = re.findall(r"^Question: (.+)$", user, re.MULTILINE)
    return found[-1] if found else ""


def best_sentence(user: str) -> tuple[str, str]:
    """(passage number, sentence): the passage sentence sharing most words with the question, as the prompt asks
    the model to quote the words that answer it."""
    asked = set(re.findall(r"\w{4,}", question_of(user).lower()))
    scored = [(len(asked & set(re.findall(r"\w{4,}", s.lower()))), -int(n), n, s)
              for n, text in passages_of(user).items() for s in sentences_of(text)]
    _, _, n, sentence = max(scored)
    return n, sentence


def first_sentence_reply(user: str) -> str:
    """As the prompt asks: one sentence quoting, exactly, the passage sentence that shares most words with the
    question, ending with its passage's number. Then what a model gets wrong: a misquote of another passage and
    a marker for a passage that was not given."""
    passages = passages_of(user)
    n, first = best_sentence(user)
    other = next((k for k in passages if k != n), n)
    second = first_sentence(passages[other]).split()
    misquote = " ".join(second[:3] + ["zzz"] + second[4:]) if len(second) > 6 else " ".join(second)
    return f'The article says "{first}" [{n}]. Another says "{misquote}" [{other}]. A third claim [9].'


def lying_reply(user: str) -> str:
    """A true quote, then an invented quote and a marker pointing nowhere in the middle, then a true quote again."""
    passages = passages_of(user)
    first = first_sentence(passages["1"])
    last = first_sentence(passages.get("2", passages["1"]))
    return (
        f'The article says "{first}" [1]. It adds "purple elephants negotiated the ceasefire on the moon" [1]. '
        f'Observers agreed with that [7]. Another report says "{last}" [2].'
    )


def reply_for(model: str, user: str) -> str:
    if not passages_of(user):  # not an answer prompt (a follow-up's rewrite, the second try): a number or the question
        return "1" if "Sentences:" in user else question_of(user) or "0"
    if model in ("echo", "trickle", "gated", "broken-stream"):
        return first_sentence_reply(user)
    if model == "liar":
        return lying_reply(user)
    if model == "dunno":
        return "The articles do not say."
    return "I think it is somewhere in Europe."


def pieces(text: str) -> list[str]:
    """The reply cut into word-sized chunks, as a model streams tokens."""
    return re.findall(r"\S+\s*", text)


def chunk(model: str, content: str | None, finish: str | None = None) -> dict:
    delta = {} if content is None else {"role": "assistant", "content": content}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})  # type: ignore[attr-defined]
        model = body["model"]
        if model == "slow":
            time.sleep(3)
        if model == "garbage":
            return self._send(b"this is not json {")
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]  # after the prompt's example
        if body.get("stream"):
            return self._stream(model, user)
        if model == "no-choices":
            return self._send(json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": model}).encode())
        reply = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_for(model, user)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send(json.dumps(reply).encode())

    def _stream(self, model: str, user: str) -> None:
        """Server-Sent Events, one word per event; HTTP/1.0, so the body ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = pieces(reply_for(model, user))
        first_end = next((i for i, w in enumerate(words) if re.search(r"\]\.\s*$", w)), 0) + 2
        try:
            for i, word in enumerate(words):
                if model == "no-choices":
                    event = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": []}
                else:
                    event = chunk(model, word)
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if model == "trickle":
                    time.sleep(0.4)
                if model == "gated" and i + 1 == first_end:  # the first sentence and a word of the next are out
                    self.server.gate.wait(timeout=60)  # type: ignore[attr-defined]
                if model == "broken-stream" and i + 1 == first_end:
                    self.wfile.write(b"data: {this is not json\n\n")
                    self.wfile.flush()
                    return
            self.wfile.write(f"data: {json.dumps(chunk(model, None, 'stop'))}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (the timeout tests)
            pass

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (the timeout test)
            pass


@contextmanager
def model_server() -> Iterator[ThreadingHTTPServer]:
    """The stand-in on a free port; `.requests` records what it was sent, `.gate` releases the "gated" model."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.gate = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.gate.set()  # type: ignore[attr-defined]
        httpd.shutdown()
        httpd.server_close()


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"
