"""The attention re-ranker: its config, the token batches it scores, and the model that saves and loads itself.

The score of a (query, candidate) pair is the first-stage calibrated score times a learned scale plus a learned
correction. ``config.kind`` picks how the correction is computed, by name from the registry in ``engine.rerank.kinds``
(``cross``: ``engine.rerank.cross``, candidate tokens attending to the query's; ``slots``: ``engine.rerank.slots``);
a kind builds its parameters on this module, so saved state-dict keys do not depend on where its code lives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from core.errors import InvalidPreset, RerankerUnavailable
from engine.models.serialize import load_config, load_state, save_module
from engine.rerank.domain import Domain
from engine.rerank.kinds import RerankerKind, reranker_kind
from core.modalities import MODALITIES, modality as registered
from engine.models.tokens import MAX_TOKENS

# The modality embedding's row order of re-rankers saved before their config recorded it (``modalities``).
LEGACY_MODALITIES = ("image", "text", "audio")
MAX_CORRECTION = 0.25  # chosen on bench.rerank_domain (README "Re-ranker"): most of the scenes gain, digits kept


@dataclass(frozen=True)
class RerankerConfig:
    """Token widths per modality, shared-space width, transformer size and where it is on by default."""

    token_dims: Mapping[str, int]
    vector_dim: int
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_tokens: int = MAX_TOKENS
    dropout: float = 0.1
    kind: str = "cross"  # a name in engine.rerank.kinds: "cross" (cross-attention + late interaction), "slots"
    slots: int = 4
    # "query->target" pairs where held-out evaluation showed a gain; elsewhere rerank=None keeps the first stage
    enabled: tuple[str, ...] = ()
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    # how far (calibrated first-stage units, each way) the correction may move a candidate: see apply.bounded
    max_correction: float = MAX_CORRECTION
    # the modality embedding's rows by name (default: the registry's, less kinds embedded as others: a video's
    # candidates are its frames and sound windows), so a grown or reordered registry still loads it
    modalities: tuple[str, ...] = field(default_factory=lambda: tuple(m for m in MODALITIES
                                                                      if not registered(m).embedded_as))
    # where its training data lies (engine.rerank.domain: sample file, k, thresholds); empty: no domain check
    domain: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TokenBatch:
    """One side of a batch of (query, candidate) pairs: padded tokens (n, T, d), mask (n, T), shared-space vectors
    (n, D), modality."""

    tokens: torch.Tensor
    mask: torch.Tensor
    vectors: torch.Tensor
    modality: str

    @classmethod
    def from_arrays(cls, tokens: list[np.ndarray], vectors: np.ndarray, modality: str, max_tokens: int) -> "TokenBatch":
        """Pad float16 token arrays (one per row) into a batch."""
        if any(t is None for t in tokens):
            raise RerankerUnavailable("some candidates have no stored token features; re-ingest them")
        length = max(1, min(max_tokens, max(len(t) for t in tokens)))
        width = tokens[0].shape[1]
        padded = np.zeros((len(tokens), length, width), dtype=np.float32)
        mask = np.zeros((len(tokens), length), dtype=bool)
        for i, t in enumerate(tokens):
            n = min(len(t), length)
            padded[i, :n], mask[i, :n] = t[:n], True
        return cls(torch.from_numpy(padded), torch.from_numpy(mask), torch.as_tensor(vectors, dtype=torch.float32), modality)


class Reranker(nn.Module):
    """Scores (query, candidate) pairs as its kind (``config.kind``) does; saves and loads itself with its config."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.domain: Domain | None = None  # set by ``load`` when the config names one, or by its builder
        self.kind: RerankerKind = reranker_kind(config.kind)
        self.kind.build(self)

    def forward(self, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
                owner: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (n,) for n candidates; ``owner[i]`` is the query row of candidate i (default: row 0 if the query
        side has one row, else row i); ``first_stage`` is each pair's calibrated first-stage score."""
        n = candidate.tokens.shape[0]
        if owner is None:
            owner = torch.zeros(n, dtype=torch.long) if query.tokens.shape[0] == 1 else torch.arange(n)
        return self.kind.score(self, query, candidate, first_stage, owner)

    def is_enabled(self, query_modality: str, target: str) -> bool:
        """Whether held-out evaluation turned re-ranking on by default for this direction."""
        return f"{query_modality}->{target}" in self.config.enabled

    def in_domain(self, modality: str, vectors: np.ndarray) -> np.ndarray:
        """Whether each shared-space vector lies in the re-ranker's training domain (all True without a domain)."""
        if self.domain is None:
            return np.ones(len(np.atleast_2d(vectors)), dtype=bool)
        return self.domain.inside(modality, vectors)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        config = asdict(self.config)
        config["token_dims"], config["enabled"] = dict(self.config.token_dims), list(self.config.enabled)
        if self.domain is not None:
            config["domain"] = self.domain.settings()
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.domain.save(directory)
        return save_module(self, {"type": "Reranker", **config}, directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Reranker":
        """Load a re-ranker saved with ``save``."""
        raw = dict(load_config(directory))
        if raw.pop("type", None) != "Reranker":
            raise InvalidPreset(f"{directory} does not hold a re-ranker")
        raw["enabled"] = tuple(raw.get("enabled", ()))
        raw["modalities"] = tuple(raw.get("modalities", LEGACY_MODALITIES))
        model = cls(RerankerConfig(**raw))
        model.load_state_dict(load_state(directory))
        if model.config.domain:
            model.domain = Domain.load(directory, model.config.domain)
        return model.eval()
