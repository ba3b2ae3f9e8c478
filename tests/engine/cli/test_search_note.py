"""``xmodal search`` says when a planned re-rank kept the fused order (query outside the re-ranker's domain): under -v
as a note, and in --json on each row (``rerank_note``) beside ``ordered_by`` "fused"."""

from __future__ import annotations

import dataclasses
import json
import logging

from engine.cli import main
from engine.query.policy import OUTSIDE_DOMAIN


def _outside(monkeypatch):
    """Every search comes back as an out-of-domain one does from ``engine.query.policy.execute``."""
    from engine.api.facade import Engine

    searched = Engine.run_search

    def run_search(self, request):
        found = searched(self, request)
        rows = [dataclasses.replace(r, rerank_note=OUTSIDE_DOMAIN) for r in found.results]
        return dataclasses.replace(found, results=rows, note=OUTSIDE_DOMAIN)

    monkeypatch.setattr(Engine, "run_search", run_search)


def test_the_note_under_verbose_and_in_json(tiny_store, monkeypatch, capsys, caplog):
    _outside(monkeypatch)
    store = str(tiny_store.store)
    with caplog.at_level(logging.INFO, logger="engine.cli.search"):
        assert main(["search", "a dog", "--store", store, "--k", "2", "-v"]) == 0
    notes = [r.getMessage() for r in caplog.records if r.name == "engine.cli.search"]
    assert notes == [f"note: {OUTSIDE_DOMAIN}"]  # it replaces the default-off note: the plan was to re-rank
    capsys.readouterr()
    assert main(["search", "a dog", "--store", store, "--k", "2", "--json", "--all"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["rerank_note"] == OUTSIDE_DOMAIN and r["ordered_by"] == "fused" for r in rows)


def test_plain_searches_carry_no_note(tiny_store, capsys):
    assert main(["search", "a dog", "--store", str(tiny_store.store), "--k", "2", "--json", "--all"]) == 0
    assert all(r["rerank_note"] is None for r in json.loads(capsys.readouterr().out))
