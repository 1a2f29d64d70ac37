"""The seams of rag.protocols: the local index honours SearchIndex (chunk ids, never rows), and an Assistant built
from small hand-made parts (an in-memory SearchIndex over three short articles, the real embedding model, the
real hybrid retriever and rule reader) answers end to end.

The in-memory index is a deliberate stand-in for a backend (it is what a new backend must provide), not a fake
of ours: it searches real model vectors by inner product and scores terms by BM25 as the local one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from rag.answer.extractive import RuleReader
from rag.chunk import chunk_article, parse_chunk_id
from rag.config import Settings
from rag.embed import Embedder
from rag.index.local import Index
from rag.pipeline import Assistant
from rag.protocols import Encoder, Hit, SearchIndex
from rag.retrieve.hybrid import HybridRetriever
from rag.text import bm25_idf, terms
from rag.types import Article, ArticleHeader, Chunk, Passage
from tests.conftest import make_settings

ARTICLES = (
    Article("harbour.txt", "Harbour reopens", "The harbour of Kiel reopened on Monday after a storm closed it for "
            "nine days. Port officials said 14 ferries had been stranded. The mayor thanked the crews."),
    Article("budget.txt", "Council budget", "The council of Lyon approved a budget of 2.4 billion euros on Tuesday. "
            "Most of the money goes to schools and tram lines. The opposition voted against it."),
    Article("herons.txt", "Bird count", "Volunteers counted 312 grey herons along the river Elbe this spring. "
            "The count was the highest since 1998, the nature society said."),
)


class MemoryIndex:
    """A SearchIndex over a few articles held in memory: sentence vectors by inner product, BM25 over chunks."""

    def __init__(self, articles: Sequence[Article], encoder: Encoder) -> None:
        self._articles = {a.id: a for a in articles}
        self._chunks = {c.id: c for a in articles for c in chunk_article(a, max_chars=120)}
        self._sentences = [(c.id, s, e) for c in self._chunks.values() for s, e in c.sentences]
        texts = [self._articles[parse_chunk_id(cid)[0]].text[s:e] for cid, s, e in self._sentences]
        self._vectors = encoder.encode_documents(texts)
        self._terms = {cid: Counter(terms(c.text)) for cid, c in self._chunks.items()}
        self._avg = float(np.mean([sum(t.values()) for t in self._terms.values()]))
        self.dimension = encoder.dimension

    @property
    def num_chunks(self) -> int:
        return len(self._chunks)

    @property
    def num_articles(self) -> int:
        return len(self._articles)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[Hit, ...]:
        scores = self._vectors @ vector
        hits: dict[str, Hit] = {}
        for row in np.argsort(-scores, kind="stable")[:k]:
            cid = self._sentences[row][0]
            hits.setdefault(cid, Hit(cid, float(scores[row])))
        return tuple(hits.values())

    def lexical_search(self, query_terms: Sequence[str], k: int) -> tuple[Hit, ...]:
        scored = []
        for cid, counts in self._terms.items():
            length = sum(counts.values())
            score = sum(bm25_idf(self.doc_freq(t), self.num_chunks) * counts[t] * 2.5
                        / (counts[t] + 1.5 * (0.25 + 0.75 * length / self._avg)) for t in query_terms if counts[t])
            if score > 0:
                scored.append(Hit(cid, score))
        return tuple(sorted(scored, key=lambda h: -h.score)[:k])

    def doc_freq(self, term: str) -> int:
        return sum(1 for counts in self._terms.values() if counts[term])

    def passage(self, chunk_id: str, vector: np.ndarray) -> Passage:
        chunk = self._chunks[chunk_id]
        rows = [i for i, (cid, _, _) in enumerate(self._sentences) if cid == chunk_id]
        return Passage(chunk, self._articles[chunk.article_id].title, 0.0, 0,
                       tuple(float(s) for s in self._vectors[rows] @ vector))

    def chunk(self, chunk_id: str) -> Chunk:
        return self._chunks[chunk_id]

    def article(self, article_id: str) -> Article | None:
        return self._articles.get(article_id)

    def article_headers(self) -> list[ArticleHeader]:
        return [ArticleHeader(a.id, a.title, a.published_at) for a in self._articles.values()]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def small_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("small")
    (root / "articles").mkdir()
    return make_settings(root / "articles", root / "index", auto_build=False)


def test_an_assistant_built_from_hand_made_parts_answers_end_to_end(small_settings: Settings, embedder: Embedder) -> None:
    index = MemoryIndex(ARTICLES, embedder)
    assert isinstance(index, SearchIndex) and isinstance(embedder, Encoder)
    assistant = Assistant(small_settings, index=index, encoder=embedder, retriever=HybridRetriever(index, embedder, top_k=4),
                          reader=RuleReader(index.doc_freq, index.num_chunks, small_settings.max_quotes))
    answer = assistant.ask("How many herons did the volunteers count?")
    assert not answer.abstained and answer.quotes
    assert answer.quotes[0].article_id == "herons.txt" and "312" in answer.text
    for quote in answer.quotes:  # every quote is its article's text at its offsets
        assert index.article(quote.article_id).text[quote.start : quote.end] == quote.text
    other = assistant.ask("What did the council of Lyon approve?")
    assert other.quotes and other.quotes[0].article_id == "budget.txt"


def test_the_local_index_is_a_search_index_keyed_by_chunk_id(assistant: Assistant, embedder: Embedder) -> None:
    index = assistant.index
    assert isinstance(index, Index) and isinstance(index, SearchIndex)
    vector = embedder.encode_query("How many North Korean troops were sent?")
    dense = index.dense_search(vector, 12)
    lexical = index.lexical_search(terms("North Korean troops Kursk"), 8)
    assert dense and lexical
    for hits in (dense, lexical):
        assert all(isinstance(h, Hit) and isinstance(h.chunk_id, str) for h in hits)
        assert len({h.chunk_id for h in hits}) == len(hits)  # each chunk once
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in (*dense, *lexical):
        chunk = index.chunk(hit.chunk_id)
        assert chunk.id == hit.chunk_id and index.article(chunk.article_id).text[chunk.start : chunk.end] == chunk.text
        passage = index.passage(hit.chunk_id, vector)
        assert passage.chunk == chunk and len(passage.sentence_scores) == len(chunk.sentences)
    # a chunk's dense score is its best sentence's
    best = index.passage(dense[0].chunk_id, vector)
    assert max(best.sentence_scores) == pytest.approx(dense[0].score, abs=1e-6)
    with pytest.raises(KeyError):
        index.chunk("no-such-article.txt:0-10")
    with pytest.raises(KeyError):
        index.passage("not a chunk id", vector)
