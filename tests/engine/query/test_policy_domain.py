"""A planned re-rank of a query outside the re-ranker's domain keeps the fused order and says so: ``Searched.reranked``
False, ``Searched.note`` and each result's ``rerank_note`` ``OUTSIDE_DOMAIN``, the first stage run as a --no-rerank
search runs it (k and depth, not the re-rank pool) with the vector already encoded."""

from __future__ import annotations

import numpy as np
import pytest

from engine.query import Match, QueryPart, Result
from engine.query import policy
from engine.query.policy import ASKED, ON_BY_DEFAULT, OUTSIDE_DOMAIN, SearchPlan, SearchRequest, execute

IMAGE = (QueryPart("image", b"not decoded here"),)


class OutOfDomain:
    """A re-ranker whose domain holds no query (what ``_reranked`` reads of one before it runs)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def in_domain(self, modality: str, vectors: np.ndarray) -> np.ndarray:
        self.asked.append(modality)
        return np.zeros(len(vectors), dtype=bool)


class Searcher:
    model = "tiny"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def search(self, vector, modality, targets, k, filters, depth, fusion, show_all=True):
        self.calls.append((modality, tuple(targets), k, depth, vector.tolist()))
        match = Match(1, "image", "image", None, None, 0.5, 0)
        return [Result(1, "file:///a.png", "image", 0.9, 0.5, match)]


@pytest.fixture()
def encoded(monkeypatch):
    """The query's vector and tokens without an encoder; a first-stage re-encode would fail the test."""
    vector = np.full((1, 4), 0.5, np.float32)
    monkeypatch.setattr(policy, "encode_query_with_tokens", lambda encoder, parts: (vector, "image", np.zeros((2, 8))))
    monkeypatch.setattr(policy, "encode_query", lambda *a: pytest.fail("the query was encoded twice"))
    return vector


@pytest.mark.parametrize("forced,reason", [(False, ON_BY_DEFAULT), (True, ASKED)])
def test_outside_the_domain_the_fused_order_is_kept_and_said(encoded, forced, reason):
    from engine.query import Filters

    plan = SearchPlan(("image", "text"), Filters(), "image", ("image",), True, forced, reason)
    searcher, reranker = Searcher(), OutOfDomain()
    request = SearchRequest(IMAGE, ("image",), k=3, depth=7, rerank=True if forced else None)
    searched = execute(plan, request, encoder=None, searcher=searcher, reranker=reranker)  # type: ignore[arg-type]
    assert (searched.reranked, searched.skipped, searched.note) == (False, None, OUTSIDE_DOMAIN)
    assert reranker.asked == ["image"]
    assert [(r.ordered_by, r.rerank_note) for r in searched.results] == [("fused", OUTSIDE_DOMAIN)]
    assert searcher.calls == [("image", ("image", "text"), 3, 7, encoded.tolist())]  # not the pool of 50


def test_a_search_that_was_not_to_be_reranked_has_no_note(encoded):
    from engine.query import Filters

    plan = SearchPlan(("image",), Filters(), "image", ("image",), False, False, "declined")
    searched = execute(plan, SearchRequest(IMAGE), None, Searcher(), None, vector=encoded)  # type: ignore[arg-type]
    assert searched.note is None and searched.results[0].rerank_note is None


def test_the_server_json_carries_the_note():
    from engine.server.stats import result_json

    match = Match(1, "image", "image", None, None, 0.5, 0)
    row = result_json(Result(7, "file:///a.png", "image", 0.9, 0.5, match, rerank_note=OUTSIDE_DOMAIN))
    assert row["rerank_note"] == OUTSIDE_DOMAIN and row["rerank_score"] is None
