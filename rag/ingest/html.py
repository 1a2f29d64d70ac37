"""HTML articles (.html, .htm): the main text as one line per block element, via BeautifulSoup.

Navigation, scripts, headers, footers and forms are dropped; the text comes from <article>, else <main>, else
<body>. The title is og:title, else <title>, else the first <h1>, else the first block.
"""

from __future__ import annotations

from pathlib import Path

from rag.ingest.plain import short_title
from rag.types import Article

_SKIP_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"]
_BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "figcaption", "td", "dd", "dt"]


def html_article(fid: str, path: Path, html: str) -> Article | None:
    """The article in `html`, or None when it holds no text."""
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
    return Article(id=fid, title=short_title(title), text="\n".join(blocks), path=str(path))
