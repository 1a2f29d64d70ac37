"""Render bench/results/*.json (written by bench/run.py) as the tables of BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _order(name: str) -> int:
    return -1 if name == "bundled" else int(name)


def _fmt(value: object, suffix: str = "") -> str:
    return "–" if value is None else f"{value}{suffix}"


def tables() -> str:
    runs = [json.loads(p.read_text()) for p in RESULTS.glob("*.json")]
    runs.sort(key=lambda r: _order(r["size"]))
    if not runs:
        return "(no results yet: run `python bench/run.py`)"
    m = runs[-1]["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs), {m['memory_gb']} GB RAM, Python {m['python']}. "
        f"Runs: {', '.join(sorted({r['machine']['date'] for r in runs}))}.",
        "",
        "| corpus | vectors | articles | sentences | build sent/s | model alone sent/s | pipeline / model | add one | change one | load | RSS after load (index part) | raw vectors + text | disk |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        b, inc, ld = r["build"], r["incremental"], r["load"]
        lines.append(
            f"| {r['size']} | {r['vectors']} | {b['articles']:,} | {b['sentences']:,} | {b['build_rate']:,} | "
            f"{_fmt(b.get('raw_rate'))} | {_fmt(b.get('pipeline_share'))} | {inc['add_one_s']} s | {inc['change_one_s']} s | "
            f"{ld['load_s']} s | {ld['rss_after_mb']:,} MB ({ld['rss_index_mb']:,}) | {ld['raw_vectors_text_mb']:,} MB | {ld['disk_mb']:,} MB |"
        )
    for r in runs:
        b = r["build"]
        if "model_s" in b:
            lines += ["", f"{r['size']} (real model, pre-encoded): `bench/realcache.py` encoded its {b['sentences']:,} sentences "
                      f"once with the model alone ({b['raw_rate']} sentences/s, {b['model_s']:,} s for these sentences); the "
                      f"build took those vectors and spent {b['pipeline_s']} s on everything else (ingest, splitting, BM25, "
                      f"FAISS, SQLite, fsync); build sent/s = sentences / (model time + the rest)."]
    lines += [
        "",
        "| corpus | vectors | query encode p50 | retrieval p50 / p95 | whole answer p50 / p95 | dense search (nprobe/lists) | recall@10 vs exact: strict / tie-aware | dense search p50 |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in runs:
        q, rc = r["query"], r["recall"]
        lines.append(
            f"| {r['size']} | {r['vectors']} | {q['encode_p50_ms']} ms | {q['retrieve_p50_ms']} / {q['retrieve_p95_ms']} ms | "
            f"{q['answer_p50_ms']} / {q['answer_p95_ms']} ms | {rc['search_kind']}"
            f"{' ({}/{})'.format(rc['nprobe'][0], rc['nlist'][0]) if rc.get('nprobe') else ''} | "
            f"{rc['recall_at_10']} / {rc.get('recall_at_10_ties', rc['recall_at_10'])} | {rc['dense_search_p50_ms']} ms |"
        )
    sweeps = [r for r in runs if r["recall"].get("sweep")]
    if sweeps:
        lines += ["", "More probes, on the same questions (recall@10 strict / tie-aware, dense search p50):", ""]
        for r in sweeps:
            unique = {p["nprobe"][0]: p for p in r["recall"]["sweep"]}.values()
            points = "; ".join(f"nprobe {p['nprobe'][0]}: {p['recall_at_10']} / {p['recall_at_10_ties']}, {p['dense_search_p50_ms']} ms"
                               for p in unique)
            lines.append(f"- {r['size']} ({r['vectors']}): {points}")
    real_ivf = [r for r in runs if r["recall"].get("ivf_on_real_vectors")]
    for r in real_ivf:
        c = r["recall"]["ivf_on_real_vectors"]
        lines += ["", f"IVF over the REAL model's vectors of the {r['size']}-article corpus (built by the benchmark; the "
                  f"index itself stays exact at this size): {c['nlist']} lists, calibrated nprobe {c['nprobe']} "
                  f"(calibration recall {c['calibrated_recall']}); real questions get recall@10 {c['recall_at_10']} strict, "
                  f"{c['recall_at_10_ties']} tie-aware."]
    llama = [r for r in runs if r.get("llama")]
    if llama:
        lines += [
            "",
            "Side by side with LlamaIndex's default path (VectorStoreIndex + FaissVectorStore + default docstore, persisted "
            "and reloaded; same encoder; retrieval top 8 with the real query encoder):",
            "",
            "| corpus | vectors | build ours / LlamaIndex | load ours / LlamaIndex | RSS index part ours / LlamaIndex | retrieval p50 ours / LlamaIndex | disk ours / LlamaIndex | units indexed ours / LlamaIndex |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in llama:
            li, b, ld, q = r["llama"], r["build"], r["load"], r["query"]
            lines.append(
                f"| {r['size']} | {r['vectors']} | {b['build_s']} / {li['build_s']} s | {ld['load_s']} / {li['load_s']} s | "
                f"{ld['rss_index_mb']:,} / {li['rss_index_mb']:,} MB | {li.get('ours_retrieve_p50_ms', q['retrieve_p50_ms'])} / {li['retrieve_p50_ms']} ms | "
                f"{ld['disk_mb']:,} / {li['disk_mb']:,} MB | {b['sentences']:,} sentences / {li['nodes']:,} nodes |"
            )
    cold = [r for r in runs if r.get("cold_start")]
    for r in cold:
        c = r["cold_start"]
        if "floor_s" in c:  # a result from before the ONNX question encoder
            lines += ["", f"Cold start on the bundled articles (median of 3 fresh processes): `rag ask` {c['rag_ask_s']} s; floor "
                      f"(`python -c` importing sentence-transformers, loading the model, encoding one query) {c['floor_s']} s; "
                      f"ratio {c['ratio']}×; `import rag.cli` alone {c['cli_import_s']} s."]
            continue
        st = c["steps"]
        lines += ["", f"Cold start on the bundled articles (median of 3 fresh processes, {c['query_encoder']} question encoder, "
                  f"load average {c['load_average']} on the machine): `rag ask` {c['rag_ask_s']} s ({c['rag_ask_cpu_s']} s of CPU), "
                  f"{c['ratio_to_python']}× `python -c pass` ({c['python_pass_s']} s); `import rag.cli` alone {c['cli_import_s']} s. "
                  f"Steps one after another: import {st['import_s']} s, index open {st['index_open_s']} s, encoder load "
                  f"{st['encoder_load_s']} s, spaCy load {st['spacy_load_s']} s, first answer {st['first_answer_s']} s; "
                  f"torch-side modules imported: {', '.join(st['heavy_modules']) or 'none'}."]
    return "\n".join(lines)


def write(path: Path = ROOT / "BENCHMARKS.md") -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{tables()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    write()
    print(tables())
