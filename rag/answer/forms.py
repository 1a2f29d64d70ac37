"""The answer forms a chat asks for: what X said, who X is, why, and overviews.

A fact question gets the reader's answer. Four other forms want another kind of answer, and the form is read
from the question's structure (spaCy's parse), never from lists of words:
- SAID, "What did X say (about Y)?": the wh-pronoun is the object of the root verb and the subject X is a name
  or noun phrase. The answer is X's attributed statements: sentences in which X (matched by its terms) is the
  subject (nsubj) or passive agent of a verb that heads a clausal complement (ccomp) or carries a quotation.
- WHO_IS, "Who is X?": the wh-pronoun is the subject or attribute of a copula (the root is an AUX) whose other
  argument is a proper noun. The answer is the description the articles give X: an apposition ("the city's
  mayor, Helena Vasquez"), a title in the name's compound chain outside the PERSON entity ("President …"), or
  the attribute of a copula with X as subject.
- WHY, the wh-adverb "why" (the question-form cue the brief allows): sentences that give a reason, i.e. have an
  adverbial clause introduced by a subordinating conjunction (advcl with a SCONJ mark), a purpose infinitive
  (advcl/xcomp with a "to" particle, tag TO), or a SCONJ heading a prepositional phrase ("because of"); among
  them the ones that add to the question rather than restate it: the encoder's similarity to the question read
  as a statement counts against a sentence.
- OVERVIEW, "Summarize the articles", "What happened in Kursk?", "What's the latest?": an imperative root verb
  (tag VB, no subject), a wh-pronoun that is the subject of an intransitive root verb (no object, no clausal
  complement), or a copula whose attribute is a bare superlative (JJS). The answer is 3–5 sentences from
  different articles on the asked subject (the question's noun phrases that occur in the corpus, or all
  articles), picked by embedding centrality with maximal marginal relevance (llama-index's
  get_top_k_mmr_embeddings) and ordered by date where the articles have one.
A form answer is given only where the reader answered (an abstention stays one) or, for an overview with no
subject, always; when its structure finds nothing, the reader's answer stands. Section headings are never quoted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from rag.answer.parse import is_attribution, is_heading, is_wh, parse
from rag.chunk import split_sentences
from rag.protocols import Encoder, SearchIndex
from rag.text import terms
from rag.types import Answer, Passage, Query, Quote

FACT, SAID, WHO_IS, WHY, OVERVIEW = "fact", "said", "who_is", "why", "overview"
_MIN_OVERVIEW, _MAX_OVERVIEW = 3, 5
_MAX_VECTORS = 20_000  # sentence vectors kept (~30 MB)
_MMR_POOL = 300  # sentences nearest the centre that MMR orders
_MMR_THRESHOLD = 0.5  # llama-index's relevance/diversity balance: half centrality, half novelty
_REASON_BONUS = 0.15  # a reason clause outweighs a small difference in similarity to the question
_RESTATE_WEIGHT = 0.3  # similarity to the question read as a statement counts against a "why" sentence
_WHY_SPREAD = 0.2
_STANDOUT = 0.1  # how much closer (cosine) the closest article must be to an overview's subject than the next  # how far below the best similarity a reason sentence may be and still be considered


def _content(doc: Any) -> list[Any]:
    return [t for t in doc if not t.is_punct and not t.is_space]


def form_of(question: str) -> str:
    """The answer form `question` asks for, read from its parse (see the module docstring)."""
    doc = parse(question)
    tokens = [t for t in _content(doc) if t.pos_ != "CCONJ"]
    if not tokens:
        return FACT
    root = next((t for t in doc if t.dep_ == "ROOT"), tokens[0])
    wh = [t for t in tokens if is_wh(t)]
    if any(t.lower_ == "why" for t in wh):
        return WHY
    args = {c.dep_: c for c in root.children}
    if not wh and root.tag_ == "VB" and root.i == tokens[0].i and "nsubj" not in args:
        return OVERVIEW  # "Summarize the articles", "Tell me about the storm"
    if wh and wh[0].pos_ == "PRON" and wh[0].head.i == root.i:
        others = [c for c in root.children if c.i != wh[0].i and c.dep_ in ("nsubj", "nsubjpass", "attr")]
        if root.pos_ == "AUX" and others and others[0].pos_ == "PROPN" and wh[0].dep_ in ("nsubj", "attr"):
            return WHO_IS
        if root.pos_ == "AUX" and others and others[0].tag_ == "JJS":
            return OVERVIEW  # "What's the latest?"
        if root.pos_ == "VERB" and wh[0].dep_ == "dobj" and "nsubj" in args and args["nsubj"].pos_ != "PRON":
            return SAID
        bare = all(c.dep_ in ("prep", "punct", "aux", "auxpass", "advmod", "neg") for c in root.children if c.i != wh[0].i)
        if root.pos_ == "VERB" and wh[0].dep_ == "nsubj" and bare:
            return OVERVIEW  # "What happened in the Kursk region?"
    return FACT


def _name_match(a: str, b: str) -> bool:
    """The same stem, or a close spelling variant of a longer name (Zelensky / Zelenskyy)."""
    if a == b:
        return True
    return len(a) >= 6 and len(b) >= 6 and abs(len(a) - len(b)) <= 2 and a[: min(len(a), len(b)) - 1] == b[: min(len(a), len(b)) - 1]


def _mentions(stems: set[str], text_stems: set[str]) -> bool:
    return bool(stems) and all(any(_name_match(s, t) for t in text_stems) for s in stems)


class FormAnswerer:
    """Gives the answer of a form (module docstring) over the passages the reader was given, or None."""

    def __init__(self, encoder: Encoder, index: SearchIndex, retrieve: Callable[[str], tuple[Passage, ...]],
                 max_quotes: int = 3) -> None:
        self.encoder = encoder
        self.index = index
        self.retrieve = retrieve
        self.max_quotes = max_quotes
        # sentence vectors, least recently used dropped past _MAX_VECTORS (a served app answers for months)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._credits: dict[tuple[str, int], str] = {}  # attribution lines seen, by (article id, start)
        self._lock = threading.Lock()

    def answer(self, query: Query, passages: tuple[Passage, ...], read: Answer) -> Answer | None:
        """The form's answer to `query`, replacing the reader's `read`; None to keep the reader's."""
        form = form_of(query.resolved)
        if form == FACT:
            return None
        if form == OVERVIEW:
            return self._overview(query, read)
        if read.abstained:
            return None
        sentences = self._sentences(passages)
        if form == SAID:
            return self._said(query, sentences, read)
        if form == WHO_IS:
            return self._who_is(query, sentences)
        return self._why(query, sentences)

    # -- the sentences the forms choose from -----------------------------------------------------------
    def _sentences(self, passages: tuple[Passage, ...]) -> list[tuple[Passage, int, int, str, float]]:
        """(passage, start, end, text, dense similarity) of every sentence of the passages that is not a heading,
        each sentence once, in the order of the passages."""
        out, seen = [], set()
        for passage in passages:
            chunk = passage.chunk
            for i, (start, end) in enumerate(chunk.sentences):
                key = (chunk.article_id, start)
                if key in seen or is_heading(chunk.text, start - chunk.start, end - chunk.start):
                    continue
                if is_attribution(chunk.text, start - chunk.start, end - chunk.start):
                    with self._lock:  # other requests read it (_said) at the same time
                        self._credits[key] = chunk.text[start - chunk.start : end - chunk.start]
                    continue
                seen.add(key)
                dense = passage.sentence_scores[i] if i < len(passage.sentence_scores) else 0.0
                out.append((passage, start, end, chunk.text[start - chunk.start : end - chunk.start], dense))
        return out

    def _quoted(self, query: Query, picked: list[tuple[str, str, int, int, str]], value: str = "") -> Answer:
        """An answer quoting `picked` (article id, title, start, end, text): each sentence with its marker, or
        `value` (a description) followed by the markers."""
        quotes = tuple(Quote(n, a, title, s, e, text) for n, (a, title, s, e, text) in enumerate(picked, 1))
        if value:
            text = f"{value} {''.join(f'[{q.n}]' for q in quotes)}"
        else:
            text = " ".join(f"{q.text} [{q.n}]" for q in quotes)
        return Answer(query.question, text, quotes, answer_type=query.answer_type, resolved_question=query.resolved)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts`, cached (least recently used dropped past _MAX_VECTORS). Through the query
        encoder (the ONNX one in a served app, already loaded): its vectors are the document model's (cosine
        0.999), and a cold chat then never waits for torch."""
        with self._lock:
            known = {t: self._vectors[t] for t in dict.fromkeys(texts) if t in self._vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        known.update((t, self.encoder.encode_query(t)) for t in missing)
        with self._lock:
            for t, vector in known.items():
                self._vectors[t] = vector
                self._vectors.move_to_end(t)
            while len(self._vectors) > _MAX_VECTORS:
                self._vectors.popitem(last=False)
        return np.stack([known[t] for t in texts])

    # -- what X said -------------------------------------------------------------------------------------
    def _said(self, query: Query, sentences: list, read: Answer) -> Answer | None:
        doc = parse(query.resolved)
        root = next(t for t in doc if t.dep_ == "ROOT")
        subject = next(c for c in root.children if c.dep_ == "nsubj")
        speaker = {s for t in subject.subtree if t.pos_ in ("PROPN", "NOUN") for s in terms(t.text)}
        about = {s for c in root.children if c.dep_ == "prep" for t in c.subtree if t.pos_ in ("PROPN", "NOUN")
                 for s in terms(t.text)}
        asked = root.lemma_.lower()
        found, spoke = [], set()
        with self._lock:
            credits = list(self._credits.items())
        for passage, start, end, text, dense in sentences:
            doc = parse(text)
            # "He estimated the losses … and asked …" after a sentence in which Halloran spoke: still Halloran
            goes_on = any(a == passage.chunk.article_id and 0 <= start - e <= 3 for a, e in spoke)
            # a quotation whose attribution line, right under it, names X
            credited = any(a == passage.chunk.article_id and 0 <= b - end <= 3 and any(
                _name_match(x, t) for x in speaker for t in terms(line)) for (a, b), line in credits)
            if _speaks(doc, speaker) or credited or (goes_on and _speaks(doc, set(), pronoun=True)):
                spoke.add((passage.chunk.article_id, end))
                on_topic = any(_name_match(a, t) for a in about for t in terms(text)) if about else True
                # the question's own verb ("asked … for") in the sentence: what was asked is said there
                # (a credited quotation is X's own words: as good)
                verb = credited or any(t.pos_ == "VERB" and t.lemma_.lower() == asked for t in doc)
                found.append((not on_topic, not verb, -dense, passage, start, end, text))
        if not found:
            return None
        found.sort(key=lambda f: f[:3])
        verb_first = not found[0][1]
        found = [(a, c, *rest) for a, _, c, *rest in found]
        lead = read.quotes[0] if read.quotes else None
        base = next((d for p, s, _, t, d in sentences if lead and p.chunk.article_id == lead.article_id and s == lead.start), None)
        if lead is not None and base is not None and base > -found[0][1] and not verb_first and any(
                _name_match(s, t) for s in speaker for t in terms(lead.text)):
            return None  # the reader's sentence names X and is closer to the question ("Zelenskyy's warning about …")
        picked = [(p.chunk.article_id, p.title, s, e, t) for _, _, p, s, e, t in found[: self.max_quotes]]
        return self._quoted(query, picked)

    # -- who X is ----------------------------------------------------------------------------------------
    def _who_is(self, query: Query, sentences: list) -> Answer | None:
        doc = parse(query.resolved)
        name = next((t for t in doc if t.pos_ == "PROPN" and t.dep_ in ("nsubj", "attr")), None)
        if name is None:
            return None
        stems = {s for t in name.subtree if t.pos_ == "PROPN" for s in terms(t.text)}
        found = []
        for passage, start, end, text, dense in sentences:
            if not _mentions(stems, set(terms(text))):
                continue
            description = _description(parse(text), stems)
            if description:
                found.append((-dense, description, passage, start, end, text))
        if not found:
            return None
        found.sort(key=lambda f: f[0])
        value, lead = found[0][1], found[0]
        picked = [(lead[2].chunk.article_id, lead[2].title, lead[3], lead[4], lead[5])]
        for f in found[1:]:
            if len(picked) >= min(2, self.max_quotes):
                break
            if f[1].lower() != value.lower():
                picked.append((f[2].chunk.article_id, f[2].title, f[3], f[4], f[5]))
                value = f"{value}; {f[1]}"
        return self._quoted(query, picked, value)

    # -- why ---------------------------------------------------------------------------------------------
    def _why(self, query: Query, sentences: list) -> Answer | None:
        if not sentences:
            return None
        names = set(query.names) or {t for t, w in query.weights if w >= 1.0}
        best = max(d for *_, d in sentences)
        pool = [s for s in sentences if s[4] >= best - _WHY_SPREAD and (not names or names & set(terms(s[3]))
                                                                     or any(_name_match(n, t) for n in names for t in terms(s[3])))]
        if not pool:
            return None
        doc = parse(query.resolved)
        statement = " ".join(t.text for t in doc if not is_wh(t) and not t.is_punct)
        vectors = self._embed([statement, *(s[3] for s in pool)])
        restate = vectors[1:] @ vectors[0]
        scored = []
        for (passage, start, end, text, dense), again in zip(pool, restate, strict=True):
            reason = _gives_reason(parse(text))
            scored.append((dense + _REASON_BONUS * reason - _RESTATE_WEIGHT * float(again), reason, passage, start, end, text))
        scored.sort(key=lambda s: -s[0])
        if not scored[0][1]:
            return None  # no sentence gives a reason: the reader's answer stands
        picked = [(p.chunk.article_id, p.title, s, e, t) for _, r, p, s, e, t in scored[:2] if r]
        return self._quoted(query, picked)

    # -- overviews ---------------------------------------------------------------------------------------
    def _overview(self, query: Query, read: Answer) -> Answer | None:
        from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings

        doc = parse(query.resolved)
        subject = [c for c in doc.noun_chunks if not is_wh(c.root) and c.root.pos_ in ("NOUN", "PROPN")
                   and any(self.index.doc_freq(s) for s in terms(c.text))]
        if subject:
            stems = {s for c in subject for t in c if t.pos_ == "PROPN" or t.i == c.root.i for s in terms(t.text)
                     if self.index.doc_freq(s)}
            found = []
            for passage, start, end, text, _ in self._sentences(self.retrieve(" ".join(c.text for c in subject))):
                if any(_name_match(s, t) for s in stems for t in terms(text)):
                    found.append((passage.chunk.article_id, passage.title, start, end, text))
            if len(found) < _MIN_OVERVIEW:  # "the cup final", named once: the article it is named in is about it
                found = self._all_sentences({f[0] for f in found}) or found
        elif read.abstained or not query.weights or all(not self.index.doc_freq(t) for t, _ in query.weights):
            named = [c for c in doc.noun_chunks if not is_wh(c.root) and c.root.pos_ in ("NOUN", "PROPN")]
            found = self._all_sentences(self._about(" ".join(c.text for c in named)) if named else None)
        else:
            return None
        found = [f for f in found if len(f[4].split()) >= 6]  # a fragment says too little to summarise with
        if len(found) < 2:
            return None
        vectors = self._embed([f[4] for f in found])
        centre = vectors.mean(axis=0)
        centre = centre / (np.linalg.norm(centre) or 1.0)
        # MMR over the sentences nearest the centre only: llama-index's MMR is pure Python and quadratic, and at
        # most _MAX_OVERVIEW (plus fill-ins) of its order is used
        near = np.argsort(-(vectors @ centre), kind="stable")[:_MMR_POOL]
        found = [found[i] for i in near]
        vectors = vectors[near]
        _, order = get_top_k_mmr_embeddings(centre.tolist(), vectors.tolist(),
                                            similarity_top_k=min(len(found), 4 * _MAX_OVERVIEW),
                                            embedding_ids=list(range(len(found))), mmr_threshold=_MMR_THRESHOLD)
        picked, articles = [], set()
        for i in order:  # different articles first; a second sentence of one only when too few articles
            if found[i][0] not in articles and len(picked) < _MAX_OVERVIEW:
                picked.append(found[i])
                articles.add(found[i][0])
        for i in order:
            if len(picked) >= _MIN_OVERVIEW:
                break
            if found[i] not in picked:
                picked.append(found[i])
        dates = {h.id: h.published_at for h in self.index.article_headers()}
        picked.sort(key=lambda f: (dates.get(f[0]) or "", f[0], f[2]))
        return self._quoted(query, picked)

    def _about(self, subject: str) -> set[str] | None:
        """The articles a subject the articles never name ("the football") is about, by the encoder: those whose
        best sentence is as close to it as the closest article's, when that one stands out from the next by
        `_STANDOUT`; None (every article) when none stands out ("the articles", "the news")."""
        best: dict[str, float] = {}
        for passage in self.retrieve(subject):
            score = max(passage.sentence_scores, default=0.0)
            best[passage.chunk.article_id] = max(best.get(passage.chunk.article_id, -1.0), score)
        ranked = sorted(best.values(), reverse=True)
        if not ranked or (len(ranked) > 1 and ranked[0] - ranked[1] < _STANDOUT):
            return None
        return {a for a, v in best.items() if v >= ranked[0] - _STANDOUT / 2}

    def _all_sentences(self, articles: set[str] | None = None) -> list[tuple[str, str, int, int, str]]:
        """Every sentence of every article (the first 200), or of `articles`, headings left out: "Summarize the
        articles"."""
        out = []
        for header in self.index.article_headers()[:200]:
            if articles is not None and header.id not in articles:
                continue
            article = self.index.article(header.id)
            if article is None:
                continue
            for start, end in split_sentences(article.text):
                if not is_heading(article.text, start, end):
                    out.append((article.id, article.title, start, end, article.text[start:end]))
        return out


def _speaks(doc: Any, speaker: set[str], pronoun: bool = False) -> bool:
    """Whether the speaker (stems) is the subject or passive agent of a verb that reports speech: it heads a
    clausal complement (ccomp) or the sentence carries a quotation. With `pronoun`, whether a personal pronoun
    is the subject of such a verb or of the sentence's main verb (a sentence going on from the one before)."""
    if pronoun:
        return any(t.dep_ == "nsubj" and t.pos_ == "PRON" and "Prs" in t.morph.get("PronType")
                   and "3" in t.morph.get("Person") and t.head.dep_ == "ROOT" for t in doc)
    quoted = any(t.is_quote for t in doc)
    for verb in doc:
        if verb.pos_ not in ("VERB", "AUX"):
            continue
        deps = {c.dep_ for c in verb.children}
        if not ("ccomp" in deps or (quoted and deps & {"parataxis", "dobj", "agent", "nsubj", "prep"})):
            continue
        for child in verb.children:
            heads = [child] if child.dep_ in ("nsubj", "nsubjpass") else [g for g in child.children if g.dep_ == "pobj"] \
                if child.dep_ in ("agent", "prep") else []
            for head in heads:
                said_by = {s for t in head.subtree for s in terms(t.text)}
                if any(_name_match(s, t) for s in speaker for t in said_by) and (child.dep_ != "prep" or quoted):
                    return True
    return False


def _description(doc: Any, stems: set[str]) -> str:
    """What a sentence says X is: an apposition, a title before the name, or a copula's attribute."""
    names = [t for t in doc if t.pos_ == "PROPN" and any(_name_match(s, x) for s in stems for x in terms(t.text))]
    if not names:
        return ""
    head = names[-1]
    while head.dep_ in ("compound", "flat") and head.head.pos_ == "PROPN":
        head = head.head
    for child in head.children:
        if child.dep_ == "appos":
            return _span(doc, child)
    if head.dep_ == "appos" and head.head.pos_ in ("NOUN", "PROPN"):  # "the city's mayor, Helena Vasquez"
        noun = head.head  # "press secretary Maj Gen Pat Ryder": the title chain the name is in apposition to
        return doc[noun.left_edge.i : noun.i + 1].text.strip(" ,")
    clause = next((c for c in head.children if c.dep_ == "relcl" and any(is_wh(g) for g in c.children)), None)
    if clause is not None:  # "Dr. Ines Moravec, who leads the institute's monitoring team"
        return _span(doc, clause)
    entity = next((e for e in doc.ents if e.start <= head.i < e.end and e.label_ == "PERSON"), None)
    if entity is not None:  # the title chain written before the name: "U.S. Defense Secretary Lloyd Austin"
        first = entity.start
        while first > 0 and doc[first - 1].dep_ in ("compound", "amod") and doc[first - 1].pos_ in ("NOUN", "PROPN", "ADJ") \
                and entity.start <= _last_head(doc[first - 1]) <= entity.end - 1:
            first -= 1
        if first < entity.start and any(t.pos_ in ("NOUN", "PROPN") for t in doc[first : entity.start]):
            return doc[first : entity.start].text
    if head.dep_ == "nsubj" and head.head.pos_ == "AUX":
        attr = next((c for c in head.head.children if c.dep_ == "attr"), None)
        if attr is not None:
            return _span(doc, attr)
    return ""


def _last_head(token: Any) -> int:
    """The index of the first token up `token`'s chain of compounds and modifiers that is no longer one."""
    while token.dep_ in ("compound", "amod") and token.head.i != token.i:
        token = token.head
    return token.i


def _span(doc: Any, token: Any) -> str:
    return doc[token.left_edge.i : token.right_edge.i + 1].text.strip(" ,")


def _gives_reason(doc: Any) -> bool:
    """A reason or purpose in the parse: an adverbial clause with a subordinating conjunction, a purpose
    infinitive hanging off a verb, or a conjunction heading a prepositional phrase ("because of")."""
    for token in doc:
        if token.dep_ == "advcl" and any(c.dep_ == "mark" and c.pos_ == "SCONJ" for c in token.children):
            return True
        if token.dep_ in ("advcl", "xcomp") and token.head.pos_ == "VERB" and any(c.tag_ == "TO" for c in token.children) \
                and any(c.dep_ == "dobj" for c in token.head.children):
            return True
        if token.pos_ == "SCONJ" and token.dep_ == "prep":
            return True
    return False
