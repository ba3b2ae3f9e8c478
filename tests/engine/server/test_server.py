"""API tests with FastAPI's TestClient over a tiny-random store: searches, uploads, limits, errors, media, stats."""

import io
import json
import os
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.cli import build_parser
from engine.api.facade import Engine
from core.errors import WeightsUnavailable
from engine.server.app import ServerConfig, create_app
from engine.server.media import sniff
from ingest.pipeline import IngestOptions
from tests.corpus import good_files, jpeg_bytes, wav_bytes

TEST_HOST = ("testserver",)  # the Host header of the TestClient


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    files = good_files(root / "media", n_images=5, n_audio=3, n_texts=3)
    (root / "extra").mkdir()
    (root / "extra" / "lighthouse.jpg").write_bytes(jpeg_bytes(200))
    (root / "captioned.csv").write_text("path,caption\nextra/lighthouse.jpg,a lighthouse on a cliff at dusk\n")
    with Engine.open(root / "store", "tiny-random") as engine:
        summary = engine.ingest([root / "media", root / "captioned.csv"], IngestOptions(workers=0))
    assert summary.failed == 0
    app = create_app(root / "store", ServerConfig(max_upload_mb=1, allowed_hosts=TEST_HOST))
    with TestClient(app) as client:
        yield client, files, root


def _by_uri(client, path):
    listing = client.post("/search", json={"text": "anything", "k": 50}).json()["results"]
    return next(r for r in listing if r["uri"] == str(path))


def test_text_search(served):
    client, _, _ = served
    response = client.post("/search", json={"text": "a lighthouse on a cliff at dusk", "targets": ["image"], "k": 3})
    assert response.status_code == 200
    body = response.json()
    top = body["results"][0]
    assert top["name"] == "lighthouse.jpg" and top["match"]["kind"] == "caption"
    assert top["match"]["text"] == "a lighthouse on a cliff at dusk" and top["modality"] == "image"
    assert top["thumb_url"] == f"/media/{top['item_id']}?thumb=1"
    assert body["took_ms"] >= 0


def test_text_search_all_targets_and_filters(served):
    client, _, _ = served
    body = client.post("/search", json={"text": "a red square", "k": 20}).json()
    assert {r["modality"] for r in body["results"]} == {"image", "audio", "text"}
    only_audio = client.post("/search", json={"text": "a red square", "k": 5,
                                              "filters": {"modalities": ["audio"]}}).json()["results"]
    assert only_audio and all(r["modality"] == "audio" for r in only_audio)
    globbed = client.post("/search", json={"text": "a red square", "k": 5,
                                           "filters": {"uri_glob": "*/notes/*"}}).json()["results"]
    assert globbed and all("/notes/" in r["uri"] for r in globbed)


@pytest.mark.parametrize("index, modality", [(1, "image"), (5, "audio")])
def test_upload_search_finds_the_same_file(served, index, modality):
    client, files, _ = served
    data = files[index].read_bytes()
    response = client.post("/search", files={"file": ("query.bin", data, "application/octet-stream")},
                           data={"targets": modality, "k": "3"})
    assert response.status_code == 200, response.text
    top = response.json()["results"][0]
    assert top["uri"] == str(files[index])
    assert top["first_stage"] == pytest.approx(1.0, abs=1e-4)
    assert response.json()["query"]["modalities"] == [modality]


def test_upload_with_text_mixes_both(served):
    client, files, _ = served
    response = client.post("/search", files={"file": ("q.jpg", files[0].read_bytes(), "image/jpeg")},
                           data={"text": "at night", "text_weight": "0.5", "k": "4"})
    assert response.status_code == 200
    assert response.json()["query"]["modalities"] == ["image", "text"]


def test_oversize_upload_is_413(served):
    client, _, _ = served
    big = jpeg_bytes(1) + b"\0" * (1 << 20)
    response = client.post("/search", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_oversize_json_is_413(served):
    client, _, _ = served
    response = client.post("/search", content=b'{"text": "' + b"a" * (2 << 20) + b'"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("payload", [b"just some text, not media" * 4, b"%PDF-1.7\n" + b"0" * 64, b""])
def test_wrong_type_is_415_whatever_the_name_says(served, payload):
    client, _, _ = served
    response = client.post("/search", files={"file": ("photo.jpg", payload, "image/jpeg")})
    assert response.status_code == (415 if payload else 400)


def test_unsupported_content_type_is_415(served):
    client, _, _ = served
    response = client.post("/search", content=b"text=dogs", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_sniffed_but_broken_image_is_400(served):
    client, _, _ = served
    response = client.post("/search", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png")})
    assert response.status_code == 400
    assert "image" in response.json()["error"]["message"]


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b'{"text": "dogs", "k": 0}', 422),
    (b'{"text": "dogs", "targets": ["lidar"]}', 422),
    (b'{"text": "dogs", "fusion": "max"}', 422),
    (b'{"text": "dogs", "unknown": 1}', 422),
    (b'{"k": 3}', 400),
    (b'[1, 2]', 422),
])
def test_malformed_requests(served, body, status):
    client, _, _ = served
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


def test_item_and_unknown_id(served):
    client, _, root = served
    hit = _by_uri(client, root / "extra" / "lighthouse.jpg")
    item = client.get(f"/items/{hit['item_id']}").json()
    assert item["uri"] == str(root / "extra" / "lighthouse.jpg")
    assert {r["kind"] for r in item["representations"]} == {"image", "caption"}
    assert client.get("/items/987654").status_code == 404
    assert client.get("/items/not-a-number").status_code == 422


def test_media_is_served_by_catalog_id_only(served):
    client, files, _ = served
    image, audio, text = (_by_uri(client, files[i]) for i in (0, 5, 8))
    response = client.get(image["media_url"])
    assert response.status_code == 200 and response.content == files[0].read_bytes()
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    thumb = client.get(image["thumb_url"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    wav = client.get(audio["media_url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    ranged = client.get(audio["media_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    assert text["media_url"] is None
    assert client.get(f"/media/{text['item_id']}").status_code == 404  # text items have no media file
    assert client.get("/media/987654").status_code == 404
    for path in ("/media/..%2F..%2Fetc%2Fpasswd", "/media/%2Fetc%2Fpasswd", "/media/1/../../etc/passwd"):
        assert client.get(path).status_code in (404, 422)


def _ingested_then_removed(root, name: str, seed: int) -> tuple[int, object]:
    """An image ingested into the served store, then its file removed: (its item id, its path)."""
    path = root / "media" / "images" / name
    path.write_bytes(jpeg_bytes(seed))
    with Engine.open(root / "store") as engine:
        engine.ingest([path], IngestOptions(workers=0))
        item = engine.store.catalog.item_by_uri(str(path)).id
    path.unlink()
    return item, path


def test_deleted_file_media_is_404(served):
    client, _, root = served
    gone, _ = _ingested_then_removed(root, "gone.jpg", 77)
    assert client.get(f"/media/{gone}").status_code == 404


def test_health_and_stats(served):
    client, _, _ = served
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["preset"] == "tiny-random"
    stats = client.get("/stats").json()
    assert stats["preset"] == "tiny-random" and stats["dim"] == 64
    assert stats["items"]["image"] >= 5 and stats["items"]["audio"] == 3 and stats["items"]["text"] == 3
    assert set(stats["indexes"]) == {"image", "audio", "text"}
    assert all(v["type"] for v in stats["indexes"].values())
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/search", "/items/{item_id}", "/media/{item_id}"}


def test_page_and_static_files(served):
    client, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../server.py").status_code == 404


def test_cors_closed_by_default(served, tmp_path):
    client, _, root = served
    response = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    app = create_app(root / "store", ServerConfig(cors_origins=("http://localhost:3000",), allowed_hosts=TEST_HOST))
    with TestClient(app) as open_client:
        allowed = open_client.get("/health", headers={"Origin": "http://localhost:3000"})
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
        denied = open_client.get("/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in denied.headers


def test_unexpected_errors_have_no_traceback():
    def boom():
        raise RuntimeError("secret internals /home/x/.ssh")

    app = create_app(boom, ServerConfig(allowed_hosts=TEST_HOST))
    with TestClient(app, raise_server_exceptions=False) as broken:
        response = broken.post("/search", json={"text": "dogs"})
        assert response.status_code == 500
        assert "Traceback" not in response.text and "secret" not in response.text
        assert response.json()["error"]["ref"]
        assert broken.get("/health").status_code == 500


def test_weights_unavailable_is_503():
    def missing():
        raise WeightsUnavailable("hf:x/y", ["model.safetensors"], "put it in the cache")

    with TestClient(create_app(missing, ServerConfig(allowed_hosts=TEST_HOST))) as client:
        assert client.get("/health").status_code == 503
        response = client.post("/search", json={"text": "dogs"})
        assert response.status_code == 503 and "weights" in response.json()["error"]["message"]


def test_app_from_env_builds_the_same_app(served, monkeypatch):
    from engine.server.app import SPEC_ENV, EngineSpec, app_from_env, spec_env

    _, _, root = served
    monkeypatch.setenv(SPEC_ENV, spec_env(EngineSpec(str(root / "store")),
                                          ServerConfig(cors_origins=("http://a.b",), allowed_hosts=TEST_HOST)))
    with TestClient(app_from_env()) as client:  # what each ``--workers`` process runs
        assert client.get("/health").json()["preset"] == "tiny-random"
        assert client.get("/health", headers={"Origin": "http://a.b"}).headers["access-control-allow-origin"]


def test_sniff_table():
    assert sniff(jpeg_bytes(1)[:16]) == ("image", "image/jpeg")
    assert sniff(wav_bytes(1)[:16]) == ("audio", "audio/wav")
    assert sniff(wav_bytes(1, fmt="FLAC")[:16]) == ("audio", "audio/flac")
    assert sniff(wav_bytes(1, fmt="OGG")[:16]) == ("audio", "audio/ogg")
    assert sniff(b"RIFF\0\0\0\0AVI LIST") is None
    assert sniff(b"<html>") is None


def test_serve_command_has_help_and_safe_defaults():
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.max_upload_mb == 20.0 and args.cors_origin == []
    sub = next(a for a in parser._actions if a.dest == "command").choices["serve"]
    assert sub.description
    assert all(a.help for a in sub._actions)
    assert json.dumps(vars(args), default=str)


def test_media_swapped_for_a_fifo_is_404_at_once(served):
    client, _, root = served
    item, swapped = _ingested_then_removed(root, "swapped.jpg", 78)
    os.mkfifo(swapped)  # opening a FIFO for reading would wait for a writer forever
    started = time.monotonic()
    assert client.get(f"/media/{item}").status_code == 404
    assert client.get(f"/media/{item}?thumb=1").status_code == 404
    assert time.monotonic() - started < 5


def test_a_served_engine_has_its_query_towers_loaded_at_start(served):
    from engine.server.app import EngineSpec

    _, _, root = served
    engine = EngineSpec(store=str(root / "store")).open()
    try:  # towers load lazily elsewhere; the server loads what its queries need before the first request
        assert {"text", "image", "audio"} <= set(engine.encoder.towers)
    finally:
        engine.close()
