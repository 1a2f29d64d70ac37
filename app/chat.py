"""The Gradio pages: the full chat at `/` and the compact widget at `/widget/`.

Each handler is one `Service` call plus rendering from app/render.py. A question goes through two events:
`submit` (instant, never queued behind anything) adds it to the session's `Conversation` (app/conversation.py)
and clears the box, so a question typed while an answer is being computed is kept and shown as waiting;
`drain` then answers the waiting questions one after another, oldest first, yielding the chat log rendered
from the conversation at every step: "Searching the articles…", then in llm mode the extractive answer at
once (labelled), the model's verified sentences as they arrive (they replace it), then the final answer,
whose label says whose answer it is. Drains of different users run side by side (`ANSWER_CONCURRENCY`).

The finished turns are kept in the browser's own storage (`gr.BrowserState`, localStorage) and
rendered again on reload; "Start over" clears both. With `feedback_file` set, each answer gets a thumbs
up/down, and a thumbs-down offers a box for the right answer (app/feedback.py writes them).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from app import conversation, render
from app.conversation import Conversation, Turn
from app.feedback import FeedbackError, FeedbackLog, record_for
from app.service import Service
from rag.errors import RagError

log = logging.getLogger(__name__)
ANSWER_CONCURRENCY = 16  # answers computed at once across all users; the rest wait in Gradio's queue

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
.answer.provisional .answer-text{color:#3d444d}
#feedback-row{align-items:center}
.feedback-status{font-size:.85rem;color:#57606a}
.answer .note.writing{font-style:italic}
.answer .note{font-size:.8rem;color:#57606a}
.sources{font-size:.93rem;line-height:1.5}
.sources-head,.articles-head{font-weight:600;margin:.1em 0 .5em;color:#24292f}
.sources.empty{color:#57606a;font-style:italic;padding:.5em 0}
.source{border:1px solid #d0d7de;border-radius:8px;padding:.5em .7em;margin-bottom:.6em;background:#fff}
.source-head{margin-bottom:.3em}
.source-title{font-weight:600;color:#0969da;text-decoration:none}
#sources .source-head a.source-title{font-size:.95rem;line-height:1.35}
#sources .sources-head{font-size:1rem}
.source-title:hover{text-decoration:underline}
.source .context{margin:0;color:#3d444d}
.source mark{background:#fff3a3;color:#1f2328;padding:.05em 0;box-shadow:0 0 0 1px #f0c000}
.articles ol{margin:.2em 0 0 1.3em;padding:0}
.articles .date{color:#57606a;font-size:.85em}
"""


def _answer_turn(service: Service, turn: Turn, mode: str) -> Iterator[Any]:
    """Answer one turn, updating `turn.bubble` and yielding the answer whose sources the panel shows (None to
    keep the panel as it is) after each change. In llm mode (and auto with a model) the extractive answer comes
    first, at once."""
    try:
        if mode == "extractive":  # one step, no drafts: asked directly, without the stream's worker thread
            turn.answer = service.ask(turn.question, turn.earlier or turn.history, mode)
        else:
            if mode == "llm":
                quick = service.ask(turn.question, turn.earlier or turn.history, mode="extractive")
                turn.bubble = render.render_answer(quick, provisional=True)
                yield quick
            for event in service.ask_stream(turn.question, turn.earlier or turn.history, mode):
                if event.final:
                    turn.answer = event.answer
                    break
                # the library's own extractive drafts (shown at once; "waiting for the model") stay provisional: only
                # the model's guarded sentences are drafts of its answer
                bubble = render.render_answer(event.answer, streaming=event.answer.mode == "llm",
                                              provisional=event.answer.mode != "llm")
                if bubble == turn.bubble:  # the extractive answer again, already shown at once
                    continue
                turn.bubble = bubble
                yield event.answer
            else:  # the library always ends with a final event; this is a bug if reached
                raise RuntimeError("the answer stream ended without a final answer")
    except RagError as exc:  # a bad question included: one clear line, never a traceback
        turn.error = str(exc)
    except Exception:  # a bug: log it, tell the user plainly
        log.exception("answering %r failed", turn.question[:200])
        turn.error = "internal error; the server log has details"
    if turn.answer is not None:
        turn.status, turn.bubble = "done", render.render_answer(turn.answer)
        yield turn.answer
    else:
        turn.status, turn.bubble = "error", render.render_error(turn.error)
        yield None


def _drain(service: Service, base: str, conv: Conversation) -> Iterator[tuple]:
    """Answer the session's waiting questions in order; return at once if another drain is doing it.
    Yields (chat log, sources panel, stored turns)."""
    token = conversation.claim(conv)
    if token is None:
        yield gr.skip(), gr.skip(), gr.skip()
        return
    mode = service.assistant.answer_mode()  # "auto" is "llm" when a model is installed or configured
    try:
        while (turn := conversation.next_turn(conv, token)) is not None:
            yield conversation.messages(conv), gr.skip(), gr.skip()
            for shown in _answer_turn(service, turn, mode):
                if not conversation.owns(conv, token):  # "Start over" while answering: drop this answer
                    break
                sources = render.render_sources(shown, service.article, base) if shown is not None else gr.skip()
                yield conversation.messages(conv), sources, gr.skip()
            if conversation.owns(conv, token):
                yield conversation.messages(conv), gr.skip(), conversation.stored(conv)
    finally:
        conversation.release(conv, token)


def _markup(html: str, elem_id: str | None = None, visible: bool = True) -> gr.Markdown:
    """A panel showing markup we rendered (escaped) in app/render.py. `gr.Markdown`, not `gr.HTML`: Gradio 6's
    HTML component compiles a template with `new Function`, which the Content-Security-Policy forbids; raw
    HTML blocks pass through Markdown untouched (our markup has no blank lines) and are still sanitized."""
    return gr.Markdown(html, elem_id=elem_id, visible=visible, sanitize_html=True, line_breaks=False)


def _no_sources(service: Service, base: str) -> str:
    return render.render_sources(None, service.article, base)


def _api_ask(service: Service, question: str, history: list[str] | None = None, mode: str | None = None) -> dict[str, Any]:
    try:
        return service.ask(question, history or [], mode or None).to_dict()
    except RagError as exc:
        raise gr.Error(str(exc)) from None


def _storage_secret(service: Service, key: str) -> str:
    """Gradio encrypts the stored chat with a key it puts in the page (it decrypts in the browser), so this is no
    secret and protects nothing; it is only stable across restarts of one deployment, so a reload after a restart
    still finds the chat (Gradio's default, a random key per process, would lose it). The stored data is
    validated and rendered again from data on the way back in any case (app/conversation.py)."""
    seed = f"{key}|{service.settings.index_dir.resolve()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def build_ui(service: Service, base: str = "", compact: bool = False) -> gr.Blocks:
    """The chat page (`compact=False`) or the iframe widget (`compact=True`); `base` is the public root path."""
    title = "Ask the articles" + (" (widget)" if compact else "")
    settings = service.settings
    feedback = FeedbackLog(Path(settings.feedback_file).expanduser()) if settings.feedback_file else None
    key = "rag-widget" if compact else "rag-chat"
    with gr.Blocks(title=title, fill_width=compact) as blocks:
        conv = gr.State(Conversation())  # deepcopied by Gradio for each session
        kept = gr.BrowserState([], storage_key=key, secret=_storage_secret(service, key))
        judged = gr.State("")  # the id of the turn a thumbs-down was given to, awaiting an optional correction
        if not compact:
            gr.Markdown("## Ask the news articles\nAnswers are verbatim quotes from the articles; each [n] is a source.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(
                    label="Chat", show_label=False, height=300 if compact else 460, elem_id="chatbot",
                    feedback_options=("Like", "Dislike") if feedback else None, buttons=[],
                    placeholder="Ask a question about the articles.",
                )
                with gr.Row(visible=False, elem_id="feedback-row") as correction_row:
                    correction = gr.Textbox(
                        show_label=False, placeholder="What is the right answer? (optional)", scale=5, min_width=160,
                        elem_id="correction", lines=1, max_lines=3, submit_btn=False,
                    )
                    send_correction = gr.Button("Send", size="sm", scale=1, min_width=60, elem_id="send-correction")
                thanks = _markup("", "feedback-status", visible=feedback is not None)
                with gr.Row():
                    box = gr.Textbox(
                        show_label=False, placeholder="Ask a question…", scale=5, min_width=160,
                        elem_id="question", submit_btn=False, lines=1, max_lines=4,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=60, elem_id="ask")
                clear = gr.Button("Start over", size="sm", variant="secondary", elem_id="start-over")
                if compact:  # the widget is one narrow column: sources go under the chat
                    sources = _markup(_no_sources(service, base), "sources")
                else:
                    if service.examples:
                        gr.Examples(examples=[[q] for q in service.examples], inputs=[box], label="Examples")
            if not compact:
                with gr.Column(scale=2, min_width=280):
                    sources = _markup(_no_sources(service, base), "sources")
        if not compact:
            articles = service.articles()
            built = render.short_date(service.manifest.get("built_at"))
            with gr.Accordion(f"Articles ({len(articles)}, index built {built})", open=False, elem_id="articles"):
                _markup(render.render_article_list(articles, service.manifest, base))

        def submit(message: str, state: Conversation) -> tuple:
            conversation.add(state, message)
            return conversation.messages(state), ""

        def drain(state: Conversation) -> Iterator[tuple]:
            yield from _drain(service, base, state)

        def restore(saved: Any) -> tuple:
            state = conversation.restore(saved)
            latest = conversation.latest_answer(state)
            panel = render.render_sources(latest, service.article, base) if latest else _no_sources(service, base)
            return state, conversation.messages(state), panel

        def start_over(state: Conversation) -> tuple:
            conversation.clear(state)
            return [], _no_sources(service, base), "", [], gr.update(visible=False), ""

        def judge(state: Conversation, data: gr.LikeData) -> tuple:
            turn = conversation.turn_at(state, data.index if isinstance(data.index, int) else -1)
            if feedback is None or turn is None or turn.answer is None or data.liked not in (True, False):
                return "", gr.update(visible=False), render.render_feedback_status("Feedback counts once an answer is complete.")
            verdict = "up" if data.liked else "down"
            try:
                feedback.write(record_for(turn.id, turn.question, turn.history, turn.answer, verdict))
            except FeedbackError as exc:
                return "", gr.update(visible=False), render.render_feedback_status(str(exc))
            if verdict == "up":
                return "", gr.update(visible=False), render.render_feedback_status("Thanks: kept as a test question.")
            return turn.id, gr.update(visible=True), render.render_feedback_status("Thanks. What is the right answer? (optional)")

        def correct(text: str, turn_id: str, state: Conversation) -> tuple:
            turn = next((t for t in state.turns if t.id == turn_id), None)
            if feedback is None or turn is None or turn.answer is None:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            try:
                feedback.write(record_for(turn.id, turn.question, turn.history, turn.answer, "down", text))
            except FeedbackError as exc:
                return gr.skip(), gr.skip(), gr.skip(), render.render_feedback_status(str(exc))
            return "", "", gr.update(visible=False), render.render_feedback_status("Thanks: the right answer is kept for testing.")

        for trigger in (box.submit, ask.click):
            # through Gradio's first-in-first-out queue, one at a time (a few microseconds each), so questions are
            # added in the order they were sent; queue=False requests run in parallel threads and can swap places
            trigger(submit, [box, conv], [chatbot, box], api_visibility="private", trigger_mode="multiple",
                    concurrency_id="submit", concurrency_limit=1, show_progress="hidden").then(
                drain, [conv], [chatbot, sources, kept], api_visibility="private", show_progress="hidden",
                concurrency_limit=ANSWER_CONCURRENCY, trigger_mode="multiple",
            )
        reset = [chatbot, sources, box, kept, correction_row, thanks]
        clear.click(start_over, [conv], reset, api_visibility="private", queue=False)
        chatbot.clear(start_over, [conv], reset, api_visibility="private", queue=False)  # the chat log's own bin icon
        blocks.load(restore, [kept], [conv, chatbot, sources], api_visibility="private", queue=False)
        if feedback is not None:
            chatbot.like(judge, [conv], [judged, correction_row, thanks], api_visibility="private", queue=False)
            for trigger in (correction.submit, send_correction.click):
                trigger(correct, [correction, judged, conv], [correction, judged, correction_row, thanks],
                        api_visibility="private", queue=False)

        if not compact:
            def ask_api(question: str, history: list[str] | None = None, mode: str | None = None) -> dict[str, Any]:
                """Answer a question; the same JSON as POST /api/ask and `rag ask --json`."""
                return _api_ask(service, question, history, mode)

            gr.api(ask_api, api_name="ask", concurrency_limit=None)
    return blocks
