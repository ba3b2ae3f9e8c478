"""Ingest fixtures: one loopback-only local Ray cluster for the package's Ray tests (the runner contract's "ray"
runner and tests/ingest/test_ray_runner.py), started on first use and stopped, every node, after the package."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def ray_cluster():
    """A head (1 CPU) and one worker node (1 CPU) on 127.0.0.1, this process the driver: a 2-node cluster sized
    for the 2-core machine; a ``ingest.ray_local.LocalCluster``."""
    pytest.importorskip("ray")
    import ray

    from ingest.ray_local import LocalCluster, loopback

    if ray.is_initialized():  # another package's module left a connection: not ours to reuse
        ray.shutdown()
    with loopback():
        cluster = LocalCluster(head_cpus=1, object_store_mb=100)
        try:
            cluster.start()
            cluster.add_node(cpus=1)
            cluster.connect()
            yield cluster
        finally:
            cluster.shutdown()
