"""Word-level text handling shared by the BM25 index and the answer step, so both see the same terms."""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(r"(?u)\b\w\w+\b")

# bm25s's English stop words plus the words questions are made of; none of them can carry an answer.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how many much does did do is are was were the of to in on "
    "a an and or for by with about from at as be been has have had it its this that these those there could would should "
    "may might must can will shall regarding according".split()
)


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | QUESTION_WORDS


@functools.lru_cache(maxsize=1)
def _stemmer():  # -> Stemmer.Stemmer (PyStemmer, the Snowball English stemmer)
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words of two or more characters, stop words kept."""
    return _TOKEN.findall(text.lower())


def terms(text: str) -> list[str]:
    """Stemmed content words: what BM25 indexes and what the answer step matches."""
    stop = stopwords()
    return _stemmer().stemWords([w for w in words(text) if w not in stop])
