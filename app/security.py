"""Access control for everything the server answers: the bearer token, who may embed the pages, and the
Content-Security-Policy that lets a page run only our own scripts and styles.

A pure ASGI middleware rather than FastAPI dependencies, because it must also guard the mounted Gradio
apps (pages, assets, the event stream) that FastAPI's dependency system never sees, and because Starlette's
BaseHTTPMiddleware buffers in ways that do not suit Gradio's server-sent events.

With a token set, a request passes when it carries `Authorization: Bearer <token>`, or the `rag_token`
cookie, or `?token=<token>` on a page URL (which then sets the cookie, so a browser or an <iframe> that
cannot send headers can still open the chat). Comparison is constant-time (`hmac.compare_digest`).

The policy: scripts only from this server (`'self'`) plus the inline `<script>` blocks of the HTML pages we
serve, which get a fresh random nonce per response (Gradio's page boots from a few inline scripts); no eval,
no plugins, no other origin to fetch from or post a form to. Styles: this server's files and inline styles,
because Gradio's front end inserts its theme and our CSS as `<style>` elements at run time, which no nonce
can cover; a style cannot run code. Only the pages configured in `allowed_origins` may frame us.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
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


_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])")


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The CSP directive: only this site itself, plus the configured origins, may put the pages in a frame."""
    return "frame-ancestors " + " ".join(("'self'", *origins))


def content_security_policy(origins: tuple[str, ...], nonce: str) -> str:
    """The whole policy for one response (`nonce` is new for each)."""
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        frame_ancestors(origins),
    ))


class AccessMiddleware:
    """Adds `frame-ancestors` to every response and, when a token is configured, refuses requests without it."""

    def __init__(self, app: ASGIApp, token: str, origins: tuple[str, ...]) -> None:
        self.app = app
        self.token = token.encode()
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        set_cookie = b""
        if self.token and path not in OPEN_PATHS and scope.get("method") != "OPTIONS":
            how = self._credential(scope)
            if how is None:
                await _unauthorized(scope, send, path)
                return
            if how == "query":
                set_cookie = _cookie(scope, self.token.decode())

        nonce = secrets.token_urlsafe(16)
        csp = content_security_policy(self.origins, nonce).encode()
        held: list[Message] = []  # an HTML page's start and body, kept until its scripts carry the nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
                headers.append((b"content-security-policy", csp))
                headers.append((b"x-content-type-options", b"nosniff"))
                if set_cookie:
                    headers.append((b"set-cookie", set_cookie))
                message["headers"] = headers
                if _header(headers, b"content-type").startswith(b"text/html"):
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body"):
                    return
                start, *parts = held
                body = _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', b"".join(p.get("body", b"") for p in parts))
                start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
                held.clear()
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _credential(self, scope: Scope) -> str | None:
        """Which way the request proved it knows the token ("header", "cookie", "query"), or None."""
        headers = request_headers(scope)
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


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((v for k, v in headers if k.lower() == name), b"").lower()


def request_headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def app_path(scope: Scope) -> str:
    """The request path without the proxy's sub-path (uvicorn puts `root_path` in front of `path`)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _cookie(scope: Scope, token: str) -> bytes:
    """HttpOnly cookie for the app's path; SameSite=None+Secure over https so it also works inside an iframe."""
    headers = request_headers(scope)
    https = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto", b"") == b"https"
    path = scope.get("root_path") or "/"
    flags = "SameSite=None; Secure" if https else "SameSite=Lax"
    return f"{COOKIE}={token}; Path={path}; HttpOnly; {flags}".encode()


async def _unauthorized(scope: Scope, send: Send, path: str) -> None:
    message = "missing or wrong token: send 'Authorization: Bearer <token>' (or open the page once with ?token=<token>)"
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = request_headers(scope)
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
