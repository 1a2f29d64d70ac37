"""The speed-and-scale benchmark: build, incremental, load, query, recall, cold start, LlamaIndex side by side.

    python bench/run.py --sizes bundled,1000,10000,100000 --real-up-to 1000

Sizes above --real-up-to are built from STAND-IN vectors (bench/standin.py; the real model would need hours
here), which every result records; give a larger --real-up-to on a machine with the time. Sizes listed in
--pre-encoded get the real model's vectors, encoded once by bench/realcache.py (timed there: the "model
alone" figure) and served to the build, so the index variants of a size need not re-embed it. Each size writes
bench/results/<size>.json; bench/report.py turns them into BENCHMARKS.md. Corpora and indexes go to
--work (default /tmp/ragbench), never into the repository. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import build as build_bench  # noqa: E402
from bench.common import PY, pct, probe  # noqa: E402
from bench.corpus import article, path_of, questions  # noqa: E402
from bench.standin import HashEmbedder  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def question_set(size: str) -> list[str]:
    if size == "bundled":
        from tests.conftest import DEV_QUESTIONS

        qs = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
        return [qs[i % len(qs)] for i in range(200)]
    return [q for q, _, _ in questions(int(size), 200)]


_LOAD = """
import json, sys, time
sys.path.insert(0, {root!r})
def rss():
    fields = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return {{k: int(fields[k].split()[0]) * 1024 for k in ('VmRSS', 'RssAnon', 'RssFile')}}
from rag.config import load_settings
from rag.index.local import Index
import numpy, faiss, bm25s  # the libraries any process using the index has loaded anyway
before = rss()
settings = load_settings(config_file=None, environ={{}}, answer_mode="extractive", articles_dir={articles!r}, index_dir={index!r}, embed_model={model!r})
t = time.perf_counter()
index = Index.load(settings.index_dir, settings)
seconds = time.perf_counter() - t
after = rss()
print(json.dumps({{"load_s": seconds, "rss_before": before, "rss_after": after}}))
"""


def measure_load(settings) -> dict:  # noqa: ANN001
    code = _LOAD.format(root=str(ROOT), articles=str(settings.articles_dir), index=str(settings.index_dir), model=settings.embed_model)
    runs = [probe(code) for _ in range(3)]
    best = sorted(runs, key=lambda r: r["load_s"])[1]  # the median of three, page cache warm
    import sqlite3

    text = 0
    for seg in settings.index_dir.glob("gen-*"):
        with sqlite3.connect(seg / "store.sqlite") as db:
            text += db.execute("SELECT coalesce(sum(length(text)), 0) FROM articles").fetchone()[0]
    from rag.index.local import index_size, read_manifest

    manifest = read_manifest(settings.index_dir)  # no index: a TypeError, never a silently smaller figure
    vectors = manifest["counts"]["sentences"] * manifest["dimension"] * 4  # raw float32 vectors
    return {
        "load_s": round(best["load_s"], 3),
        "rss_after_mb": round(best["rss_after"]["VmRSS"] / 2**20, 1),
        "rss_index_mb": round((best["rss_after"]["VmRSS"] - best["rss_before"]["VmRSS"]) / 2**20, 1),
        "raw_vectors_text_mb": round((vectors + text) / 2**20, 1),
        "disk_mb": round(index_size(settings.index_dir) / 2**20, 1),
    }


def measure_incremental(size: str, settings, standin: bool) -> dict:  # noqa: ANN001
    """Add one article, then change one, timing each `build_index`; the corpus is restored afterwards."""
    from rag.index.build import build_index

    if size == "bundled":
        new_path = settings.articles_dir / "zz_bench_added.txt"
        changed = sorted(settings.articles_dir.glob("*.txt"))[0]
        new_text = article(0)[0]
    else:
        n = int(size)
        new_path, changed, new_text = path_of(settings.articles_dir, n), path_of(settings.articles_dir, 0), article(n)[0]
    embedder = build_bench.embedder_for(standin, settings)
    if not standin:
        embedder.encode_query("warm up")
    original = changed.read_text(encoding="utf-8")
    from rag.chunk import split_sentences

    t = time.perf_counter()
    build_index(settings, embedder)  # warm: imports and the sentence splitter load once per process
    split_sentences("Warm the sentence splitter. It loads once.")
    out = {"first_noop_s": round(time.perf_counter() - t, 3)}
    try:
        new_path.parent.mkdir(exist_ok=True)
        new_path.write_text(new_text, encoding="utf-8")
        t = time.perf_counter()
        report = build_index(settings, embedder)
        out["add_one_s"] = round(time.perf_counter() - t, 3)
        out["add_embedded"] = report.embedded
        changed.write_text(original + "\nA correction was appended to this article by the benchmark.\n", encoding="utf-8")
        t = time.perf_counter()
        report = build_index(settings, embedder)
        out["change_one_s"] = round(time.perf_counter() - t, 3)
        out["change_embedded"] = report.embedded
        t = time.perf_counter()
        report = build_index(settings, embedder)
        out["noop_s"] = round(time.perf_counter() - t, 3)
    finally:
        new_path.unlink(missing_ok=True)
        changed.write_text(original, encoding="utf-8")
        build_index(settings, embedder)
    return out


def measure_queries(size: str, settings, standin: bool, profile_to: Path | None = None) -> dict:  # noqa: ANN001
    """Warm p50/p95 of retrieval alone and of the whole answer over 200 questions (real query encoder)."""
    from rag.embed import Embedder
    from rag.pipeline import Assistant

    assistant = Assistant.from_settings(settings.replace(auto_build=False), encoder=Embedder())
    qs = question_set(size)
    for q in qs[:10]:
        assistant.ask(q)
    encode, retrieve, whole = [], [], []
    for q in qs:
        t = time.perf_counter()
        assistant.encoder.encode_query(q)
        encode.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        assistant.retriever.retrieve(q)
        retrieve.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        assistant.ask(q)
        whole.append((time.perf_counter() - t) * 1000)
    out = {
        "encode_p50_ms": pct(encode, 0.5),
        "retrieve_p50_ms": pct(retrieve, 0.5), "retrieve_p95_ms": pct(retrieve, 0.95),
        "answer_p50_ms": pct(whole, 0.5), "answer_p95_ms": pct(whole, 0.95),
    }
    if profile_to is not None:
        profile_to.parent.mkdir(parents=True, exist_ok=True)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for q in qs:
            assistant.ask(q)
        profiler.stop()
        profile_to.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    assistant.close()
    return out


def measure_recall(size: str, settings) -> dict:  # noqa: ANN001
    """recall@10 of the index's dense search against exact search over the same stored vectors."""
    import numpy as np

    from rag.index.local import Index

    index = Index.load(settings.index_dir, settings)
    kinds = [s["kind"] for s in index.manifest["segments"]]
    encoder = HashEmbedder() if settings.embed_model.startswith("bench-") else None
    if encoder is None:
        from rag.embed import Embedder

        encoder = Embedder()
    queries = np.stack([encoder.encode_query(q) for q in question_set(size)])
    exact_scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    exact_rows = np.zeros((len(queries), 10), dtype=np.int64)
    offset = 0
    offsets = {}
    for segment in index.segments:  # benchmark code may look inside
        offsets[segment.name] = offset
        n = segment.info["sentences"]
        matrix = segment.vectors if segment.vectors is not None else _exact_vectors(size, settings, segment)
        dead = np.isin(segment.sentences[:, 0], list(segment.dead)) if segment.dead else None
        for begin in range(0, n, 200_000):
            block = np.asarray(matrix[begin : begin + 200_000], dtype=np.float32) @ queries.T  # [rows, queries]
            if dead is not None:
                block[dead[begin : begin + 200_000]] = -np.inf
            both_s = np.concatenate([exact_scores, block.T], axis=1)
            both_r = np.concatenate([exact_rows, np.broadcast_to(np.arange(begin, begin + len(block)) + offset, (len(queries), len(block)))], axis=1)
            top = np.argsort(-both_s, axis=1)[:, :10]
            exact_scores = np.take_along_axis(both_s, top, axis=1)
            exact_rows = np.take_along_axis(both_r, top, axis=1)
        offset += n
    def trial() -> dict:
        hits, tied, search_ms = [], [], []
        for q, want, want_scores in zip(queries, exact_rows, exact_scores, strict=True):
            t = time.perf_counter()
            found, got_scores = index.sentence_search(q, 10)
            search_ms.append((time.perf_counter() - t) * 1000)
            got = {offsets[name] + row for name, row in found}
            hits.append(len(got & set(want.tolist())) / 10)
            # tie-aware: a result scoring at least the exact 10th score is as good as any exact one
            tied.append(min(10, int((got_scores >= want_scores[9] - 1e-5).sum())) / 10)
        return {"recall_at_10": round(float(np.mean(hits)), 4), "recall_at_10_ties": round(float(np.mean(tied)), 4),
                "dense_search_p50_ms": pct(search_ms, 0.5), "dense_search_p95_ms": pct(search_ms, 0.95)}

    out = {"search_kind": "+".join(kinds), **trial()}
    ivf = [s.dense for s in index.segments if s.info["kind"] != "flat"]
    if ivf:  # what more probes would buy: recall against latency
        out["nprobe"] = [s.faiss.nprobe for s in ivf]
        out["nlist"] = [s.faiss.nlist for s in ivf]
        calibrated = [s.faiss.nprobe for s in ivf]
        out["sweep"] = []
        for factor in (2, 4, 8, 16):
            for s, base in zip(ivf, calibrated, strict=True):
                s.faiss.nprobe = min(s.faiss.nlist, base * factor)
            out["sweep"].append({"nprobe": [s.faiss.nprobe for s in ivf], **trial()})
        for s, base in zip(ivf, calibrated, strict=True):
            s.faiss.nprobe = base
    elif not settings.embed_model.startswith("bench-") and sum(s.info["sentences"] for s in index.segments) > 10_000:
        out["ivf_on_real_vectors"] = _ivf_check(index, queries)
    index.close()
    return out


def _exact_vectors(size: str, settings, segment):  # noqa: ANN001, ANN202
    """The float32 vectors a large segment's codes were made from, encoded again from its sentence texts (the
    segment keeps only the codes): stand-ins by their hash, real ones from bench/realcache.py's cache."""
    texts = [segment.field(int(a), "text")[s:e] for a, s, e in segment.sentences]
    if settings.embed_model.startswith("bench-"):
        return HashEmbedder().encode_documents(texts)
    from bench.realcache import CachedEmbedder

    return CachedEmbedder(size, settings.index_dir.parent).encode_documents(texts)


def _ivf_check(index, queries) -> dict:  # noqa: ANN001
    """The IVF this index's base segment would get past the exact threshold (rag.store.build_ivf, the same
    code a large segment runs), built over its real-model vectors: calibrated nprobe and the recall real
    questions get from it, searched as Segment.search does (the stand-in rows cannot say this)."""
    import numpy as np

    from rag.index.dense import build_ivf

    segment = index.segments[0]
    matrix = np.asarray(segment.vectors, dtype=np.float32)
    ivf, nprobe, calibrated = build_ivf(matrix)
    exact = queries @ matrix.T  # [queries, rows]: small enough below the exact threshold
    if segment.dead:
        exact[:, np.isin(segment.sentences[:, 0], list(segment.dead))] = -np.inf
    want_rows = np.argsort(-exact, axis=1)[:, :10]
    _, found = ivf.search(queries, 40)  # ranked by the codes, as a large segment searches
    hits, tied = [], []
    for cand, want, q_exact in zip(found, want_rows, exact, strict=True):
        top = cand[(cand >= 0) & np.isfinite(q_exact[np.maximum(cand, 0)])][:10]
        hits.append(len(set(top.tolist()) & set(want.tolist())) / 10)
        tied.append(min(10, int((q_exact[top] >= q_exact[want[9]] - 1e-5).sum())) / 10)
    return {"nlist": ivf.nlist, "nprobe": nprobe, "calibrated_recall": calibrated,
            "recall_at_10": round(float(np.mean(hits)), 4), "recall_at_10_ties": round(float(np.mean(tied)), 4)}


_COLD_STEPS = """
import json, sys, time
t0 = time.perf_counter()
from rag.config import load_settings
from rag.pipeline import Assistant
from rag.answer.spans import warm_up
from rag.embed import encoder_for
from rag.index.factory import open_search_index
t1 = time.perf_counter()
settings = load_settings(auto_build=False, answer_mode="extractive")
index = open_search_index(settings)
t2 = time.perf_counter()
encoder = encoder_for(settings)
getattr(encoder, "warm_up", lambda: None)()
t3 = time.perf_counter()
warm_up()
t4 = time.perf_counter()
assistant = Assistant.from_settings(settings, encoder=encoder)
assistant.ask("Who is the leader of North Korea?")
t5 = time.perf_counter()
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print(json.dumps({"import_s": round(t1 - t0, 3), "index_open_s": round(t2 - t1, 3), "encoder_load_s": round(t3 - t2, 3),
                  "spacy_load_s": round(t4 - t3, 3), "first_answer_s": round(t5 - t4, 3), "heavy_modules": heavy}))
"""


def measure_cold_start(settings) -> dict:  # noqa: ANN001
    """`rag ask` in a fresh process: wall time (median of 3), its CPU time, the ratio to `python -c pass`, and
    one run's steps taken one after another (in `rag ask` the encoder and spaCy load in threads beside the
    index), with the modules that must stay out of the question path (torch, transformers)."""
    env = {**os.environ, "RAG_ARTICLES_DIR": str(settings.articles_dir), "RAG_INDEX_DIR": str(settings.index_dir),
           "RAG_EMBED_MODEL": settings.embed_model, "RAG_QUERY_ENCODER": settings.query_encoder,
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

    def timed(cmd: list[str]) -> tuple[float, float]:
        import resource

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    ask = [timed([PY, "-m", "rag.cli", "ask", "Who is the leader of North Korea?"]) for _ in range(3)]
    bare = [timed([PY, "-c", "pass"])[0] for _ in range(3)]
    import_only = [timed([PY, "-c", "import rag.cli"])[0] for _ in range(3)]
    steps = json.loads(subprocess.run([PY, "-c", _COLD_STEPS], env=env, cwd=ROOT, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    wall = statistics.median(w for w, _ in ask)
    return {"rag_ask_s": round(wall, 2), "rag_ask_cpu_s": round(statistics.median(c for _, c in ask), 2),
            "python_pass_s": round(statistics.median(bare), 3), "ratio_to_python": round(wall / statistics.median(bare), 1),
            "cli_import_s": round(statistics.median(import_only), 2), "query_encoder": settings.query_encoder,
            "load_average": round(os.getloadavg()[0], 1), "steps": steps}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 2**20, 1), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def run_size(size: str, standin: bool, args: argparse.Namespace) -> dict:
    global RESULTS
    RESULTS = args.results
    settings = build_bench.settings_for(size, standin, args.work)
    if args.steps:  # re-measure some steps only, keeping the rest of an earlier result
        result = json.loads((RESULTS / f"{size}.json").read_text())
        steps = {
            "incremental": lambda: measure_incremental(size, settings, standin),
            "load": lambda: measure_load(settings),
            "query": lambda: measure_queries(size, settings, standin),
            "recall": lambda: measure_recall(size, settings),
            "cold_start": lambda: measure_cold_start(settings),
        }
        for step in args.steps.split(","):
            result[step] = steps[step]()
        result.setdefault("remeasured", {})[args.steps] = machine()["date"]
        (RESULTS / f"{size}.json").write_text(json.dumps(result, indent=1))
        return result
    pre_encoded = size in (args.pre_encoded or "").split(",")
    result: dict = {"size": size, "vectors": "stand-in" if standin else "real model", "machine": machine()}
    build_file = args.work / f"build-{size}-{'standin' if standin else 'real'}.json"
    if args.rebuild or not build_file.exists():
        print(f"[{size}] build", file=sys.stderr)
        build_bench.run(size, standin, args.work, pre_encoded=pre_encoded)
    result["build"] = json.loads(build_file.read_text())
    result["vectors"] = result["build"].get("vectors", result["vectors"])
    print(f"[{size}] incremental", file=sys.stderr)
    result["incremental"] = measure_incremental(size, settings, standin)
    print(f"[{size}] load", file=sys.stderr)
    result["load"] = measure_load(settings)
    print(f"[{size}] queries", file=sys.stderr)
    result["query"] = measure_queries(size, settings, standin, RESULTS / f"profile-{size}.txt" if args.profile else None)
    print(f"[{size}] recall", file=sys.stderr)
    result["recall"] = measure_recall(size, settings)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{size}.json").write_text(json.dumps(result, indent=1))  # kept should the comparison fail
    if size == "bundled" and not standin:
        print(f"[{size}] cold start", file=sys.stderr)
        result["cold_start"] = measure_cold_start(settings)
    if not args.skip_llama:
        from bench.llama_compare import compare

        print(f"[{size}] llama-index side by side", file=sys.stderr)
        from rag.embed import Embedder
        from rag.pipeline import Assistant

        ours = Assistant.from_settings(settings.replace(auto_build=False), encoder=Embedder())
        result["llama"] = compare(size, standin, args.work, question_set(size), ours.retriever.retrieve)
        ours.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{size}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="bundled,1000,10000,100000")
    parser.add_argument("--real-up-to", type=int, default=1000, help="largest size built with the real model")
    parser.add_argument("--work", type=Path, default=build_bench.WORK)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where <size>.json goes (default bench/results)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild indexes even when a build result exists")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of the answer path")
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--pre-encoded", help="sizes built with the real model's vectors encoded once by "
                        "bench/realcache.py (run first if missing): real vectors above --real-up-to")
    parser.add_argument("--steps", help="re-measure only these (incremental,load,query,recall,cold_start) into existing results")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for size in args.sizes.split(","):
        standin = size != "bundled" and int(size) > args.real_up_to and size not in (args.pre_encoded or "").split(",")
        run_size(size, standin, args)
    from bench.report import write

    write()


if __name__ == "__main__":
    main()
