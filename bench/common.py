"""What every benchmark script shares: where corpora and indexes go, the settings of a benchmark index, the
encoder of a run, percentiles, and running a probe in a fresh process. Imports no other bench module but
`corpus` and `standin`, so the scripts depend on it and never on each other in a circle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import generate  # noqa: E402
from bench.standin import NAME as STANDIN  # noqa: E402
from bench.standin import HashEmbedder  # noqa: E402

WORK = Path("/tmp/ragbench")
PY = sys.executable


def corpus_dir(size: str, work: Path = WORK) -> Path:
    if size == "bundled":  # a copy: the incremental benchmark edits the corpus (and restores it)
        copy = work / "corpus-bundled"
        if not copy.exists():
            shutil.copytree(ROOT / "articles", copy)
        return copy
    return generate(int(size), work / f"corpus-{size}")


def index_dir(size: str, standin: bool, work: Path = WORK) -> Path:
    return work / f"index-{size}-{'standin' if standin else 'real'}"


def settings_for(size: str, standin: bool, work: Path = WORK, **changes: object):  # -> Settings
    from rag.config import load_settings

    model = {"embed_model": STANDIN} if standin else {}
    return load_settings(config_file=None, environ={}, answer_mode="extractive", articles_dir=corpus_dir(size, work),
                         index_dir=index_dir(size, standin, work), **model, **changes)


def embedder_for(standin: bool, settings):  # noqa: ANN001, ANN201 (-> Embedder | HashEmbedder)
    from rag.embed import Embedder

    return HashEmbedder() if standin else Embedder(settings.embed_model, settings.embed_batch_size)


def progress_bar():  # noqa: ANN201
    from tqdm import tqdm

    bar: list = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, unit="sent", file=sys.stderr, mininterval=2, desc="embedding"))
        bar[0].n = done
        bar[0].refresh()

    return update, (lambda: bar and bar[0].close())


def sentence_texts(settings) -> list[str]:  # noqa: ANN001
    """Every embedded sentence of the built index, in index order."""
    from rag.index.local import Index

    index = Index.load(settings.index_dir, settings)
    out = []
    for segment in index.segments:  # benchmark code may look inside
        article = -1
        text = ""
        for a, s, e in segment.sentences:
            if a != article:
                article, text = int(a), segment.field(int(a), "text")
            out.append(text[s:e])
    index.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def probe(code: str, env: dict[str, str] | None = None) -> dict:
    """Run `code` in a fresh python; its last stdout line is JSON."""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])
