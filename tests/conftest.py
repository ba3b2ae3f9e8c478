"""Shared fixtures: tiny models and small ingested stores built once per session, seeded media, no network.

Session stores are READ ONLY: a test that writes to one asks for ``tiny_store_copy`` (a private copy of the store,
made with copytree, cheaper than ingesting again) instead of ``tiny_store``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("XMODAL_OFFLINE", "1")  # tests never download
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MINI = REPO / "data" / "xmodal-mini" / "xmodal-mini.json"
CAPTION = "a lighthouse on a cliff at dusk"


@dataclass(frozen=True)
class IngestedStore:
    """A store ingested with tiny-random: its directory, the media folder and the generated files."""

    store: Path  # the store directory (catalog.db, indexes/, xmodal.json)
    root: Path  # media/ (good_files: 5 images, 3 sounds, 3 notes; note), extra/lighthouse.jpg, captioned.csv
    files: tuple[Path, ...]  # good_files' paths: images 0-4, sounds 5-7, notes 8-10
    captioned: Path  # extra/lighthouse.jpg, ingested through captioned.csv with the caption CAPTION
    note: Path  # media/notes/lighthouse.txt: a note that says CAPTION too (a text, not a photo)


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny-random preset on CPU, built once."""
    from engine.models import load_encoder

    return load_encoder("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def mini_encoder():
    """The shipped xmodal-mini preset on CPU, built once; skipped where data/xmodal-mini is absent."""
    if not SHIPPED_MINI.is_file():
        pytest.skip("data/xmodal-mini is absent")
    from engine.models import load_encoder

    return load_encoder("xmodal-mini", device="cpu")


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> IngestedStore:
    """Generated media of every modality plus a captioned photo, ingested once with tiny-random: READ ONLY."""
    from engine.api.facade import Engine
    from ingest.pipeline import IngestOptions
    from tests.corpus import good_files, jpeg_bytes

    root = tmp_path_factory.mktemp("tiny-store")
    files = good_files(root / "media", n_images=5, n_audio=3, n_texts=3)
    captioned = root / "extra" / "lighthouse.jpg"
    captioned.parent.mkdir()
    captioned.write_bytes(jpeg_bytes(200))
    (root / "captioned.csv").write_text(f"path,caption\nextra/lighthouse.jpg,{CAPTION}\n")
    note = root / "media" / "notes" / "lighthouse.txt"
    note.write_text(CAPTION + " (a note, not a photo)\n")
    with Engine.open(root / "store", "tiny-random") as engine:
        summary = engine.ingest([root / "media", root / "captioned.csv"], IngestOptions(workers=0))
    assert summary.failed == 0, summary.failures
    return IngestedStore(root / "store", root, tuple(files), captioned, note)


@pytest.fixture()
def tiny_store_copy(tiny_store: IngestedStore, tmp_path: Path) -> IngestedStore:
    """A private copy of ``tiny_store``'s store to write to (its media stay shared: do not change them)."""
    copy = tmp_path / "store"
    shutil.copytree(tiny_store.store, copy)
    return IngestedStore(copy, tiny_store.root, tiny_store.files, tiny_store.captioned, tiny_store.note)


@pytest.fixture(scope="session")
def sample_media():
    """A few seeded images, texts and audio clips of varied sizes and rates."""
    from engine.models import AudioClip

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(64, 64), (120, 80), (30, 200)]
    ] + [Image.new("L", (50, 50), 128), Image.new("RGBA", (40, 60), (10, 20, 30, 128))]
    texts = ["a red square above a blue circle", "a dog barking", "", "雨の音", "x" * 500]
    t = np.arange(16000 * 2) / 16000
    audio = [
        AudioClip(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000),
        AudioClip(rng.standard_normal((8000 * 3, 2)).astype(np.float32) * 0.1, 8000),
        (rng.standard_normal(44100 * 12).astype(np.float32) * 0.1, 44100),
        (np.zeros(100, dtype=np.float32), 48000),
    ]
    return {"image": images, "text": texts, "audio": audio}


@pytest.fixture(scope="session")
def ray_cluster():
    """A head (1 CPU) and one worker node (1 CPU) on 127.0.0.1, this process the driver: a 2-node cluster sized
    for the 2-core machine; a ``ingest.ray_local.LocalCluster``, shared by every Ray test of the session (ingest
    runners, sharded search): starting a cluster costs ~30 s here."""
    pytest.importorskip("ray")
    import ray

    from ingest.ray_local import LocalCluster, loopback

    if ray.is_initialized():  # another package's module left a connection: not ours to reuse
        ray.shutdown()
    with loopback():
        cluster = LocalCluster(head_cpus=1, object_store_mb=100)
        try:
            cluster.start()
            cluster.add_node(cpus=1)
            cluster.connect()
            yield cluster
        finally:
            cluster.shutdown()


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (`-n 2 --dist loadgroup`), every test that uses the session's Ray cluster runs in one
    worker, so the cluster starts once (~30 s) and two clusters never compete for the two cores."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "ray_cluster" in getattr(item, "fixturenames", ()) or any(isinstance(v, str) and v == "ray" for v in params.values()):
            item.add_marker(pytest.mark.xdist_group("ray"))
