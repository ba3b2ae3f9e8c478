"""A video result over HTTP: the moment in the result, the matched frame as its thumbnail, the file served with range
requests (206) so a player seeks, and a video refused as a query."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.facade import Engine
from engine.datasets.videos import write_video
from engine.server.app import ServerConfig, create_app
from ingest.pipeline import IngestOptions
from tests.videos import SHOTS, SOUNDS, picture

pytestmark = pytest.mark.slow  # one tiny-random ingest (its towers' imports) behind every test here


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-server")
    (root / "media").mkdir()
    write_video(root / "media" / "scenes.webm", SHOTS, SOUNDS)
    (root / "media" / "note.txt").write_text("a red square above a blue circle")
    with Engine.open(root / "store", "tiny-random") as engine:
        assert engine.ingest([root / "media"], IngestOptions(workers=0)).failed == 0
    app = create_app(root / "store", ServerConfig(allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        yield client, root


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _video_hit(client) -> dict:
    response = client.post("/search", files={"file": ("q.jpg", _jpeg(picture(1)), "image/jpeg")},
                           data={"targets": "video", "k": "3"})
    assert response.status_code == 200, response.text
    (hit,) = response.json()["results"]
    return hit


def test_a_video_result_names_its_moment_and_links_the_frame(served):
    client, _ = served
    hit = _video_hit(client)
    assert hit["modality"] == "video" and hit["name"] == "scenes.webm"
    assert hit["match"]["kind"] == "frame" and hit["match"]["offset_seconds"] == 3.0
    assert hit["media_url"] == f"/media/{hit['item_id']}"
    assert hit["thumb_url"] == f"/media/{hit['item_id']}?thumb=1&t=3.00"
    thumb = client.get(hit["thumb_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    shown = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("RGB"), dtype=np.float32).mean(axis=(0, 1))
    expected = np.asarray(picture(1).resize((160, 120)), dtype=np.float32).mean(axis=(0, 1))
    assert np.abs(shown - expected).max() < 12  # the frame shown at 3 s, not the red shot before it
    first = np.asarray(Image.open(io.BytesIO(client.get(f"/media/{hit['item_id']}?thumb=1&t=1").content)))
    assert first.mean(axis=(0, 1))[0] > 150  # at 1 s: the red shot


def test_the_video_is_served_with_range_requests(served):
    client, root = served
    item = _video_hit(client)["item_id"]
    size = (root / "media" / "scenes.webm").stat().st_size
    whole = client.get(f"/media/{item}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
    assert whole.headers["accept-ranges"] == "bytes" and len(whole.content) == size
    part = client.get(f"/media/{item}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == (root / "media" / "scenes.webm").read_bytes()[100:200]
    tail = client.get(f"/media/{item}", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and len(tail.content) == 500
    assert client.get(f"/media/{item}", headers={"Range": f"bytes={size + 10}-"}).status_code == 416


def test_bad_moments_and_video_queries_are_refused(served):
    client, root = served
    item = _video_hit(client)["item_id"]
    assert client.get(f"/media/{item}?thumb=1&t=-1").status_code == 422
    assert client.get(f"/media/{item}?thumb=1&t=nan").status_code == 422
    note = next(r for r in client.post("/search", json={"text": "a red square", "targets": ["text"]}).json()["results"])
    assert client.get(f"/media/{note['item_id']}?thumb=1").status_code == 404
    upload = client.post("/search", files={"file": ("clip.webm", (root / "media" / "scenes.webm").read_bytes(),
                                                    "video/webm")})
    assert upload.status_code == 415 and "video cannot be a query" in upload.json()["error"]["message"]
