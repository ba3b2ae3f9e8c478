"""What the shipped model is for is said (presets' ``domain``, ingest's photo note) and queries encode on one thread."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from engine.cli import main
from engine.models.domain import photo_note
from engine.models import get_preset, list_presets
from engine.models.presets import parse_preset
from core.errors import InvalidPreset
from engine.query.threads import query_threads


def test_every_preset_states_its_domain_and_models_prints_it(capsys):
    assert main(["models", "--json"]) == 0
    report = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    for preset in list_presets():
        assert {"text", "image", "audio"} & set(report[preset.name]["domain"]), preset.name
    assert report["xmodal-mini"]["domain"]["photos"] is False
    assert report["clip-vit-b32"]["domain"]["photos"] is True
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "made for (image): 48 px handwritten digits" in table


def test_domain_must_be_an_object():
    base = {"name": "x", "dim": 4, "towers": {"text": {"kind": "hf_text", "source": "local:/nowhere"}}}
    assert parse_preset(base).handles_photos  # no domain: no claim, no note
    with pytest.raises(InvalidPreset, match="domain"):
        parse_preset({**base, "domain": "photos"})


def test_photo_note_points_xmodal_mini_users_to_a_real_preset(tmp_path):
    (tmp_path / "album" / "2024").mkdir(parents=True)
    (tmp_path / "album" / "2024" / "IMG_0001.JPG").write_bytes(b"not decoded here")
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "digit.png").write_bytes(b"")
    mini = get_preset("xmodal-mini")
    note = photo_note(mini, [tmp_path / "album"])
    assert note is not None and "--preset clip-vit-b32" in note and "\n" not in note
    assert photo_note(mini, [tmp_path / "scans"]) is None  # PNG drawings and digits are its domain
    assert photo_note(get_preset("clip-vit-b32"), [tmp_path / "album"]) is None


def test_query_threads_sets_one_thread_and_restores_on_each_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def user() -> None:
            torch.set_num_threads(2)
            with query_threads():
                seen.append(torch.get_num_threads())
            seen.append(torch.get_num_threads())

        t = threading.Thread(target=user)
        t.start()
        with query_threads():
            seen.append(torch.get_num_threads())
            t.join(10)
        assert sorted(seen) == [1, 1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_engine_search_encodes_the_query_on_one_thread(monkeypatch):
    import torch

    import engine.query.policy as query  # where the search policy encodes a query
    from engine.api.facade import Engine

    seen = []

    def fake_encode(encoder, parts):
        seen.append(torch.get_num_threads())
        return np.ones((1, 4), dtype=np.float32) / 2

    class FakeSearcher:
        def modalities(self):
            return ["text"]

        def search(self, vector, modality, targets, k, filters, depth, fusion, show_all=True, **keyword_search):
            return []

    monkeypatch.setattr(query, "encode_query", fake_encode)
    engine = object.__new__(Engine)
    engine.reranker, engine._searcher = None, FakeSearcher()
    engine.encoder = SimpleNamespace(preset=SimpleNamespace(name="fake"))
    engine.store = SimpleNamespace(catalog=SimpleNamespace(weights_of=lambda model: {}, has_tokens=lambda model: False))
    engine.fingerprints, engine.changed = {}, []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert engine.search("a query", rerank=False) == []
        assert seen == [1] and torch.get_num_threads() == 2  # ingest batches keep the default afterwards
    finally:
        torch.set_num_threads(before)
