"""The assistant: one object that holds the loaded index and model and answers questions.

Every face (CLI, API, chat, evaluator) calls `Assistant.ask`, so they all get the same `Answer`. The chat calls
`Assistant.ask_stream` to show a language model's answer while it is written; `ask` is its last event.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence

from rag.answer import conversation
from rag.answer.config import ReaderConfig
from rag.answer.extractive import RuleReader
from rag.answer.forms import FormAnswerer
from rag.answer.question import ALONE, DOUBT, FOLLOWUP, analyse, reading
from rag.answer.spans import warm_up
from rag.config import ANSWER_MODES, Settings
from rag.embed import encoder_for
from rag.errors import LlmError, QuestionError, SettingsError
from rag.index.factory import Progress, open_search_index
from rag.protocols import Encoder, Reader, Reranker, Retriever, SearchIndex, StreamingReader
from rag.retrieve.hybrid import HybridRetriever
from rag.text import quote_is_verbatim, terms, words
from rag.types import Answer, Passage, Query, Quote, StreamEvent, Turn

_ANSWERED_CACHE = 512  # earlier turns answered for callers that sent only their questions (see _answered)
_MAX_FILLED = 5  # earlier turns without answers that one question may answer first (see _answered)


def _in_background(load: Callable[[], None]) -> threading.Thread:
    """Run `load` in a daemon thread; a failure there is raised again, with its message, where the part is used."""

    def run() -> None:
        try:
            load()
        except Exception:  # noqa: BLE001  (reported on first use, in the caller's thread)
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _abstained(answer: Answer, missing: list[str]) -> Answer:
    """`answer` turned into an abstention: its quotes speak of the earlier turn, not of the follow-up's own
    words (`missing`); they are kept as related reading."""
    listed = ", ".join(f"“{w}”" for w in missing[:3])
    text = f"The articles don't say. The passages found speak of the earlier question, not of {listed}."
    related = tuple(dataclasses.replace(q, n=i) for i, q in enumerate(answer.quotes[:3], 1))
    return dataclasses.replace(answer, text=text, abstained=True, quotes=(), related=related, conflicts=())


class Assistant:
    """Answers questions about the indexed articles. It receives its parts; `from_settings` builds the usual ones.

    The parts are the seams of rag.protocols: an index, the encoder its vectors came from, a retriever, the rule
    reader (always there: it is the fallback of every other reader), an optional reranker, and an optional
    language-model reader (built on first use by `from_settings`'s factory when not given).
    """

    def __init__(self, settings: Settings, *, index: SearchIndex, encoder: Encoder, retriever: Retriever,
                 reader: Reader, reranker: Reranker | None = None, llm_reader: StreamingReader | None = None,
                 llm_factory: Callable[[], StreamingReader] | None = None) -> None:
        self.settings = settings
        self.index = index
        self.encoder = encoder
        self.retriever = retriever
        self.reader = reader
        self.reranker = reranker
        self._llm = llm_reader
        self._llm_factory = llm_factory
        self._llm_lock = threading.Lock()
        # -- seam: the answer forms (what X said, who X is, why, overviews) over whichever reader answers --
        self.forms = FormAnswerer(encoder, index, self._retrieve, settings.max_quotes)
        self._answered_cache: dict[tuple, Turn] = {}
        self._cache_lock = threading.Lock()
        self._model_at_hand: bool | None = None  # answer_mode "auto": asked once

    @classmethod
    def from_settings(cls, settings: Settings, *, encoder: Encoder | None = None, progress: Progress | None = None,
                      on_build: Callable[[str], None] | None = None) -> Assistant:
        """The usual parts for `settings`: the local index (built first when missing or stale), the encoder
        `query_encoder` picks (rag.embed.encoder_for: ONNX questions, torch documents), hybrid retrieval and the
        rule reader; the llm reader is loaded on first use."""
        # spaCy reads every question, the encoder every question: load both while the index opens.
        loading = [_in_background(warm_up)]
        encoder = encoder or encoder_for(settings)
        if hasattr(encoder, "warm_up"):
            loading.append(_in_background(encoder.warm_up))
        try:
            index = open_search_index(settings, encoder, progress, on_build)
        except BaseException:
            # A process that exits while a thread is inside a native library's start-up (onnxruntime, spaCy)
            # aborts with "terminate called without an active exception" under the one-line error: let them finish.
            for thread in loading:
                thread.join(timeout=60)
            raise
        retriever = HybridRetriever(index, encoder, settings.top_k)
        reader: Reader = RuleReader(index.doc_freq, index.num_chunks, settings.max_quotes, ReaderConfig())
        if settings.reader == "learned":
            from rag.answer.learned import LearnedReader

            reader = LearnedReader(reader, encoder=encoder)

        def llm_factory() -> StreamingReader:
            from rag.answer.llm import LlmReader

            return LlmReader(settings, judge=reader)

        return cls(settings, index=index, encoder=encoder, retriever=retriever, reader=reader, llm_factory=llm_factory)

    def ask(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Answer:
        """Answer `question`; `history` holds the earlier turns of the same chat, oldest first, with their answers
        where the caller has them (a bare string is a question whose answer is not known: see `_answered`).

        `mode` ("auto", "extractive" or "llm") overrides `settings.answer_mode` for this question."""
        *_, last = self.ask_stream(question, history, mode)
        return last.answer

    def ask_stream(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Iterator[StreamEvent]:
        """Answer `question` step by step. In llm mode: first the extractive answer as a draft (mode "extractive",
        note EXTRACTIVE_DRAFT_NOTE; a further draft with WAITING_NOTE if another question holds the model), then
        drafts as the model's sentences pass the citation guard, then the final answer (`final=True`, always the
        last event), whose `mode` says who wrote it. In extractive mode only the final answer.

        A bad question raises (QuestionError, SettingsError) on the first step, before anything is yielded."""
        started = time.perf_counter()
        requested = mode or self.settings.answer_mode
        mode = self.answer_mode(mode)
        unavailable = ""
        if mode == "llm" and requested == "auto":  # auto promised an answer either way: a model that will not load
            try:                                   # (bad file, full disk, no process) leaves the extractive one
                self.llm_reader()
            except LlmError as exc:
                self._model_at_hand = False
                mode, unavailable = "extractive", f"the language model is not available ({exc}); answered without it"
        turns = conversation.as_turns(history)
        query, passages = self._read_question(question, turns)
        if mode == "llm" and query.is_followup:  # the same gate: only a question read with its history is condensed
            query = self._condensed(query, question, [t.question for t in turns])
            passages = None
        # doc_freq is keyed by stemmed terms: look up the question's terms, not its raw words
        if not any(self.index.doc_freq(t) for t in terms(query.resolved)) and not any(c.isascii() and c.isalnum() for c in query.question):
            raise QuestionError(
                "the question shares no words or script with the articles; ask it in the articles' language"
            )
        retrieved_at = time.perf_counter()
        if passages is None:
            passages = self._retrieve(query.resolved)
        answered_at = time.perf_counter()
        answer = self.reader.read(query, passages)
        answer = self.forms.answer(query, passages, answer) or answer  # -- seam: the answer forms --
        if missing := conversation.unsupported(query, answer):  # -- hook: a follow-up answered on borrowed words --
            answer = _abstained(answer, [w for w in dict.fromkeys(words(query.question)) if terms(w)[:1] and terms(w)[0] in missing]
                                or missing)
        if mode == "llm":  # the rule reader's answer is the fallback should the model fail or its answer not check out
            # shown at once, before the model is loaded or its lock taken; the model's drafts then replace it
            from rag.answer.llm import EXTRACTIVE_DRAFT_NOTE  # here: extractive questions never import the llm path

            yield StreamEvent(self._verified(dataclasses.replace(answer, notes=(*answer.notes, EXTRACTIVE_DRAFT_NOTE))))
            answer = yield from self._drafts(self.llm_reader().read_stream(query, passages, answer))
        answer = self._verified(answer)
        if unavailable:
            answer = dataclasses.replace(answer, notes=(*answer.notes, unavailable))
        done = time.perf_counter()
        timings = {
            **answer.timings,
            "analyse_ms": round((retrieved_at - started) * 1000, 2),
            "retrieve_ms": round((answered_at - retrieved_at) * 1000, 2),
            "answer_ms": round((done - answered_at) * 1000, 2),
            "total_ms": round((done - started) * 1000, 2),
        }
        yield StreamEvent(dataclasses.replace(answer, timings=timings), final=True)

    def answer_mode(self, mode: str | None = None) -> str:
        """The mode a question is answered in: `mode`, else `settings.answer_mode`, with "auto" made "llm" when a
        language model is at hand (one given to this assistant, llm_base_url or llm_path set, or the packaged
        model installed: told without loading it) and "extractive" otherwise."""
        mode = mode or self.settings.answer_mode
        if mode not in ANSWER_MODES:
            raise SettingsError(f"answer mode must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")
        if mode != "auto":
            return mode
        if self._model_at_hand is None:
            from rag.answer.local_model import packaged_installed

            s = self.settings
            configured = bool(s.llm_base_url or s.llm_path or packaged_installed())
            self._model_at_hand = self._llm is not None or (self._llm_factory is not None and configured)
        return "llm" if self._model_at_hand else "extractive"

    def _retrieve(self, text: str) -> tuple[Passage, ...]:
        passages = self.retriever.retrieve(text)
        if self.reranker is not None:
            passages = self.reranker.rerank(text, passages)
        return passages

    def _read_question(self, question: str, history: tuple[Turn, ...]) -> tuple[Query, tuple[Passage, ...] | None]:
        """The question's reading: alone, or, when it cannot stand alone, rewritten against the latest earlier turn
        that was answered (rag.answer.conversation: "Where were they sent?" -> "Where were the North Korean troops
        sent?"); an earlier turn sent without its answer is answered first (`_answered`).

        The follow-up gate (`ReaderConfig.followup_gate`): "rules" trusts question reading; "index" reads a
        doubtful question both ways and keeps the history reading only when it raises the support of the best
        sentence by `followup_margin`; "always" compares both ways for every question asked with history (a clear
        follow-up keeps its history reading unless reading it alone is clearly better supported). Returns the
        passages already retrieved for the chosen reading, or None."""
        limit = self.settings.max_question_chars
        alone = analyse(question, (), limit)
        config = getattr(self.reader, "config", None)
        if not history:
            return alone, None
        verdict = reading(alone.question)
        gate = config.followup_gate if isinstance(config, ReaderConfig) else "rules"
        if verdict == ALONE and gate != "always":
            return alone, None
        rewritten = conversation.resolve(alone.question, self._answered(history), fragment=verdict == FOLLOWUP)
        if rewritten is None:  # nothing before it was answered: there is nothing to lean on
            return alone, None
        if conversation.only_bracketed(rewritten, alone.question):
            if conversation.has_own_subject(alone.question):
                return alone, None  # nothing points back and the clause has its own subject: it stands alone
            verdict = DOUBT  # nothing in it points back: let the index decide
        # shown and read as the rewritten question; retrieved and matched with the answered turn's words as
        # context (lower weight), as a reader who remembers that turn would
        earlier = conversation.antecedent(self._answered(history))
        leaned = analyse(question, [earlier.resolved or earlier.question] if earlier else [], limit, with_history=True)
        joined = dataclasses.replace(leaned, question=alone.question, resolved=rewritten, is_followup=True)
        compare = gate == "always" or (gate == "index" and verdict == DOUBT)
        if not compare:
            return (joined, self._retrieve(leaned.resolved)) if verdict == FOLLOWUP else (alone, None)
        if joined.resolved == alone.resolved:
            return alone, None
        alone_passages, joined_passages = self._retrieve(alone.resolved), self._retrieve(leaned.resolved)
        gain = self.reader.confidence(joined, joined_passages) - self.reader.confidence(alone, alone_passages)
        keep_joined = gain > -config.followup_margin if verdict == FOLLOWUP else gain >= config.followup_margin
        return (joined, joined_passages) if keep_joined else (alone, alone_passages)

    def _answered(self, history: tuple[Turn, ...]) -> tuple[Turn, ...]:
        """`history` with the answers the caller did not send filled in: from the latest turn back to the first one
        answered, each unknown turn is asked (extractive, with the turns before it), as the chat asked it (at most
        `_MAX_FILLED` of them). Cached,
        so a conversation replayed turn by turn (`rag eval --as-chat`, an API client sending only questions)
        answers each earlier turn once and reads every follow-up exactly as the chat does."""
        filled = list(history)
        asked = 0
        for i in range(len(filled) - 1, -1, -1):
            turn = filled[i]
            if turn.abstained is None:
                if asked == _MAX_FILLED:  # only the antecedent matters: one request never costs many answers
                    break
                asked += 1
                key = (turn.question, tuple(filled[:i]))
                with self._cache_lock:
                    known = self._answered_cache.get(key)
                if known is None:
                    try:
                        got = self.ask(turn.question, filled[:i], mode="extractive")
                        known = Turn(turn.question, got.text, got.abstained, got.resolved_question)
                    except QuestionError:
                        known = Turn(turn.question, "", True)
                    with self._cache_lock:
                        if len(self._answered_cache) >= _ANSWERED_CACHE:
                            self._answered_cache.pop(next(iter(self._answered_cache)))
                        self._answered_cache[key] = known
                filled[i] = known
            if filled[i].abstained is False:
                break
        return tuple(filled)

    def _drafts(self, steps: Generator[Answer, None, Answer]) -> Generator[StreamEvent, None, Answer]:
        """Pass on the model's drafts as events (with the same verbatim check as the final answer); return the final."""
        while True:
            try:
                draft = next(steps)
            except StopIteration as stop:
                return stop.value
            yield StreamEvent(self._verified(draft))

    def llm_reader(self) -> StreamingReader:
        """The language-model reader, loaded once (a local model takes seconds to load)."""
        with self._llm_lock:
            if self._llm is None:
                if self._llm_factory is None:
                    raise SettingsError("this assistant was built without a language-model reader")
                self._llm = self._llm_factory()
            return self._llm

    def _condensed(self, query: Query, question: str, history: Sequence[str]) -> Query:
        """Let the model rewrite a follow-up as a standalone question; keep the rule-based reading if it cannot."""
        answerer = self.llm_reader()  # a configuration error is the user's to fix: it is not swallowed here
        try:
            rewritten = analyse(answerer.condense(question, history), (), self.settings.max_question_chars)
        except (LlmError, QuestionError):
            return query
        return dataclasses.replace(rewritten, question=question, is_followup=True)

    def _verified(self, answer: Answer) -> Answer:
        """Drop any quote that is not, character for character, its article's text at its offsets."""
        bad = [q for q in (*answer.quotes, *answer.related) if not self.verify(q)]
        if not bad:
            return answer
        keep = tuple(q for q in answer.quotes if q not in bad)
        note = f"{len(bad)} quote(s) failed the verbatim check and were removed"
        return dataclasses.replace(
            answer, quotes=keep, related=tuple(q for q in answer.related if q not in bad), notes=(*answer.notes, note)
        )

    def verify(self, quote: Quote) -> bool:
        article = self.index.article(quote.article_id)
        return quote_is_verbatim(article.text if article else None, quote.start, quote.end, quote.text)

    def close(self) -> None:
        self.index.close()
