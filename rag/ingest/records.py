"""JSON articles: .json (a record, a list of records, or {"articles": [...]}) and .jsonl (one record a line).

A record has `title`, `body` or `text`, and optionally `url`, `published_at`, `source`, `id`. Each record
becomes an article with id `<file id>#<record id or a hash of title and url>`; a bad record is skipped and
reported with its place, the others are kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.ingest.plain import short_title
from rag.types import Article, Skipped


def _records(text: str, lines: bool) -> Iterator[tuple[str, Any]]:
    """(where, record) pairs; `record` is an exception when that part cannot be parsed."""
    if lines:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield f"line {number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"line {number}", exc
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield "file", exc
        return
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        yield "file", ValueError("expected a JSON object or a list of objects")
        return
    for number, record in enumerate(data, start=1):
        yield f"record {number}", record


def json_articles(fid: str, path: Path, text: str, lines: bool) -> tuple[list[Article], list[Skipped]]:
    """The articles of a .json (`lines` False) or .jsonl file, and the records skipped."""
    articles: list[Article] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for where, record in _records(text, lines):
        if isinstance(record, Exception):
            skipped.append(Skipped(f"{fid} ({where})", f"invalid JSON: {record}"))
            continue
        if not isinstance(record, dict):
            skipped.append(Skipped(f"{fid} ({where})", "not a JSON object"))
            continue
        body = record.get("body", record.get("text"))
        if not isinstance(body, str) or not body.strip():
            skipped.append(Skipped(f"{fid} ({where})", "no 'body' or 'text'"))
            continue
        body = body.replace("\r\n", "\n").replace("\r", "\n")
        title = record.get("title")
        title = title if isinstance(title, str) and title.strip() else next(ln for ln in body.splitlines() if ln.strip())
        key = str(record.get("id") or "") or hashlib.sha1(f"{title}\n{record.get('url', '')}".encode()).hexdigest()[:12]
        article_id, suffix = f"{fid}#{key}", 2
        while article_id in seen:  # the same title and url twice: keep both, apart
            article_id, suffix = f"{fid}#{key}-{suffix}", suffix + 1
        seen.add(article_id)
        articles.append(
            Article(
                id=article_id,
                title=short_title(title),
                text=body,
                path=str(path),
                url=str(record.get("url") or ""),
                published_at=str(record.get("published_at") or ""),
                source=str(record.get("source") or ""),
            )
        )
    if not articles and not skipped:
        skipped.append(Skipped(fid, "no records"))
    return articles, skipped
