"""The one search policy: which indexes and result kinds a search covers, whether the re-ranker runs and why, then
first stage -> fusion -> re-rank, or the first-stage order when a default re-rank cannot run.

The library (``Engine``), the server's engine thread and the CLI's note all read the same ``SearchPlan``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from core.errors import InvalidInput, RerankerUnavailable
from engine.models import Encoder
from engine.query.fusion import DEFAULT_FUSION
from engine.query.inputs import QueryPart, encode_query, encode_query_with_tokens, heaviest_part
from engine.query.keyword import DEFAULT_MODE, KEYWORD, check_mode
from engine.query.keyword import VECTOR as VECTOR_MODE
from engine.query.rerank import rerank as rerank_results
from engine.query.search import Filters, Result, Searcher
from engine.query.targets import plan_search
from engine.query.threads import QUERY_THREADS, query_threads
from engine.rerank.model import Reranker, TokenBatch

RERANK_DEPTH = 50  # fused candidates the re-ranker reads unless a search asks for another depth

# Why a plan re-ranks or not (``SearchPlan.reason``).
ASKED = "asked"  # rerank=True: runs, and a failure is an error
DECLINED = "declined"  # rerank=False
NO_RERANKER = "no-reranker"  # the default, and the preset has no re-ranker
OFF_BY_DEFAULT = "off-by-default"  # the default, and held-out data showed no gain for a searched direction
NO_TOKENS = "no-tokens"  # the default, and the store holds no token features for the model
ON_BY_DEFAULT = "on-by-default"  # the default, on for every searched direction, tokens stored
NOTHING_SEARCHED = "nothing-searched"  # the default, and no direction is searched
UNMATCHABLE = "unmatchable"  # the requested kinds and the modality filter exclude each other: nothing runs

# ``Searched.note`` when a planned re-rank keeps the fused order by design (``engine.rerank.domain``)
OUTSIDE_DOMAIN = "query outside the re-ranker's domain: fused order kept"


@dataclass(frozen=True)
class SearchRequest:
    """One search: query parts, targets (result item kinds; empty: all), k, filters, depth, fusion, re-ranking (None:
    preset default), indexes (raw vector sets searched; empty: all), whether results under the floor are kept and the
    mode: "hybrid" (vector and keyword lists fused), "vector" or "keyword" (``engine.query.keyword``)."""

    parts: tuple[QueryPart, ...]
    targets: tuple[str, ...] = ()
    k: int = 10
    filters: Filters = field(default_factory=Filters)
    depth: int = 100
    fusion: str = DEFAULT_FUSION
    rerank: bool | None = None
    rerank_depth: int | None = None
    indexes: tuple[str, ...] = ()
    show_all: bool = True
    mode: str = DEFAULT_MODE

    @property
    def text_only(self) -> str | None:
        """The text when the query is a single text part (batchable), else None."""
        if len(self.parts) == 1 and self.parts[0].modality == "text" and isinstance(self.parts[0].value, str):
            return self.parts[0].value
        return None

    @property
    def keywords(self) -> str | None:
        """The text parts' words, matched by keyword search (None when the query has no text)."""
        texts = [p.value for p in self.parts if p.modality == "text" and isinstance(p.value, str) and p.weight > 0]
        return " ".join(texts) if texts else None


@dataclass(frozen=True)
class SearchPlan:
    """What a search will run and why: the vector sets searched, the filters (narrowed to the requested result kinds),
    the direction the re-ranker is judged on (the heaviest part's modality -> ``directions``), whether it re-ranks,
    whether that was forced (a failure is then raised, not a fallback), the ``reason`` (a constant above) and the
    directions where the re-ranker is off by default."""

    searched: tuple[str, ...]
    filters: Filters
    query_modality: str
    directions: tuple[str, ...]
    rerank: bool
    forced: bool
    reason: str
    off: tuple[str, ...] = ()

    @property
    def matchable(self) -> bool:
        """Whether anything can match (else the search returns no results without running)."""
        return self.reason != UNMATCHABLE


@dataclass(frozen=True)
class Searched:
    """A search's results and how they came about: its plan, whether the re-ranker ordered them, why a default
    re-rank fell back to the first-stage order (``skipped``: it could not run) and why a planned re-rank kept the
    fused order by design (``note``: ``OUTSIDE_DOMAIN``, also on each result's ``rerank_note``); None when not."""

    plan: SearchPlan
    results: list[Result]
    reranked: bool = False
    skipped: str | None = None
    note: str | None = None


def decide(request: SearchRequest, available: Sequence[str], reranker: Reranker | None, model: str,
           has_tokens: Callable[[], bool]) -> SearchPlan:
    """The plan for ``request`` over a store holding ``available`` vector sets. Re-ranks as asked (``True`` without a
    re-ranker raises ``RerankerUnavailable``), else where held-out data showed a gain for every searched direction and
    the store holds tokens (``has_tokens`` is asked only then)."""
    if not request.parts:
        raise InvalidInput("empty query")
    if check_mode(request.mode) == KEYWORD and not (request.keywords or "").strip():
        raise InvalidInput("keyword mode needs a text query")
    query_modality = heaviest_part(request.parts).modality
    planned = plan_search(available, request.targets, request.indexes, request.filters)
    if planned is None:
        return SearchPlan((), request.filters, query_modality, (), False, False, UNMATCHABLE)
    searched, filters = planned
    directions = tuple(filters.modalities) or tuple(searched)  # the direction: query -> result kinds

    def plan(rerank: bool, reason: str, off: Sequence[str] = ()) -> SearchPlan:
        return SearchPlan(tuple(searched), filters, query_modality, directions, rerank, request.rerank is True,
                          reason, tuple(off))

    if request.rerank is True:
        if reranker is None:
            raise RerankerUnavailable(f"preset {model!r} has no attention re-ranker")
        return plan(True, ASKED)
    if request.rerank is False:
        return plan(False, DECLINED)
    if reranker is None:
        return plan(False, NO_RERANKER)
    if not directions:
        return plan(False, NOTHING_SEARCHED)
    off = [t for t in directions if not reranker.is_enabled(query_modality, t)]
    if off:
        return plan(False, OFF_BY_DEFAULT, off)
    if not has_tokens():  # a store ingested without tokens stays first-stage
        return plan(False, NO_TOKENS)
    return plan(True, ON_BY_DEFAULT)


def _keyword_args(request: SearchRequest) -> dict[str, str]:
    """The searcher's keyword arguments: none for a vector search (a searcher without keywords still runs it), nor
    for a hybrid one that names its raw ``indexes`` (a benchmark of one vector direction)."""
    if request.mode == VECTOR_MODE or request.keywords is None or (request.indexes and request.mode != KEYWORD):
        return {}
    return {"keywords": request.keywords, "mode": request.mode}


def execute(plan: SearchPlan, request: SearchRequest, encoder: Encoder, searcher: Searcher,
            reranker: Reranker | None, vector: np.ndarray | None = None,
            threads: int | None = QUERY_THREADS) -> Searched:
    """Run a plan: the re-ranker over the top ``rerank_depth`` fused candidates when the plan says so (a default
    re-rank that cannot run, e.g. candidates without tokens, falls back to the first stage), else the first stage.

    ``vector``: the query's first-stage vector when already encoded. ``threads``: torch threads for encoding it here
    (None: the calling thread's own setting, which a server sets for its engine thread); the re-ranker's passes run
    on ``QUERY_THREADS``.
    """
    if not plan.matchable:
        return Searched(plan, [])
    fusion = request.fusion or DEFAULT_FUSION
    skipped = note = None
    if plan.rerank:
        try:
            found, encoded = _reranked(plan, request, encoder, searcher, reranker, fusion)
        except RerankerUnavailable as exc:
            if plan.forced:
                raise
            skipped = str(exc)
        else:
            if found is not None:
                return Searched(plan, found if request.show_all else [r for r in found if not r.weak], True)
            note, vector = OUTSIDE_DOMAIN, encoded  # the search a --no-rerank one runs, with the vector in hand
    if vector is None:
        with query_threads(threads) if threads else nullcontext():
            vector = encode_query(encoder, request.parts)
    results = searcher.search(vector, request.parts[0].modality, list(plan.searched), request.k, plan.filters,
                              request.depth, fusion, request.show_all, **_keyword_args(request))
    if note:
        results = [replace(r, rerank_note=note) for r in results]
    return Searched(plan, results, False, skipped, note)


def _reranked(plan: SearchPlan, request: SearchRequest, encoder: Encoder, searcher: Searcher,
              reranker: Reranker | None, fusion: str) -> tuple[list[Result] | None, np.ndarray]:
    """First stage to ``rerank_depth`` (default ``RERANK_DEPTH``), then the attention re-ranker's top ``k``; None
    (and the query vector) when the query lies outside the re-ranker's domain, so nothing is re-ranked."""
    if reranker is None:
        raise RerankerUnavailable(f"preset {searcher.model!r} has no attention re-ranker")
    with query_threads():
        vector, modality, tokens = encode_query_with_tokens(encoder, request.parts)
    if not reranker.in_domain(modality, vector)[0]:
        return None, vector
    pool = max(request.k, request.rerank_depth or RERANK_DEPTH)
    results = searcher.search(vector, modality, list(plan.searched), pool, plan.filters, max(request.depth, pool),
                              fusion, **_keyword_args(request))
    query_side = TokenBatch.from_arrays([tokens], vector, modality, reranker.config.max_tokens)
    with query_threads():
        return rerank_results(reranker, searcher.store.catalog, searcher.model, results, query_side,
                              searcher.calibration, request.k, fits=searcher.calibrations, fusion=fusion), vector
