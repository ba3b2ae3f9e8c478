"""Fusing hits of several target indexes into one ranking per item, by a fusion method chosen by name.

Each method scores one hit (its rank in its target's list, its cosine, the pair's background and fitted log-odds)
and combines an item's hits across targets: reciprocal-rank (``rrf``), background z-scores (``calibrated``), or the
log-odds of a match from each pair's fitted calibration (``probability``, ``engine.query.calibrate``). A new method
is one ``Fusion`` subclass passed to ``register_fusion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from core.errors import InvalidInput

# bench.fusion (xmodal-mini, one mixed held-out store, no targets, hybrid mode): probability (curves on cosine and
# hubness) beats calibrated on every P@1/P@10 cell but image P@1 (tied): audio 0.825/0.772 vs 0.800/0.695, image
# 1.000/0.945 vs 1.000/0.860, text 0.569/0.417 vs 0.496/0.413; RRF trails both far behind.
# A preset without a fitted calibration falls back to "calibrated" under this name.
DEFAULT_FUSION = "probability"
RRF_K = 60


@dataclass(frozen=True)
class Calibration:
    """Similarity statistics of one (query modality, target modality) pair, estimated from the corpus."""

    mean: float
    std: float


def estimate_calibration(queries: np.ndarray, corpus: np.ndarray) -> Calibration:
    """Background similarity of queries against a corpus sample (most pairs are unrelated)."""
    sims = queries @ corpus.T
    return Calibration(float(sims.mean()), float(sims.std()))


@dataclass(frozen=True)
class HitScore:
    """What a fusion may read about an item's best hit in one target's list."""

    rank: int  # the item's rank in that list (0 = first)
    score: float  # first-stage cosine
    background: Calibration | None = None  # the pair's background, when the method ``uses_background``
    logit: float | None = None  # log-odds of a match from the pair's fitted curve, when there is one


class Fusion:
    """One fusion method: a score per hit and how an item's hits across targets combine (higher ranks first)."""

    name: ClassVar[str]
    uses_background: ClassVar[bool] = False  # the search estimates each pair's background ``Calibration``
    needs_fits: ClassVar[bool] = False  # every pair needs a fitted curve; else the search uses ``fallback``
    fallback: ClassVar[str] = "calibrated"

    def hit(self, hit: HitScore) -> float:
        """The score one hit contributes."""
        raise NotImplementedError

    def combine(self, so_far: float | None, score: float) -> float:
        """An item's fused score after one more target's hit (``so_far`` None for its first); default: the best."""
        return score if so_far is None else max(so_far, score)

    def shown(self, fused: float, probability: float | None) -> float:
        """The score a result shows (``Result.score``); default: the fused score."""
        return fused


class ReciprocalRank(Fusion):
    """Reciprocal-rank fusion: ``1 / (RRF_K + rank + 1)`` summed over the targets an item was found in."""

    name = "rrf"

    def hit(self, hit: HitScore) -> float:
        return 1.0 / (RRF_K + hit.rank + 1)

    def combine(self, so_far: float | None, score: float) -> float:
        return score if so_far is None else so_far + score


class BackgroundZ(Fusion):
    """Standard deviations above the pair's background similarity; an item's best target counts."""

    name = "calibrated"
    uses_background = True

    def hit(self, hit: HitScore) -> float:
        if hit.background is None:
            raise InvalidInput("calibrated fusion needs the pair's background similarity")
        return (hit.score - hit.background.mean) / max(hit.background.std, 1e-6)


class MatchLogOdds(Fusion):
    """Log-odds of a match from each pair's fitted curve on the cosine and the matched representation's hubness
    (``engine.query.calibrate``; they do not saturate the way probabilities do); an item's best target counts and
    its result shows the probability."""

    name = "probability"
    needs_fits = True

    def hit(self, hit: HitScore) -> float:
        if hit.logit is None:
            raise InvalidInput("probability fusion needs a fitted calibration for every pair")
        return hit.logit

    def shown(self, fused: float, probability: float | None) -> float:
        return fused if probability is None else probability


_FUSIONS: dict[str, Fusion] = {}


def register_fusion(method: Fusion) -> Fusion:
    """Make a fusion method available by its name (replacing one of the same name)."""
    _FUSIONS[method.name] = method
    return method


def fusion_named(name: str) -> Fusion:
    """The registered fusion method called ``name`` (``InvalidInput`` naming the known ones otherwise)."""
    try:
        return _FUSIONS[name]
    except KeyError:
        raise InvalidInput(f"fusion must be one of {fusion_names()}, got {name!r}") from None


def fusion_names() -> tuple[str, ...]:
    """Names of the registered fusion methods, in registration order."""
    return tuple(_FUSIONS)


for _method in (ReciprocalRank(), BackgroundZ(), MatchLogOdds()):
    register_fusion(_method)
FUSIONS = fusion_names()  # the built-in methods (the CLI repeats them to keep torch out of `search --help`)
