"""One process, one port: the JSON API, the article pages, the widget and the chat on one FastAPI app.

Routes (all under the optional `root_path` a reverse proxy adds in front):
  GET  /api/health          liveness, never needs the token
  POST /api/ask             {"question", "history", "mode"} -> the same JSON as `rag ask --json` (AnswerModel)
  GET  /api/docs            the OpenAPI page (schema at /api/openapi.json)
  GET  /article/{id}        the whole article, ?start=&end= highlighted
  /widget/                  compact chat for an <iframe> (/widget redirects there, query string kept)
  /                         the chat (Gradio; its named API endpoint is "/ask" for gradio_client)
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

import gradio as gr
import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app import render
from app.chat import CSS, WIDGET_CSS, build_ui
from app.limits import LimitsMiddleware
from app.schema import AnswerModel, AskRequest
from app.security import AccessMiddleware
from app.service import Service
from rag.config import Settings
from rag.errors import QuestionError, RagError

log = logging.getLogger(__name__)


def create_app(service: Service) -> FastAPI:
    settings = service.settings
    base = settings.root_path
    api = FastAPI(title="News articles assistant", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)

    @api.exception_handler(QuestionError)
    async def bad_question(_: Request, exc: QuestionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @api.exception_handler(RagError)
    async def rag_error(_: Request, exc: RagError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @api.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error", exc_info=exc)
        return JSONResponse({"detail": "internal error; the server log has details"}, status_code=500)

    @api.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "articles": service.assistant.index.num_articles}

    @api.post("/api/ask", response_model=AnswerModel, responses={
        422: {"description": "a bad question (empty, too long, no words the articles share) or a bad body"},
        429: {"description": "too many requests from this client; see Retry-After"},
        413: {"description": "the request body is too large"},
    })
    def ask(body: AskRequest) -> Response:
        """Answer a question with verbatim quotes from the articles; the same JSON as `rag ask --json`."""
        # orjson writes the frozen dataclasses as they are: no dict copy (asdict), no second validation of what
        # the library built (AnswerModel is generated from Answer: app/schema.py), and no
        # second thread-pool hop for it. AnswerModel stays the declared response for /api/docs.
        answer = service.ask(body.question, body.turns(), body.mode)
        return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    @api.get("/widget", include_in_schema=False)
    def widget_slash(request: Request) -> RedirectResponse:
        """The address a wiki admin types: on to the mounted app at /widget/, under the proxy's sub-path."""
        query = request.url.query
        return RedirectResponse(f"{request.scope.get('root_path', '')}/widget/" + (f"?{query}" if query else ""), status_code=307)

    @api.get("/article/{article_id:path}", response_class=HTMLResponse)
    def article(article_id: str, start: int | None = None, end: int | None = None) -> HTMLResponse:
        found = service.article(article_id)
        if found is None:
            return HTMLResponse(f"<!doctype html><p>No article {escape(article_id)} here.</p>", status_code=404)
        return HTMLResponse(render.render_article_page(found, start, end))

    mount = {"footer_links": [], "ssr_mode": False, "css": CSS, "show_error": False}
    gr.mount_gradio_app(api, build_ui(service, base, compact=True), path="/widget", **{**mount, "css": CSS + WIDGET_CSS})
    gr.mount_gradio_app(api, build_ui(service, base), path="/", **{**mount, "footer_links": ["api"]})
    api.add_middleware(AccessMiddleware, token=settings.api_token, origins=settings.origins())
    api.add_middleware(LimitsMiddleware, rate_limit=settings.rate_limit, by=settings.rate_limit_by,
                       max_body_bytes=settings.max_body_bytes)
    # Added last, so outermost: preflights are answered and 401s, 413s and 429s still carry CORS headers.
    api.add_middleware(
        CORSMiddleware, allow_origins=list(settings.origins()), allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"], allow_credentials=False,
    )
    return api


def serve(settings: Settings, assistant: Any) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(Service(assistant, settings))
    uvicorn.run(
        app, host=settings.host, port=settings.port, root_path=settings.root_path,
        proxy_headers=True, log_level="warning", timeout_graceful_shutdown=5,
    )
