"""One index shard served from memory: the body of a shard-server actor (``engine.query.shard_servers`` runs it on
Ray). It lives in the index layer so that an actor process imports FAISS and the index code only, not the engine's
models (torch), which cost ~15 s per actor start on a busy 2-core machine."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.config import SearchParams
from index.shards import load_shard, read_manifest


@dataclass(frozen=True)
class ServerOptions:
    """How each shard server runs: threads for its searches, device, CPUs/GPUs reserved per actor, and an added
    delay per search (to study a straggling shard; 0 in use)."""

    threads: int = 1
    device: str = "cpu"
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    delay_s: float = 0.0


class ShardServer:
    """One index shard of a set in memory; answers (scores, ids, milliseconds spent) for a batch of queries."""

    def __init__(self, folder: str, shard: int, options: ServerOptions = ServerOptions()) -> None:
        import faiss

        faiss.omp_set_num_threads(max(1, options.threads))
        self.folder, self.shard, self.options = folder, shard, options
        self.manifest = read_manifest(folder)
        self.index = load_shard(folder, self.manifest, shard, options.device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Top ``k`` of this shard for each query, and the time it took here (ms)."""
        start = time.perf_counter()
        if self.options.delay_s:
            time.sleep(self.options.delay_s)
        scores, ids = self.index.search(queries, k)
        return scores, ids, (time.perf_counter() - start) * 1000

    def set_params(self, params: dict[str, int]) -> None:
        """Change the search knobs (e.g. a larger ``nprobe``)."""
        self.index.set_params(SearchParams.from_dict(params))

    def info(self) -> dict[str, Any]:
        """What this server holds: shard, vectors, index type, knobs, process id, Ray node."""
        return {"shard": self.shard, "ntotal": self.index.ntotal, "factory": self.manifest.factory,
                "params": self.index.params.to_dict(), "pid": os.getpid(), "on_gpu": self.index.on_gpu,
                "node": _ray_node()}


def _ray_node() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray
    except ImportError:
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
