"""Upper bounds on what one search may ask for, so an absurd number is refused instead of allocated.

``Engine.search`` and ``Searcher.search`` check them (``InvalidInput``); the CLI's argument types and the
server's request schema use tighter bounds. Imports nothing heavy.
"""

from __future__ import annotations

import operator

from core.errors import InvalidInput

MAX_K = 10_000  # bench.quality ranks whole corpora of a few thousand items
MAX_DEPTH = 100_000  # ANN candidates per target modality (filters may take the search deeper, up to the index size)
MAX_RERANK_DEPTH = 1000


def check_search_bounds(k: int, depth: int, rerank_depth: int | None = None) -> None:
    """Raise ``InvalidInput`` unless 1 <= k <= MAX_K, 1 <= depth <= MAX_DEPTH and rerank_depth (if given) within its bound."""
    _bounded("k", k, MAX_K)
    _bounded("depth", depth, MAX_DEPTH)
    if rerank_depth is not None:
        _bounded("rerank_depth", rerank_depth, MAX_RERANK_DEPTH)


def _bounded(name: str, value: object, top: int) -> None:
    try:
        number = None if isinstance(value, bool) else operator.index(value)  # ints and NumPy ints, not floats
    except TypeError:
        number = None
    if number is None or not 1 <= number <= top:
        raise InvalidInput(f"{name} must be an integer from 1 to {top}, got {value!r}")
