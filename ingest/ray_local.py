"""Ray on this machine, bound to 127.0.0.1 only: a local instance sized to the machine, a local multi-node cluster
for tests and benchmarks, or a connection to a cluster by address.

Ray advertises a node's network address unless told otherwise, and turns a "127.0.0.1:port" it is given back into
that address (``resolve_ip_for_localhost``): a cluster with only some addresses set to loopback hangs dialling the
other one. Ray's own single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the default on macOS and Windows)
makes every node address 127.0.0.1, so every local start here sets it for this process and the Ray processes it
spawns, with ``node_ip_address`` 127.0.0.1 on every node, the dashboard off and usage reporting off (no network).
Every context manager here stops every process it started, finished or not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

LOOPBACK = "127.0.0.1"
MIN_OBJECT_STORE_MB = 80  # Ray refuses an object store under 75 MiB
LOCAL_OBJECT_STORE_MB = 512
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_REPO = str(Path(__file__).resolve().parents[1])  # Ray workers import the project from here (local starts only)


@contextlib.contextmanager
def loopback() -> Iterator[None]:
    """Ray's single-machine addressing for this process and the Ray processes started inside the block; restored
    after. Also: no usage reporting, and the project importable by Ray workers."""
    import ray._private.ray_constants as constants

    saved_env = {k: os.environ.get(k) for k in (_SINGLE_MACHINE, "RAY_USAGE_STATS_ENABLED", "PYTHONPATH")}
    saved_flag = constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_MACHINE] = "0"  # read at import by the Ray processes spawned in the block
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    paths = [p for p in (saved_env["PYTHONPATH"] or "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([_REPO, *(p for p in paths if p != _REPO)])
    constants.ENABLE_RAY_CLUSTER = False  # already imported here: the constant is read at each address lookup
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def machine_cpus() -> int:
    """CPUs this process may use (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _temp_dir() -> str:
    # short: Ray's Unix socket paths live under it and must stay under ~107 characters
    return tempfile.mkdtemp(prefix="xray-", dir="/tmp" if os.path.isdir("/tmp") else None)


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None, num_gpus: int | None = None,
              object_store_mb: int = LOCAL_OBJECT_STORE_MB) -> Iterator[str]:
    """A fresh local Ray instance on 127.0.0.1 with this process as its driver (``num_cpus`` default: this
    machine's); yields its address; shut down, with every Ray process, on leaving."""
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; shut it down before starting another")
    temp = _temp_dir()
    try:
        with loopback():
            info = ray.init(address="local", num_cpus=num_cpus or machine_cpus(), num_gpus=num_gpus,
                            object_store_memory=max(MIN_OBJECT_STORE_MB, object_store_mb) << 20,
                            include_dashboard=False, _node_ip_address=LOOPBACK, _temp_dir=temp,
                            log_to_driver=False, configure_logging=False)
            try:
                yield info.address_info["gcs_address"]
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@dataclass
class LocalCluster:
    """A Ray cluster of several nodes on this machine (``ray.cluster_utils.Cluster``), every address loopback.

    The head holds ``head_cpus`` (0 by default: it schedules, the worker nodes work); ``add_node`` adds a worker
    node of ``cpus`` CPUs. ``connect`` makes this process its driver. ``shutdown`` stops every node's processes.
    """

    head_cpus: int = 0
    object_store_mb: int = 100
    cluster: Any = None
    temp: str = ""
    nodes: list[Any] = field(default_factory=list)

    def start(self) -> LocalCluster:
        """Start the head node."""
        from ray.cluster_utils import Cluster

        self.temp = _temp_dir()
        self.cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args=dict(
            self._node_args(self.head_cpus), include_dashboard=False, temp_dir=self.temp))
        return self

    def _node_args(self, cpus: int, gpus: int = 0) -> dict[str, Any]:
        return dict(node_ip_address=LOOPBACK, num_cpus=cpus, num_gpus=gpus,
                    object_store_memory=max(MIN_OBJECT_STORE_MB, self.object_store_mb) << 20)

    @property
    def address(self) -> str:
        """The head's GCS address (127.0.0.1:port)."""
        return str(self.cluster.address)

    def add_node(self, cpus: int = 1, gpus: int = 0) -> Any:
        """Add a worker node with ``cpus`` CPUs (and ``gpus`` GPUs); waits until it is alive."""
        node = self.cluster.add_node(**self._node_args(cpus, gpus))
        self.nodes.append(node)
        return node

    def remove_node(self, node: Any) -> None:
        """Stop one worker node (all its processes), as a machine leaving the cluster would."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def connect(self) -> None:
        """Make this process the cluster's driver."""
        import ray

        ray.init(address=self.address, _node_ip_address=LOOPBACK, log_to_driver=False, configure_logging=False)

    def shutdown(self) -> None:
        """Disconnect this driver and stop every node."""
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            if self.cluster is not None:
                self.cluster.shutdown()
                self.cluster = None
            self.nodes.clear()
            if self.temp:
                shutil.rmtree(self.temp, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1, object_store_mb: int = 100,
                  connect: bool = True) -> Iterator[LocalCluster]:
    """A head node plus ``nodes`` worker nodes of ``cpus_per_node`` CPUs on 127.0.0.1, this process its driver
    (with ``connect``); every node stopped on leaving."""
    import ray

    if connect and ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; shut it down before starting a cluster")
    with loopback():
        cluster = LocalCluster(object_store_mb=object_store_mb)
        try:
            cluster.start()
            for _ in range(nodes):
                cluster.add_node(cpus_per_node)
            if connect:
                cluster.connect()
            yield cluster
        finally:
            cluster.shutdown()


@contextlib.contextmanager
def attached(address: str | None, num_cpus: int | None = None) -> Iterator[bool]:
    """Ray ready in this process: the connection already made (yields False), a cluster at ``address`` (loopback
    addresses get single-machine addressing; yields True) or, with no address, a fresh local instance sized to this
    machine (yields True). What this call started or connected is stopped or disconnected on leaving."""
    import ray

    if ray.is_initialized():
        yield False
        return
    if address is None:
        with local_ray(num_cpus=num_cpus):
            yield True
        return
    host = address.split("://")[-1].rsplit(":", 1)[0]
    local = host in (LOOPBACK, "localhost", "::1", "[::1]")
    with loopback() if local else contextlib.nullcontext():
        ray.init(address=address, _node_ip_address=LOOPBACK if local else None, log_to_driver=False,
                 configure_logging=False)
        try:
            yield True
        finally:
            ray.shutdown()
