"""Access control for everything the server answers: the bearer token and who may embed the pages.

A pure ASGI middleware rather than FastAPI dependencies, because it must also guard the mounted Gradio
apps (pages, assets, the event stream) that FastAPI's dependency system never sees, and because Starlette's
BaseHTTPMiddleware buffers in ways that do not suit Gradio's server-sent events.

With a token set, a request passes when it carries `Authorization: Bearer <token>`, or the `rag_token`
cookie, or `?token=<token>` on a page URL (which then sets the cookie, so a browser or an <iframe> that
cannot send headers can still open the chat). Comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "rag_token"
OPEN_PATHS = frozenset({"/api/health"})


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The CSP directive: only this site itself, plus the configured origins, may put the pages in a frame."""
    return "frame-ancestors " + " ".join(("'self'", *origins))


class AccessMiddleware:
    """Adds `frame-ancestors` to every response and, when a token is configured, refuses requests without it."""

    def __init__(self, app: ASGIApp, token: str, origins: tuple[str, ...]) -> None:
        self.app = app
        self.token = token.encode()
        self.csp = frame_ancestors(origins).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = _app_path(scope)
        set_cookie = b""
        if self.token and path not in OPEN_PATHS and scope.get("method") != "OPTIONS":
            how = self._credential(scope)
            if how is None:
                await _unauthorized(scope, send, path)
                return
            if how == "query":
                set_cookie = _cookie(scope, self.token.decode())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
                headers.append((b"content-security-policy", self.csp))
                headers.append((b"x-content-type-options", b"nosniff"))
                if set_cookie:
                    headers.append((b"set-cookie", set_cookie))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _credential(self, scope: Scope) -> str | None:
        """Which way the request proved it knows the token ("header", "cookie", "query"), or None."""
        headers = _headers(scope)
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and self._matches(auth[7:].strip()):
            return "header"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed Cookie header is just "no cookie"
            cookie = SimpleCookie()
        if COOKIE in cookie and self._matches(cookie[COOKIE].value.encode()):
            return "cookie"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if any(self._matches(v.encode()) for v in query.get("token", [])):
            return "query"
        return None

    def _matches(self, given: bytes) -> bool:
        return hmac.compare_digest(given, self.token)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def _app_path(scope: Scope) -> str:
    """The request path without the proxy's sub-path (uvicorn puts `root_path` in front of `path`)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _cookie(scope: Scope, token: str) -> bytes:
    """HttpOnly cookie for the app's path; SameSite=None+Secure over https so it also works inside an iframe."""
    headers = _headers(scope)
    https = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto", b"") == b"https"
    path = scope.get("root_path") or "/"
    flags = "SameSite=None; Secure" if https else "SameSite=Lax"
    return f"{COOKIE}={token}; Path={path}; HttpOnly; {flags}".encode()


async def _unauthorized(scope: Scope, send: Send, path: str) -> None:
    message = "missing or wrong token: send 'Authorization: Bearer <token>' (or open the page once with ?token=<token>)"
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = _headers(scope)
    wants_html = b"text/html" in headers.get(b"accept", b"") and not path.startswith("/api/")
    if wants_html:
        body = (
            "<!doctype html><meta charset=utf-8><title>401 Unauthorized</title>"
            "<body style='font:16px system-ui;margin:2rem'><h1>401 Unauthorized</h1>"
            f"<p>This assistant needs an access token: {message.replace('<', '&lt;').replace('>', '&gt;')}.</p>"
        ).encode()
        ctype = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": message}).encode()
        ctype = b"application/json"
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [(b"content-type", ctype), (b"www-authenticate", b'Bearer realm="rag"'),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
