"""The one loaded `Assistant` that every handler of the app shares.

Questions are answered concurrently, one request thread each: the answer path is safe to run from several
threads at once (tests/test_concurrency.py compares every concurrent answer with the single-threaded one).
The question encoder runs one thread per question, so parallel requests use the machine's cores; the parts
that are not thread-safe keep their own short locks (spaCy, a segment's SQLite connection and BM25 scorer),
and the language-model reader has its own lock, so one slow model answer never holds up extractive answers.

A streamed answer is produced by a worker thread that hands each step over a queue: a page closed
mid-answer then cannot leave a half-read generator holding the model's lock.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from rag.config import PROJECT_ROOT, Settings
from rag.pipeline import Assistant
from rag.types import Answer, Article, ArticleHeader, StreamEvent, Turn

MAX_HISTORY = 50  # earlier turns kept for follow-ups; the library only looks at the latest few anyway

# Shown as clickable examples when the app serves the bundled articles; other corpora get questions made
# from their short titles (a generic "What are the articles about?" is not something quotes can answer).
BUNDLED_EXAMPLES = (
    "How many North Korean troops were sent to Russia?",
    "Who warned about the integration of North Korean troops on the front lines?",
    "What is the capital of Australia?",
)


class Service:
    """Concurrent access to the assistant plus what the pages show about the corpus."""

    def __init__(self, assistant: Assistant, settings: Settings) -> None:
        self.assistant = assistant
        self.settings = settings

    def ask(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Answer:
        return self.assistant.ask(question, tuple(history)[-MAX_HISTORY:], mode)

    def ask_stream(self, question: str, history: Sequence[Turn | str] = (), mode: str | None = None) -> Iterator[StreamEvent]:
        """`Assistant.ask_stream` in a worker thread: drafts of a language model's answer, then the final answer.
        An error (a bad question included) is raised here, in the caller's thread."""
        steps: queue.Queue[StreamEvent | BaseException | None] = queue.Queue()

        def work() -> None:
            try:
                for event in self.assistant.ask_stream(question, tuple(history)[-MAX_HISTORY:], mode):
                    steps.put(event)
            except BaseException as exc:  # handed to the caller, who reports it
                steps.put(exc)
            finally:
                steps.put(None)

        threading.Thread(target=work, name="answer-stream", daemon=True).start()
        while (step := steps.get()) is not None:
            if isinstance(step, BaseException):
                raise step
            yield step

    def article(self, article_id: str) -> Article | None:
        return self.assistant.index.article(article_id)

    def articles(self) -> list[ArticleHeader]:
        return self.assistant.index.article_headers()

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.assistant.index.manifest)

    @functools.cached_property  # read once: it may open up to 200 articles
    def examples(self) -> tuple[str, ...]:
        bundled = self.settings.articles_dir.resolve() == (PROJECT_ROOT / "articles").resolve()
        if bundled:
            return BUNDLED_EXAMPLES
        found: list[str] = []
        for article_id in self.assistant.index.article_ids()[:200]:  # enough to find three short titles
            article = self.assistant.index.article(article_id)
            title = article.title if article else ""
            if title and not title.endswith("…") and 2 <= len(title.split()) <= 9:
                found.append(f"What do the articles say about {title.rstrip('.?!')}?")
            if len(found) == 3:
                break
        return tuple(found)
