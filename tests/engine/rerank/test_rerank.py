"""The attention re-ranker: tokens in one pass, stored at ingest, training that beats the first stage, save/load,
off by default where it did not gain, and the errors when it cannot run."""

import logging
import sqlite3

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.api.facade import Engine
from core.errors import RerankerUnavailable
from engine.rerank import Reranker, RerankerConfig, TokenBatch
from engine.train.rerank_data import Encoded, encoded_direction
from engine.train.rerank import RerankTrainConfig, evaluate, train_reranker
from index.schema import MIGRATIONS, migrate
from ingest.pipeline import IngestOptions
from tests.corpus import good_files


@pytest.mark.parametrize("modality", ["image", "text", "audio"])
def test_tokens_come_from_the_same_pass_as_the_vector(tiny_encoder, sample_media, modality):
    inputs = [x for x in sample_media[modality] if not (isinstance(x, str) and not x.strip())][:3]
    batch = tiny_encoder.preprocess(modality, inputs)
    vectors, tokens = tiny_encoder.embed_with_tokens(modality, batch)
    np.testing.assert_allclose(vectors, tiny_encoder.embed(modality, batch), atol=1e-6)
    assert len(tokens) == len(inputs) and all(t.dtype == np.float16 and t.ndim == 2 and 0 < len(t) <= 32 for t in tokens)
    with torch.inference_mode():
        features, full, mask = tiny_encoder.towers[modality].embed_with_tokens(batch)
    assert full.shape[:2] == mask.shape and features.shape[0] == len(inputs)


def _planted(n_q: int = 60, n_c: int = 40, width: int = 8, seed: int = 0) -> tuple[Encoded, Encoded, np.ndarray]:
    """Vectors that mislead the first stage; tokens that say which candidate is right (query token == its token)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_c, n_q)
    codes = rng.standard_normal((n_c, width)).astype(np.float32)
    c_tok = np.stack([np.stack([codes[j], rng.standard_normal(width)]) for j in range(n_c)]).astype(np.float16)
    q_tok = np.stack([np.stack([rng.standard_normal(width), codes[truth[i]]]) for i in range(n_q)]).astype(np.float16)
    vec = lambda n: torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((n, 16)).astype(np.float32)), dim=1)
    queries = Encoded("text", vec(n_q), torch.from_numpy(q_tok), torch.full((n_q,), 2))
    corpus = Encoded("image", vec(n_c), torch.from_numpy(c_tok), torch.full((n_c,), 2))
    relevant = np.zeros((n_q, n_c), dtype=bool)
    relevant[np.arange(n_q), truth] = True
    return queries, corpus, relevant


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["slots", "cross"])
def test_training_beats_a_misled_first_stage_and_is_enabled(kind):
    q, c, rel = _planted(400, 300)  # many codes, so matching is learnt rather than memorised
    train = encoded_direction("planted:text->image", q, c, rel)
    q2, c2, rel2 = _planted(seed=1)
    val = encoded_direction("planted:text->image", q2, c2, rel2)
    cfg = RerankTrainConfig(steps=300, queries_per_step=16, list_size=8, hard_pool=30, depth=40, lr=3e-3, width=32,
                            dropout=0.0, kind=kind)
    model, report = train_reranker([train], [val], cfg)
    e = report["evaluation"]["planted:text->image"]  # unseen codes: it learnt to match tokens, not to memorise
    assert e["first_stage"]["R@1"] < 0.15 and e["reranked"]["R@1"] >= 0.5, e
    assert report["enabled"] == ["planted:text->image"]


def _sides() -> tuple[TokenBatch, TokenBatch, torch.Tensor]:
    """One text query (3 tokens of 8) against three image candidates of 1, 2 and 5 tokens of 6, with first-stage scores."""
    query = TokenBatch.from_arrays([np.ones((3, 8), np.float16)], np.ones((1, 16), np.float32) / 4, "text", 32)
    cands = TokenBatch.from_arrays([np.full((n, 6), n, np.float16) for n in (1, 2, 5)],
                                   np.eye(3, 16, dtype=np.float32), "image", 32)
    return query, cands, torch.tensor([0.5, 1.0, -1.0])


def test_slots_reranker_saves_loads_and_scores_one_query_against_many(tmp_path):
    config = RerankerConfig({"text": 8, "image": 6}, 16, width=16, kind="slots", slots=2)
    model = Reranker(config).eval()
    query, cands, first = _sides()
    model.save(tmp_path / "rr")
    loaded = Reranker.load(tmp_path / "rr")
    assert loaded.config.kind == "slots"
    with torch.inference_mode():
        together = loaded(query, cands, first)
        torch.testing.assert_close(together, model(query, cands, first))
        one = TokenBatch.from_arrays([np.full((2, 6), 2, np.float16)], np.eye(3, 16, dtype=np.float32)[1:2], "image", 32)
        torch.testing.assert_close(loaded(query, one, first[1:2]), together[1:2], atol=1e-5, rtol=1e-5)


def test_untrained_reranker_keeps_the_first_stage_order():
    q, c, rel = _planted()
    d = encoded_direction("planted:text->image", q, c, rel)
    model = Reranker(RerankerConfig({"text": 8, "image": 8}, 16)).eval()
    e = evaluate(model, d, depth=20)
    assert e["reranked"] == e["first_stage"]


def test_save_and_load_give_the_same_scores(tmp_path):
    config = RerankerConfig({"text": 8, "image": 6}, 16, width=16, enabled=("text->image",),
                            evaluation={"x": {"gain_r1": 0.1}})
    model = Reranker(config).eval()
    torch.nn.init.normal_(model.out.weight)
    query, cands, first = _sides()
    model.save(tmp_path / "rr")
    loaded = Reranker.load(tmp_path / "rr")
    assert loaded.is_enabled("text", "image") and not loaded.is_enabled("image", "text")
    with torch.inference_mode():
        torch.testing.assert_close(loaded(query, cands, first), model(query, cands, first))
    with pytest.raises(RerankerUnavailable):
        model(TokenBatch.from_arrays([np.ones((2, 4), np.float16)], np.ones((1, 16), np.float32), "audio", 32),
              cands, first)


def test_schema_migrates_v1_catalog_to_tokens(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'tokens'").fetchone()


@pytest.fixture(scope="module")
def rerank_store(tmp_path_factory, tiny_encoder):
    root = tmp_path_factory.mktemp("rerank")
    good_files(root / "media", n_images=5, n_audio=2, n_texts=2)
    sample = {m: tiny_encoder.embed_with_tokens(m, tiny_encoder.preprocess(m, [x]))[1][0].shape[1]
              for m, x in (("image", __import__("PIL.Image").Image.new("RGB", (8, 8))), ("text", "a"))}
    audio = tiny_encoder.embed_with_tokens("audio", tiny_encoder.preprocess("audio", [(np.zeros(16000, np.float32), 16000)]))
    sample["audio"] = audio[1][0].shape[1]
    model = Reranker(RerankerConfig(sample, tiny_encoder.dim, width=16, enabled=("image->image",)))
    torch.nn.init.normal_(model.out.weight, std=0.5)  # a re-ranker with opinions, so the order can change
    model.save(root / "reranker")
    return root


def test_ingest_stores_tokens_and_search_reranks(rerank_store):
    root = rerank_store
    with Engine.open(root / "store", "tiny-random", reranker=root / "reranker") as engine:
        assert engine.ingest([root / "media"], IngestOptions(workers=0)).failed == 0
        stored = engine.store.catalog.db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
        reps = engine.store.catalog.db.execute("SELECT COUNT(*) FROM representations").fetchone()[0]
        assert stored == reps > 0
        plain = engine.search("a red square", k=5, rerank=False)
        reranked = engine.search("a red square", k=5, rerank=True)
        assert all(r.rerank_score is None for r in plain)
        scores = [r.rerank_score for r in reranked]
        assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)
        assert engine.search("a red square", targets=["image"], k=3)[0].rerank_score is None  # text->image not enabled
        image = root / "media" / "images" / "img_1.jpg"
        assert engine.search(__import__("engine.query", fromlist=["QueryPart"]).QueryPart("image", str(image)),
                             targets=["image"], k=3)[0].rerank_score is not None  # image->image is


def test_items_without_tokens_are_refused_then_backfilled(rerank_store, tmp_path):
    root = rerank_store
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        engine.ingest([root / "media"], IngestOptions(workers=0))
    with Engine.open(tmp_path / "store", "tiny-random", reranker=root / "reranker") as engine:
        with pytest.raises(RerankerUnavailable, match="ingest"):
            engine.search("a red square", k=3, rerank=True)
        summary = engine.ingest([root / "media"], IngestOptions(workers=0))
        assert summary.added == 9
        assert engine.search("a red square", k=3, rerank=True)[0].rerank_score is not None


def test_cli_says_when_the_reranker_is_off(rerank_store, capsys, caplog):
    store = str(rerank_store / "cli-store")
    assert main(["ingest", str(rerank_store / "media"), "--store", store, "--preset", "tiny-random"]) == 0
    capsys.readouterr()
    with caplog.at_level(logging.INFO):  # the note is logged, so a plain search stays quiet and -v shows it
        assert main(["search", "a red square", "--store", store, "--k", "2", "-v"]) == 0
    assert "has no attention re-ranker" in caplog.text
    assert main(["search", "a red square", "--store", store, "--rerank"]) == 2
    assert "no attention re-ranker" in capsys.readouterr().err


def test_server_reranks_as_asked_and_maps_refusal_to_409(rerank_store, tmp_path):
    from fastapi.testclient import TestClient

    from engine.server.app import ServerConfig, create_app

    root = rerank_store
    test_host = ServerConfig(allowed_hosts=("testserver",))  # the TestClient's Host header
    with Engine.open(tmp_path / "store", "tiny-random", reranker=root / "reranker") as engine:
        engine.ingest([root / "media"], IngestOptions(workers=0))
    app = create_app(lambda: Engine.open(tmp_path / "store", "tiny-random", reranker=root / "reranker"), test_host)
    with TestClient(app) as client:
        plain = client.post("/search", json={"text": "a red square", "k": 4}).json()["results"]
        assert plain and all(r["rerank_score"] is None for r in plain)  # text->* is off by default
        forced = client.post("/search", json={"text": "a red square", "k": 4, "rerank": True, "rerank_depth": 8})
        scores = [r["rerank_score"] for r in forced.json()["results"]]
        assert forced.status_code == 200 and len(scores) == 4 and None not in scores and scores == sorted(scores, reverse=True)
        with Engine.open(tmp_path / "store", "tiny-random", reranker=root / "reranker") as engine:
            expected = [r.item_id for r in engine.search("a red square", k=4, rerank=True, rerank_depth=8)]
        assert [r["item_id"] for r in forced.json()["results"]] == expected
        image = root / "media" / "images" / "img_1.jpg"
        upload = client.post("/search", files={"file": ("q.jpg", image.read_bytes(), "image/jpeg")},
                             data={"targets": "image", "k": "3"})
        assert upload.json()["results"][0]["rerank_score"] is not None  # image->image is on by default
        assert client.get("/stats").json()["server"]["reranked"] == 2
    bare = create_app(lambda: Engine.open(tmp_path / "store", "tiny-random"), test_host)
    with TestClient(bare) as client:
        refused = client.post("/search", json={"text": "a red square", "rerank": True})
        assert refused.status_code == 409 and "no attention re-ranker" in refused.json()["error"]["message"]


def test_default_search_stays_first_stage_where_tokens_are_missing(rerank_store, tmp_path, capsys):
    root = rerank_store
    image = root / "media" / "images" / "img_1.jpg"
    query = __import__("engine.query", fromlist=["QueryPart"]).QueryPart("image", str(image))
    with Engine.open(tmp_path / "bare", "tiny-random") as engine:  # ingested with no re-ranker: no tokens at all
        engine.ingest([root / "media"], IngestOptions(workers=0))
    with Engine.open(tmp_path / "bare", "tiny-random", reranker=root / "reranker") as engine:
        hits = engine.search(query, targets=["image"], k=3)  # image->image is on by default, yet no error
        assert hits and all(r.rerank_score is None for r in hits)
        with pytest.raises(RerankerUnavailable):
            engine.search(query, targets=["image"], k=3, rerank=True)
        from engine.cli.search import rerank_note

        plan = engine.plan(__import__("engine.query", fromlist=["SearchRequest"]).SearchRequest((query,), ("image",)))
        assert "no re-ranker tokens" in rerank_note(plan, engine.model)
        engine.ingest([root / "media"], IngestOptions(workers=0, tokens=True))
        assert engine.search(query, targets=["image"], k=3)[0].rerank_score is not None
        engine.store.catalog.db.execute("DELETE FROM tokens WHERE representation_id = "
                                        "(SELECT MIN(representation_id) FROM tokens)")
        partial = engine.search(query, targets=["image"], k=20)  # a candidate lacks tokens: the default falls back
        assert partial and all(r.rerank_score is None for r in partial)
        with pytest.raises(RerankerUnavailable, match="ingest --tokens"):
            engine.search(query, targets=["image"], k=20, rerank=True)
