"""Score calibration per (query modality, target modality, representation kind): cosine -> probability of a match.

Each pair gets a logistic (Platt) curve fitted on labelled held-out pairs (``fit_pair``), with balanced classes:
``P(match) = sigmoid(slope * cosine + hub * hubness + intercept)``, so 0.5 is where a score is as likely from a
match as from an unrelated pair. A pair whose matches and non-matches overlap gets a flat curve and cannot reach a
confident probability, however narrow its background; that is what lets fusion weigh pairs by how far they can be
trusted. ``hubness`` is the CSLS-style neighbourhood density of the matched representation (Conneau et al. 2018):
the mean of its ``hub_k`` highest cosines to a fixed sample of generic queries of the query's modality, shipped
with the fits (``HUBS_SUFFIX``), so an item close to everything (a hub) needs a higher cosine to count as a match.
The fits are data saved next to a preset (``<preset>.calibration.json``) and loaded with it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.errors import InvalidPreset, XmodalError

FLOOR = 0.5  # below this probability a result is weak: "no strong match"
FORMAT = 1
HUB_K = 10  # hubness: mean of a representation's this many highest cosines to the generic query sample
HUBS_SUFFIX = ".hubs.npz"  # beside the calibration file: one float16 array of generic query vectors per modality
MAX_HUB_SAMPLE = 4096  # rows per modality a hubs file may hold (bounded read)
MAX_FOUND = 4096  # fit_for answers remembered per Calibrations (kinds come from the catalog: bounded anyway)
MAX_KEPT_HUBNESS = 100_000  # hubness values kept per (model, query modality) for one pinned catalog state


@dataclass(frozen=True)
class PairFit:
    """One pair's logistic curve on cosine, and what it was fitted on (counts, and AUC of the held-out scores)."""

    slope: float
    intercept: float
    positives: int = 0
    negatives: int = 0
    auc: float | None = None
    hub: float = 0.0  # weight of the matched representation's hubness (0: a cosine-only curve)
    hub_typical: float | None = None  # median hubness of the fitted pairs: stands in for an unknown one

    def logit(self, scores: np.ndarray | float, hubness: np.ndarray | float | None = None) -> np.ndarray:
        """Log-odds of a match for cosine scores (and the matched representations' hubness when the curve reads it;
        an unknown hubness counts as the fitted pairs' median)."""
        if type(scores) is float and (hubness is None or type(hubness) is float):  # one hit: the same double
            out = self.slope * scores + self.intercept  # arithmetic without numpy's per-call cost (search's hot loop)
            return out + self.hub * ((self.hub_typical or 0.0) if hubness is None else hubness) if self.hub else out
        out = self.slope * np.asarray(scores, dtype=np.float64) + self.intercept
        if self.hub:
            typical = self.hub_typical or 0.0
            out = out + self.hub * (typical if hubness is None else np.asarray(hubness, dtype=np.float64))
        return out

    def probability(self, scores: np.ndarray | float, hubness: np.ndarray | float | None = None) -> np.ndarray:
        """Probability of a match for cosine scores (and hubness, as ``logit``)."""
        return sigmoid(self.logit(scores, hubness))


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
    hub_samples: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    hub_k: int = HUB_K
    _found: dict = field(default_factory=dict, init=False, compare=False, repr=False)  # fit_for's answers

    @property
    def uses_hubness(self) -> bool:
        """Whether any fitted curve reads hubness (then searches compute it for their candidates)."""
        return any(p.hub for p in self.pairs.values())

    def hubness(self, query_modality: str, vectors: np.ndarray) -> np.ndarray | None:
        """Each vector's mean of its ``hub_k`` highest cosines to the generic ``query_modality`` queries, or None
        without a sample for that modality."""
        sample = self.hub_samples.get(query_modality)
        if sample is None or len(vectors) == 0:
            return None
        # one BLAS thread: spread over every core, this small product took 35-50 ms on a busy 2-core machine, 1 ms alone
        with _one_blas_thread():
            sims = np.asarray(vectors, dtype=np.float32) @ sample.T
        return top_mean(sims, self.hub_k)

    def fit_for(self, query_modality: str, target: str, kind: str | None = None) -> PairFit | None:
        """The kind-specific fit of a pair, else the pair's, else None (an uncalibrated pair)."""
        key = (query_modality, target, kind)
        if key in self._found:  # asked once per hit of every search: remembered
            return self._found[key]
        found = self._fit_for(query_modality, target, kind)
        if len(self._found) < MAX_FOUND:
            self._found[key] = found
        return found

    def _fit_for(self, query_modality: str, target: str, kind: str | None) -> PairFit | None:
        if kind and (found := self.pairs.get(pair_key(query_modality, target, kind))) is not None:
            return found
        return self.pairs.get(pair_key(query_modality, target))

    def save(self, path: str | Path) -> None:
        """Write as JSON (temp name, then rename)."""
        path = Path(path)
        body = {"format": FORMAT, "floor": self.floor, "source": self.source, **dict(self.extra),
                "pairs": {k: asdict(v) for k, v in sorted(self.pairs.items())}}
        if self.hub_samples:
            hubs = hubs_path(path)
            tmp_hubs = hubs.with_name(hubs.name + ".tmp.npz")
            np.savez_compressed(tmp_hubs, **{m: v.astype(np.float16) for m, v in sorted(self.hub_samples.items())})
            tmp_hubs.replace(hubs)
            body["hubs"] = {"file": hubs.name, "k": self.hub_k}
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
            hub_k = int(body["hubs"]["k"]) if "hubs" in body else HUB_K
            samples = _load_hubs(Path(path).with_name(str(body["hubs"]["file"]))) if "hubs" in body else {}
            if any(p.hub for p in pairs.values()) and not samples:
                raise ValueError("curves read hubness but no generic query sample is given")
            finite = all(math.isfinite(p.hub) and math.isfinite(p.hub_typical or 0.0) for p in pairs.values())
            if not 1 <= hub_k <= MAX_HUB_SAMPLE or not finite:
                raise ValueError("a bad hubness setting")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidPreset(f"{path}: not a readable calibration file ({exc})") from exc
        extra = {k: v for k, v in body.items() if k not in ("format", "floor", "source", "pairs", "hubs")}
        return cls(pairs, floor, str(body.get("source", "")), extra, samples, hub_k)


def hubness_by_id(calibrations: Calibrations | None, store: Any, model: str, query_modality: str,
                  representation_ids: list[int]) -> dict[int, float]:
    """The hubness of each representation (its vector read from the ``store``'s catalog) for curves that read it;
    empty when none does or a vector cannot be read (each curve then uses its typical hubness)."""
    if calibrations is None or not calibrations.uses_hubness or not representation_ids:
        return {}
    ids = list(dict.fromkeys(int(i) for i in representation_ids))
    # A representation's hubness depends only on its vector: kept for the catalog state a server's batch pins
    # (engine.query.hydration), computed for the ids not seen yet in that state.
    kept_for = getattr(store.catalog, "kept", None)
    kept = kept_for(("hubness", model, query_modality, id(calibrations))) if kept_for is not None else None
    if kept is None:
        return _hubness_of(calibrations, store, model, query_modality, ids)
    missing = [i for i in ids if i not in kept]
    if missing:
        found = _hubness_of(calibrations, store, model, query_modality, missing)
        if not found:
            return {}
        if len(kept) + len(found) > MAX_KEPT_HUBNESS:
            kept.clear()
        kept.update(found)
    return {i: kept[i] for i in ids}


def _hubness_of(calibrations: Calibrations, store: Any, model: str, query_modality: str,
                ids: list[int]) -> dict[int, float]:
    try:
        vectors = store.catalog.vectors_for(model, np.asarray(ids, dtype=np.int64))
    except XmodalError:
        return {}
    found = calibrations.hubness(query_modality, vectors)
    return {} if found is None else dict(zip(ids, found.tolist()))


@functools.cache
def _blas() -> list[Any]:
    """The process's BLAS thread pools (threadpoolctl, a scikit-learn dependency), found once."""
    from threadpoolctl import ThreadpoolController

    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread inside (as threadpoolctl's ``limit``, without re-reading every pool's state on each call);
    pools already at one thread are left alone."""
    changed = []
    for pool in _blas():
        threads = pool.get_num_threads()
        if threads is not None and threads != 1:
            pool.set_num_threads(1)
            changed.append((pool, threads))
    try:
        yield
    finally:
        for pool, threads in changed:
            pool.set_num_threads(threads)


def hubs_path(calibration: str | Path) -> Path:
    """The generic query sample beside a calibration file: ``<name without .json>.hubs.npz``."""
    calibration = Path(calibration)
    return calibration.with_name(calibration.name.removesuffix(".json") + HUBS_SUFFIX)


def _load_hubs(path: Path) -> dict[str, np.ndarray]:
    """Generic query vectors per modality (unit rows, float32), checked: finite, 2-D, one width, bounded rows."""
    with np.load(path, allow_pickle=False) as held:
        samples = {str(m): np.asarray(held[m], dtype=np.float32) for m in held.files}
    widths = {v.shape[1] for v in samples.values() if v.ndim == 2}
    for modality, sample in samples.items():
        if sample.ndim != 2 or not 0 < len(sample) <= MAX_HUB_SAMPLE or not np.isfinite(sample).all():
            raise ValueError(f"{path.name}: a bad {modality} sample {sample.shape}")
    if len(widths) > 1:
        raise ValueError(f"{path.name}: samples of several widths {sorted(widths)}")
    return samples


def top_mean(sims: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` highest values of each row (all of them when a row has fewer)."""
    k = min(k, sims.shape[1])
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k:].mean(axis=1)


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
             negative_weights: np.ndarray | None = None, positive_hubness: np.ndarray | None = None,
             negative_hubness: np.ndarray | None = None) -> PairFit:
    """Logistic regression of match vs non-match on cosine (and, when both are given, the matched representations'
    hubness), classes weighted equally (Newton's method); ``negative_weights`` spread the non-matches' half unevenly
    (e.g. strata of unrelated inputs). The AUC is of the fitted log-odds."""
    positives = np.asarray(positives, dtype=np.float64).ravel()
    negatives = np.asarray(negatives, dtype=np.float64).ravel()
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("fitting a pair needs matches and non-matches")
    hubs = positive_hubness is not None and negative_hubness is not None
    columns = [np.concatenate([positives, negatives])]
    if hubs:
        hub_values = np.concatenate([np.asarray(positive_hubness, dtype=np.float64).ravel(),
                                     np.asarray(negative_hubness, dtype=np.float64).ravel()])
        if hub_values.shape != columns[0].shape:
            raise ValueError("hubness must be given for every pair")
        columns.append(hub_values)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    spread = np.ones(len(negatives)) if negative_weights is None else np.asarray(negative_weights, dtype=np.float64)
    w = np.concatenate([np.full(len(positives), 0.5 / len(positives)), 0.5 * spread / spread.sum()])
    design = np.stack([*columns, np.ones_like(y)], axis=1)
    theta = np.zeros(design.shape[1])
    penalty = np.diag([1.0] * len(columns) + [1e-9])
    for _ in range(iterations):
        p = sigmoid(design @ theta)
        grad = design.T @ (w * (p - y)) + l2 * (penalty @ theta) * (np.diag(penalty) == 1.0)
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + l2 * penalty
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    logits = design @ theta
    n = len(positives)
    return PairFit(float(theta[0]), float(theta[-1]), n, len(negatives), round(auc(logits[:n], logits[n:]), 4),
                   float(theta[1]) if hubs else 0.0, float(np.median(columns[1])) if hubs else None)
