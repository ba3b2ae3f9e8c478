"""Query-time threading: one query's encoding runs on one torch thread, chosen by measurement.

On a 2-core machine with another process busy, encoding one text query with torch's default two threads took
p50 150-210 ms and p99 ~500 ms (OpenMP threads spin waiting for a core); with one thread p50 11 ms, p99 17-22 ms
(README "Query latency"). Batch work (ingest) keeps the default. torch's CPU thread count is an OpenMP setting of
the calling thread, so each query sets it on its own thread and restores it there.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

QUERY_THREADS = 1


@contextmanager
def query_threads(n: int = QUERY_THREADS) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads on this thread, restoring the previous count after it."""
    import torch

    saved = torch.get_num_threads()
    if saved != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)
