"""The pure rendering functions of app/render.py, without a browser: escaping, highlighting, notices."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app import render
from rag.types import Answer, Article, Claim, Conflict, Quote

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'
TEXT = (
    "Headline line\n"
    "First paragraph says nothing much. The harbour reopened on Monday after repairs. Boats returned.\n"
    f"Second paragraph with {EVIL} inside it."
)


def _article(text: str = TEXT, title: str = "Harbour news") -> Article:
    return Article(id="a/1 b.txt", title=title, text=text)


def _quote(article: Article, sentence: str, n: int = 1) -> Quote:
    start = article.text.index(sentence)
    return Quote(n, article.id, article.title, start, start + len(sentence), sentence)


class _Tags(HTMLParser):
    """Collects the start tags a browser would build from the markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(name for name, _ in attrs)


def _tags(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    return parser


def test_sources_highlight_the_quote_inside_its_paragraph() -> None:
    article = _article()
    quote = _quote(article, "The harbour reopened on Monday after repairs.")
    answer = Answer(question="q", text="On Monday [1]", quotes=(quote,))
    html = render.render_sources(answer, {article.id: article}.get, base="/rag")
    assert "First paragraph says nothing much. <mark>The harbour reopened on Monday after repairs.</mark> Boats returned." in html
    assert "Headline line" not in html  # only the quote's own paragraph
    assert "Harbour news" in html and "[1]" in html
    assert 'href="/rag/article/a%2F1%20b.txt?start=' in html  # id quoted, root path kept


def test_every_article_and_user_text_is_escaped() -> None:
    article = _article(title=EVIL)
    quote = _quote(article, f"Second paragraph with {EVIL} inside it.")
    answer = Answer(question=EVIL, text=f"{EVIL} [1]", quotes=(quote,), conflicts=(Conflict(EVIL, (Claim(EVIL, (1,)),)),), notes=(EVIL,), mode=EVIL)
    pieces = [
        render.render_answer(answer),
        render.render_answer(answer, streaming=True),
        render.render_sources(answer, {article.id: article}.get),
        render.render_user(EVIL),
        render.render_error(EVIL),
        render.render_article_list([article], {"built_at": EVIL}),
        render.render_article_page(article, quote.start, quote.end),
    ]
    for markup in pieces:
        parsed = _tags(markup)
        assert "script" not in parsed.tags and "img" not in parsed.tags, markup
        assert "onerror" not in parsed.attrs
        assert "&lt;script&gt;" in markup or "&lt;img" in markup


def test_answer_shows_markers_mode_and_conflict_notice() -> None:
    article = _article()
    one = _quote(article, "The harbour reopened on Monday after repairs.", 1)
    two = _quote(article, "Boats returned.", 2)
    question = "On which day did the harbour of the town reopen after the repairs?"
    conflict = Conflict(question, (Claim("Monday", (1,)), Claim("Tuesday", (2,))))
    html = render.render_answer(Answer(question=question, text="Monday [1] or Tuesday [2]", quotes=(one, two),
                                       conflicts=(conflict,), mode="llm", answer_type="date"))
    assert '<span class="marker">[1]</span>' in html and '<span class="marker">[2]</span>' in html
    box = html.split('class="notice conflict"')[1].split("</div>")[0]
    assert "The articles give different dates" in box
    assert [re.sub("<[^>]+>", "", li) for li in re.findall("<li>(.*?)</li>", box)] == ["Monday [1]", "Tuesday [2]"]  # the values, one a line…
    assert "harbour" not in box  # …and not the question again
    assert '<span class="mode"' in html and ">llm · " in html and "language model" in html


def test_the_label_says_whose_answer_is_shown() -> None:
    article = _article()
    quote = _quote(article, "Boats returned.")
    extractive = Answer(question="q", text="Boats returned [1]", quotes=(quote,))
    assert ">extractive · quotes from the articles<" in render.render_answer(extractive)
    provisional = render.render_answer(extractive, provisional=True)
    assert "answer streaming provisional" in provisional and "language model is writing" in provisional
    assert "shown while the language model writes" in provisional
    assert "queued" in render.render_queued() and "Waiting" in render.render_queued()


def test_a_follow_up_says_how_it_was_read() -> None:
    answer = Answer(question="And when?", text="Monday [1]", resolved_question="When did the harbour reopen?")
    assert "Read as: When did the harbour reopen?" in render.render_answer(answer)
    same = Answer(question="When did it reopen?", text="Monday [1]", resolved_question="When did it reopen?")
    assert "Read as" not in render.render_answer(same)


def test_abstention_says_the_articles_do_not_say_and_lists_related_reading() -> None:
    article = _article()
    related = _quote(article, "Boats returned.")
    answer = Answer(question="q", text="No passage answers this.", abstained=True, related=(related,))
    assert "The articles don't say." in render.render_answer(answer)
    sources = render.render_sources(answer, {article.id: article}.get)
    assert "Related reading (not an answer)" in sources and "<mark>Boats returned.</mark>" in sources


def test_a_quote_that_does_not_match_its_article_is_shown_bare() -> None:
    article = _article()
    wrong = Quote(1, article.id, article.title, 0, 5, "Not the text at those offsets")
    html = render.render_sources(Answer(question="q", text="x [1]", quotes=(wrong,)), {article.id: article}.get)
    assert "<mark>Not the text at those offsets</mark>" in html and "Headline" not in html


def test_long_paragraph_is_cut_to_a_window_around_the_quote() -> None:
    filler = "word " * 400
    text = f"{filler}The key sentence is here. {filler}"
    lo, hi = render.paragraph_bounds(text, text.index("The key"), text.index("The key") + 25)
    assert hi - lo < 700 and lo > 0 and hi < len(text)


def test_article_page_highlights_only_a_valid_span() -> None:
    article = _article()
    quote = _quote(article, "Boats returned.")
    assert '<mark id="quote">Boats returned.</mark>' in render.render_article_page(article, quote.start, quote.end)
    assert "<mark" not in render.render_article_page(article, 5, 10_000)
    assert "<mark" not in render.render_article_page(article, None, None)


def test_short_date() -> None:
    assert render.short_date("2025-01-31T14:05:09+00:00") == "2025-01-31 14:05 UTC"
    assert render.short_date(None) == "unknown"


def test_a_streaming_draft_is_marked_and_keeps_its_notes_for_the_final_answer() -> None:
    article = _article()
    quote = _quote(article, "Boats returned.")
    answer = Answer(question="q", text="Boats came back [1].", quotes=(quote,), mode="llm", notes=("citation guard: 1 marker",))
    draft = render.render_answer(answer, streaming=True)
    assert 'class="answer streaming drafted"' in draft and "writing…" in draft and "citation guard" not in draft
    assert '<span class="marker">[1]</span>' in draft and ">llm · writing<" in draft
    final = render.render_answer(answer)
    assert "streaming" not in final and "writing…" not in final and "citation guard: 1 marker" in final
