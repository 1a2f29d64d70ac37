"""Word-level text handling shared by the BM25 index and the answer step, so both see the same terms."""

from __future__ import annotations

import functools
import math
import re
import threading

_TOKEN = re.compile(r"(?u)\b\w\w+\b")

# bm25s's English stop words plus the words questions are made of; none of them can carry an answer.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how many much does did do is are was were the of to in on "
    "a an and or for by with about from at as be been has have had it its this that these those there could would should "
    "may might must can will shall regarding according".split()
)


# Snowball stems regular inflections only; these past forms would never meet their present ("sent" /
# "send") in BM25 or in the answer step's term matching.
IRREGULAR = {
    "sent": "send", "went": "go", "gone": "go", "said": "say", "led": "lead", "took": "take", "taken": "take",
    "fought": "fight", "began": "begin", "begun": "begin", "won": "win", "lost": "lose", "paid": "pay",
    "held": "hold", "made": "make", "gave": "give", "given": "give", "told": "tell", "found": "find",
    "brought": "bring", "bought": "buy", "built": "build", "caught": "catch", "chose": "choose",
    "chosen": "choose", "drove": "drive", "fell": "fall", "fallen": "fall", "flew": "fly", "flown": "fly",
    "left": "leave", "met": "meet", "ran": "run", "rose": "rise", "risen": "rise", "saw": "see", "seen": "see",
    "sold": "sell", "spent": "spend", "stood": "stand", "struck": "strike", "taught": "teach",
    "thought": "think", "threw": "throw", "thrown": "throw", "wrote": "write", "written": "write",
    "spoke": "speak", "spoken": "speak", "broke": "break", "broken": "break", "came": "come", "got": "get",
    "kept": "keep", "knew": "know", "known": "know", "meant": "mean", "shot": "shoot", "stole": "steal",
    "stolen": "steal", "woke": "wake", "hid": "hide", "hidden": "hide", "fled": "flee", "sought": "seek",
    "froze": "freeze", "frozen": "freeze", "grew": "grow", "grown": "grow", "drew": "draw", "drawn": "draw",
    "bore": "bear", "born": "bear", "swore": "swear", "sworn": "swear", "dealt": "deal", "felt": "feel",
    "heard": "hear", "laid": "lay", "lent": "lend", "slid": "slide", "split": "split", "spread": "spread",
    "stuck": "stick", "swept": "sweep", "understood": "understand", "withdrew": "withdraw",
    "withdrawn": "withdraw", "overtook": "overtake", "undertook": "undertake", "forgave": "forgive",
}


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | QUESTION_WORDS


_local = threading.local()


def _stemmer():  # -> Stemmer.Stemmer (PyStemmer, the Snowball English stemmer)
    """This thread's stemmer: PyStemmer's objects keep internal state and "must not be called concurrently"."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def bm25_idf(df: int, n_docs: int) -> float:
    """The Lucene IDF that bm25s scores with; the answer step weighs question terms by the same number."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def words(text: str) -> list[str]:
    """Lower-cased words of two or more characters, stop words kept."""
    return _TOKEN.findall(text.lower())


def terms(text: str) -> list[str]:
    """Stemmed content words: what BM25 indexes and what the answer step matches."""
    stop = stopwords()
    return _stemmer().stemWords([IRREGULAR.get(w, w) for w in words(text) if w not in stop])


def quote_is_verbatim(article_text: str | None, start: int, end: int, text: str) -> bool:
    """The one verbatim check, for the answer path and the evaluator: `text` is the article's text at its offsets."""
    return article_text is not None and 0 <= start < end <= len(article_text) and article_text[start:end] == text
