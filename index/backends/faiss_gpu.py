"""Decide once whether FAISS searches run on a GPU (DESIGN decision 8) and make GPU replicas."""

from __future__ import annotations

import logging

import faiss

log = logging.getLogger(__name__)
_logged: set[tuple[str, bool]] = set()


def faiss_has_gpu() -> bool:
    """True when this faiss build has GPU classes and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def search_on_gpu(device: str) -> int | None:
    """GPU number to search on for an engine ``device`` string (``cuda``/``cuda:N``), or None for CPU; logged once."""
    wants = device.startswith("cuda")
    gpu = None
    if wants and faiss_has_gpu():
        gpu = int(device.split(":", 1)[1]) if ":" in device else 0
    key = (device, gpu is not None)
    if key not in _logged:
        _logged.add(key)
        if gpu is not None:
            log.info("faiss search on GPU %d (device %s)", gpu, device)
        elif wants:
            log.info("faiss search on CPU: device %s asked for CUDA but this faiss has no GPU support or sees no GPU", device)
        else:
            log.info("faiss search on CPU (device %s)", device)
    return gpu


class GpuReplica:
    """A GPU copy of a CPU index for searching; the CPU index stays the master for add/remove/save."""

    def __init__(self, gpu: int) -> None:
        self.gpu = gpu
        self._resources = faiss.StandardGpuResources()

    def copy(self, cpu_index: faiss.Index) -> faiss.Index | None:
        """Clone ``cpu_index`` onto the GPU, or None (logged) when this index type has no GPU version."""
        try:
            return faiss.index_cpu_to_gpu(self._resources, self.gpu, cpu_index)
        except RuntimeError as exc:
            log.warning("index type not supported on GPU, searching on CPU: %s", str(exc).splitlines()[-1])
            return None
