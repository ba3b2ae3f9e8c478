"""The re-ranker's domain: a seeded sample of what it was trained on, so a search can tell when it is out of it.

A vector's domain score is the mean of its ``k`` highest cosines to the training sample of its modality; it is in
the domain when that reaches the modality's threshold, a low percentile of held-out in-domain items' scores
(``engine.train.rerank_domain`` builds both). A scenes-trained re-ranker shown a digit image moves "the sound of sea
waves" above "the number three"; the domain check keeps such a search in its first-stage order.
The sample is saved beside the re-ranker (``domain.npz``: one float16 array per modality), its settings in the
re-ranker's ``config.json`` (``domain``); a re-ranker saved without one has no check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.errors import InvalidPreset

DOMAIN_FILE = "domain.npz"
DOMAIN_K = 10  # mean of this many highest cosines to the sample (bench.rerank_domain: 3-10 separate best)
MAX_SAMPLE = 4096  # rows per modality a domain file may hold (bounded read)


@dataclass(frozen=True)
class Domain:
    """Training-sample vectors per modality and the score each modality must reach to count as in the domain."""

    samples: Mapping[str, np.ndarray] = field(compare=False, repr=False)
    thresholds: Mapping[str, float]
    k: int = DOMAIN_K
    extra: Mapping[str, Any] = field(default_factory=dict)

    def scores(self, modality: str, vectors: np.ndarray) -> np.ndarray | None:
        """Each vector's mean of its ``k`` highest cosines to the ``modality`` sample; None without a sample."""
        sample = self.samples.get(modality)
        if sample is None:
            return None
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, sample.shape[1])
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        sims = vectors @ sample.T
        k = min(self.k, sims.shape[1])
        return np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k:].mean(axis=1)

    def inside(self, modality: str, vectors: np.ndarray) -> np.ndarray:
        """Whether each vector is in the domain (False for a modality the re-ranker was not trained on)."""
        found = self.scores(modality, vectors)
        if found is None or modality not in self.thresholds:
            return np.zeros(len(np.atleast_2d(vectors)), dtype=bool)
        return found >= self.thresholds[modality]

    def settings(self) -> dict[str, Any]:
        """What ``config.json`` records (the sample itself lives in ``DOMAIN_FILE``)."""
        return {"file": DOMAIN_FILE, "k": self.k, "thresholds": dict(self.thresholds), **dict(self.extra)}

    def save(self, directory: str | Path) -> Path:
        """Write the sample as ``directory/domain.npz`` (temp name, then rename); returns its path."""
        path = Path(directory) / DOMAIN_FILE
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **{m: v.astype(np.float16) for m, v in sorted(self.samples.items())})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path, settings: Mapping[str, Any]) -> Domain:
        """Read the sample beside a re-ranker with its ``config.json`` settings (``InvalidPreset`` if unreadable)."""
        path = Path(directory) / str(settings.get("file", DOMAIN_FILE))
        try:
            with np.load(path, allow_pickle=False) as held:
                samples = {str(m): np.asarray(held[m], dtype=np.float32) for m in held.files}
            thresholds = {str(m): float(t) for m, t in dict(settings["thresholds"]).items()}
            k = int(settings.get("k", DOMAIN_K))
            widths = {s.shape[1] for s in samples.values() if s.ndim == 2}
            bad = [m for m, s in samples.items()
                   if s.ndim != 2 or not 0 < len(s) <= MAX_SAMPLE or not np.isfinite(s).all()]
            if bad or len(widths) > 1 or not 1 <= k <= MAX_SAMPLE or not all(map(math.isfinite, thresholds.values())):
                raise ValueError(f"a bad sample or setting ({', '.join(bad) or 'k, widths or thresholds'})")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidPreset(f"{path}: not a readable re-ranker domain ({exc})") from exc
        extra = {key: v for key, v in settings.items() if key not in ("file", "k", "thresholds")}
        return cls(samples, thresholds, k, extra)
