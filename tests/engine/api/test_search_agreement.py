"""The library, the server and the CLI's note read one search policy: for the same query they make the same decision
(re-rank or not, and why) and return the same items."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.facade import Engine
from engine.cli import main
from engine.cli.search import rerank_note
from engine.query import QueryPart, SearchRequest
from engine.query.policy import OFF_BY_DEFAULT, ON_BY_DEFAULT
from engine.rerank import Reranker, RerankerConfig
from engine.server import ServerConfig, create_app
from ingest.pipeline import IngestOptions
from tests.corpus import good_files


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_encoder):
    """A tiny-random store with token features and a re-ranker on by default for image->image only."""
    root = tmp_path_factory.mktemp("agreement")
    good_files(root / "media", n_images=5, n_audio=1, n_texts=2)
    sizes = {m: tiny_encoder.embed_with_tokens(m, tiny_encoder.preprocess(m, [x]))[1][0].shape[1]
             for m, x in (("image", Image.new("RGB", (8, 8))), ("text", "a"),
                          ("audio", (np.zeros(16000, np.float32), 16000)))}
    torch.manual_seed(0)
    model = Reranker(RerankerConfig(sizes, tiny_encoder.dim, width=16, enabled=("image->image",)))
    torch.nn.init.normal_(model.out.weight, std=0.5)  # a re-ranker with opinions, so its order shows
    model.save(root / "reranker")
    with Engine.open(root / "store", "tiny-random", reranker=root / "reranker") as engine:
        assert engine.ingest([root / "media"], IngestOptions(workers=0)).failed == 0  # tokens: the re-ranker is on
    return root


def _open(root):
    return Engine.open(root / "store", "tiny-random", reranker=root / "reranker", create=False)


@pytest.fixture()
def server_plans(monkeypatch):
    """The plans the server's engine thread ran, in order."""
    seen = []
    search_encoded = Engine.search_encoded

    def spy(self, request, vector=None):
        searched = search_encoded(self, request, vector)
        seen.append(searched.plan)
        return searched

    monkeypatch.setattr(Engine, "search_encoded", spy)
    return seen


@pytest.fixture()
def cli_with_reranker(monkeypatch, store):
    """The CLI's ``Engine.open`` given the store's re-ranker (the tiny preset names none)."""
    opened = Engine.open.__func__

    def open_with(cls, *args, **kwargs):
        kwargs.setdefault("reranker", store / "reranker")
        return opened(cls, *args, **kwargs)

    monkeypatch.setattr(Engine, "open", classmethod(open_with))


CASES = [  # (name, query modality, query, targets, expected reason)
    ("image->image", "image", "img_1.jpg", ("image",), ON_BY_DEFAULT),
    ("image->every kind", "image", "img_2.jpg", (), OFF_BY_DEFAULT),
    ("text->image", "text", "a red square", ("image",), OFF_BY_DEFAULT),
]


@pytest.mark.parametrize("name, modality, query, targets, reason", CASES, ids=[c[0] for c in CASES])
def test_library_server_and_cli_note_agree(store, server_plans, cli_with_reranker, caplog, capsys, name, modality,
                                           query, targets, reason):
    image = store / "media" / "images" / query
    part = QueryPart("text", query) if modality == "text" else QueryPart("image", str(image))
    request = SearchRequest((part,), targets, k=4)
    with _open(store) as engine:
        library = engine.run_search(request)
        note = rerank_note(library.plan, engine.model)
    assert library.plan.reason == reason
    assert library.reranked == library.plan.rerank == all(r.rerank_score is not None for r in library.results)

    app = create_app(lambda: _open(store), ServerConfig(allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        if modality == "text":
            response = client.post("/search", json={"text": query, "k": 4, "targets": list(targets), "show_all": True})
        else:
            response = client.post("/search", data={"k": "4", "targets": ",".join(targets), "show_all": "true"},
                                   files={"file": ("q.jpg", image.read_bytes(), "image/jpeg")})
        assert response.status_code == 200, response.text
        served = response.json()["results"]
        counters = client.get("/stats").json()["server"]
    assert server_plans == [library.plan]  # the same decision, field by field (the upload's bytes decide alike)
    assert [r["item_id"] for r in served] == [r.item_id for r in library.results]
    assert [r["rerank_score"] is not None for r in served] == [r.rerank_score is not None for r in library.results]
    assert counters["reranked"] == int(library.reranked) and counters["rerank_skipped"] == 0

    argv = [query] if modality == "text" else ["--image", str(image)]
    cli_targets = ["--targets", ",".join(targets)] if targets else []
    with caplog.at_level(logging.INFO, logger="engine.cli.search"):
        assert main(["search", *argv, *cli_targets, "--store", str(store / "store"),
                     "--k", "4", "--all", "--json", "-v"]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("note:")]
    assert said == ([note] if note else [])
    if reason == OFF_BY_DEFAULT:
        assert f"re-ranker off by default for {library.plan.query_modality}->" in note
    printed = __import__("json").loads(capsys.readouterr().out)
    assert [r["item_id"] for r in printed] == [r.item_id for r in library.results]
