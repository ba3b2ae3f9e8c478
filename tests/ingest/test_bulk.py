"""Bulk mode (``IngestOptions(bulk=DIR)``, ``xmodal ingest --bulk``): the vectors go to Parquet files the catalog
names, and the store equals a normal store item for item and vector for vector; index shards built from those files
give the normal store's exact top 10; a second ingest adds new files only; a crash between a Parquet file and its
commit leaves an orphan the next run removes; a driver killed with SIGKILL resumes with nothing lost or doubled."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.api.facade import Engine
from index import IndexConfig, LocalShards, build_catalog_shards, check_current, iter_shard, parquet_files
from index.bulk import BulkCatalog, bulk_files
from index.bulk_shards import build_bulk_shards
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes, wav_bytes

REPO = Path(__file__).resolve().parents[2]
PRESET = "tiny-random"


def _media(folder: Path, images: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + images):
        (folder / f"img_{i:03d}.jpg").write_bytes(jpeg_bytes(i, size=(40, 40)))
    return folder


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One folder ingested normally and in bulk mode (inline runner, batches of 4)."""
    root = tmp_path_factory.mktemp("bulk")
    media = _media(root / "media", 22)
    for i in range(3):
        (media / f"snd_{i}.wav").write_bytes(wav_bytes(i, seconds=0.5))
    (media / "dog.txt").write_text("a dog on a beach")
    (media / "rain.txt").write_text("the sound of rain on a roof")
    (media / "twin.jpg").write_bytes(jpeg_bytes(3, size=(40, 40)))  # a duplicate: copied, not embedded again
    options = IngestOptions(workers=0, batch_size=4)
    with Engine.open(root / "normal", PRESET) as engine:
        engine.ingest([media], options)
    with Engine.open(root / "bulk", PRESET) as engine:
        summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4, bulk=str(root / "pq")))
    return root, media, summary


def _reps(engine: Engine) -> dict[tuple, int]:
    """(uri, kind, modality, offset, text) -> representation id of every ok item."""
    out = {}
    for item in engine.store.catalog.items("ok"):
        for r in engine.store.catalog.representations_of(item.id):
            out[(item.uri, r.kind, r.modality, r.offset_seconds, r.text)] = r.id
    return out


def _by_key(engine: Engine, reps: dict[tuple, int], catalog) -> dict[tuple, np.ndarray]:
    ids = np.array(list(reps.values()), dtype=np.int64)
    return dict(zip(reps, catalog.vectors_for(engine.model, ids)))


def test_bulk_store_equals_normal_store(stores):
    root, _, summary = stores
    assert summary.failed == 0 and summary.reused == 1
    with Engine.open(root / "normal", PRESET) as normal, Engine.open(root / "bulk", PRESET) as bulk:
        n_items = {(i.uri, i.status, i.sha256) for i in normal.store.catalog.items()}
        assert n_items == {(i.uri, i.status, i.sha256) for i in bulk.store.catalog.items()}
        n_reps, b_reps = _reps(normal), _reps(bulk)
        assert set(n_reps) == set(b_reps)
        catalog = bulk.store.catalog
        assert catalog.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 0  # no vector BLOB in the catalog
        # every vector read back from the Parquet files themselves: one row per live representation, none twice
        parquet: dict[int, np.ndarray] = {}
        for modality in ("image", "audio", "text"):
            for path, rows, live in bulk_files(catalog, bulk.model, modality):
                got = {int(i): v for ids, vs in iter_shard(path) for i, v in zip(ids, vs)}
                assert len(got) == rows and set(live) <= set(got)
                parquet.update({i: got[i] for i in live})
        assert sorted(parquet) == sorted(b_reps.values())
        want = _by_key(normal, n_reps, normal.store.catalog)
        diff = max(float(np.abs(want[key] - parquet[rep]).max()) for key, rep in b_reps.items())
        assert diff <= 1e-5
        through = _by_key(bulk, b_reps, BulkCatalog(catalog, bulk.model))  # the reads search and twins use
        assert max(float(np.abs(want[k] - through[k]).max()) for k in want) <= 1e-5


@pytest.mark.slow  # a CLI child (imports torch)
def test_single_machine_search_names_shards(stores):
    root = stores[0]
    proc = subprocess.run([sys.executable, "-m", "engine", "search", "a dog", "--store", str(root / "bulk")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "xmodal shards" in proc.stderr


def test_shards_from_parquet_give_the_exact_top10(stores, tmp_path):
    root = stores[0]
    config = IndexConfig(factory="Flat")
    with Engine.open(root / "normal", PRESET) as normal, Engine.open(root / "bulk", PRESET) as bulk:
        n_reps, b_reps = _reps(normal), _reps(bulk)
        n_key, b_key = {v: k for k, v in n_reps.items()}, {v: k for k, v in b_reps.items()}
        built = build_bulk_shards(bulk.store.catalog, tmp_path / "b", bulk.model, "image", 2, config)
        assert built.ntotal == sum(k[2] == "image" for k in b_reps) and check_current(built, bulk.store.catalog) == ""
        build_catalog_shards(normal.store.catalog, tmp_path / "n", normal.model, "image", 2, config)
        images = [v for k, v in n_reps.items() if k[2] == "image"]
        queries = normal.store.catalog.vectors_for(normal.model, np.array(images[:8]))
    folder = lambda r: r / "shards" / f"{PRESET}.image"  # noqa: E731
    _, got = LocalShards.open(folder(tmp_path / "b")).search(queries, 10)
    _, want = LocalShards.open(folder(tmp_path / "n")).search(queries, 10)
    assert [[b_key[int(i)] for i in row] for row in got] == [[n_key[int(i)] for i in row] for row in want]


def test_catalog_and_parquet_vectors_are_not_mixed(stores, tmp_path):
    root, media, _ = stores
    from core.errors import InvalidInput
    from index.bulk import BulkFolderInUse

    with Engine.open(root / "bulk", PRESET) as engine, pytest.raises(InvalidInput, match="--bulk"):
        engine.ingest([media], IngestOptions(workers=0))
    with Engine.open(root / "normal", PRESET) as engine, pytest.raises(InvalidInput, match="new store"):
        engine.ingest([media], IngestOptions(workers=0, bulk=str(tmp_path / "pq")))
    with Engine.open(tmp_path / "other", PRESET) as engine, pytest.raises(BulkFolderInUse):
        engine.ingest([media], IngestOptions(workers=0, bulk=str(root / "pq")))


def test_second_ingest_adds_new_files_only_and_marks_shards_stale(stores, tmp_path):
    """Changes the module's bulk store: the last test that reads it."""
    root, media, _ = stores
    store, pq = root / "bulk", root / "pq"
    catalog_rows = lambda engine: engine.store.catalog.db.execute(  # noqa: E731
        "SELECT path FROM bulk_files").fetchall()
    with Engine.open(store, PRESET) as engine:
        before = {p: p.stat().st_mtime_ns for p in pq.rglob("*.parquet")}
        manifest = build_bulk_shards(engine.store.catalog, tmp_path, engine.model, "image", 2, IndexConfig(factory="Flat"))
        again = engine.ingest([media], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        assert again.added == 0 and {p: p.stat().st_mtime_ns for p in pq.rglob("*.parquet")} == before
        extra = _media(tmp_path / "more", 3, start=500)
        rows = len(catalog_rows(engine))
        more = engine.ingest([media, extra], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        assert more.added == 3 and len(catalog_rows(engine)) == rows + 1
        after = {p: p.stat().st_mtime_ns for p in pq.rglob("*.parquet")}
        assert {p: after[p] for p in before} == before and len(after) == len(before) + 1
        assert "rebuild" in check_current(manifest, engine.store.catalog)
        (extra / "img_500.jpg").unlink()  # a removal: its Parquet row goes dead, shards leave it out
        engine.ingest([media, extra], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        rebuilt = build_bulk_shards(engine.store.catalog, tmp_path, engine.model, "image", 2, IndexConfig(factory="Flat"))
        assert rebuilt.ntotal == manifest.ntotal + 2 and check_current(rebuilt, engine.store.catalog) == ""


def test_a_file_its_commit_never_named_is_removed(stores, tmp_path, monkeypatch):
    _, media, _ = stores
    pq = tmp_path / "pq"
    with Engine.open(tmp_path / "store", PRESET) as engine:
        def fail(path):  # the Parquet file is in place, the catalog transaction then fails: an orphan
            raise OSError("disk gone")

        monkeypatch.setattr(BulkCatalog, "_parquet_rows", staticmethod(fail))
        with pytest.raises(OSError):
            engine.ingest([media], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        orphans = list(pq.rglob("*.parquet"))
        assert orphans and engine.store.catalog.items() == []
        monkeypatch.undo()
        opened = BulkCatalog(engine.store.catalog, engine.model, pq)  # what the next bulk ingest does first
        assert opened.orphans_removed == len(orphans) and not list(pq.rglob("*.parquet"))
        summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        assert summary.failed == 0 and summary.added == 27
        named = {r[0] for r in engine.store.catalog.db.execute("SELECT path FROM bulk_files")}
        assert {str(p) for p in pq.rglob("*.parquet")} == named


def _generation(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT generation FROM catalog_state").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # an ingest child killed with SIGKILL, then resumed
def test_sigkill_then_resume_loses_and_doubles_nothing(tmp_path):
    media = _media(tmp_path / "media", 48)
    store, pq = tmp_path / "store", tmp_path / "pq"
    cmd = [sys.executable, "-m", "engine", "ingest", str(media), "--store", str(store), "--preset", PRESET,
           "--batch-size", "4", "--workers", "1", "--no-progress", "--bulk", str(pq)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _generation(store / "catalog.db") < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.01)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_mid_run, "the ingest finished before it could be killed; make the corpus larger"
    with Engine.open(store, PRESET) as engine:
        summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4, bulk=str(pq)))
        assert summary.failed == 0 and summary.unchanged > 0 and summary.added + summary.unchanged == 48
        catalog = engine.store.catalog
        items = catalog.items()
        assert len(items) == 48 and {i.status for i in items} == {"ok"}
        reps = [r.id for i in items for r in catalog.representations_of(i.id)]
        files = bulk_files(catalog, engine.model, "image")
        live = np.concatenate([f[2] for f in files])
        assert sorted(live.tolist()) == sorted(reps) and len(set(reps)) == len(reps) == 48
        rows = [int(i) for path, _, _ in files for ids, _ in iter_shard(path) for i in ids]
        assert len(rows) == len(set(rows))  # no vector written twice, even in dead rows
        on_disk = {str(p) for p in parquet_files(pq / f"{PRESET}.image")}
        assert on_disk == {f[0] for f in files}  # the killed commit's file, if any, is gone


def test_bulk_sets_are_stamped_and_other_weights_refused(tmp_path):
    """A bulk ingest stamps its sets like a catalog ingest; vectors of other weights are refused, and ``--reembed``
    names the alternative for a bulk set (a new store with a new --bulk folder) instead of re-embedding."""
    from core.errors import WeightsChanged
    from engine.models.fingerprint import modality_fingerprint

    media, store, pq = _media(tmp_path / "media", 3), tmp_path / "store", tmp_path / "pq"
    with Engine.open(store, PRESET) as engine:
        assert engine.ingest([media], IngestOptions(workers=0, bulk=str(pq))).failed == 0
        catalog = engine.store.catalog
        assert catalog.weights_of(engine.model)["image"] == modality_fingerprint(engine.encoder.preset, "image")
        rep = catalog.representations_of(catalog.items("ok")[0].id)[0].id
        vector = BulkCatalog(catalog, engine.model).vectors_for(engine.model, np.array([rep]))
        files = sorted(pq.rglob("*.parquet"))
        with pytest.raises(WeightsChanged, match="--bulk"):
            BulkCatalog(catalog, engine.model, pq).write_vectors(engine.model, [rep], vector, weights={"image": "f00"})
        assert sorted(pq.rglob("*.parquet")) == files  # refused before any file was written
        catalog.set_vector_weights(engine.model, "image", "0123456789abcdef")  # as if another head made them
    with pytest.raises(WeightsChanged, match="new --bulk folder"):
        Engine.open(store, PRESET)
    with Engine.open(store, PRESET, reembed=True) as engine, pytest.raises(WeightsChanged, match="bulk set"):
        engine.ingest([media], IngestOptions(workers=0, bulk=str(pq)), reembed=True)
    with Engine.open(store, PRESET, reembed=True) as engine, pytest.raises(WeightsChanged, match="bulk set"):
        engine.store.catalog.swap_staged(engine.model, "image", "fedcba9876543210")


def test_migration_10_adds_the_bulk_tables_to_a_schema_9_catalog(tmp_path):
    from index.schema import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:9])
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'bulk_%'").fetchall() == []
    assert migrate(conn) == len(MIGRATIONS) == 10
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'bulk_%'")}
    assert names == {"bulk_files", "bulk_vectors", "bulk_vectors_set", "bulk_vectors_file"}
    conn.close()


def test_a_schema_9_bulk_store_keeps_its_tables_and_vectors(tmp_path):
    """A store written in bulk mode at schema 9 made the tables on its first bulk write: migration 10 keeps them."""
    from index import check_store

    media, store, pq = _media(tmp_path / "media", 3), tmp_path / "store", tmp_path / "pq"
    with Engine.open(store, PRESET) as engine:
        engine.ingest([media], IngestOptions(workers=0, bulk=str(pq)))
        before = {s.modality: s.count for s in BulkCatalog(engine.store.catalog, engine.model).vector_sets()}
    conn = sqlite3.connect(store / "catalog.db", isolation_level=None)
    conn.execute("DELETE FROM schema_version WHERE version = 10")  # as the previous code left it
    conn.close()
    with Engine.open(store, PRESET) as engine:
        catalog = engine.store.catalog
        assert catalog.db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 10
        assert {s.modality: s.count for s in BulkCatalog(catalog, engine.model).vector_sets()} == before
        assert before["image"] == 3 and engine.ingest([media], IngestOptions(workers=0, bulk=str(pq))).unchanged == 3
    assert check_store(store).ok
