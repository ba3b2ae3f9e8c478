"""Re-ranker kinds chosen by name from a saved config's ``kind``: each kind is one module with a ``KIND`` object.

A kind builds its parameters as attributes of the ``Reranker`` itself (so a saved re-ranker's state-dict keys do
not depend on which module holds the code) and scores pairs with them as ``scale * first_stage + correction``.
A new kind is one new module defining ``KIND`` and one ``register_kind`` call (or one line in ``_KINDS``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from core.errors import InvalidPreset

if TYPE_CHECKING:
    import torch

    from engine.rerank.model import Reranker, TokenBatch

# kind name -> module that defines ``KIND``; imported only when a re-ranker of that kind is built
_KINDS: dict[str, str] = {"slots": "engine.rerank.slots", "cross": "engine.rerank.cross"}


class RerankerKind:
    """How one kind of re-ranker builds its parameters on the model and scores (query, candidate) pairs."""

    name: ClassVar[str]
    # whether a candidate's representation does not depend on the query, so training can score every query of a
    # step against every candidate of it at once (``score_all``)
    in_batch: ClassVar[bool] = False

    def build(self, model: Reranker) -> None:
        """Add this kind's parameters to ``model`` (its config is ``model.config``)."""
        raise NotImplementedError

    def score(self, model: Reranker, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
              owner: torch.Tensor) -> torch.Tensor:
        """Scores (n,) of n candidates; ``owner[i]`` is the query row of candidate i."""
        raise NotImplementedError

    def score_all(self, model: Reranker, queries: TokenBatch, candidates: TokenBatch,
                  first_stage: torch.Tensor) -> torch.Tensor:
        """Scores (q, c) of every query against every candidate (kinds with ``in_batch`` only)."""
        raise NotImplementedError(f"re-ranker kind {self.name!r} scores pairs only")


def register_kind(name: str, module: str) -> None:
    """Make the kind defined (as ``KIND``) in ``module`` available under ``name``."""
    _KINDS[name] = module


def kind_names() -> tuple[str, ...]:
    """Names of the registered re-ranker kinds (the first is the training default's)."""
    return tuple(_KINDS)


def reranker_kind(name: str) -> RerankerKind:
    """The kind called ``name`` (``InvalidPreset`` naming the known kinds otherwise)."""
    if name not in _KINDS:
        raise InvalidPreset(f"unknown re-ranker kind {name!r} (known: {', '.join(kind_names())})")
    kind = importlib.import_module(_KINDS[name]).KIND
    if kind.name != name:
        raise InvalidPreset(f"{_KINDS[name]} defines re-ranker kind {kind.name!r}, registered as {name!r}")
    return kind
