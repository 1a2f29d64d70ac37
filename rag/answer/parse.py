"""spaCy's dependency parse, for the readings that need structure: follow-ups and the answer forms.

The question reader's pipeline (rag.answer.spans) is loaded without its parser, since typing a question needs
only tags and entities. Resolving "they" to the noun phrase it points at, or finding the speaker of a quotation,
needs the parse (nsubj, ccomp, appos, advcl, mark), so this module loads the same small English package once
more with its parser and keeps it behind its own lock (spaCy pipelines are not documented as thread-safe).
Parses are cached by text: a chat parses the same earlier turns and candidate sentences again and again.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_pipeline: Any = None
_load_lock = threading.Lock()
_parse_lock = threading.Lock()


def _nlp() -> Any:
    global _pipeline
    if _pipeline is None:
        with _load_lock:
            if _pipeline is None:
                from rag.embed.heavy import import_spacy_model

                _pipeline = import_spacy_model().load(exclude=["senter"])
    return _pipeline


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Any:
    """The parsed spaCy `Doc` of `text` (read it, never change it: it is shared through the cache)."""
    with _parse_lock:
        return _nlp()(text)


def is_wh(token: Any) -> bool:
    """A wh-word by its Penn tag (WDT, WP, WP$, WRB): the tagger's class, not a list of words."""
    return token.tag_.startswith("W")


def is_heading(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is a section heading or title line: a whole line (nothing but a line break
    around it) that starts with a word character and ends without sentence punctuation. Headings stay in
    the index as context and titles, but are never quoted as an answer. A line that starts with a dash or a
    quotation mark (an attribution line, "– Institute for the Study of War") is not a heading."""
    sentence = text[start:end].strip().lstrip("#").strip()  # a Markdown heading ("# Schools reopen") too
    if not sentence or not sentence[0].isalnum() or sentence[-1] in ".!?:;\"”’)…":
        return False
    before = text[:start].rstrip(" \t")
    after = text[end:].lstrip(" \t")
    return (not before or before.endswith("\n")) and (not after or after.startswith("\n")) and len(sentence.split()) <= 20


def is_attribution(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is an attribution line: a whole line that opens with a dash and has no verb
    ("– Institute for the Study of War" under a quotation). It names who said the quotation above it; it is
    never quoted as an answer itself."""
    import unicodedata

    sentence = text[start:end].strip()
    if not sentence or unicodedata.category(sentence[0]) != "Pd":
        return False
    before, after = text[:start].rstrip(" \t"), text[end:].lstrip(" \t")
    if not ((not before or before.endswith("\n")) and (not after or after.startswith("\n"))):
        return False
    return not any(t.pos_ in ("VERB", "AUX") for t in parse(sentence))


def warm_up() -> None:
    """Load the parser now (call it in a thread while other things load)."""
    _nlp()



_NOT_PLACES = ("DATE", "TIME", "CARDINAL", "MONEY", "PERCENT", "ORDINAL", "QUANTITY")
_CLAUSES = ("ROOT", "advcl", "xcomp", "ccomp", "relcl", "acl")


def stranded_preposition(question: str) -> str:
    """The preposition a question leaves without its object ("Where were they evacuated from?" -> "from"): the
    one whose object is what is asked; "" when there is none."""
    doc = parse(question)
    return next((t.lower_ for t in doc if t.pos_ == "ADP" and t.dep_ in ("prep", "prt") and all(
        is_wh(c) for c in t.children if c.dep_ == "pobj")), "")  # no object, or the wh-word itself ("Where … from")


def verb_phrases(sentence: str, asked: set[str], preposition: str = "") -> list[tuple[int, int]]:
    """Character offsets, in `sentence`, of the noun phrases governed through a preposition by a verb of the
    question (its stem in `asked`): "sent … around the Kursk region", "measure phosphorus at twelve stations",
    where a place question's verb put its object. The verb is found in the sentence, whose parse is surer than
    a lower-case question's; a clause head the tagger took for a noun ("training at Russian bases") counts. The
    phrase is the noun with its left modifiers, without a leading article; a date or a figure is not a place.
    With `preposition` (the question's stranded one), only phrases governed through that preposition."""
    from rag.text import terms

    if not asked:
        return []
    doc = parse(sentence)
    out = []
    for verb in doc:
        if not (verb.pos_ == "VERB" or verb.dep_ in _CLAUSES) or not set(terms(verb.text)) & asked:
            continue
        for prep in verb.children:
            if prep.dep_ not in ("prep", "dative") or (preposition and prep.lower_ != preposition):
                continue
            for noun in prep.children:
                if noun.dep_ != "pobj" or noun.pos_ not in ("NOUN", "PROPN") or noun.ent_type_ in _NOT_PLACES:
                    continue
                first = noun.left_edge.i
                while first < noun.i and doc[first].pos_ in ("DET", "PRON", "PART", "PUNCT"):
                    first += 1
                out.append((doc[first].idx, noun.idx + len(noun.text)))
    return out
