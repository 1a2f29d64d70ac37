"""Abuse limits for the API and the pages: a per-client rate limit on POST requests and a request body limit.

A pure ASGI middleware for the same reason as app/security.py: it must cover the mounted Gradio apps too
(every question asked in the chat or the widget is a POST to Gradio's queue), and must not buffer Gradio's
server-sent events. Only POSTs are counted: they are what makes the server work (questions, feedback);
pages, assets and the event stream are GETs and stay free, so a page load never runs into the limit.

The rate limit is a token bucket per client: `rate_limit` requests a minute on average, bursts up to the same
number. The client is its address (uvicorn puts the X-Forwarded-For address of a trusted proxy there), or,
with `rate_limit_by = "token"`, the credential it presents (so users behind one NAT can each have one).
Refused requests get 429 with `Retry-After` (whole seconds until the next request is allowed). A body larger
than `max_body_bytes` gets 413, whether it announces its length or streams it.
The buckets live in this process's memory (a few hundred bytes per recent client, pruned as they refill).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable

from app.security import ASGIApp, Message, Receive, Scope, Send, app_path, request_headers

MAX_CLIENTS = 10_000  # buckets kept before full (idle) ones are pruned


class TooLarge(Exception):
    """The request body passed the limit while it was being read."""


class RateLimiter:
    """Token buckets keyed by client; `allow` says how many seconds to wait (0.0: go ahead)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > MAX_CLIENTS:
                self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        for client, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.rate >= self.capacity:
                del self._buckets[client]


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, rate_limit: int, by: str, max_body_bytes: int) -> None:
        self.app = app
        self.limiter = RateLimiter(rate_limit) if rate_limit > 0 else None
        self.by = by
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or app_path(scope) == "/api/health":
            await self.app(scope, receive, send)
            return
        if self.limiter is not None:
            wait = self.limiter.allow(self._client(scope))
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await _refuse(send, 429, f"too many requests; try again in {retry} s", [(b"retry-after", retry.encode())])
                return
        length = request_headers(scope).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            await _refuse(send, 413, f"the request body is larger than {self.max_body} bytes")
            return
        seen = 0
        too_large = forwarded = False

        async def counted_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    too_large = True
                    raise TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal forwarded
            if too_large:  # whatever the app makes of the interrupted body (a 500), the answer is 413
                return
            forwarded = forwarded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except TooLarge:
            pass
        except Exception:
            if not too_large:
                raise
        if too_large and not forwarded:
            await _refuse(send, 413, f"the request body is larger than {self.max_body} bytes")

    def _client(self, scope: Scope) -> str:
        if self.by == "token":
            headers = request_headers(scope)
            credential = headers.get(b"authorization", b"") or headers.get(b"cookie", b"")
            if credential:
                return "token:" + hashlib.sha256(credential).hexdigest()[:24]
        client = scope.get("client")
        return "address:" + (client[0] if client else "unknown")


async def _refuse(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])],
    })
    await send({"type": "http.response.body", "body": body})
