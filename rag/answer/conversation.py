"""A follow-up read against the conversation: which earlier turn it leans on, and the one question it means.

The antecedent of "they", "it", "there" or an elided subject is the latest turn that was ANSWERED: a turn that
abstained (off-topic, unanswerable) never is, since nothing in the articles was said about it. Inside that turn
the pronoun points at one of its noun phrases, picked by structure alone (spaCy's parse and morphology, no
word lists):
- the grammatical role: the subject (nsubj, nsubjpass) first, then attributes and objects, then the objects of
  prepositions: the order in which a reader keeps referents salient;
- agreement: a plural pronoun (Number=Plur) takes a plural noun phrase (NNS/NNPS head), a gendered one
  (Gender=Masc/Fem) a PERSON entity, a neuter one a phrase that is not a person, "there" (an adverb with
  PronType=Dem) a place entity (GPE/LOC/FAC);
- when the earlier turn asked for a name with its wh-word as the subject ("Which think tank assessed …?"), the
  name it was answered with is the first referent ("Where is it based?" asks where that think tank is based).

The follow-up is then rewritten as the one question a person would write: the pronoun replaced by the phrase
("Where were they sent?" -> "Where were the North Korean troops sent?"), a counted noun put back after an elided
"how many" ("And how many had arrived?"), or the earlier question with one phrase swapped ("What about Kyiv?").
When no such rewrite applies, the phrase is added in brackets, never a second question glued on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.answer.parse import is_wh, parse
from rag.text import terms
from rag.types import Answer, Query, Turn

_ROLE_ORDER = {"nsubj": 0, "nsubjpass": 0, "attr": 1, "dobj": 1, "appos": 1, "pobj": 2}
_PLACES = ("GPE", "LOC", "FAC")


@dataclass(frozen=True, slots=True)
class Referent:
    """A noun phrase an earlier turn spoke of, with what agreement needs to know about it."""

    text: str
    plural: bool
    person: bool
    place: bool
    proper: bool = False  # headed by a proper noun: what a bare name in "What about Kyiv?" replaces


def as_turns(history: Sequence[Turn | str]) -> tuple[Turn, ...]:
    """Earlier turns as `Turn`s: a bare string (the CLI's --history, an evaluator's file, an old API client) is a
    question whose answer is not known. Blank questions are dropped."""
    out = []
    for item in history:
        turn = item if isinstance(item, Turn) else Turn(str(item))
        if turn.question.strip():
            out.append(turn)
    return tuple(out)


def antecedent(history: Sequence[Turn]) -> Turn | None:
    """The latest turn that was answered (abstained is False); None when there is none."""
    return next((t for t in reversed(history) if t.abstained is False), None)


def answer_value(answer: str) -> str:
    """The short answer before its [n] markers ("Institute for the Study of War [1][2]" -> the name)."""
    return answer.split(" [", 1)[0].strip() if answer else ""


def referents(turn: Turn) -> list[Referent]:
    """The noun phrases of `turn`, most salient first (see the module docstring)."""
    doc = parse(turn.resolved or turn.question)
    found: list[tuple[int, int, Referent]] = []
    value = answer_value(turn.answer)
    named = parse(value) if value and len(value.split()) <= 8 else None
    if named is not None and not any(t.pos_ == "PROPN" for t in named):
        named = None  # a figure or a sentence, not a name that "it" or "they" could point at
    if named is not None and any(is_wh(t) for t in doc):
        # what the turn asked for ("Which think tank", "In which Russian region", "Who") is now the name it was
        # answered with: the newest thing the conversation established, so the most salient referent
        labels = {e.label_ for e in named.ents}
        found.append((-1, -1, Referent(value, any(t.tag_ == "NNPS" for t in named), "PERSON" in labels,
                                       bool(labels & set(_PLACES)), True)))
    for chunk in doc.noun_chunks:
        root = chunk.root
        role = _ROLE_ORDER.get(root.dep_ if root.dep_ != "conj" else root.head.dep_, 3)
        if named is not None and any(is_wh(t) for t in chunk):
            continue  # the asked-for phrase: stands for the answer above
        text = _phrase(chunk)
        if not text:
            continue
        labels = {e.label_ for e in doc.ents if e.start < chunk.end and e.end > chunk.start}
        found.append((role, chunk.start, Referent(
            text, root.tag_ in ("NNS", "NNPS"), "PERSON" in labels, bool(labels & set(_PLACES)), root.pos_ == "PROPN")))
    covered = {t.i for chunk in doc.noun_chunks for t in chunk}
    for token in doc:  # a noun the chunker missed ("Which think tank": "think" tagged as a verb)
        if token.i in covered or token.pos_ not in ("NOUN", "PROPN") or token.dep_ not in _ROLE_ORDER:
            continue
        if named is not None and any(is_wh(t) for t in token.subtree):
            continue
        kept = [t for t in doc[token.left_edge.i : token.i + 1] if not is_wh(t) and t.dep_ not in ("relcl", "punct")]
        if kept:
            text = doc[kept[0].i : token.i + 1].text
            text = "the " + text if token.pos_ == "NOUN" and kept[0].dep_ not in ("det", "poss") else text
            found.append((_ROLE_ORDER[token.dep_], token.i, Referent(text, token.tag_ in ("NNS", "NNPS"), False, False,
                                                                     token.pos_ == "PROPN")))
    return [r for _, _, r in sorted(found, key=lambda item: (item[0], item[1]))]


def _phrase(chunk: Any) -> str:
    """A noun chunk without its wh-part ("How many North Korean troops" -> "the North Korean troops"); "" for a
    pronoun or a wh-word alone. A common noun without a determiner gets "the": it is now a known referent."""
    root = chunk.root
    if root.pos_ == "PRON" or is_wh(root):
        return ""
    kept = [t for t in chunk if not is_wh(t) and not any(is_wh(c) for c in t.children if c.i < t.i)]
    if not kept:
        return ""
    text = chunk.doc[kept[0].i : kept[-1].i + 1].text
    if root.pos_ == "NOUN" and kept[0].dep_ not in ("det", "poss") and kept[0].tag_ != "POS":
        text = "the " + text
    return text


def _choose(pronoun: Any, candidates: list[Referent]) -> Referent | None:
    """The referent that agrees with `pronoun` (a spaCy token), the most salient first."""
    if not candidates:
        return None
    morph = pronoun.morph
    if pronoun.pos_ == "ADV":  # "there"
        wanted = [r for r in candidates if r.place]
    elif "Plur" in morph.get("Number"):
        wanted = [r for r in candidates if r.plural] or [r for r in candidates if not r.person]
    elif set(morph.get("Gender")) & {"Masc", "Fem"}:
        wanted = [r for r in candidates if r.person]
    else:
        wanted = [r for r in candidates if not r.person and not r.plural] or [r for r in candidates if not r.person]
    return (wanted or candidates)[0]


def _refers(token: Any) -> bool:
    """A third-person personal pronoun, or the place adverb "there" used as a reference (not the expletive
    "there is"): what the morphology marks as pointing outside the question."""
    if token.pos_ == "PRON":
        return "Prs" in token.morph.get("PronType") and "3" in token.morph.get("Person") \
            and "Yes" not in token.morph.get("Reflex")
    return token.pos_ == "ADV" and "Dem" in token.morph.get("PronType") and token.dep_ != "expl" \
        and not is_wh(token) and token.head.pos_ in ("VERB", "AUX")


def rewrite(question: str, earlier: Turn, fragment: bool = True) -> str:
    """`question` as the standalone question it means after `earlier` (see the module docstring). With
    `fragment` false (a question that may stand alone), "" when there is no pronoun or phrase to resolve."""
    doc = parse(question)
    candidates = referents(earlier)
    if not candidates:
        return question
    pieces: list[str] = []
    changed = False
    owned: dict[int, str] = {}  # head noun index -> " of X": "its director" is read "the director of X"
    for token in doc:
        text = token.text
        if _refers(token) and (chosen := _choose(token, candidates)) is not None:
            text = chosen.text
            if "Yes" in token.morph.get("Poss") and token.head.pos_ == "NOUN" and token.head.i > token.i:
                owned[token.head.i] = f" of {chosen.text}"
                text = "the"
            elif "Yes" in token.morph.get("Poss"):
                text += "’" if text.endswith("s") else "’s"
            if token.i == 0:
                text = text[:1].upper() + text[1:]
            changed = True
        elif _elided_count(token) and (chosen := _choose(token, [r for r in candidates if r.plural] or candidates)):
            noun = chosen.text[4:] if chosen.text.startswith("the ") else chosen.text
            text = f"{token.text} {noun}"
            changed = True
        pieces.append(text + owned.get(token.i, "") + token.whitespace_)
    if changed:
        return "".join(pieces).strip()
    swapped = _swap(doc, earlier, candidates)
    if swapped:
        return swapped
    return f"{question.rstrip(' ?')} ({candidates[0].text})?" if fragment else ""


def _elided_count(token: Any) -> bool:
    """"many"/"much" standing as the noun itself, its counted noun left out: an adjective with a wh-adverb
    child (how) that is the subject or object of the clause ("And how many had arrived?")."""
    return token.pos_ == "ADJ" and token.dep_ in ("nsubj", "nsubjpass", "dobj") and any(is_wh(c) for c in token.children) \
        and not any(c.dep_ == "prep" for c in token.children)  # "how many of them": the noun is there


def _swap(doc: Any, earlier: Turn, candidates: list[Referent]) -> str:
    """A verbless fragment that names something new ("What about Kyiv?"): the earlier question with the phrase
    of the same kind (place, person, other) replaced by the new one; "" when the fragment has a verb or no name."""
    if any(t.pos_ in ("VERB", "AUX") for t in doc):
        return ""
    chunks = [c for c in doc.noun_chunks if not is_wh(c.root) and c.root.pos_ != "PRON"]
    if not chunks:
        return ""
    new = chunks[-1]
    labels = {e.label_ for e in doc.ents if e.start < new.end and e.end > new.start}
    person, place, proper = "PERSON" in labels, bool(labels & set(_PLACES)), new.root.pos_ == "PROPN"
    same = ([r for r in candidates if r.person == person and r.place == place and r.proper == proper]
            or [r for r in candidates if r.proper == proper] or candidates)
    base = earlier.resolved or earlier.question
    old = same[0].text
    bare = old[4:] if old.startswith("the ") and old[4:] in base else old
    if bare not in base:
        return ""
    return base.replace(bare, new.text, 1)


def only_bracketed(reading: str, question: str) -> bool:
    """Whether `reading` is the fallback form: nothing in the question pointed back, the phrase was bracketed."""
    return reading != question and reading.startswith(question.rstrip(" ?") + " (")


def has_own_subject(question: str) -> bool:
    """Whether the question's main clause has a noun or name as its subject ("How much does a festival ticket
    cost?"): a clause with its own subject is not a fragment, whatever an earlier turn spoke of."""
    return any(t.dep_ in ("nsubj", "nsubjpass") and t.pos_ in ("NOUN", "PROPN")
               for t in parse(question))


def resolve(question: str, history: Sequence[Turn], fragment: bool = True) -> str | None:
    """The standalone reading of follow-up `question`, or None when no earlier turn was answered (or, for a
    question that may stand alone, `fragment` false, when nothing in it points back)."""
    earlier = antecedent(history)
    return (rewrite(question, earlier, fragment) or None) if earlier is not None else None


def unsupported(query: Query, answer: Answer) -> list[str]:
    """The follow-up's own new nouns that none of the answer's quotes speaks of ("How many goals did he score
    last season?" answered from "Lindqvist scored twice"): a follow-up is answered only where its own words are,
    not where the earlier turn's words it borrowed are. Nouns and names only (full weight): a verb or an adverb
    is often paraphrased ("how often" -> "every month"). [] when it is no rewritten follow-up or all are there."""
    if not query.is_followup or not query.context or answer.abstained or not answer.quotes:
        return []
    earlier = {t for t, _ in query.context}
    new = [t for t, w in query.weights if w >= 1.0 and t not in earlier]
    said = {t for q in answer.quotes for t in terms(f"{q.title} {q.text}")}
    missing = [t for t in new if not any(_close(t, s) for s in said)]
    return missing if len(missing) == len(new) else []


def _close(a: str, b: str) -> bool:
    """The same stem, or one stem starting the other (4 letters at least: "korea" / "korean")."""
    short, long = sorted((a, b), key=len)
    return a == b or (len(short) >= 4 and long.startswith(short))
