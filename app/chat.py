"""The Gradio pages: the full chat at `/` and the compact widget at `/widget`.

Each handler is one `Service.ask` (or `Service.ask_stream`) call plus rendering from app/render.py. The chat
handler is a generator: "Searching the articles…" first, then, for a language model's answer, each draft of
verified sentences as it arrives (with its sources), then the final answer. The chat log holds HTML we
rendered (escaped) ourselves; the earlier user questions for follow-ups live in a separate `gr.State`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from app import render
from app.service import Service
from rag.errors import QuestionError, RagError

log = logging.getLogger(__name__)

WIDGET_CSS = """
.gradio-container{padding:0 !important}
.gradio-container main,.gradio-container .main,.gradio-container .contain{padding:4px !important;max-width:100% !important}
.source{padding:.4em .55em}
"""

CSS = """
.answer{min-width:12em}
.answer-foot{margin-top:.3em}
.answer .mode{display:inline-block;font-size:.72rem;letter-spacing:.02em;color:#57606a;border:1px solid #d0d7de;border-radius:1em;padding:0 .55em;line-height:1.5}
.marker{color:#0969da;font-weight:600;white-space:nowrap}
.notice{border-radius:6px;padding:.35em .6em;margin:.2em 0 .4em;font-size:.92em}
.notice.conflict{background:#fff8c5;border:1px solid #d4a72c}
.notice.conflict ul{margin:.2em 0 0 1.1em;padding:0}
.notice.abstain{background:#eef1f4;border:1px solid #d0d7de;font-weight:600}
.answer.error{color:#a40e26}
.answer.pending{color:#57606a;font-style:italic}
.answer .note.writing{font-style:italic}
.answer .note{font-size:.8rem;color:#57606a}
.sources{font-size:.93rem;line-height:1.5}
.sources-head,.articles-head{font-weight:600;margin:.1em 0 .5em;color:#24292f}
.sources.empty{color:#57606a;font-style:italic;padding:.5em 0}
.source{border:1px solid #d0d7de;border-radius:8px;padding:.5em .7em;margin-bottom:.6em;background:#fff}
.source-head{margin-bottom:.3em}
.source-title{font-weight:600;color:#0969da;text-decoration:none}
.source-title:hover{text-decoration:underline}
.source .context{margin:0;color:#3d444d}
.source mark{background:#fff3a3;color:#1f2328;padding:.05em 0;box-shadow:0 0 0 1px #f0c000}
.articles ol{margin:.2em 0 0 1.3em;padding:0}
.articles .date{color:#57606a;font-size:.85em}
"""

Chat = list[dict[str, Any]]


def _respond(service: Service, base: str, message: str, chat: Chat | None, history: list[str] | None) -> Iterator[tuple]:
    """One turn: show the question, then the answer as it is written (or a clear message), the sources, the history."""
    chat = list(chat or [])
    history = list(history or [])
    drafted = False
    try:
        if message.strip():
            chat.append({"role": "user", "content": render.render_user(message)})
            yield chat + [{"role": "assistant", "content": render.render_pending()}], gr.skip(), "", history
        for event in service.ask_stream(message, history):
            if event.final:
                answer = event.answer
                break
            drafted = True
            bubble = {"role": "assistant", "content": render.render_answer(event.answer, streaming=True)}
            yield chat + [bubble], render.render_sources(event.answer, service.article, base), gr.skip(), gr.skip()
        else:  # the library always ends with a final event; this is a bug if reached
            raise RuntimeError("the answer stream ended without a final answer")
    except QuestionError as exc:
        chat.append({"role": "assistant", "content": render.render_error(str(exc))})
        yield chat, gr.skip(), message if message.strip() else "", history
        return
    except RagError as exc:
        chat.append({"role": "assistant", "content": render.render_error(str(exc))})
        yield chat, _no_sources(service, base) if drafted else gr.skip(), message, history
        return
    except Exception:  # a bug: log it, tell the user plainly, never show a traceback
        log.exception("answering %r failed", message[:200])
        chat.append({"role": "assistant", "content": render.render_error("internal error; the server log has details")})
        yield chat, _no_sources(service, base) if drafted else gr.skip(), message, history
        return
    chat.append({"role": "assistant", "content": render.render_answer(answer)})
    sources = render.render_sources(answer, service.article, base)
    yield chat, sources, "", history + [message]


def _no_sources(service: Service, base: str) -> str:
    return render.render_sources(None, service.article, base)


def _api_ask(service: Service, question: str, history: list[str] | None = None) -> dict[str, Any]:
    try:
        return service.ask(question, history or []).to_dict()
    except RagError as exc:
        raise gr.Error(str(exc)) from None


def build_ui(service: Service, base: str = "", compact: bool = False) -> gr.Blocks:
    """The chat page (`compact=False`) or the iframe widget (`compact=True`); `base` is the public root path."""
    title = "Ask the articles" + (" (widget)" if compact else "")
    with gr.Blocks(title=title, fill_width=compact) as blocks:
        history = gr.State([])
        if not compact:
            gr.Markdown("## Ask the news articles\nAnswers are verbatim quotes from the articles; each [n] is a source.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(
                    label="Chat", show_label=False, height=300 if compact else 460, elem_id="chatbot",
                    feedback_options=None, buttons=[], placeholder="Ask a question about the articles.",
                )
                with gr.Row():
                    box = gr.Textbox(
                        show_label=False, placeholder="Ask a question…", scale=5, min_width=160,
                        elem_id="question", submit_btn=False, lines=1, max_lines=4,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=60, elem_id="ask")
                clear = gr.Button("Start over", size="sm", variant="secondary", elem_id="start-over")
                if compact:  # the widget is one narrow column: sources go under the chat
                    sources = gr.HTML(_no_sources(service, base), elem_id="sources")
                else:
                    if service.examples:
                        gr.Examples(examples=[[q] for q in service.examples], inputs=[box], label="Examples")
            if not compact:
                with gr.Column(scale=2, min_width=280):
                    sources = gr.HTML(_no_sources(service, base), elem_id="sources")
        if not compact:
            articles = service.articles()
            built = render.short_date(service.manifest.get("built_at"))
            with gr.Accordion(f"Articles ({len(articles)}, index built {built})", open=False, elem_id="articles"):
                gr.HTML(render.render_article_list(articles, service.manifest, base))

        def respond(message: str, chat: Chat, past: list[str]) -> Iterator[tuple]:
            yield from _respond(service, base, message, chat, past)

        def start_over() -> tuple:
            return [], _no_sources(service, base), "", []

        outputs = [chatbot, sources, box, history]
        for trigger in (box.submit, ask.click):  # concurrency_limit None: Gradio's default of 1 would queue every
            # chat behind one slow language-model answer; the answer path is safe to run concurrently
            trigger(respond, [box, chatbot, history], outputs, api_visibility="private", show_progress="hidden",
                    concurrency_limit=None)
        clear.click(start_over, None, outputs, api_visibility="private")
        chatbot.clear(start_over, None, outputs, api_visibility="private")  # the chat log's own bin icon

        if not compact:
            def ask_api(question: str, history: list[str] | None = None) -> dict[str, Any]:
                """Answer a question; the same JSON as POST /api/ask and `rag ask --json`."""
                return _api_ask(service, question, history)

            gr.api(ask_api, api_name="ask", concurrency_limit=None)
    return blocks
