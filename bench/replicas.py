"""Stateless replicas: two `rag serve` processes on different ports against one PostgreSQL database, loaded
with bench/load.py (every reply checked against the first replica's single-user answer) while a build keeps
adding and removing articles in small batches (one transaction each).

    python -m bench.replicas                       # 8 users x 5 questions over two replicas
    python -m bench.replicas --users 16 --rounds 10

The articles the concurrent build adds and removes (tests/data/harbour: a storm in a harbour town) share no
topic with the dev questions, so a correct reply stays the same reply while they come and go; any request
that fails, or any answer that changes, is counted by load.py as wrong.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import load_settings  # noqa: E402
from rag.index.postgres.server import start, stop  # noqa: E402
from tests.app_support import rag_server  # noqa: E402

_BUILD = """
import sys
import rag.index.postgres.build as pb
from rag.config import load_settings
pb.BATCH_SENTENCES = 8
settings = load_settings(config_file=None, environ={}, answer_mode="extractive", articles_dir=sys.argv[1], index_backend="postgres",
                         database_url=sys.argv[2])
report = pb.build_postgres(settings)
print(len(report.added), len(report.removed), flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-replicas-"))
    work.chmod(0o755)
    server = start(work / "pg")
    try:
        shutil.copytree(ROOT / "articles", work / "articles")
        url = server.url()
        settings = load_settings(config_file=None, environ={}, answer_mode="extractive", articles_dir=work / "articles", index_backend="postgres",
                                 database_url=url)
        from rag.index.postgres.build import build_postgres

        print(f"built: {build_postgres(settings).articles} articles", flush=True)
        env = {"RAG_INDEX_BACKEND": "postgres", "RAG_DATABASE_URL": url, "RAG_AUTO_BUILD": "0"}
        with rag_server(work / "articles", work / "unused-index", work, "replica1", **env) as a, \
                rag_server(work / "articles", work / "unused-index", work, "replica2", **env) as b:
            print(f"replicas up: {a} {b}", flush=True)
            stop_building = threading.Event()
            builds: list[str] = []
            began = time.perf_counter()

            def keep_building() -> None:
                extra = sorted((ROOT / "tests" / "data" / "harbour").iterdir())
                while not stop_building.is_set():
                    for path in extra:  # add them, then remove them, one build each
                        shutil.copy(path, work / "articles" / f"zz_{path.name}")
                    for _ in range(2):
                        at = time.perf_counter() - began
                        out = subprocess.run([sys.executable, "-c", _BUILD, str(work / "articles"), url], capture_output=True,
                                             text=True, cwd=work, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
                        result = out.stdout.strip() if out.returncode == 0 else f"failed: {out.stderr[-300:]}"
                        builds.append(f"+{at:.0f}..{time.perf_counter() - began:.0f} s: {result}")
                        for path in extra:
                            (work / "articles" / f"zz_{path.name}").unlink(missing_ok=True)
                        if stop_building.is_set():
                            break

            builder = threading.Thread(target=keep_building, daemon=True)
            builder.start()
            time.sleep(1)
            load_at = time.perf_counter() - began
            load = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--url", a, "--url", b, "--users",
                                   str(args.users), "--rounds", str(args.rounds), "--max-seconds", str(args.max_seconds)],
                                  text=True, capture_output=True)
            load_end = time.perf_counter() - began
            stop_building.set()
            builder.join(timeout=600)
            print(load.stdout.strip())
            if load.returncode and load.stderr:
                print(load.stderr[-2000:])
            print(f"load.py ran from +{load_at:.0f} to +{load_end:.0f} s; builds (start..end: articles added, removed), "
                  f"each batch of 8 sentences its own transaction: {builds}")
        return load.returncode
    finally:
        stop(server.data_dir, remove=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
