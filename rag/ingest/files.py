"""Ingest: walk a folder of articles (the change scan's file listing), read each file and hand it to its
format's module, skipping and reporting what cannot be read.

Formats, one module each: rag.ingest.plain (.txt and .md: title = first line or first heading),
rag.ingest.html (.html/.htm: main text via BeautifulSoup), rag.ingest.records (.json: a record, a list of
records, or {"articles": [...]}; .jsonl: one record a line).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import IngestError
from rag.ingest.html import html_article
from rag.ingest.plain import plain_article
from rag.ingest.records import json_articles
from rag.types import Article, Skipped

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES
MAX_FILE_BYTES = 200 * 1024 * 1024


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
        return [plain_article(fid, path, text, markdown=suffix != ".txt")], []
    if suffix in HTML_SUFFIXES:
        article = html_article(fid, path, text)
        return ([article], []) if article else ([], [Skipped(fid, "no text in the HTML")])
    return json_articles(fid, path, text, lines=suffix == ".jsonl")
