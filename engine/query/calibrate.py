"""Score calibration per (query modality, target modality, representation kind): cosine -> probability of a match.

Each pair gets a logistic (Platt) curve fitted on labelled held-out pairs (``fit_pair``), with balanced classes:
``P(match) = sigmoid(slope * cosine + intercept)``, so 0.5 is where a score is as likely from a match as from an
unrelated pair. A pair whose matches and non-matches overlap gets a flat curve and cannot reach a confident
probability, however narrow its background; that is what lets fusion weigh pairs by how far they can be trusted.
The fits are data saved next to a preset (``<preset>.calibration.json``) and loaded with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.errors import InvalidPreset

FLOOR = 0.5  # below this probability a result is weak: "no strong match"
FORMAT = 1


@dataclass(frozen=True)
class PairFit:
    """One pair's logistic curve on cosine, and what it was fitted on (counts, and AUC of the held-out scores)."""

    slope: float
    intercept: float
    positives: int = 0
    negatives: int = 0
    auc: float | None = None

    def logit(self, scores: np.ndarray | float) -> np.ndarray:
        """Log-odds of a match for cosine scores."""
        return self.slope * np.asarray(scores, dtype=np.float64) + self.intercept

    def probability(self, scores: np.ndarray | float) -> np.ndarray:
        """Probability of a match for cosine scores."""
        return sigmoid(self.logit(scores))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def pair_key(query_modality: str, target: str, kind: str | None = None) -> str:
    """The key of a pair in a calibration file: ``text->image`` or, kind-specific, ``text->text:caption``."""
    return f"{query_modality}->{target}" + (f":{kind}" if kind else "")


@dataclass(frozen=True)
class Calibrations:
    """The fitted pairs of one preset, the probability floor, and a note on the data they were fitted on."""

    pairs: Mapping[str, PairFit]
    floor: float = FLOOR
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fit_for(self, query_modality: str, target: str, kind: str | None = None) -> PairFit | None:
        """The kind-specific fit of a pair, else the pair's, else None (an uncalibrated pair)."""
        if kind and (found := self.pairs.get(pair_key(query_modality, target, kind))) is not None:
            return found
        return self.pairs.get(pair_key(query_modality, target))

    def save(self, path: str | Path) -> None:
        """Write as JSON (temp name, then rename)."""
        path = Path(path)
        body = {"format": FORMAT, "floor": self.floor, "source": self.source, **dict(self.extra),
                "pairs": {k: asdict(v) for k, v in sorted(self.pairs.items())}}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Calibrations:
        """Read a calibration file (``InvalidPreset`` when it is not one)."""
        try:
            body = json.loads(Path(path).read_text(encoding="utf-8"))
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}, expected {FORMAT}")
            pairs = {str(k): PairFit(**v) for k, v in body["pairs"].items()}
            if not all(math.isfinite(p.slope) and math.isfinite(p.intercept) for p in pairs.values()):
                raise ValueError("a non-finite coefficient")
            floor = float(body.get("floor", FLOOR))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidPreset(f"{path}: not a readable calibration file ({exc})") from exc
        extra = {k: v for k, v in body.items() if k not in ("format", "floor", "source", "pairs")}
        return cls(pairs, floor, str(body.get("source", "")), extra)


def calibration_path(preset_path: str | Path) -> Path:
    """Where a preset's calibration lives: ``<dir>/<preset stem>.calibration.json`` beside its JSON file."""
    preset_path = Path(preset_path)
    return preset_path.with_name(f"{preset_path.stem}.calibration.json")


def load_for_preset(preset: Any) -> Calibrations | None:
    """The calibration saved beside a preset's file, or None (random weights, or none fitted)."""
    path = getattr(preset, "path", None)
    if path is None or getattr(preset, "random_weights", False):
        return None
    found = calibration_path(path)
    return Calibrations.load(found) if found.is_file() else None


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random match outscores a random non-match (ties count half)."""
    scores = np.concatenate([positives, negatives])
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_pair(positives: np.ndarray, negatives: np.ndarray, l2: float = 1e-6, iterations: int = 100,
             negative_weights: np.ndarray | None = None) -> PairFit:
    """Logistic regression of match vs non-match on cosine, classes weighted equally (Newton's method);
    ``negative_weights`` spread the non-matches' half unevenly (e.g. strata of unrelated inputs)."""
    positives = np.asarray(positives, dtype=np.float64).ravel()
    negatives = np.asarray(negatives, dtype=np.float64).ravel()
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("fitting a pair needs matches and non-matches")
    x = np.concatenate([positives, negatives])
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    spread = np.ones(len(negatives)) if negative_weights is None else np.asarray(negative_weights, dtype=np.float64)
    w = np.concatenate([np.full(len(positives), 0.5 / len(positives)), 0.5 * spread / spread.sum()])
    design = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    for _ in range(iterations):
        p = sigmoid(design @ theta)
        grad = design.T @ (w * (p - y)) + l2 * np.array([theta[0], 0.0])
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 1e-9])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return PairFit(float(theta[0]), float(theta[1]), len(positives), len(negatives), round(auc(positives, negatives), 4))
