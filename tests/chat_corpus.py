"""A small dated corpus written for the conversation and answer-form tests (not the bundled articles)."""

from __future__ import annotations

import json
from pathlib import Path

from rag.config import Settings
from rag.index.build import build_index
from tests.conftest import make_settings

ARTICLES = [
    {"id": "dam", "title": "Flooding closes the Velmora dam road", "published_at": "2025-03-02",
     "body": "The Velmora dam road was closed on Sunday after heavy rain flooded the valley.\n"
             "Engineers from the water board inspected the dam overnight.\n"
             "Rising Water in the Valley\n"
             "The chief engineer, Alma Rudd, said that the spillway was working as designed.\n"
             "About 300 families were moved to the sports hall in Tessin.\n"},
    {"id": "release", "title": "Water board explains the release", "published_at": "2025-03-05",
     "body": "The water board opened the spillway gates because the reservoir had reached its highest level in forty years.\n"
             "Farmers downstream said the release flooded their fields near the old mill.\n"
             "Alma Rudd told reporters that the gates would stay open until the reservoir level fell.\n"
             "The board will pay farmers for the lost harvest, a spokesman added.\n"},
    {"id": "council", "title": "Tessin council meets before the storm", "published_at": "2025-03-01",
     "body": "The Tessin council met on Saturday to plan for the storm.\n"
             "Mayor Oskar Lind, the town's longest-serving mayor, asked residents to prepare sandbags.\n"
             "The council set aside 2 million crowns for repairs to the river banks.\n"
             "Schools in Tessin will stay closed until Friday.\n"},
]


def build(root: Path, embedder) -> Settings:  # noqa: ANN001
    """The corpus as one JSONL file, indexed with the real model into `root`."""
    articles = root / "articles"
    articles.mkdir(parents=True)
    (articles / "news.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n", encoding="utf-8")
    settings = make_settings(articles, root / "index")
    build_index(settings, embedder)
    return settings
