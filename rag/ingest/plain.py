"""Plain-text formats: .txt (title = the first non-empty line) and Markdown (.md, .markdown: the first heading).

Also the title rule every format shares (`short_title`): a long first line becomes its first words and an ellipsis.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.types import Article

_TITLE_WORDS = 14


def short_title(line: str) -> str:
    """`line` as a title: whole when short, else its first words and an ellipsis."""
    line = " ".join(line.split())
    words = line.split(" ")
    if len(line) <= 120 and len(words) <= 20:
        return line.rstrip(".")
    return " ".join(words[:_TITLE_WORDS]).rstrip(",;:") + "…"


def plain_article(fid: str, path: Path, text: str, markdown: bool) -> Article:
    """One article: the whole text, titled by its first Markdown heading or its first line."""
    title = ""
    if markdown:
        heading = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
        if heading:
            title = heading.group(1)
    if not title:
        first = next(line for line in text.splitlines() if line.strip())
        title = first.lstrip("#").strip()
    return Article(id=fid, title=short_title(title), text=text, path=str(path))
