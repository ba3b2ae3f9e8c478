import json
import os

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.api.facade import Engine
from core.errors import InvalidInput
from engine.query import Filters, QueryPart, encode_query
from ingest.pipeline import IngestOptions
from tests.corpus import good_files, jpeg_bytes, wav_bytes


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    media = root / "media"
    files = good_files(media / "a", n_images=12, n_audio=3, n_texts=3)
    (media / "b").mkdir()
    for i in range(4):
        path = media / "b" / f"b_{i}.jpg"
        path.write_bytes(jpeg_bytes(100 + i))
        os.utime(path, (1_600_000_000 + i * 1000, 1_600_000_000 + i * 1000))
    manifest = media / "captioned.csv"
    (media / "c").mkdir()
    (media / "c" / "c0.jpg").write_bytes(jpeg_bytes(200))
    (media / "c" / "c1.wav").write_bytes(wav_bytes(7))
    manifest.write_text("path,caption,owner\nc/c0.jpg,a lighthouse on a cliff at dusk,ana\nc/c1.wav,,bo\n")
    engine = Engine.open(root / "store", "tiny-random")
    summary = engine.ingest([media / "a", media / "b", manifest], IngestOptions(workers=0))
    assert summary.failed == 0
    yield engine, media, files
    engine.close()


@pytest.mark.parametrize("modality, index", [("image", 2), ("audio", 13), ("text", 16)])
def test_same_media_query_finds_itself_first(searchable, modality, index):
    engine, _, files = searchable
    path = files[index]
    query = QueryPart(modality, path.read_text() if modality == "text" else str(path))
    results = engine.search(query, targets=[modality], k=3)
    assert results[0].uri == str(path)
    assert results[0].first_stage == pytest.approx(1.0, abs=1e-4)
    assert results[0].modality == modality


def test_caption_match_is_reported(searchable):
    engine, media, _ = searchable
    results = engine.search("a lighthouse on a cliff at dusk", targets=["image"], k=1)  # an image, via its caption
    assert results[0].uri == str(media / "c" / "c0.jpg")
    assert results[0].match.kind == "caption" and results[0].match.text == "a lighthouse on a cliff at dusk"
    assert results[0].modality == "image"


def test_results_are_per_item_across_modalities(searchable):
    engine, _, _ = searchable
    for fusion in ("rrf", "calibrated"):  # every one of the 24 items, once, whatever index it was found in
        results = engine.search("a red square", k=24, fusion=fusion)
        assert len(results) == 24
        assert len({r.item_id for r in results}) == 24
        assert {r.modality for r in results} >= {"image", "audio", "text"}
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)


def test_calibrated_keeps_cosine_order_within_a_modality(searchable):
    engine, _, _ = searchable
    results = engine.search(QueryPart("image", Image.new("RGB", (40, 40), (255, 0, 0))), indexes=["image"], k=8,
                            fusion="calibrated")
    cos = [r.first_stage for r in results]
    assert cos == sorted(cos, reverse=True)


def test_uri_filter_still_returns_k(searchable):
    engine, media, _ = searchable
    results = engine.search(QueryPart("image", str(media / "a" / "images" / "img_0.jpg")), targets=["image"], k=4,
                            depth=4, filters=Filters(uri_glob=str(media / "b") + "/*"))
    assert len(results) == 4  # the 13 other images outrank them: the search had to go deeper
    assert all("/b/" in r.uri for r in results)


def test_time_modality_and_metadata_filters(searchable):
    engine, media, _ = searchable
    timed = engine.search("x", targets=["image"], k=10, filters=Filters(mtime_after=1_600_001_500, mtime_before=1_600_003_500))
    assert sorted(r.uri for r in timed) == [str(media / "b" / f"b_{i}.jpg") for i in (2, 3)]
    only_audio = engine.search("x", k=5, filters=Filters(modalities=("audio",)))
    assert only_audio and all(r.modality == "audio" for r in only_audio)
    owned = engine.search("x", k=5, filters=Filters(metadata={"owner": "bo"}))
    assert [r.uri for r in owned] == [str(media / "c" / "c1.wav")]


def test_combined_query_is_weighted_sum(searchable):
    engine, media, _ = searchable
    image = str(media / "a" / "images" / "img_3.jpg")
    mixed = encode_query(engine.encoder, [QueryPart("image", image), QueryPart("text", "at night", 0.5)])
    vi = engine.encoder.encode("image", [Image.open(image).convert("RGB")])
    vt = engine.encoder.encode("text", ["at night"])
    expected = (vi + 0.5 * vt) / np.linalg.norm(vi + 0.5 * vt)
    np.testing.assert_allclose(mixed, expected, atol=1e-5)
    results = engine.search([QueryPart("image", image), QueryPart("text", "at night", 0.05)], targets=["image"], k=1)
    assert results[0].uri == image  # a light text weight keeps the image itself on top


@pytest.mark.parametrize("query", ["", "   ", QueryPart("image", "/no/such/file.jpg"), QueryPart("audio", b"not audio"),
                                   QueryPart("smell", "x"), 42])
def test_bad_queries_raise(searchable, query):
    engine, _, _ = searchable
    with pytest.raises(InvalidInput):
        engine.search(query, k=3)


def test_cli_search(searchable, capsys):
    engine, media, files = searchable
    store = str(engine.store.root)
    assert main(["search", "--image", str(files[0]), "--targets", "image", "--k", "2", "--store", store, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["uri"] == str(files[0]) and out[0]["match"]["kind"] == "image"
    assert main(["search", "a lighthouse on a cliff at dusk", "--store", store, "--meta", "owner=ana"]) == 0
    assert str(media / "c" / "c0.jpg") in capsys.readouterr().out
    assert main(["search", "--store", store]) == 2
    assert "give a text query" in capsys.readouterr().err
