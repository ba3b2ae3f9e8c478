"""Token features packed compactly for storage: float16, at most ``MAX_TOKENS`` per representation.

Each tower computes its own tokens in the same forward pass as its features (``Tower.embed_with_tokens``);
candidates' tokens are packed here at ingest, and queries' come from the pass that encodes the query, so
re-ranking adds no second tower forward.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_TOKENS = 32


def pack(tokens: torch.Tensor, mask: torch.Tensor, max_tokens: int = MAX_TOKENS) -> list[np.ndarray]:
    """Each row's valid tokens as float16 (T_i, d), average-pooled along the sequence to at most ``max_tokens``."""
    out = []
    for row, keep in zip(tokens.float(), mask):
        valid = row[keep]
        if len(valid) > max_tokens:
            valid = F.adaptive_avg_pool1d(valid.T.unsqueeze(0), max_tokens)[0].T
        out.append(valid.detach().cpu().numpy().astype(np.float16))
    return out
