"""Rendering: pure functions from `Answer` (and articles) to HTML, shared by the chat, the widget and the article page.

Every piece of article text and user text goes through `html.escape` here and nowhere else builds markup,
so one unit test of these functions covers what a browser can be shown. No gradio, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import quote as url_quote

from rag.types import Answer, Article, ArticleHeader, Quote

ArticleLookup = Callable[[str], Article | None]

_MARKER = re.compile(r"\[(\d+)\]")
# A paragraph longer than this is cut to a window around the quote, so one source cannot fill the panel.
_MAX_CONTEXT = 900
_CONTEXT_SIDE = 280


def _text(value: str) -> str:
    """User or article text as HTML: escaped, line breaks kept."""
    return escape(value).replace("\n", "<br>")


def _markers(escaped: str) -> str:
    """Wrap the [n] markers of already-escaped text so they can be styled; the text "[n]" stays as it is."""
    return _MARKER.sub(r'<span class="marker">[\1]</span>', escaped)


def article_href(base: str, quote: Quote) -> str:
    """Link to the whole article with this quote highlighted; `base` is the app's public root path."""
    return f"{base}/article/{url_quote(quote.article_id, safe='')}?start={quote.start}&end={quote.end}#quote"


def render_user(question: str) -> str:
    """The user's turn for the chat log. A single <div> so markdown leaves the escaped text alone."""
    return f'<div class="user-turn">{_text(question)}</div>'


def render_error(message: str) -> str:
    """A clear one-line message in the chat instead of an answer (bad question, server trouble)."""
    return f'<div class="answer error"><strong>Cannot answer:</strong> {_text(message)}</div>'


def render_pending() -> str:
    return '<div class="answer pending">Searching the articles…</div>'


def render_read_as(answer: Answer) -> str:
    """"Read as: …" when the question was read with the earlier turns of the chat (empty when read as typed)."""
    resolved = " ".join(answer.resolved_question.split())
    if not resolved or resolved == " ".join(answer.question.split()):
        return ""
    return f'<div class="note read-as">Read as: {escape(resolved)}</div>'


def render_answer(answer: Answer, streaming: bool = False) -> str:
    """The assistant's turn: the answer with its [n] markers, a notice for disagreement or no answer, the mode.

    `streaming` marks a draft of a language model's answer (only
    sentences that passed the citation guard): it is shown without notes, with a line saying more may follow.
    """
    text = answer.text
    classes = "answer abstained" if answer.abstained else "answer"
    if streaming:
        classes += " streaming"
    parts = [f'<div class="{classes}">', render_read_as(answer)]
    if answer.abstained:
        parts.append('<div class="notice abstain">The articles don\'t say.</div>')
    parts.append(f'<div class="answer-text">{_markers(_text(text))}</div>')
    if answer.conflicts:
        parts.append('<div class="notice conflict"><strong>The articles disagree.</strong><ul>')
        for conflict in answer.conflicts:
            claims = "; ".join(
                f"{escape(claim.value)} " + "".join(f'<span class="marker">[{n}]</span>' for n in claim.quotes)
                for claim in conflict.claims
            )
            parts.append(f"<li>{escape(conflict.about)}: {claims}</li>")
        parts.append("</ul></div>")
    if streaming:
        parts.append('<div class="note writing">writing… each sentence appears once its citations are checked</div>')
    else:
        for note in answer.notes:
            parts.append(f'<div class="note">{escape(note)}</div>')
    parts.append(f'<div class="answer-foot"><span class="mode" title="how this answer was made">{escape(answer.mode)}</span></div>')
    parts.append("</div>")
    return "".join(parts)


def paragraph_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The line (paragraph) of `text` around [start, end), cut to a window when it is very long."""
    para_start = text.rfind("\n", 0, start) + 1
    para_end = text.find("\n", end)
    para_end = len(text) if para_end == -1 else para_end
    if para_end - para_start > _MAX_CONTEXT:
        para_start = max(para_start, start - _CONTEXT_SIDE)
        para_end = min(para_end, end + _CONTEXT_SIDE)
    return para_start, para_end


def _in_context(article: Article | None, quote: Quote) -> str:
    """The quote highlighted inside its paragraph; the bare quote when the article is not at hand."""
    if article is None or article.text[quote.start : quote.end] != quote.text:
        return f'<p class="context"><mark>{_text(quote.text)}</mark></p>'
    lo, hi = paragraph_bounds(article.text, quote.start, quote.end)
    before = ("…" if lo > 0 and article.text[lo - 1] != "\n" else "") + article.text[lo : quote.start]
    after = article.text[quote.end : hi] + ("…" if hi < len(article.text) and article.text[hi] != "\n" else "")
    return (
        f'<p class="context">{_text(before.lstrip())}<mark>{_text(quote.text)}</mark>{_text(after.rstrip())}</p>'
    )


def _source(quote: Quote, article: Article | None, base: str, label: str) -> str:
    title = escape(quote.title or quote.article_id)
    return (
        f'<div class="source" id="source-{quote.n}">'
        f'<div class="source-head"><span class="marker">{escape(label)}</span> '
        f'<a href="{escape(article_href(base, quote))}" target="_blank" rel="noopener" class="source-title">{title}</a>'
        f"</div>{_in_context(article, quote)}</div>"
    )


def render_sources(answer: Answer | None, lookup: ArticleLookup, base: str = "") -> str:
    """The sources panel: each [n] with its article title and the quote highlighted in its paragraph."""
    if answer is None:
        return '<div class="sources empty">Sources of the latest answer appear here.</div>'
    parts = ['<div class="sources">']
    if answer.quotes:
        parts.append('<div class="sources-head">Sources</div>')
        parts.extend(_source(q, lookup(q.article_id), base, f"[{q.n}]") for q in answer.quotes)
    elif answer.related:
        parts.append('<div class="sources-head">Related reading (not an answer)</div>')
        parts.extend(_source(q, lookup(q.article_id), base, "·") for q in answer.related)
    else:
        parts.append('<div class="sources-head">No sources</div>')
    parts.append("</div>")
    return "".join(parts)


def short_date(stamp: object) -> str:
    """An ISO timestamp as "2025-01-31 14:05 UTC" for people; anything else as it is."""
    text = str(stamp or "")
    if len(text) >= 16 and text[10] == "T":
        return text[:10] + " " + text[11:16] + (" UTC" if text.endswith(("+00:00", "Z")) else "")
    return text or "unknown"


def render_article_list(articles: Iterable[Article | ArticleHeader], manifest: Mapping[str, Any], base: str = "") -> str:
    """The articles the assistant knows, with their count and the index's build date."""
    items = list(articles)
    built = short_date(manifest.get("built_at"))
    rows = "".join(
        f'<li><a href="{escape(base)}/article/{escape(url_quote(a.id, safe=""))}" target="_blank" rel="noopener">'
        f"{escape(a.title or a.id)}</a>"
        + (f' <span class="date">{escape(a.published_at)}</span>' if a.published_at else "")
        + "</li>"
        for a in items
    )
    return (
        f'<div class="articles"><div class="articles-head">{len(items)} article{"s" if len(items) != 1 else ""}'
        f' · index built {escape(built)}</div><ol>{rows}</ol></div>'
    )


ARTICLE_CSS = """
body{font:17px/1.6 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem;line-height:1.3}.meta{color:#57606a;font-size:.9rem}
mark{background:#fff3a3;padding:.1em 0;box-shadow:0 0 0 2px #f0c000}
.text{white-space:pre-wrap}
"""


def render_article_page(article: Article, start: int | None = None, end: int | None = None) -> str:
    """The whole article as a page, with [start, end) highlighted when it is a valid span."""
    text = article.text
    valid = start is not None and end is not None and 0 <= start < end <= len(text)
    if valid:
        body = f'{escape(text[:start])}<mark id="quote">{escape(text[start:end])}</mark>{escape(text[end:])}'
    else:
        body = escape(text)
    meta = " · ".join(escape(x) for x in (article.source, article.published_at, article.id) if x)
    link = f' · <a href="{escape(article.url)}" rel="noopener noreferrer">original</a>' if article.url.startswith(("http://", "https://")) else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(article.title or article.id)}</title><style>{ARTICLE_CSS}</style></head><body>"
        f'<h1>{escape(article.title or article.id)}</h1><div class="meta">{meta}{link}</div>'
        f'<div class="text">{body}</div></body></html>'
    )
