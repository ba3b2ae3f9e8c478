"""Shard servers: one index shard each, held in memory by a Ray actor (replicas per shard for QPS).

``index.shard_server.ShardServer`` is a plain class (usable in this process); ``start_shard_servers`` runs it as
actors named ``<prefix>-<shard>-<replica>`` so that a coordinator in another driver finds them with ``connect_shard_servers``
(``xmodal shards serve`` on a cluster, then searches by address). Ray is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ClusterUnavailable
from index.shard_server import ServerOptions, ShardServer
from index.shards import read_manifest

__all__ = ["Replicas", "ServerOptions", "ShardServer", "actor_name", "connect_shard_servers",
           "ray_mapper", "ray_session", "start_shard_servers", "stop_shard_servers", "wait_ready"]

Replicas = list[list[Any]]  # [shard][replica] -> Ray actor handle


def actor_name(prefix: str, shard: int, replica: int) -> str:
    """The Ray actor name of one replica of one shard."""
    return f"{prefix}-{shard}-{replica}"


def start_shard_servers(folder: str | Path, replicas: int = 1, options: ServerOptions = ServerOptions(), *,
                        prefix: str | None = None, detached: bool = False, ready_timeout_s: float | None = 120.0) -> Replicas:
    """Start ``replicas`` actors per shard of the set in ``folder`` on the connected Ray cluster and wait until each
    has loaded its shard (``ready_timeout_s`` None: do not wait, see ``wait_ready``); ``prefix`` names them
    (``detached``: they outlive this driver)."""
    import ray

    manifest = read_manifest(folder)
    cls = ray.remote(ShardServer)
    handles: Replicas = []
    for entry in manifest.shards:
        row = []
        for r in range(replicas):
            # SPREAD: replicas of a shard land on different nodes where there are several (a node lost keeps them)
            opts: dict[str, Any] = {"num_cpus": options.num_cpus, "num_gpus": options.num_gpus, "max_restarts": 0,
                                    "scheduling_strategy": "SPREAD"}
            if prefix:
                opts["name"] = actor_name(prefix, entry.shard, r)
                if detached:
                    opts["lifetime"] = "detached"
            row.append(cls.options(**opts).remote(str(folder), entry.shard, options))
        handles.append(row)
    if ready_timeout_s is not None:
        wait_ready(handles, ready_timeout_s)
    return handles


def wait_ready(handles: Sequence[Sequence[Any]], timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Wait until every shard server has loaded its shard; what each holds (``ShardServer.info``)."""
    import ray

    try:
        return ray.get([h.info.remote() for row in handles for h in row], timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        resources = ray.cluster_resources()
        raise ClusterUnavailable(
            f"{sum(map(len, handles))} shard servers did not all start within {timeout_s:g} s; the cluster has "
            f"{resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs (ask less per server with "
            f"--server-cpus, or give the cluster more)") from None


def connect_shard_servers(prefix: str, shards: int, replicas: int) -> Replicas:
    """Handles of running named shard servers (``ValueError`` from Ray when one is not running)."""
    import ray

    return [[ray.get_actor(actor_name(prefix, s, r)) for r in range(replicas)] for s in range(shards)]


def stop_shard_servers(handles: Sequence[Sequence[Any]]) -> None:
    """Kill every shard server actor (a dead one is ignored)."""
    import ray

    for row in handles:
        for handle in row:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # already gone: nothing to stop
                pass


def ray_session(address: str | None = None, num_cpus: int | None = None) -> Any:
    """A context manager with Ray ready in this process (``ingest.ray_local.attached``): the connection already made,
    the cluster at ``address``, or a fresh loopback-only local instance; what it started is stopped on leaving."""
    from ingest.ray_local import attached

    return attached(address, num_cpus)


def ray_mapper(num_cpus: float = 1.0) -> Any:
    """A shard-build mapper (``index.shards.build_shards``) that adds each index shard in a Ray task on the cluster."""
    import ray

    def run(fn: Any, tasks: Sequence[Any]) -> list[Any]:
        remote = ray.remote(num_cpus=num_cpus, max_retries=1)(fn)
        return ray.get([remote.remote(task) for task in tasks])

    return run
