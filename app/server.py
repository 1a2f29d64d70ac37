"""One process, one port: the JSON API, the article pages, the widget and the chat on one FastAPI app.

Routes (all under the optional `root_path` a reverse proxy adds in front):
  GET  /api/health          liveness, never needs the token
  POST /api/ask             {"question", "history"} -> the same JSON as `rag ask --json`
  GET  /article/{id}        the whole article, ?start=&end= highlighted
  /widget/                  compact chat for an <iframe>
  /                         the chat (Gradio; its named API endpoint is "/ask" for gradio_client)
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app import render
from app.chat import CSS, WIDGET_CSS, build_ui
from app.security import AccessMiddleware
from app.service import MAX_HISTORY, Service
from rag.config import Settings
from rag.errors import QuestionError, RagError

log = logging.getLogger(__name__)


class AskRequest(BaseModel):
    """The body of POST /api/ask. `history` holds the earlier user questions of the chat, oldest first."""

    model_config = ConfigDict(extra="forbid")
    question: str
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY)


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

    @api.post("/api/ask")
    def ask(body: AskRequest) -> dict[str, Any]:
        return service.ask(body.question, body.history).to_dict()

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
    # Added last, so outermost: preflights are answered and 401s still carry CORS headers.
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
