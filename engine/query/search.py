"""First-stage search: ANN per target index, hits grouped by item, fused, filtered to k, hydrated."""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from engine.query.limits import check_search_bounds
from engine.query.calibrate import Calibrations, hubness_by_id, sigmoid
from engine.query.fusion import DEFAULT_FUSION, Calibration, HitScore, estimate_calibration, fusion_named
from engine.query.keyword import (DEFAULT_SCALE, KEYWORD, VECTOR, KeywordScale, check_mode, is_keyword_list,
                                  keyword_lists, keyword_score)
from index import Hit, Store
from index.keyword import has_keywords

log = logging.getLogger(__name__)
_CAL_SAMPLE = 512
PASSAGE = "passage"  # the representation kind of a long text's passages (ingest.passages)
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Filters:
    """Which items may be returned: item modality, uri glob, mtime range (epoch seconds), metadata equalities."""

    modalities: tuple[str, ...] = ()
    uri_glob: str | None = None
    mtime_after: float | None = None
    mtime_before: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.modalities or self.uri_glob or self.mtime_after is not None
                    or self.mtime_before is not None or self.metadata)

    def accepts(self, hit: Hit, mtime: float | None) -> bool:
        """Whether an item passes every filter."""
        if self.modalities and hit.item_modality not in self.modalities:
            return False
        if self.uri_glob and not fnmatch.fnmatch(hit.uri, self.uri_glob):
            return False
        if self.mtime_after is not None and (mtime is None or mtime < self.mtime_after):
            return False
        if self.mtime_before is not None and (mtime is None or mtime > self.mtime_before):
            return False
        return all(hit.metadata.get(key) == value for key, value in self.metadata.items())


@dataclass(frozen=True)
class Match:
    """The representation of an item that matched: its kind, modality, where it is (seconds into audio, or
    characters into a text for a "passage"), a snippet of its text (at most ``SNIPPET_CHARS``), cosine and rank."""

    representation_id: int
    kind: str
    modality: str
    offset_seconds: float | None
    text: str | None
    score: float
    rank: int
    char_offset: int | None = None

    @classmethod
    def of(cls, hit: Hit, score: float, rank: int) -> Match:
        """The match of a hydrated hit: a passage's stored offset counts characters, not seconds."""
        passage = hit.kind == PASSAGE
        offset = None if passage or hit.offset_seconds is None else float(hit.offset_seconds)
        chars = int(hit.offset_seconds) if passage and hit.offset_seconds is not None else None
        return cls(hit.representation_id, hit.kind, hit.modality, offset, snippet(hit.text), score, rank, chars)


def snippet(text: str | None, limit: int = SNIPPET_CHARS) -> str | None:
    """The start of a text on one line, at most ``limit`` characters, cut at a word with an ellipsis."""
    if text is None:
        return None
    flat = " ".join(text[: 4 * limit].split())
    if len(flat) <= limit and len(text) <= 4 * limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ", limit // 2)
    return (cut[:space] if space > 0 else cut).rstrip() + "…"


@dataclass(frozen=True)
class Result:
    """One item: its id, uri and modality, the fused score, the best first-stage cosine and what matched; with a
    calibrated preset, the probability that it matches (its best representation's) and whether that is under the
    floor (``weak``: no strong match)."""

    item_id: int
    uri: str
    modality: str
    score: float
    first_stage: float
    match: Match
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rerank_score: float | None = None
    probability: float | None = None
    weak: bool = False
    rerank_note: str | None = None  # why a search that was to be re-ranked kept the fused order (``Searched.note``)

    @property
    def order_score(self) -> float:
        """The score that ordered the list: the re-ranked score when re-ranked, else the fused ``score``."""
        return self.score if self.rerank_score is None else self.rerank_score

    @property
    def ordered_by(self) -> str:
        """What ``order_score`` is: "rerank" (the fused score, as log-odds, plus the bounded re-ranker correction) or
        "fused" (the fusion's score)."""
        return "fused" if self.rerank_score is None else "rerank"


class Searcher:
    """Searches one model's vector sets in a store; background calibrations are estimated once per catalog
    generation; ``calibrations`` (fitted per pair, saved with the preset) give each result a probability."""

    def __init__(self, store: Store, model: str, calibrations: Calibrations | None = None) -> None:
        self.store, self.model, self.calibrations = store, model, calibrations
        self._calibrations: dict[tuple[str, str], Calibration] = {}
        self._calibrated_at = -1
        self._modalities: tuple[int, list[str]] = (-1, [])
        self.pinned_generation: int | None = None  # set by a caller reading inside one snapshot
        self.keyword_scale: KeywordScale = DEFAULT_SCALE  # how keyword hits score in the fusion (bench.hybrid)

    def _generation(self) -> int:
        return self.pinned_generation if self.pinned_generation is not None else self.store.catalog.generation

    def modalities(self) -> list[str]:
        """Target modalities that hold vectors for this model (cached per catalog generation)."""
        generation = self._generation()
        if self._modalities[0] != generation:
            sets = self.store.catalog.vector_sets()
            self._modalities = (generation, [s.modality for s in sets if s.model == self.model and s.count > 0])
        return list(self._modalities[1])

    def _sample(self, modality: str, rng: np.random.Generator) -> np.ndarray:
        """Up to ``_CAL_SAMPLE`` of a set's vectors, read by id (never the whole set)."""
        ids = self.store.catalog.vector_ids(self.model, modality)
        picked = np.sort(rng.choice(ids, min(len(ids), _CAL_SAMPLE), replace=False))
        return self.store.catalog.vectors_for(self.model, picked)

    def calibration(self, query_modality: str, target: str) -> Calibration:
        """Background similarity of ``query_modality`` vectors against ``target`` vectors, from a seeded sample."""
        generation = self._generation()
        if generation != self._calibrated_at:
            self._calibrations, self._calibrated_at = {}, generation
        key = (query_modality, target)
        if key not in self._calibrations:
            rng = np.random.default_rng(0)
            sample = self._sample(target, rng)
            other = query_modality != target and query_modality in self.modalities()
            queries = self._sample(query_modality, rng) if other else sample
            self._calibrations[key] = estimate_calibration(queries, sample)
        return self._calibrations[key]

    def _mtimes(self, item_ids: set[int]) -> dict[int, float | None]:
        return self.store.catalog.item_mtimes(item_ids)

    def _candidates(self, vector: np.ndarray, target: str, depth: int, filters: Filters) -> tuple[list[tuple[Hit, float]], bool]:
        scores, ids = self.store.search(self.model, target, vector, depth)
        hits = self.store.catalog.hydrate(ids[0])
        pairs = [(hits[int(i)], float(s)) for s, i in zip(scores[0], ids[0]) if int(i) in hits]
        exhausted = int((ids[0] >= 0).sum()) < depth
        if filters.active:
            mtimes = self._mtimes({h.item_id for h, _ in pairs}) if filters.mtime_after is not None or filters.mtime_before is not None else {}
            pairs = [(h, s) for h, s in pairs if filters.accepts(h, mtimes.get(h.item_id))]
        return [(h, s) for h, s in pairs if h.status == "ok"], exhausted

    def _keyword_candidates(self, vector: np.ndarray, text: str, depth: int,
                            filters: Filters) -> tuple[dict[str, list[tuple[Hit, float]]], bool]:
        """Keyword candidate lists (``engine.query.keyword``) under the same filters as vector candidates."""
        if not has_keywords(self.store.catalog):  # a catalog from before keyword search (read-only, not migrated)
            return {}, True
        lists, exhausted = keyword_lists(self.store.catalog, text, depth, self.model, vector, filters.modalities)
        if filters.active:
            pairs = [h for found in lists.values() for h, _ in found]
            timed = filters.mtime_after is not None or filters.mtime_before is not None
            mtimes = self._mtimes({h.item_id for h in pairs}) if timed else {}
            lists = {name: [(h, s) for h, s in found if filters.accepts(h, mtimes.get(h.item_id))]
                     for name, found in lists.items()}
        return {name: [(h, s) for h, s in found if h.status == "ok"] for name, found in lists.items()}, exhausted

    def search(self, vector: np.ndarray, query_modality: str, targets: Sequence[str], k: int = 10,
               filters: Filters = Filters(), depth: int = 100, fusion: str = DEFAULT_FUSION,
               show_all: bool = True, keywords: str | None = None, mode: str = VECTOR) -> list[Result]:
        """Top ``k`` items for a query vector over the target indexes (vector modalities), fused by item;
        ``show_all=False`` drops results under the calibrated floor (``Result.weak``). ``mode`` "hybrid" also fuses
        the keyword lists of ``keywords`` (the query's text), "keyword" fuses those alone, "vector" (the default
        here) none."""
        fusion_named(fusion)  # an unknown name is InvalidInput before any work
        check_search_bounds(k, depth)
        check_mode(mode)
        available = set(self.modalities())
        targets = [t for t in targets if t in available] if mode != KEYWORD else []
        text = keywords if mode != VECTOR else None
        depth = max(depth, k)
        while True:
            lists, all_exhausted = {}, True
            if text:  # keyword lists first: a tie of cosines shows the keyword match (a file name) as the reason
                lists, all_exhausted = self._keyword_candidates(vector, text, depth, filters)
            for target in targets:
                lists[target], exhausted = self._candidates(vector, target, depth, filters)
                all_exhausted &= exhausted
            results = self._fuse(lists, query_modality, fusion, k)
            if len(results) >= k or all_exhausted:
                return results if show_all else [r for r in results if not r.weak]
            depth *= 4  # filters removed too much: look deeper until k items or nothing left

    def _fuse(self, lists: dict[str, list[tuple[Hit, float]]], query_modality: str, fusion: str,
              k: int) -> list[Result]:
        fits = self.calibrations
        method = fusion_named(fusion)
        vector_lists = [t for t in lists if not is_keyword_list(t)]
        if method.needs_fits and (fits is None or any(fits.fit_for(query_modality, t) is None for t in vector_lists)):
            method = fusion_named(method.fallback)  # no fitted curve for this preset or pair
        best: dict[int, tuple[float, Hit, int]] = {}
        fused: dict[int, float] = {}
        logits: dict[int, float] = {}  # best log-odds of a match per item, whatever the fusion
        for target, pairs in lists.items():
            keyword = is_keyword_list(target)  # scored by rank in calibrated units (engine.query.keyword)
            cal = self.calibration(query_modality, target) if method.uses_background and not keyword else None
            hubs = {} if keyword else hubness_by_id(fits, self.store, self.model, query_modality,
                                                    [h.representation_id for h, _ in pairs])
            seen: set[int] = set()
            for hit, score in pairs:
                item = hit.item_id
                if item in seen:
                    continue
                rank = len(seen)
                seen.add(item)
                if keyword:
                    scored = keyword_score(rank, self.keyword_scale)
                else:
                    fit = fits.fit_for(query_modality, target, hit.kind) if fits is not None else None
                    hub = hubs.get(hit.representation_id)
                    scored = HitScore(rank, score, cal, float(fit.logit(score, hub)) if fit is not None else None)
                if scored.logit is not None:
                    logits[item] = max(logits.get(item, -np.inf), scored.logit)
                fused[item] = method.combine(fused.get(item), method.hit(scored))
                if item not in best or score > best[item][0]:
                    best[item] = (score, hit, rank)
        order = sorted(fused, key=lambda i: (-fused[i], -best[i][0], i))[:k]
        floor = fits.floor if fits is not None else 0.0
        results = []
        for i in order:
            score, hit, rank = best[i]
            match = Match.of(hit, score, rank)
            p = float(sigmoid(logits[i])) if i in logits else None
            shown = method.shown(fused[i], p)
            results.append(Result(i, hit.uri, hit.item_modality, shown, score, match, hit.metadata,
                                  probability=p, weak=p is not None and p < floor))
        return results
