"""`xmodal shards search/serve` size each shard server's CPU reservation so every server of every set can start."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest


def _args(server_cpus: float = 0.5, replicas: int = 1) -> argparse.Namespace:
    return argparse.Namespace(threads=1, server_cpus=server_cpus, replicas=replicas)


def test_three_sets_of_two_shards_share_a_two_cpu_instance(monkeypatch):
    ray = pytest.importorskip("ray")
    import index

    from engine.cli.shards import _options

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(index, "read_manifest", lambda folder: SimpleNamespace(shards=[0, 1]))
    folders = {"audio": "a", "image": "i", "text": "t"}
    # six servers at 0.5 CPU each ask for 3 CPUs: two of them would wait forever on a 2-CPU instance
    assert _options(_args(), folders).num_cpus == pytest.approx(2.0 / 6, abs=1e-4)
    assert _options(_args(replicas=2), folders).num_cpus == pytest.approx(2.0 / 12, abs=1e-4)
    assert _options(_args(), {"text": "t"}).num_cpus == 0.5  # room enough: the asked reservation is kept


def test_servers_that_cannot_start_are_a_clear_error_not_a_ray_timeout(monkeypatch):
    ray = pytest.importorskip("ray")
    from core.errors import ClusterUnavailable
    from engine.query import shard_servers

    def never_ready(refs, timeout):
        raise ray.exceptions.GetTimeoutError("Get timed out: some object(s) not ready.")

    monkeypatch.setattr(ray, "get", never_ready)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    handle = SimpleNamespace(info=SimpleNamespace(remote=lambda: object()))
    with pytest.raises(ClusterUnavailable, match=r"2 shard servers did not all start within 5 s; the cluster has 2 CPUs") as err:
        shard_servers.wait_ready([[handle], [handle]], 5.0)
    assert err.value.exit_code == 4
