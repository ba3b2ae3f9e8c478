"""Captions and metadata from manifests and caption files merge onto items already in the store (folder first,
captions later), only new captions are embedded, a source's dropped captions go, other sources' stay."""

import json

import numpy as np
import pytest

import ingest.runner
from engine.api.facade import Engine
from engine.query import Filters
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes

OPTS = IngestOptions(workers=0, batch_size=4)


@pytest.fixture()
def engine(tmp_path):
    with Engine.open(tmp_path / "store", "tiny-random") as eng:
        yield eng


@pytest.fixture()
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(4):
        (root / f"p{i}.jpg").write_bytes(jpeg_bytes(i))
    return root


def _manifest(tmp_path, rows, name="pets.csv"):
    path = tmp_path / name
    lines = ["path,caption,caption,album"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


PETS = [(f"photos/p{i}.jpg", f"pet photo {i} on a sofa", f"animal number {i}", "pets") for i in range(4)]


def _captions(engine, uri):
    item = engine.store.catalog.item_by_uri(uri)
    return sorted((r.text, r.source) for r in engine.store.catalog.representations_of(item.id) if r.kind == "caption")


class _RefusingRunner(ingest.runner.InlineRunner):
    """A runner that fails the test if any file reaches decoding."""

    def map(self, tasks, prefetch):
        for task in tasks:
            raise AssertionError(f"{task.uri} was decoded again")
        yield from ()


def _no_decode(monkeypatch):
    monkeypatch.setitem(ingest.runner.RUNNERS, OPTS.runner, _RefusingRunner)


def test_folder_then_manifest_adds_captions_and_metadata_without_decoding(engine, tmp_path, photos, monkeypatch):
    first = engine.ingest([photos], OPTS)
    assert first.added == 4
    image_vectors = engine.store.catalog.load_vectors(engine.model, "image")
    manifest = _manifest(tmp_path, PETS)
    _no_decode(monkeypatch)
    summary = engine.ingest([manifest], OPTS)
    assert (summary.unchanged, summary.added, summary.failed) == (4, 0, 0)
    assert (summary.captions_added, summary.captions_removed, summary.metadata_updated, summary.annotated) == (8, 0, 4, 4)
    source = str(manifest)
    for i in range(4):
        uri = str(photos / f"p{i}.jpg")
        assert _captions(engine, uri) == sorted([(f"animal number {i}", source), (f"pet photo {i} on a sofa", source)])
        assert engine.store.catalog.item_by_uri(uri).metadata == {"album": "pets"}
    ids, vectors = engine.store.catalog.load_vectors(engine.model, "image")  # the photos' own vectors untouched
    np.testing.assert_array_equal(ids, image_vectors[0])
    np.testing.assert_array_equal(vectors, image_vectors[1])
    found = engine.search("pet photo 2 on a sofa", k=10, filters=Filters(metadata={"album": "pets"}))
    assert {r.uri for r in found} == {str(photos / f"p{i}.jpg") for i in range(4)}
    best = found[0]
    assert best.uri == str(photos / "p2.jpg") and best.match.kind == "caption"  # found through its new caption
    assert engine.search("pet photo", k=10, filters=Filters(metadata={"album": "work"})) == []
    from index import check_store

    assert check_store(engine.store.root).ok


def test_rerun_changes_nothing_and_edits_apply_per_source(engine, tmp_path, photos):
    engine.ingest([photos], OPTS)
    manifest = _manifest(tmp_path, PETS)
    coco = tmp_path / "more.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "photos/p0.jpg"}],
                                "annotations": [{"image_id": 1, "id": 5, "caption": "a cat asleep"}]}))
    engine.ingest([manifest, coco], OPTS)
    generation = engine.store.catalog.generation
    again = engine.ingest([manifest, coco], OPTS)
    assert (again.captions_added, again.captions_removed, again.metadata_updated, again.annotated) == (0, 0, 0, 0)
    assert engine.store.catalog.generation == generation
    # p0 loses one caption and changes album; p3's row goes; p1 gets a new caption and keeps the other
    rows = [("photos/p0.jpg", "pet photo 0 on a sofa", "", "cats"), PETS[1][:2] + ("a new caption", "pets"), PETS[2]]
    _manifest(tmp_path, rows)
    summary = engine.ingest([manifest], OPTS)  # the COCO file is not scanned: its caption stays
    assert (summary.captions_added, summary.captions_removed, summary.metadata_updated) == (1, 4, 1)
    assert summary.annotated == 2 and summary.deleted == 0
    src, other = str(manifest), str(coco)
    assert _captions(engine, str(photos / "p0.jpg")) == [("a cat asleep", other), ("pet photo 0 on a sofa", src)]
    assert engine.store.catalog.item_by_uri(str(photos / "p0.jpg")).metadata == {"album": "cats"}
    assert _captions(engine, str(photos / "p1.jpg")) == [("a new caption", src), ("pet photo 1 on a sofa", src)]
    assert _captions(engine, str(photos / "p3.jpg")) == []
    assert engine.store.catalog.item_by_uri(str(photos / "p3.jpg")).metadata == {"album": "pets"}  # kept: merged
    from index import check_store

    assert check_store(engine.store.root).ok
    index_ids = set(engine.store.index(engine.model, "text").ids().tolist())
    live = {i for i in engine.store.catalog.vector_ids(engine.model, "text").tolist()}
    assert index_ids == live


def test_changed_photo_keeps_manifest_captions_and_metadata(engine, tmp_path, photos):
    engine.ingest([photos], OPTS)
    engine.ingest([_manifest(tmp_path, PETS)], OPTS)
    (photos / "p1.jpg").write_bytes(jpeg_bytes(77))
    summary = engine.ingest([photos], OPTS)
    assert summary.added == 1 and summary.captions_removed == 0
    uri = str(photos / "p1.jpg")
    assert [c for c, _ in _captions(engine, uri)] == ["animal number 1", "pet photo 1 on a sofa"]
    assert engine.store.catalog.item_by_uri(uri).metadata == {"album": "pets"}
    kinds = sorted(r.kind for r in engine.store.catalog.representations_of(engine.store.catalog.item_by_uri(uri).id))
    assert kinds == ["caption", "caption", "image"]  # one image representation, re-encoded


def test_manifest_and_folder_in_one_run_and_twins(engine, tmp_path, photos):
    (photos / "twin.jpg").write_bytes((photos / "p0.jpg").read_bytes())
    manifest = _manifest(tmp_path, PETS[:1])
    summary = engine.ingest([photos, manifest], OPTS)  # p0 named twice: one item, decoded once
    assert summary.added + summary.reused == 5 and summary.failed == 0
    assert summary.captions_added == 2
    assert [c for c, _ in _captions(engine, str(photos / "p0.jpg"))] == ["animal number 0", "pet photo 0 on a sofa"]
    assert _captions(engine, str(photos / "twin.jpg")) == []  # a twin copies vectors, not another item's captions


def test_coco_after_folder(engine, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images = [{"id": i, "file_name": f"{i:06d}.jpg"} for i in range(3)]
    for image in images:
        (root / "val2017" / image["file_name"]).write_bytes(jpeg_bytes(image["id"]))
    notes = [{"id": 10 * i + j, "image_id": i, "caption": f"scene {i} view {j}"} for i in range(3) for j in range(5)]
    captions = root / "annotations" / "captions_val2017.json"
    captions.write_text(json.dumps({"images": images, "annotations": notes}))
    engine.ingest([root / "val2017"], OPTS)
    summary = engine.ingest([captions], OPTS)
    assert (summary.unchanged, summary.captions_added, summary.annotated) == (3, 15, 3)
    total = sum(len(_captions(engine, str(root / "val2017" / i["file_name"]))) for i in images)
    assert total == 15


def test_text_record_metadata_updates(engine, tmp_path):
    records = tmp_path / "notes.jsonl"
    records.write_text(json.dumps({"id": "n1", "text": "buy milk", "album": "home"}) + "\n")
    engine.ingest([records], OPTS)
    records.write_text(json.dumps({"id": "n1", "text": "buy milk", "album": "errands"}) + "\n")
    summary = engine.ingest([records], OPTS)
    assert (summary.unchanged, summary.added, summary.metadata_updated) == (1, 0, 1)
    assert engine.store.catalog.item_by_uri(f"{records}#n1").metadata == {"album": "errands"}


def test_interrupted_batch_rolls_back_and_rerun_matches_a_clean_run(tmp_path, photos, monkeypatch):
    manifest = _manifest(tmp_path, PETS)
    with Engine.open(tmp_path / "clean", "tiny-random") as clean:
        clean.ingest([photos], OPTS)
        clean.ingest([manifest], OPTS)
        want = {u: _captions(clean, u) for u in (str(photos / f"p{i}.jpg") for i in range(4))}
    with Engine.open(tmp_path / "crashed", "tiny-random") as eng:
        eng.ingest([photos], OPTS)
        import index.catalog

        real, calls = index.catalog.Catalog.write_vectors, []

        def dies_on_second_batch(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:  # inside the second batch's transaction, after its first item's captions
                raise KeyboardInterrupt
            return real(self, *args, **kwargs)

        monkeypatch.setattr(index.catalog.Catalog, "write_vectors", dies_on_second_batch)
        with pytest.raises(KeyboardInterrupt):
            eng.ingest([manifest], OPTS)
        monkeypatch.setattr(index.catalog.Catalog, "write_vectors", real)
        counts = [len(_captions(eng, str(photos / f"p{i}.jpg"))) for i in range(4)]
        assert counts == [2, 2, 0, 0]  # the first batch committed, the second rolled back whole
        summary = eng.ingest([manifest], OPTS)
        assert summary.captions_added == 4
        assert {u: _captions(eng, u) for u in want} == want
        from index import check_store

        assert check_store(eng.store.root).ok


def test_tokens_written_for_new_captions(tmp_path, photos):
    tokens = IngestOptions(workers=0, batch_size=4, tokens=True)
    with Engine.open(tmp_path / "store", "tiny-random") as eng:
        eng.ingest([photos], tokens)
        eng.ingest([_manifest(tmp_path, PETS)], tokens)
        reps = [r.id for i in range(4) for r in eng.store.catalog.representations_of(
            eng.store.catalog.item_by_uri(str(photos / f"p{i}.jpg")).id)]
        assert len(reps) == 12 and set(eng.store.catalog.tokens_for(eng.model, reps)) == set(reps)
        again = eng.ingest([photos], tokens)
        assert again.unchanged == 4 and again.added == 0  # not re-encoded for missing tokens


COCO_MINI = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "coco-mini"


@pytest.mark.slow
@pytest.mark.skipif(not (COCO_MINI / "annotations" / "captions_val2017.json").is_file(), reason="no ../shared/data")
def test_coco_mini_folder_then_its_caption_file(engine, monkeypatch):
    folder = engine.ingest([COCO_MINI / "val2017"], IngestOptions(workers=0, batch_size=32))
    assert folder.added == 159 and folder.failed == 0
    _no_decode(monkeypatch)
    summary = engine.ingest([COCO_MINI / "annotations" / "captions_val2017.json"], IngestOptions(workers=0))
    doc = json.loads((COCO_MINI / "annotations" / "captions_val2017.json").read_text())
    captioned = {a["image_id"] for a in doc["annotations"]}
    assert (summary.unchanged, summary.added, summary.failed) == (len(doc["images"]), 0, 0) == (79, 0, 0)
    assert (summary.captions_added, summary.annotated) == (len(doc["annotations"]), len(captioned)) == (395, 79)
    stored = engine.store.catalog.db.execute("SELECT COUNT(*) FROM representations WHERE kind = 'caption'").fetchone()
    assert stored[0] == 395


@pytest.mark.slow
def test_sigkill_while_captions_land_then_rerun_gives_every_caption_once(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.ingest.test_ingest_kill import REPO, _generation

    root = tmp_path / "photos"
    root.mkdir()
    for i in range(120):
        (root / f"p{i:03d}.jpg").write_bytes(jpeg_bytes(i, size=(32, 32)))
    manifest = tmp_path / "captions.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"photos/p{i:03d}.jpg", "album": "pets",
                                            "captions": [f"photo {i} caption {j}" for j in range(5)]}) + "\n"
                                for i in range(120)))
    store = tmp_path / "store"
    with Engine.open(store, "tiny-random") as eng:
        eng.ingest([root], IngestOptions(workers=0, batch_size=32))
    start = _generation(store / "catalog.db")
    cmd = [sys.executable, "-m", "engine", "ingest", str(manifest), "--store", str(store), "--preset", "tiny-random",
           "--batch-size", "4", "--workers", "0", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while _generation(store / "catalog.db") < start + 3 and proc.poll() is None:
            time.sleep(0.005)
        killed_mid_run = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_mid_run, "the ingest finished before it could be killed"
    with Engine.open(store, "tiny-random") as eng:
        partial = eng.store.catalog.db.execute("SELECT COUNT(*) FROM representations WHERE kind = 'caption'").fetchone()
        assert 0 < partial[0] < 600
        summary = eng.ingest([manifest], IngestOptions(workers=0))
        assert summary.captions_added == 600 - partial[0] and summary.failed == 0
        rows = eng.store.catalog.db.execute(
            "SELECT i.uri, r.text FROM representations r JOIN items i ON i.id = r.item_id WHERE r.kind = 'caption'"
        ).fetchall()
        assert sorted(rows) == sorted((str(root / f"p{i:03d}.jpg"), f"photo {i} caption {j}")
                                      for i in range(120) for j in range(5))  # each once
        assert all(i.metadata == {"album": "pets"} for i in eng.store.catalog.items())
        from index import check_store

        assert check_store(store).ok
