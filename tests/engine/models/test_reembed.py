"""Vectors keyed by the weights that made them: the catalog stamps every vector set with a fingerprint, index files
carry it, a changed preset is refused whatever happened to xmodal.json, and ``--reembed`` re-embeds in place (equal
to a fresh ingest, resumable after a kill)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from core.errors import WeightsChanged, XmodalError
from engine.api.facade import Engine
from engine.datasets.videos import write_video
from engine.cli import main
from engine.models import Head, load_encoder
from engine.models.fingerprint import modality_fingerprint
from engine.models.heads import HeadConfig
from engine.models.presets import get_preset as load_preset
from index import open_store
from index.persist import read_meta
from index.schema import MIGRATIONS, migrate
from index.settings import read_settings, write_settings
from tests.videos import SHOTS, SOUNDS

MODEL = "tiny-fp"
HEAD_IN = {"image": 64, "text": 64, "audio": 32}  # tiny-random's tower widths


def _heads(folder: Path, seed: int) -> Path:
    for i, (modality, width) in enumerate(HEAD_IN.items()):
        torch.manual_seed(seed * 10 + i)
        Head(HeadConfig("linear", width, 64)).save(folder / modality)
    return folder


def _preset(tmp: Path, heads: Path, tag: str) -> Path:
    """tiny-random with linear heads read from ``heads``; both versions share one name (a re-pointed preset)."""
    raw = json.loads((Path(load_encoder.__code__.co_filename).parent / "presets" / "tiny-random.json").read_text())
    raw["name"] = MODEL
    raw["heads"] = {m: {"kind": "linear", "path": str(heads / m)} for m in HEAD_IN}
    path = tmp / f"{MODEL}-{tag}.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two presets of one name (heads v1 and v2), a small folder, and a store ingested fresh with v2 (the truth)."""
    tmp = tmp_path_factory.mktemp("reembed")
    v1 = _preset(tmp, _heads(tmp / "heads-v1", 1), "v1")
    v2 = _preset(tmp, _heads(tmp / "heads-v2", 2), "v2")
    media = tmp / "media"
    media.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(media / f"p{i}.png")
    sf.write(media / "tone.wav", np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
    (media / "note.txt").write_text("a red circle beside a blue square")
    write_video(media / "scenes.mp4", SHOTS, SOUNDS)  # frames and soundtrack windows, matched again by offset
    (media / "captions.csv").write_text("image,caption\np0.png,a noisy photo of static\n")
    fresh = tmp / "fresh-v2"
    with Engine.open(fresh, preset=v2) as engine:
        assert engine.ingest(_paths(media)).failures == []
    return {"tmp": tmp, "v1": v1, "v2": v2, "media": media, "fresh": fresh}


def _paths(media: Path) -> list[Path]:
    return [media, media / "captions.csv"]


def _old_store(world, name: str) -> Path:
    store = world["tmp"] / name
    with Engine.open(store, preset=world["v1"]) as engine:
        assert engine.ingest(_paths(world["media"])).failures == []
    return store


def _vectors(store: Path) -> dict[tuple, np.ndarray]:
    """Every vector of the model keyed by what it represents (uri, kind, modality, offset, text)."""
    with open_store(store, create=False) as opened:
        cat = opened.catalog
        out = {}
        for s in cat.vector_sets():
            ids, vectors = cat.load_vectors(s.model, s.modality)
            hits = cat.hydrate(ids)
            for i, v in zip(ids, vectors):
                h = hits[int(i)]
                out[(h.uri, h.kind, h.modality, h.offset_seconds, h.text)] = v
        return out


def _assert_equal_vectors(a: Path, b: Path) -> None:
    va, vb = _vectors(a), _vectors(b)
    assert set(va) == set(vb) and len(va) >= 5
    assert {k[2] for k in va if "scenes.mp4" in k[0]} == {"image", "audio"}
    for key in va:
        np.testing.assert_allclose(va[key], vb[key], atol=1e-5, err_msg=str(key))


def test_catalog_and_index_files_record_the_fingerprint(world):
    preset = load_preset(world["v2"])
    with open_store(world["fresh"], create=False) as store:
        sets = {s.modality: s.weights for s in store.catalog.vector_sets() if s.model == MODEL}
        assert sets == {m: modality_fingerprint(preset, m) for m in ("image", "text", "audio")}
        for modality, fp in sets.items():
            assert read_meta(world["fresh"], MODEL, modality).weights == fp
        # the catalog itself refuses vectors of other weights into a set that holds some
        rep = int(store.catalog.vector_ids(MODEL, "text")[0])
        with pytest.raises(WeightsChanged, match="--reembed"), store.catalog.atomic():
            store.catalog.write_vectors(MODEL, [rep], np.full((1, 64), 0.125, np.float32), weights={"text": "0" * 16})


@pytest.mark.slow
def test_lost_or_garbled_settings_never_adopt_other_weights(world):
    store = _old_store(world, "lost-settings")
    (store / "xmodal.json").unlink()
    with pytest.raises(WeightsChanged, match="--reembed"):
        Engine.open(store, preset=world["v2"])
    (store / "xmodal.json").write_text("{ not json")
    with pytest.raises(XmodalError):
        Engine.open(store, preset=world["v2"])
    (store / "xmodal.json").unlink()
    assert main(["search", "a red circle", "--store", str(store), "--preset", str(world["v2"])]) == 2
    # the weights that made them still open the store and search it
    with Engine.open(store, preset=world["v1"]) as engine:
        assert engine.search("a red circle", k=2)


def test_store_from_before_the_catalog_kept_fingerprints(world):
    store = _old_store(world, "pre-migration")
    with sqlite3.connect(store / "catalog.db") as conn:
        conn.execute("UPDATE vector_sets SET weights = NULL")
    # xmodal.json's mirror is read for such a set: it names v1, so v2 is refused
    with pytest.raises(WeightsChanged):
        Engine.open(store, preset=world["v2"])
    # without a mirror either, the vectors are adopted as the current weights', once, into the catalog
    write_settings(store, {k: v for k, v in read_settings(store).items() if k != "weights"})
    with Engine.open(store, preset=world["v1"]) as engine:
        assert engine.search("a red circle", k=2)
    with open_store(store, create=False) as opened:
        assert all(s.weights for s in opened.catalog.vector_sets())
    (store / "xmodal.json").unlink()
    with pytest.raises(WeightsChanged):
        Engine.open(store, preset=world["v2"])


def test_migration_from_schema_8_keeps_data_and_adds_fingerprints(tmp_path):
    conn = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:8])
    conn.execute("INSERT INTO vector_sets (model, modality, dim, created_at) VALUES ('m', 'text', 4, 'then')")
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT model, dim, weights FROM vector_sets").fetchall() == [("m", 4, None)]
    assert conn.execute("SELECT COUNT(*) FROM staged_vectors").fetchone() == (0,)
    conn.close()


@pytest.mark.slow
def test_reembed_equals_a_fresh_ingest(world, capsys):
    store = _old_store(world, "reembed")
    with pytest.raises(WeightsChanged):
        Engine.open(store, preset=world["v2"])
    running = Engine.open(store, preset=world["v1"])  # a server still holding the old weights
    assert running.search("a red circle", k=2)
    assert main(["ingest", *map(str, _paths(world["media"])), "--store", str(store), "--preset", str(world["v2"]), "--reembed",
                 "--no-progress"]) == 0
    assert "re-embedded" in capsys.readouterr().out
    with running, pytest.raises(WeightsChanged):
        running.search("a red circle", k=2)  # its queries would meet vectors of the new weights: refused
    _assert_equal_vectors(store, world["fresh"])
    fp = modality_fingerprint(load_preset(world["v2"]), "image")
    assert read_meta(store, MODEL, "image").weights == fp  # the index was rebuilt from the new vectors
    with Engine.open(store, preset=world["v2"]) as engine:
        assert engine.search("a red circle", k=2)


@pytest.mark.slow
def test_reembed_killed_halfway_leaves_the_old_set_whole_and_resumes(world, monkeypatch):
    from index.catalog import Catalog

    store = _old_store(world, "killed")
    before = _vectors(store)
    real, calls = Catalog.stage_vectors, []

    def dies_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Catalog, "stage_vectors", dies_on_the_third)
    with Engine.open(store, preset=world["v2"], reembed=True) as engine:
        with pytest.raises(WeightsChanged):
            engine.search("a red circle", k=2)  # refused until re-embedded
        with pytest.raises(KeyboardInterrupt):
            engine.reembed(dataclass_options(batch_size=1))
    monkeypatch.setattr(Catalog, "stage_vectors", real)
    after = _vectors(store)
    assert set(after) == set(before) and all(np.array_equal(after[k], before[k]) for k in before)
    with pytest.raises(WeightsChanged):
        Engine.open(store, preset=world["v2"])
    with open_store(store, create=False) as opened:
        staged = opened.catalog.db.execute("SELECT COUNT(*) FROM staged_vectors").fetchone()[0]
    assert staged == 2  # two batches of one were staged before the kill
    with Engine.open(store, preset=world["v2"], reembed=True) as engine:
        done = engine.reembed(dataclass_options(batch_size=1))
        assert sum(done.resumed.values()) == staged and done.failures == []
        assert done.swapped == sum(done.resumed.values()) + sum(done.encoded.values())
        assert engine.search("a red circle", k=2)
    _assert_equal_vectors(store, world["fresh"])


@pytest.mark.slow
def test_reembed_fails_a_changed_file_and_the_ingest_adds_it_back(world, tmp_path):
    media = tmp_path / "media"
    shutil.copytree(world["media"], media)
    store = tmp_path / "store"
    with Engine.open(store, preset=world["v1"]) as engine:
        engine.ingest(_paths(media))
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(media / "p1.png")
    with Engine.open(store, preset=world["v2"], reembed=True) as engine:
        done = engine.reembed()
        assert [uri for uri, _ in done.failures] == [str(media / "p1.png")]
        assert "changed since" in done.failures[0][1]
        summary = engine.ingest(_paths(media))
        assert summary.added == 1 and summary.failures == []
        assert engine.search("a red circle", k=2)


def dataclass_options(**changes):
    from ingest.pipeline import IngestOptions

    return IngestOptions(**changes)


@pytest.mark.slow
def test_reembed_with_enrich_only_scans_nothing_and_re_embeds(world, capsys):
    store = _old_store(world, "enrich-only")
    assert main(["ingest", str(world["media"]), "--store", str(store), "--preset", str(world["v2"]), "--reembed",
                 "--enrich-only", "--no-progress"]) == 0
    assert "re-embedded" in capsys.readouterr().out
    _assert_equal_vectors(store, world["fresh"])
