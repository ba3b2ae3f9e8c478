import json
import os
import time

import numpy as np
import pytest

from engine.cli import main
from engine.api.facade import Engine
from ingest.pipeline import IngestOptions
from tests.corpus import broken_files, good_files, jpeg_bytes, tricky_files


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "media"
    good = good_files(root / "good")
    tricky = tricky_files(root / "tricky")
    broken = broken_files(root / "broken")
    return root, good, tricky, broken


@pytest.fixture()
def engine(tmp_path):
    with Engine.open(tmp_path / "store", "tiny-random") as eng:
        yield eng


def _ok_items(engine):
    return {i.uri: i for i in engine.store.catalog.items(status="ok")}


def test_mixed_corpus_failures_are_isolated(engine, corpus):
    root, good, tricky, broken = corpus
    summary = engine.ingest([root], IngestOptions(batch_size=4, workers=0))
    assert summary.added == len(good) + len(tricky)
    assert summary.failed == len(broken)
    assert {u for u, _ in summary.failures} == {str(p) for p in broken.values()}
    failed = {i.uri: i for i in engine.store.catalog.items(status="failed")}
    assert set(failed) == {str(p) for p in broken.values()}
    assert all(i.error for i in failed.values())
    assert set(_ok_items(engine)) == {str(p) for p in good} | {str(p) for p in tricky.values()}
    from index import check_store

    assert check_store(engine.store.root).ok  # the index agrees with the catalog


def test_vectors_are_findable(engine, corpus):
    root, good, _, _ = corpus
    engine.ingest([root / "good"], IngestOptions(workers=0))
    from PIL import Image

    query = engine.encoder.encode("image", [Image.open(good[1]).convert("RGB")])
    _, ids = engine.store.search(engine.model, "image", query, 1)
    hit = engine.store.catalog.hydrate(ids[0])[int(ids[0][0])]
    assert hit.uri == str(good[1]) and hit.kind == "image"


def test_second_run_is_a_noop(engine, corpus):
    root, good, tricky, broken = corpus
    engine.ingest([root], IngestOptions(workers=0))
    generation = engine.store.catalog.generation
    again = engine.ingest([root], IngestOptions(workers=0))
    assert again.added == again.reused == again.touched == again.deleted == again.failed == 0
    assert again.unchanged == len(good) + len(tricky)
    assert again.skipped_failed == len(broken)
    assert engine.store.catalog.generation == generation


def test_modify_touch_delete_rename(engine, tmp_path):
    root = tmp_path / "m"
    files = good_files(root, n_images=3, n_audio=1, n_texts=1)
    engine.ingest([root], IngestOptions(workers=0))
    ids = {u: i.id for u, i in _ok_items(engine).items()}
    changed, touched, deleted, renamed = files[0], files[1], files[2], files[3]
    changed.write_bytes(jpeg_bytes(99))
    os.utime(touched, (time.time() + 10, time.time() + 10))
    deleted.unlink()
    moved = renamed.with_name("moved.wav")
    renamed.rename(moved)
    summary = engine.ingest([root], IngestOptions(workers=0))
    assert (summary.added, summary.touched, summary.reused, summary.deleted) == (1, 1, 1, 2)
    ok = _ok_items(engine)
    assert ok[str(changed)].id == ids[str(changed)]  # stable id, new vectors
    assert str(deleted) not in ok and str(renamed) not in ok and str(moved) in ok
    deleted_uris = {i.uri for i in engine.store.catalog.items(status="deleted")}
    assert deleted_uris == {str(deleted), str(renamed)}
    from index import check_store

    assert check_store(engine.store.root).ok
    index_ids = set(engine.store.index(engine.model, "image").ids().tolist())
    live = {r.id for u in ok for r in engine.store.catalog.representations_of(ok[u].id) if r.modality == "image"}
    assert index_ids == live


def test_identical_content_embedded_once(engine, tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.jpg").write_bytes(jpeg_bytes(5))
    (root / "b.jpg").write_bytes(jpeg_bytes(5))
    summary = engine.ingest([root], IngestOptions(workers=0))
    assert summary.added == 1 and summary.reused == 1
    ok = _ok_items(engine)
    assert set(ok) == {str(root / "a.jpg"), str(root / "b.jpg")}
    va = engine.store.catalog.vectors_for(engine.model, [r.id for r in engine.store.catalog.representations_of(ok[str(root / "a.jpg")].id)])
    vb = engine.store.catalog.vectors_for(engine.model, [r.id for r in engine.store.catalog.representations_of(ok[str(root / "b.jpg")].id)])
    np.testing.assert_array_equal(va, vb)


def test_twin_arriving_after_its_source_was_committed_is_kept(engine, tmp_path):
    root = tmp_path / "late"
    root.mkdir()
    for i in range(5):  # a_0 and z_twin share content; with batch size 1, a_0 commits long before z_twin arrives
        (root / f"a_{i}.txt").write_text(f"note number {i}")
    (root / "z_twin.txt").write_text("note number 0")
    summary = engine.ingest([root], IngestOptions(workers=0, batch_size=1))
    assert summary.added + summary.reused == 6 and summary.failed == 0
    assert set(_ok_items(engine)) == {str(p) for p in root.iterdir()}


def test_workers_match_in_process(tmp_path, corpus):
    root, *_ = corpus
    with Engine.open(tmp_path / "s0", "tiny-random") as e0, Engine.open(tmp_path / "s1", "tiny-random") as e1:
        e0.ingest([root / "good", root / "tricky"], IngestOptions(workers=0, batch_size=3))
        e1.ingest([root / "good", root / "tricky"], IngestOptions(workers=1, batch_size=3))
        for modality in ("image", "audio", "text"):
            a = e0.store.catalog.load_vectors("tiny-random", modality)
            b = e1.store.catalog.load_vectors("tiny-random", modality)
            np.testing.assert_allclose(a[1], b[1], atol=1e-5)


def test_manifests_captions_and_text_records(engine, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        (images / f"{i}.jpg").write_bytes(jpeg_bytes(i))
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("path,caption,place\nimgs/0.jpg,a red thing,home\nimgs/1.jpg,a blue thing,work\n")
    records = tmp_path / "notes.jsonl"
    records.write_text(json.dumps({"id": "n1", "text": "first note"}) + "\n" + json.dumps({"text": "second note"}) + "\n")
    summary = engine.ingest([manifest, records], IngestOptions(workers=0))
    assert summary.failed == 0 and summary.added == 4
    ok = _ok_items(engine)
    item = ok[str(images / "0.jpg")]
    assert item.metadata.get("place") == "home"
    kinds = sorted((r.kind, r.text) for r in engine.store.catalog.representations_of(item.id))
    assert kinds == [("caption", "a red thing"), ("image", None)]
    assert f"{records}#n1" in ok and ok[f"{records}#n1"].modality == "text"
    records.write_text(json.dumps({"id": "n1", "text": "first note"}) + "\n")  # second record removed
    again = engine.ingest([manifest, records], IngestOptions(workers=0))
    assert again.deleted == 1 and again.unchanged == 3


def test_coco_json(engine, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "val2017" / "000001.jpg").write_bytes(jpeg_bytes(1))
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "000001.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "a cat"}, {"id": 11, "image_id": 1, "caption": "a kitten"}],
    }))
    summary = engine.ingest([root / "annotations" / "captions_val2017.json"], IngestOptions(workers=0))
    assert summary.added == 1 and summary.failed == 0
    item = _ok_items(engine)[str(root / "val2017" / "000001.jpg")]
    assert sorted(r.text or "" for r in engine.store.catalog.representations_of(item.id)) == ["", "a cat", "a kitten"]


def test_switching_preset_adds_vectors_and_deletes_nothing(tmp_path, corpus):
    root, good, *_ = corpus
    from engine.models import get_preset

    data = json.loads(get_preset("tiny-random").path.read_text())
    data["name"] = "tiny-random-b"
    (tmp_path / "b.json").write_text(json.dumps(data))
    with Engine.open(tmp_path / "s", "tiny-random") as eng:
        eng.ingest([root / "good"], IngestOptions(workers=0))
    with Engine.open(tmp_path / "s", str(tmp_path / "b.json")) as eng:
        summary = eng.ingest([root / "good"], IngestOptions(workers=0))
        assert summary.added == len(good)
        sets = {(s.model, s.modality): s.count for s in eng.store.catalog.vector_sets()}
        for modality in ("image", "audio", "text"):
            assert sets[("tiny-random", modality)] == sets[("tiny-random-b", modality)] > 0


def test_cli_ingest_exit_codes_and_json(tmp_path, corpus, capsys):
    root, good, tricky, broken = corpus
    store = str(tmp_path / "cli-store")
    assert main(["ingest", str(root / "good"), "--store", store, "--preset", "tiny-random", "--json", "--workers", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == len(good) and out["failures"] == []
    code = main(["ingest", str(root / "broken"), "--store", store, "--json", "--workers", "0"])  # preset remembered
    assert code == 7
    out = json.loads(capsys.readouterr().out)
    assert len(out["failures"]) == len(broken) and all(f["reason"] for f in out["failures"])
    assert main(["check", "--store", store]) == 0
