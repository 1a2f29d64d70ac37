"""Chunking: split an article into sentences with exact offsets, then into overlapping runs of sentences.

Invariant: `article.text[chunk.start:chunk.end] == chunk.text` and every sentence span lies inside its chunk.

Sentences come from NLTK's Punkt model, the one llama-index ships in its own cache (so nothing is fetched).
We call Punkt's `span_tokenize` ourselves instead of llama-index's `SentenceSplitter` because the splitter
recovers a node's offset with `str.find`, which lands on the wrong place when a passage repeats, and it gives
no per-sentence spans; the answer step needs exact spans for every sentence it quotes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable

from rag.types import Article, Chunk

_WORDLIKE = re.compile(r"\w", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _punkt():  # -> nltk PunktTokenizer; loaded on first use, from llama-index's bundled data
    import importlib.util

    import nltk

    # find_spec locates llama-index's package without running its __init__ (seconds of imports we don't use)
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-index-core is not installed; it provides the Punkt sentence model")
    cache = os.path.join(next(iter(spec.submodule_search_locations)), "_static", "nltk_cache")
    if cache not in nltk.data.path:
        nltk.data.path.append(cache)
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")


def split_sentences(text: str, max_chars: int = 700) -> list[tuple[int, int]]:
    """Sentence spans of `text`: lines are hard breaks; a sentence longer than `max_chars` is cut at spaces."""
    tokenizer = _punkt()
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        if line.strip():
            for start, end in tokenizer.span_tokenize(line):
                if _WORDLIKE.search(line, start, end):
                    spans.extend(_cut_long(text, offset + start, offset + end, max_chars))
        offset += len(line) + 1
    return spans


def _cut_long(text: str, start: int, end: int, max_chars: int) -> Iterable[tuple[int, int]]:
    while end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        yield start, end


def chunk_id(article_id: str, start: int, end: int) -> str:
    """The id of the chunk of `article_id` at start..end: stable across rebuilds and backends."""
    return f"{article_id}:{start}-{end}"


def parse_chunk_id(value: str) -> tuple[str, int, int]:
    """(article id, start, end) of a chunk id; ValueError when `value` is not one."""
    article_id, sep, span = value.rpartition(":")
    start, dash, end = span.partition("-")
    if not sep or not dash or not start.isdigit() or not end.isdigit():
        raise ValueError(f"not a chunk id: {value!r}")
    return article_id, int(start), int(end)


def chunk_article(article: Article, max_chars: int = 700, overlap: int = 1) -> list[Chunk]:
    """Greedy runs of whole sentences up to `max_chars`, each starting `overlap` sentences before the last ended."""
    sentences = split_sentences(article.text, max_chars)
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and sentences[j][1] - sentences[i][0] <= max_chars:
            j += 1
        start, end = sentences[i][0], sentences[j - 1][1]
        chunks.append(
            Chunk(
                id=chunk_id(article.id, start, end),
                article_id=article.id,
                text=article.text[start:end],
                start=start,
                end=end,
                sentences=tuple(sentences[i:j]),
            )
        )
        if j >= len(sentences):
            break
        nxt = max(i + 1, j - overlap)
        while nxt < j and sentences[j][1] - sentences[nxt][0] > max_chars:
            nxt += 1  # the overlap would leave no room for new text: overlap less
        i = nxt
    return chunks
