"""The one search policy's decisions, tested directly: re-rank as asked, on by default only where enabled and the store
holds tokens, the direction read from the heaviest part and the result kinds, and the fallback when tokens are missing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from core.errors import InvalidInput, RerankerUnavailable
from engine.query import Filters, Match, QueryPart, Result
from engine.query.policy import (
    ASKED,
    DECLINED,
    NO_RERANKER,
    NO_TOKENS,
    NOTHING_SEARCHED,
    OFF_BY_DEFAULT,
    ON_BY_DEFAULT,
    UNMATCHABLE,
    SearchPlan,
    SearchRequest,
    decide,
    execute,
)

TEXT = (QueryPart("text", "a red square"),)
IMAGE = (QueryPart("image", b"not decoded here"),)
STORE = ["image", "text", "audio"]


@dataclass
class FakeReranker:
    """A re-ranker that is on by default for the given directions only (what ``decide`` reads of one)."""

    enabled: tuple[str, ...] = ("image->image",)

    def is_enabled(self, query: str, target: str) -> bool:
        return f"{query}->{target}" in self.enabled


@dataclass
class Tokens:
    """``has_tokens``: answers ``held`` and counts how often it was asked (the policy asks only when it matters)."""

    held: bool = True
    asked: list[bool] = field(default_factory=list)

    def __call__(self) -> bool:
        self.asked.append(self.held)
        return self.held


def _decide(parts=TEXT, reranker=FakeReranker(), tokens=None, available=STORE, **request) -> SearchPlan:
    return decide(SearchRequest(parts, **request), available, reranker, "tiny", tokens or Tokens())


def test_asked_runs_and_is_forced():
    tokens = Tokens(held=False)
    plan = _decide(rerank=True, tokens=tokens)
    assert (plan.rerank, plan.forced, plan.reason) == (True, True, ASKED)
    assert tokens.asked == []  # forced: a missing token is the search's error, not a reason to skip


def test_asked_without_a_reranker_is_refused():
    with pytest.raises(RerankerUnavailable, match="'tiny' has no attention re-ranker"):
        _decide(reranker=None, rerank=True)


def test_declined_never_reranks():
    plan = _decide(IMAGE, targets=("image",), rerank=False)
    assert (plan.rerank, plan.forced, plan.reason) == (False, False, DECLINED)


def test_default_without_a_reranker():
    plan = _decide(reranker=None)
    assert (plan.rerank, plan.reason) == (False, NO_RERANKER)


def test_default_is_on_only_where_enabled_for_every_direction():
    on = _decide(IMAGE, targets=("image",))
    assert (on.rerank, on.forced, on.reason, on.query_modality, on.directions) == \
        (True, False, ON_BY_DEFAULT, "image", ("image",))
    text = _decide(TEXT, targets=("image",))
    assert (text.rerank, text.reason, text.off) == (False, OFF_BY_DEFAULT, ("image",))
    every_kind = _decide(IMAGE)  # no targets: every kind the store holds, and image->text is not enabled
    assert (every_kind.rerank, every_kind.reason, every_kind.directions) == (False, OFF_BY_DEFAULT, tuple(STORE))
    assert every_kind.off == ("text", "audio")


def test_default_stays_first_stage_without_tokens():
    tokens = Tokens(held=False)
    plan = _decide(IMAGE, targets=("image",), tokens=tokens)
    assert (plan.rerank, plan.reason, tokens.asked) == (False, NO_TOKENS, [False])
    off = Tokens()
    _decide(TEXT, targets=("image",), tokens=off)
    assert off.asked == []  # off by default: the catalog is not asked


def test_direction_is_the_heaviest_part_to_the_result_kinds():
    mixed = (QueryPart("text", "at night", 0.5), QueryPart("image", b"x", -2.0))
    plan = _decide(mixed, targets=("image",))
    assert (plan.query_modality, plan.reason) == ("image", ON_BY_DEFAULT)
    filtered = _decide(IMAGE, filters=Filters(modalities=("image",)))  # a modality filter names the result kinds too
    assert (filtered.directions, filtered.searched, filtered.reason) == (("image",), tuple(STORE), ON_BY_DEFAULT)


def test_indexes_choose_the_vector_sets_searched():
    plan = _decide(IMAGE, indexes=("image",))
    assert (plan.searched, plan.directions, plan.reason) == (("image",), ("image",), ON_BY_DEFAULT)
    gone = _decide(IMAGE, indexes=("audio",), available=["image"])
    assert (gone.searched, gone.rerank, gone.reason, gone.matchable) == ((), False, NOTHING_SEARCHED, True)


def test_kinds_the_filter_excludes_match_nothing_and_decide_nothing():
    plan = _decide(IMAGE, reranker=None, targets=("image",), filters=Filters(modalities=("text",)), rerank=True)
    assert (plan.matchable, plan.rerank, plan.reason) == (False, False, UNMATCHABLE)


def test_bad_requests_are_refused():
    with pytest.raises(InvalidInput, match="empty query"):
        _decide(())
    with pytest.raises(InvalidInput, match="targets must be among"):
        _decide(targets=("pixels",))


class FakeSearcher:
    """The first stage: returns one result per call and records what it was asked."""

    model = "tiny"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def search(self, vector, modality, targets, k, filters, depth, fusion, show_all=True):
        self.calls.append((modality, tuple(targets), k, depth, fusion, show_all))
        match = Match(1, "image", "image", None, None, 0.5, 0)
        return [Result(1, "file:///a.png", "image", 0.9, 0.5, match, weak=not show_all)]


def test_a_default_rerank_that_cannot_run_falls_back_to_the_first_stage():
    plan = _decide(IMAGE, targets=("image",))
    request = SearchRequest(IMAGE, ("image",), k=3, depth=7)
    searcher = FakeSearcher()
    vector = np.ones((1, 4), np.float32) / 2
    # a re-ranker that is gone by the time it runs stands for any RerankerUnavailable (candidates without tokens)
    searched = execute(plan, request, encoder=None, searcher=searcher, reranker=None, vector=vector)  # type: ignore[arg-type]
    assert (searched.reranked, searched.plan) == (False, plan)
    assert "no attention re-ranker" in searched.skipped
    assert [r.item_id for r in searched.results] == [1] and searched.results[0].rerank_score is None
    assert searcher.calls == [("image", ("image", "text", "audio"), 3, 7, "probability", True)]


def test_a_forced_rerank_that_cannot_run_is_an_error():
    plan = _decide(IMAGE, targets=("image",), rerank=True)
    with pytest.raises(RerankerUnavailable):
        execute(plan, SearchRequest(IMAGE, rerank=True), encoder=None, searcher=FakeSearcher(),  # type: ignore[arg-type]
                reranker=None, vector=np.ones((1, 4), np.float32))


def test_an_unmatchable_plan_runs_nothing():
    plan = _decide(IMAGE, targets=("image",), filters=Filters(modalities=("text",)))
    searcher = FakeSearcher()
    searched = execute(plan, SearchRequest(IMAGE), encoder=None, searcher=searcher, reranker=None)  # type: ignore[arg-type]
    assert (searched.results, searched.reranked, searcher.calls) == ([], False, [])
