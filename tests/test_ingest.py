"""Ingest of every supported format, and of files that must be skipped and reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.errors import IngestError
from rag.ingest.files import list_article_files, load_articles, walk_article_files


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_txt_title_is_first_line_and_text_is_the_whole_file(tmp_path: Path) -> None:
    body = "Storm hits coast\nThe storm reached the coast on Monday.\nThousands lost power.\n"
    write(tmp_path / "a.txt", body)
    (article,) = load_articles(tmp_path).articles
    assert article.id == "a.txt"
    assert article.title == "Storm hits coast"
    assert article.text == body


def test_long_first_line_gives_a_shortened_title(tmp_path: Path) -> None:
    line = "word " * 60
    write(tmp_path / "b.txt", line + "\nmore")
    (article,) = load_articles(tmp_path).articles
    assert article.title.endswith("…") and len(article.title) < 120


def test_markdown_title_from_heading(tmp_path: Path) -> None:
    write(tmp_path / "n.md", "Intro line\n\n## Budget passes Senate\n\nThe budget passed 51 to 49.")
    (article,) = load_articles(tmp_path).articles
    assert article.title == "Budget passes Senate"


def test_html_main_text_without_tags_scripts_or_navigation(tmp_path: Path) -> None:
    html = """<html><head><title>Mayor resigns</title><script>var x = "<p>hidden</p>";</script></head>
    <body><nav><a href="/">Home</a> Menu</nav><article><h1>Mayor resigns</h1>
    <p>The mayor <b>resigned</b> on Friday &amp; left.</p><p>Her deputy takes over.</p></article>
    <footer>Copyright</footer></body></html>"""
    write(tmp_path / "m.html", html)
    (article,) = load_articles(tmp_path).articles
    assert article.title == "Mayor resigns"
    assert "The mayor resigned on Friday & left." in article.text
    assert "Her deputy takes over." in article.text
    for absent in ("<", "hidden", "Menu", "Copyright", "var x"):
        assert absent not in article.text


def test_json_list_jsonl_and_single_record(tmp_path: Path) -> None:
    records = [
        {"title": "One", "body": "First body.", "url": "http://x/1", "published_at": "2024-01-01", "source": "Wire"},
        {"title": "Two", "text": "Second body."},
    ]
    write(tmp_path / "list.json", json.dumps(records))
    write(tmp_path / "lines.jsonl", "\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    write(tmp_path / "one.json", json.dumps({"title": "Three", "body": "Third body."}))
    result = load_articles(tmp_path)
    by_title = {}
    for article in result.articles:
        by_title.setdefault(article.title, []).append(article)
    assert len(by_title["One"]) == 2 and len(by_title["Two"]) == 2 and len(by_title["Three"]) == 1
    one = by_title["One"][0]
    assert (one.url, one.published_at, one.source, one.text) == ("http://x/1", "2024-01-01", "Wire", "First body.")
    assert len({a.id for a in result.articles}) == len(result.articles)
    assert [s.path for s in result.skipped] == ["lines.jsonl (line 3)"]


def test_json_ids_are_stable_when_records_move(tmp_path: Path) -> None:
    a, b = {"title": "A", "body": "a"}, {"title": "B", "body": "b"}
    write(tmp_path / "c.json", json.dumps([a, b]))
    first = {x.title: x.id for x in load_articles(tmp_path).articles}
    write(tmp_path / "c.json", json.dumps([b, a]))
    second = {x.title: x.id for x in load_articles(tmp_path).articles}
    assert first == second


def test_bad_files_are_skipped_and_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    write(tmp_path / "good.txt", "Title\nBody text here.")
    write(tmp_path / "empty.txt", "   \n\n")
    write(tmp_path / "binary.txt", b"\x89PNG\x00\x00\x01garbage")
    write(tmp_path / "latin1.txt", "caf\xe9 au lait".encode("latin-1"))
    write(tmp_path / "bad.json", "{not json")
    write(tmp_path / "norecords.json", json.dumps([{"title": "no body"}]))
    write(tmp_path / "image.png", b"\x89PNG")
    write(tmp_path / ".hidden.txt", "secret")
    result = load_articles(tmp_path)
    assert [a.id for a in result.articles] == ["good.txt"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["empty.txt"] == "empty file"
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "invalid JSON" in reasons["bad.json (file)"]
    assert "body" in reasons["norecords.json (record 1)"]
    assert "unsupported" in reasons["image.png"]
    assert not any("hidden" in p for p in reasons)


def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    # A dangling symlink cannot be read even by root, unlike a chmod 000 file.
    write(tmp_path / "ok.txt", "Title\nbody")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing-target.txt")
    result = load_articles(tmp_path)
    assert [a.id for a in result.articles] == ["ok.txt"]
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [("gone.txt", "cannot read")]


def test_listing_order_hidden_entries_and_special_files(tmp_path: Path) -> None:
    for name in ("b.txt", "a/z.txt", "a/b/c.txt", "a.txt", ".hidden/x.txt", "a/.y.txt"):
        write(tmp_path / name, "Title\nbody")
    os.mkfifo(tmp_path / "pipe.txt")  # reading a FIFO would block the build forever
    (tmp_path / "linked").symlink_to(tmp_path / "a", target_is_directory=True)  # listed, never entered
    listed = [fid for fid, _, _ in walk_article_files(tmp_path)]
    assert listed == ["a/b/c.txt", "a/z.txt", "a.txt", "b.txt", "linked"]
    assert listed == sorted(listed, key=lambda fid: fid.split("/"))
    assert list_article_files(tmp_path) == [tmp_path / fid for fid in listed]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        load_articles(tmp_path / "nope")


def test_a_single_file_can_be_the_corpus(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.json", json.dumps([{"title": "T", "body": "B."}]))
    (article,) = load_articles(path).articles
    assert article.id.startswith("corpus.json#")
