"""Question analysis: validation, the kind of answer expected, the weighted terms to match, follow-ups.

A follow-up is a question that cannot stand alone: a pronoun or demonstrative with nothing in the question
itself to point at ("Who confirmed it?", "Where is it based?"), an ellipsis ("And how many had arrived?",
"What about Kyiv?") or a bare fragment ("In front of how many supporters?"). "the", "that" as a relative
pronoun and "there" are not references. `reading()` says ALONE, FOLLOWUP or DOUBT ("this agency", "they" with
a plural noun before it); the pipeline reads a doubtful question both ways and lets the index decide. A
follow-up is read together with the earlier turns it leans on: their terms join the query at lower weight.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from rag.answer.config import ReaderConfig
from rag.answer.kinds import DATE, DESCRIPTION, DURATION, NUMBER, ORG, PERSON, PLACE
from rag.answer.spans import tag_words, word_weights
from rag.errors import QuestionError
from rag.text import terms, words
from rag.types import Query

ALONE, FOLLOWUP, DOUBT = "alone", "followup", "doubt"
_PERSONAL = frozenset("he him his she her hers himself herself".split())
_NEUTER = frozenset("it its itself".split())
_PLURAL = frozenset("they them their theirs themselves".split())
_DEMONSTRATIVE = frozenset("this that these those".split())
_NOW = frozenset("morning afternoon evening night day week weekend month year summer winter spring autumn time".split())
_LEADING = frozenset("and but also so then plus".split())
_ELLIPSIS = re.compile(r"^(?:and |but |so )?(?:what|how) about\b|^what else\b|^(?:and |but )?(?:why|how|when|where) (?:so|not)\b"
                       r"|\b(?:the )?(?:latter|former)\b|\bthe same (?:one|thing|figure|number|day|period)\b", re.IGNORECASE)
DEFAULT_CONFIG = ReaderConfig()
ROLE_NOUNS = (r"person|people|official|leader|minister|president|spokes(?:man|woman|person)|commander|general|secretary|"
              r"chief|head|envoy|ambassador|analyst|expert|journalist|author|mayor|director|chair|chairman|chairwoman|"
              r"coach|headteacher|captain|founder|owner|governor|judge|striker|manager|editor")
_PERSON_NOUNS = ROLE_NOUNS
_PLACE_NOUNS = r"country|countries|region|city|cities|town|village|area|province|oblast|state|place|location|territory|border|capital|nation|front|river|lake|sea|island|district|street|port|harbour|harbor|basin|square"
_ORG_NOUNS = r"agency|organi[sz]ation|group|company|think tank|institute|ministry|unit|party|body|newspaper|service|department|council|alliance|outlet|media"
_WH_NOUN = r"(?:which|what)(?:\s+(?!(?:did|does|do|is|was|were|are|has|had|have|will|would|can|could)\b)\w+){0,3}?\s+"
# Words about the articles rather than about the world: they are not matched against sentences.
_META = re.compile(
    r"\b(?:(?:as )?(?:mentioned|named|cited|described|reported|quoted) )?(?:in|by) (?:the |these )?(?:coverage|articles?|reports?|texts?|stories|story|news)\b"
    r"|\baccording to (?:the |these )?(?:coverage|articles?|reports?|texts?|stories|story)\b"
    r"|\b(?:do|does) the (?:coverage|articles?|reports?) (?:say|mention|report)\b",
    re.IGNORECASE,
)
_WH_PHRASE = re.compile(r"\bhow (?:long|many|much|large|big|old|far)\b", re.IGNORECASE)
_RULES: tuple[tuple[str, str], ...] = (
    (DURATION, r"\bhow long\b|\bfor how many (?:days|weeks|months|years)\b"),
    (NUMBER, r"\bhow (?:many|much|large|big|old|far)\b|\b(?:what|which) (?:number|percentage|share|amount|proportion|figure|toll|death toll)\b|\bnumber of\b"),
    (DATE, r"^\s*when\b|\bwhen (?:did|was|were|is|will|has|had|do|does)\b|\b(?:what|which) (?:year|date|day|month|time|period)\b"),
    (PERSON, r"^\s*(?:who|whom|whose)\b|\b(?:who|whom) (?:is|was|were|did|has|had|are)\b|" + _WH_NOUN + r"(?:" + _PERSON_NOUNS + r")\b"),
    (PLACE, r"^\s*where\b|\bwhere (?:is|are|was|were|did|do|does|has|have)\b|" + _WH_NOUN + r"(?:" + _PLACE_NOUNS + r")\b"),
    (ORG, _WH_NOUN + r"(?:" + _ORG_NOUNS + r")\b"),
)


def clean_question(question: str, max_chars: int) -> str:
    """The question with whitespace folded, or a QuestionError that says what is wrong with it."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    if len(question) > max_chars:
        raise QuestionError(f"the question is too long ({len(question)} characters; the limit is {max_chars})")
    bad = sorted({c for c in question if unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in "\n\r\t"})
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in bad[:3])
        raise QuestionError(f"the question contains control characters ({codes}); remove them and ask again")
    text = " ".join(question.split())
    if not text:
        raise QuestionError("the question is empty; type a question about the articles")
    if not any(ch.isalnum() for ch in text):
        raise QuestionError("the question has no words in it; type a question about the articles")
    return text


def answer_type(question: str) -> str:
    lowered = question.lower()
    for kind, pattern in _RULES:
        if re.search(pattern, lowered):
            return kind
    return DESCRIPTION


def reading(question: str) -> str:
    """FOLLOWUP when `question` cannot stand alone, DOUBT when it may lean on an earlier turn, else ALONE."""
    tagged = [t for t in tag_words(question) if t.pos != "PUNCT"]
    lowered = [t.text.lower() for t in tagged]
    if not tagged or not terms(question):
        return FOLLOWUP  # "Why?", "And?"
    if _ELLIPSIS.search(question.strip()):
        return FOLLOWUP
    verdicts = []
    for i, (token, word) in enumerate(zip(tagged, lowered, strict=True)):
        before = tagged[:i]
        if word in _PERSONAL and token.pos == "PRON":
            named = any(t.tag in ("NNP", "NNPS") for t in before) or any(
                re.fullmatch(_PERSON_NOUNS, t.text.lower().rstrip("s")) for t in before)
            verdicts.append(ALONE if named else FOLLOWUP)
        elif word in _NEUTER and token.pos == "PRON":
            if any(t.tag in ("NN", "NNP") for t in before):
                verdicts.append(ALONE)
            elif i + 1 < len(lowered) and lowered[i + 1] in ("take", "takes", "took", "cost", "costs") or (
                    i + 2 < len(lowered) and lowered[i + 2] == "to"):
                verdicts.append(DOUBT)  # "how long will it take to repair the wall": an empty subject
            else:
                verdicts.append(FOLLOWUP)
        elif word in _PLURAL and token.pos == "PRON":
            plural = any(t.tag in ("NNS", "NNPS", "NNP") for t in before)
            verdicts.append(DOUBT if plural else FOLLOWUP)
        elif word in _DEMONSTRATIVE and token.tag == "DT":
            following = tagged[i + 1] if i + 1 < len(tagged) else None
            if following is not None and following.text.lower() in _NOW:
                continue  # "this weekend", "this year": the present, not an earlier turn
            if following is not None and following.pos in ("NOUN", "PROPN", "ADJ", "NUM"):
                verdicts.append(DOUBT)  # "this agency", "those troops": maybe the earlier one
            else:
                verdicts.append(FOLLOWUP)  # "Who said that?", "When did this happen?"
    if FOLLOWUP in verdicts:
        return FOLLOWUP
    has_verb = any(t.pos in ("VERB", "AUX") for t in tagged)
    if not has_verb:
        return FOLLOWUP  # a bare fragment: "In front of how many supporters?", "And last year?"
    how = next((i for i, w in enumerate(lowered[:-2]) if w == "how" and lowered[i + 1] in ("many", "much")), None)
    if how is not None and tagged[how + 2].pos in ("AUX", "VERB"):
        return FOLLOWUP  # "And how many had arrived?": what is counted is in the earlier turn
    if lowered[0] in _LEADING:
        return FOLLOWUP if len(terms(question)) < 3 else DOUBT
    return DOUBT if DOUBT in verdicts else ALONE


def is_followup(question: str) -> bool:
    """A question that cannot stand alone: it leans on an earlier turn of the chat."""
    return reading(question) == FOLLOWUP


def analyse(question: str, history: Sequence[str] = (), max_chars: int = 2000, with_history: bool | None = None,
            config: ReaderConfig = DEFAULT_CONFIG) -> Query:
    """Validate and analyse `question`; earlier user turns in `history` (oldest first) resolve follow-ups.

    `with_history` forces the reading (True: read with the earlier turns, False: alone); by default a question
    is read with them only when `reading()` says it cannot stand alone."""
    text = clean_question(question, max_chars)
    earlier = [" ".join(str(turn).split()) for turn in history if isinstance(turn, str) and turn.strip()]
    earlier = [turn[:max_chars] for turn in earlier]
    followup = bool(earlier) and (is_followup(text) if with_history is None else with_history)
    context = _resolve_chain(earlier) if followup else ""
    weights = _weighted_terms(_WH_PHRASE.sub(" ", _META.sub(" ", text)), config)
    context_weights = {t: w for t, w in _weighted_terms(context, config).items() if t not in weights} if context else {}
    resolved = f"{context} {text}".strip() if followup else text
    kind = answer_type(text)
    return Query(
        text, resolved, kind, tuple(weights.items()), tuple(context_weights.items()), tuple(words(resolved)),
        followup, head_noun(text, kind), measured_noun(text), names(text),
    )


def names(question: str) -> tuple[str, ...]:
    """Stems of the names the question is about ("Chinese", "Donetsk", "South Korea"): proper nouns and
    capitalised adjectives after the first word. An answer must come from where they are mentioned."""
    out = []
    for i, token in enumerate(tag_words(question)):
        capital = token.text[:1].isupper() and i > 0
        if capital and (token.tag in ("NNP", "NNPS") or token.pos in ("PROPN", "ADJ")):
            out += terms(token.text)
    return tuple(dict.fromkeys(out))


def _weighted_terms(text: str, config: ReaderConfig) -> dict[str, float]:
    weights: dict[str, float] = {}
    for word, weight in word_weights(text, config.pos_weight):
        if weight <= 0:  # pronouns point at a name: they are not words to find in a sentence
            continue
        for term in terms(word):
            weights[term] = max(weights.get(term, 0.0), weight)
    return weights


_AUX = r"(?:are|is|was|were|have|has|had|did|do|does|will|would|could|can|should|might|may|must)"


def measured_noun(question: str) -> str:
    """The stem of what "how many/much X ..." counts: the last noun of X ("how many North Korean troops" ->
    "troop"); "" when "how much" is followed by a verb ("how much did it cost")."""
    tagged = tag_words(question)
    lowered = [t.text.lower() for t in tagged]
    for i in range(len(tagged) - 1):
        if lowered[i] == "how" and lowered[i + 1] in ("many", "much"):
            noun = ""
            for token in tagged[i + 2 : i + 7]:
                if token.pos in ("NOUN", "PROPN") or (token.pos == "ADJ" and not noun):
                    noun = token.text if token.pos == "NOUN" else noun
                    continue
                break
            found = terms(noun)
            return found[-1] if found else ""
    return ""


def head_noun(question: str, kind: str) -> str:
    """The noun of "which/what (adjectives) NOUN" when it names the kind of thing asked for."""
    nouns = {PERSON: _PERSON_NOUNS, PLACE: _PLACE_NOUNS, ORG: _ORG_NOUNS}.get(kind)
    if not nouns:
        return ""
    lowered = question.lower()
    match = re.search(_WH_NOUN + r"(" + nouns + r")\b", lowered)
    if match:
        return match.group(1)
    if kind == PERSON and (verb := re.match(r"\s*who (?!is\b|was\b|are\b|were\b|has\b|had\b|did\b|does\b|do\b|will\b)(\w+?)(?:es|s)?\b", lowered)):
        if re.fullmatch(ROLE_NOUNS, verb.group(1)):  # "who coaches X": the coach; "who chairs X": the chair
            return verb.group(1)
    if kind == PERSON:  # "who is the director of ...", "who was Russia's defense minister"
        role = re.search(r"\bwho (?:is|was|are|were|has been|had been) (?:the |a |an )?([\w’' -]+?)(?: of | in | for | at |\?|$)", lowered)
        if role:
            return role.group(1).split()[-1]
    return ""


def _resolve_chain(turns: list[str]) -> str:
    """The last turn, read with the ones before it for as long as each one is itself a follow-up."""
    chain = [turns[-1]]
    for turn in reversed(turns[:-1]):
        if not is_followup(chain[0]):
            break
        chain.insert(0, turn)
    return " ".join(chain)
