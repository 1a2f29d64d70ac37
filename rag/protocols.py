"""The seams between stages: what each stage promises, so any part can be swapped for another behind it.

Modelled on Haystack's `components/retrievers/types/protocol.py`: each Protocol is short and says its
contract. Configuration goes to an implementation's constructor; data goes to the call. The composition
root (`rag.pipeline.Assistant.from_settings`) picks the implementations; every other module receives them.

Nothing here names a backend's own row numbers: the index is keyed by chunk id (`Chunk.id`) and article id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from rag.types import Answer, Article, ArticleHeader, Chunk, Passage, Query, StreamEvent, Turn


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result of an index: a chunk id and that search's score (higher is better)."""

    chunk_id: str
    score: float


@runtime_checkable
class Encoder(Protocol):
    """Turns text into unit-length float32 vectors of `dimension` floats.

    Queries and documents may be encoded differently (the model's own query/document prompts, where it has
    them); a query vector must be comparable by inner product with document vectors of the same model.
    `name` is what the index catalog records, so an index is never searched with another model's vectors.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode_query(self, text: str) -> np.ndarray:
        """One vector, shape (dimension,)."""
        ...

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """One row per text, shape (len(texts), dimension); `progress(n)` after each batch of n texts."""
        ...


@runtime_checkable
class SearchIndex(Protocol):
    """A read-only view of the stored articles, their chunks and sentence vectors, keyed by chunk id.

    Dense search is over sentences, reported per chunk (a chunk scores by its best sentence); lexical
    search is BM25-like over chunk texts. Both return chunk ids best first, never backend row numbers.
    Implementations must be safe to call from several threads at once.
    """

    @property
    def dimension(self) -> int: ...

    @property
    def num_chunks(self) -> int: ...

    @property
    def num_articles(self) -> int: ...

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[Hit, ...]:
        """Chunks of the `k` sentences most similar to `vector`, best first, each chunk once."""
        ...

    def lexical_search(self, terms: Sequence[str], k: int) -> tuple[Hit, ...]:
        """The `k` chunks that best match the stemmed `terms`; only chunks sharing a term."""
        ...

    def doc_freq(self, term: str) -> int:
        """How many chunks contain the stemmed `term` (the statistics the reader's IDF weights use)."""
        ...

    def passage(self, chunk_id: str, vector: np.ndarray) -> Passage:
        """The chunk with its article's title and the similarity of `vector` to each of its sentences
        (score and rank are 0: the retriever sets them). Raises KeyError for an unknown id."""
        ...

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk; raises KeyError for an unknown id."""
        ...

    def article(self, article_id: str) -> Article | None:
        """The live article, or None."""
        ...

    def article_headers(self) -> list[ArticleHeader]:
        """Every live article's id, title and date."""
        ...

    def close(self) -> None: ...


class Retriever(Protocol):
    """Finds the passages that best answer a question, best first, ranks 1-based."""

    def retrieve(self, question: str) -> tuple[Passage, ...]: ...


class Reranker(Protocol):
    """Optional stage after retrieval: re-orders (and may cut) passages; never invents or edits one."""

    def rerank(self, question: str, passages: tuple[Passage, ...]) -> tuple[Passage, ...]: ...


class Reader(Protocol):
    """Reads the retrieved passages and answers: a short text with [n] markers, each quote a verbatim
    span of its article at its offsets, or an abstention when the passages do not answer."""

    name: str  # "extractive", "llm": shown in `Answer.mode` and chosen by the `reader` setting

    def read(self, query: Query, passages: tuple[Passage, ...]) -> Answer: ...

    def confidence(self, query: Query, passages: tuple[Passage, ...]) -> float:
        """How strongly `passages` answer `query` by this reader's own measure (higher is surer; 0 when nothing
        was retrieved). The follow-up gate compares two readings of one question with it, so only differences
        between values of the same reader need to mean something."""
        ...


class StreamingReader(Reader, Protocol):
    """A reader that shows its answer while it is written: drafts first, the final answer last."""

    def read_stream(self, query: Query, passages: tuple[Passage, ...], fallback: Answer) -> Iterator[Answer]:
        """Drafts (each holding only verified sentences), then the final answer as the last item.
        `fallback` is what to return when the reader cannot do better (e.g. the rule reader's answer)."""
        ...


@runtime_checkable
class Asker(Protocol):
    """What every face (CLI, API, chat, evaluator) talks to: a question, the earlier turns of the same chat
    (oldest first) with the answers they got where the face holds them (`Turn`; a bare string is a question
    whose answer the asker works out itself), an answer. `ask_stream` yields drafts and ends with the final answer."""

    def ask(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Answer: ...

    def ask_stream(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Iterator[StreamEvent]: ...
