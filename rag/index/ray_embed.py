"""Embedding spread over a Ray cluster: an `Encoder` whose `encode_documents` runs Ray Data's `map_batches`
with one sentence-transformers model per worker (an actor pool), so `rag index build --ray auto|ADDRESS`
embeds on every node while the build itself (scan, chunk, write through the chosen backend) stays here.

Queries are still encoded in this process (one short text gains nothing from a cluster). The workers need
the same packages as the driver (newsrag and its model wheel); each loads the model once and embeds its
blocks with `Embedder.encode_documents`, so the vectors are the single-process ones (up to float rounding of
how texts are padded into batches, ~1e-7). Rows carry their position, and results are put back in order.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag.embed import Embedder
from rag.embed.wrapper import EncoderWrapper
from rag.errors import RagError

ROWS_PER_TASK = 256  # texts per map_batches call: big enough to batch well, small enough to spread


class RayError(RagError):
    """The Ray cluster cannot be reached or used; one line."""


class _Worker:
    """One per Ray worker: loads the model once, embeds the blocks it is given."""

    def __init__(self, model: str, batch_size: int) -> None:
        self.embedder = Embedder(model, batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import ray

        vectors = self.embedder.encode_documents(list(batch["text"]))
        node = ray.get_runtime_context().get_node_id()
        return {"i": batch["i"], "vector": list(vectors), "node": [node] * len(vectors)}


class RayEncoder(EncoderWrapper):
    """An `Encoder` for builds: documents on the Ray cluster at `address` ("auto" or host:port), queries here."""

    def __init__(self, address: str, model: str, batch_size: int = 64, workers: int | None = None) -> None:
        if not address or not address.strip():
            raise RayError("--ray needs an address: auto, or the head node's host:port")
        super().__init__(Embedder(model, batch_size))  # queries, and the model's name and dimension
        self.address = address.strip()
        self.batch_size = batch_size
        self.workers = workers
        self._started = False
        self.nodes: dict[str, int] = {}  # node id -> texts it embedded, over this encoder's calls

    def _connect(self) -> Any:
        loopback = self.address.split(":")[0] in ("127.0.0.1", "localhost")
        if loopback:
            # Ray rewrites a loopback address to the machine's own IP before connecting, and a cluster bound to
            # 127.0.0.1 is not there; this switch (read at import, hence also set on the module) keeps 127.0.0.1.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        try:
            import ray
            from ray._private import ray_constants
        except ImportError:
            raise RayError("--ray needs the ray extra: pip install 'newsrag[ray]'") from None
        if loopback:
            ray_constants.ENABLE_RAY_CLUSTER = False
        if not ray.is_initialized():
            self._reachable()
            extra = {"_node_ip_address": "127.0.0.1"} if loopback else {}
            try:
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False, **extra)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all mean "no cluster there"
                raise RayError(f"cannot connect to the Ray cluster at {self.address}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self._started = True
        return ray

    def _reachable(self) -> None:
        """Fail fast on a host:port nobody listens on (ray.init would retry for minutes)."""
        if self.address == "auto":
            return
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise RayError(f"--ray wants auto or HOST:PORT, got {self.address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise RayError(f"cannot connect to the Ray cluster at {self.address}: {exc.strerror or exc}") from None

    def cluster_workers(self) -> int:
        """How many workers embed: the setting, or one per CPU of the cluster."""
        ray = self._connect()
        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors, one row per text, embedded across the cluster; `progress(n)` as results come back."""
        dim = self.dimension
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        ray = self._connect()
        workers = self.cluster_workers()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the build shows its own progress
        # Small batches (about four per worker) and one task in flight per actor: Ray Data joins blocks up to
        # batch_size rows and queues several tasks on the first actor that is ready, which would hand a small
        # call's every text to one worker while the other is still loading its model.
        rows = max(1, min(ROWS_PER_TASK, -(-len(texts) // (4 * workers))))
        ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)],
                                 override_num_blocks=-(-len(texts) // rows))
        pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
        embedded = ds.map_batches(_Worker, fn_constructor_kwargs={"model": self.name, "batch_size": self.batch_size},
                                  batch_size=rows, compute=pool, num_cpus=1, batch_format="numpy")
        out = np.zeros((len(texts), dim), dtype=np.float32)
        try:
            for batch in embedded.iter_batches(batch_size=ROWS_PER_TASK, batch_format="numpy"):
                out[np.asarray(batch["i"], dtype=np.int64)] = np.stack(batch["vector"]).astype(np.float32)
                for node in batch["node"]:
                    self.nodes[str(node)] = self.nodes.get(str(node), 0) + 1
                if progress:
                    progress(len(batch["i"]))
        except Exception as exc:  # a worker that cannot load the model, a lost node: one line
            raise RayError(f"embedding on the Ray cluster failed: {str(exc).strip().splitlines()[-1][:300]}") from None
        return out

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
