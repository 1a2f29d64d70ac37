"""The offset invariant: every chunk and every sentence is the article's text at its offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunk import chunk_article, chunk_id, parse_chunk_id, split_sentences
from rag.ingest.files import load_articles
from rag.types import Article
from tests.conftest import BUNDLED


def check(article: Article, max_chars: int, overlap: int) -> None:
    chunks = chunk_article(article, max_chars, overlap)
    covered = set()
    for chunk in chunks:
        assert article.text[chunk.start : chunk.end] == chunk.text
        assert chunk.sentences and chunk.sentences[0][0] == chunk.start and chunk.sentences[-1][1] == chunk.end
        for start, end in chunk.sentences:
            assert chunk.start <= start < end <= chunk.end
            covered.add((start, end))
    # every word of the article is inside some sentence of some chunk
    spans = sorted(covered)
    for i, ch in enumerate(article.text):
        if ch.isalnum():
            assert any(s <= i < e for s, e in spans), f"character {i} ({ch!r}) is in no chunk"


def test_bundled_articles_keep_offsets() -> None:
    for article in load_articles(BUNDLED).articles:
        for max_chars, overlap in ((700, 1), (200, 0), (1500, 2)):
            check(article, max_chars, overlap)


def test_chunks_overlap_by_the_asked_number_of_sentences() -> None:
    article = load_articles(BUNDLED).articles[0]
    chunks = chunk_article(article, 400, 1)
    assert len(chunks) > 2
    shared = 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        if a.sentences[-1] == b.sentences[0]:
            shared += 1
        else:  # only when the last sentence and the next one do not fit in one chunk together
            assert b.sentences[0][1] - a.sentences[-1][0] > 400
    assert shared >= len(chunks) // 2


def test_a_sentence_longer_than_the_limit_is_cut_at_spaces() -> None:
    text = "Title\n" + "word " * 400 + "end."
    spans = split_sentences(text, 200)
    assert all(e - s <= 200 for s, e in spans)
    assert all(text[s] != " " and text[e - 1] != " " for s, e in spans)


_text = st.lists(
    st.sampled_from(list("abcXYZ 019.,;!?\n\t\"'’—-()é中") + ["Mr. ", "U.S. ", "\r\n", "  ", "Hello world. "]),
    max_size=300,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=_text, max_chars=st.integers(100, 800), overlap=st.integers(0, 3))
def test_offsets_hold_on_any_text(text: str, max_chars: int, overlap: int) -> None:
    check(Article(id="x", title="x", text=text), max_chars, overlap)


def test_chunk_ids_round_trip_even_when_the_article_id_holds_colons() -> None:
    for article_id in ("003_x.txt", "feed.jsonl#a:b", "nested/dir:odd/file.md"):
        assert parse_chunk_id(chunk_id(article_id, 12, 345)) == (article_id, 12, 345)
    article = Article("feed.json#k:1", "T", "One sentence here. Another one follows it.")
    assert all(parse_chunk_id(c.id) == (article.id, c.start, c.end) for c in chunk_article(article))


def test_a_malformed_chunk_id_is_refused() -> None:
    for bad in ("no-span", "a.txt:12", "a.txt:x-3", ":-", "a.txt:-5"):
        with pytest.raises(ValueError, match="not a chunk id"):
            parse_chunk_id(bad)
