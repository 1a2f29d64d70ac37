"""Ingest: turn a folder (or one file) of articles into `Article`s, skipping and reporting what cannot be read.

Formats: .txt and .md (title = first line or first heading), .html/.htm (main text via BeautifulSoup),
.json (a record, a list of records, or {"articles": [...]}) and .jsonl (one record a line). A record has
`title`, `body` or `text`, and optionally `url`, `published_at`, `source`, `id`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import IngestError
from rag.types import Article, Skipped

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES
MAX_FILE_BYTES = 200 * 1024 * 1024
_TITLE_WORDS = 14


@dataclass(frozen=True, slots=True)
class IngestResult:
    articles: tuple[Article, ...]
    skipped: tuple[Skipped, ...]


def list_article_files(root: Path) -> list[Path]:
    """Every non-hidden file under `root` (or `root` itself when it is a file), in a stable order."""
    return [Path(path) for _, path, _ in walk_article_files(root)]


def walk_article_files(root: Path) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """(file id, path, stat or None when it cannot be stat'ed) of every non-hidden file under `root` (or of
    `root` itself), in sorted path-part order. Hidden files and folders are skipped, symlinked folders are
    not entered, and only regular files and symlinks are listed (a FIFO or socket would block a read).

    Written for speed, because the index compares this listing with its catalog on every `rag ask` and
    every build: at 100,000 files Path.rglob plus relative_to took ~2 s; a depth-first os.scandir with each
    folder sorted gives the same order with no final sort, and the stat() calls (one syscall per file,
    unavoidable without a file watcher) are most of what is left.
    """
    if not root.exists():
        raise IngestError(f"articles folder {root} does not exist")
    if root.is_file():
        yield file_id(root, root), str(root), root.stat()
        return
    stack = [(iter(_sorted_entries(str(root))), "")]
    while stack:
        entries, rel = stack[-1]
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((iter(_sorted_entries(entry.path)), f"{rel}{name}/"))
                break
            if not (entry.is_file() or entry.is_symlink()):
                continue
            try:
                yield f"{rel}{name}", entry.path, entry.stat()
            except OSError:  # a dangling symlink: listed, so the build reports it as unreadable
                yield f"{rel}{name}", entry.path, None
        else:
            stack.pop()


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=_entry_name)
    except OSError:
        return []


def _entry_name(entry: os.DirEntry) -> str:
    return entry.name


def file_id(root: Path, path: Path) -> str:
    """The stable id of a file: its path relative to the articles folder (its name when given alone)."""
    return path.name if root.is_file() else path.relative_to(root).as_posix()


def load_articles(root: Path) -> IngestResult:
    """Read every article under `root`; unreadable files are skipped and listed, never fatal."""
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path in list_article_files(root):
        got, bad = load_file(path, file_id(root, path))
        articles.extend(got)
        skipped.extend(bad)
    return IngestResult(tuple(articles), tuple(skipped))


def load_file(path: Path, fid: str) -> tuple[list[Article], list[Skipped]]:
    """The articles in one file, and what in it was skipped."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        return [], [Skipped(fid, f"unsupported file type {suffix or '(none)'}")]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [Skipped(fid, f"cannot read: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return [], [Skipped(fid, f"too large ({len(raw)} bytes)")]
    if b"\x00" in raw[:8192]:
        return [], [Skipped(fid, "binary file (contains NUL bytes)")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Skipped(fid, f"not valid UTF-8 (bad byte at position {exc.start})")]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return [], [Skipped(fid, "empty file")]
    if suffix in TEXT_SUFFIXES:
        return [_plain_article(fid, path, text, markdown=suffix != ".txt")], []
    if suffix in HTML_SUFFIXES:
        article = _html_article(fid, path, text)
        return ([article], []) if article else ([], [Skipped(fid, "no text in the HTML")])
    return _json_articles(fid, path, text, lines=suffix == ".jsonl")


def _short_title(line: str) -> str:
    line = " ".join(line.split())
    words = line.split(" ")
    if len(line) <= 120 and len(words) <= 20:
        return line.rstrip(".")
    return " ".join(words[:_TITLE_WORDS]).rstrip(",;:") + "…"


def _plain_article(fid: str, path: Path, text: str, markdown: bool) -> Article:
    title = ""
    if markdown:
        heading = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
        if heading:
            title = heading.group(1)
    if not title:
        first = next(line for line in text.splitlines() if line.strip())
        title = first.lstrip("#").strip()
    return Article(id=fid, title=_short_title(title), text=text, path=str(path))


_SKIP_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"]
_BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "figcaption", "td", "dd", "dt"]


def _html_article(fid: str, path: Path, html: str) -> Article | None:
    # BeautifulSoup with the stdlib parser: a real HTML parser, tolerant of broken markup, no C deps.
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = ""
    meta = soup.find("meta", attrs={"property": "og:title"})
    if meta and meta.get("content"):
        title = str(meta["content"])
    elif soup.title and soup.title.get_text(strip=True):
        title = soup.title.get_text(" ", strip=True)
    for tag in soup(_SKIP_TAGS):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks = []
    for element in root.find_all(_BLOCK_TAGS):
        if element.find_parent(_BLOCK_TAGS):
            continue  # its text is already part of an enclosing block
        block = " ".join(element.get_text(" ", strip=True).split())
        if block:
            blocks.append(block)
    if not blocks:
        text = " ".join(root.get_text(" ", strip=True).split())
        blocks = [text] if text else []
    if not blocks:
        return None
    if not title:
        h1 = root.find("h1")
        title = h1.get_text(" ", strip=True) if h1 else blocks[0]
    return Article(id=fid, title=_short_title(title), text="\n".join(blocks), path=str(path))


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


def _json_articles(fid: str, path: Path, text: str, lines: bool) -> tuple[list[Article], list[Skipped]]:
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
                title=_short_title(title),
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
