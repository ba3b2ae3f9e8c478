"""The Ray runner on a local two-node cluster, every address loopback (tests/ingest/conftest.py): the same catalog
as the local runner (items, failures, representations, vectors within float tolerance) with a decode worker and
the encoder actor killed mid-ingest, and the driver killed with SIGKILL then the ingest resumed: nothing lost,
nothing doubled. (About 2-5 minutes on the busy 2-core machine: every Ray worker imports torch.)"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.api.facade import Engine
from index import check_store
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes, wav_bytes

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]
pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
N_IMAGES, N_AUDIO = 24, 3
GOOD = N_IMAGES + N_AUDIO + 2  # + two notes; plus one exact duplicate and one broken JPEG
OPTIONS = IngestOptions(runner="ray", workers=1, batch_size=4, prefetch_batches=2)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-media")
    for i in range(N_IMAGES):
        (root / f"img_{i:02d}.jpg").write_bytes(jpeg_bytes(i, size=(160, 120)))
    for i in range(N_AUDIO):
        (root / f"snd_{i}.wav").write_bytes(wav_bytes(i, seconds=12.0))  # several windows: a slower decode
    (root / "note_0.txt").write_text("a lighthouse on a cliff at dusk", encoding="utf-8")
    (root / "note_1.txt").write_text("rain on a tin roof", encoding="utf-8")
    (root / "twin.jpg").write_bytes(jpeg_bytes(3, size=(160, 120)))  # the same bytes as img_03.jpg
    (root / "cut.jpg").write_bytes(jpeg_bytes(99, size=(160, 120))[:500])
    return root


def _dump(store: Path) -> dict[str, tuple]:
    """file name -> (status, error, sha256, [(kind, modality, offset, text, vector)]) for every representation
    with a vector."""
    with sqlite3.connect(store / "catalog.db") as db:
        items = {Path(uri).name: (status, error, sha, []) for uri, status, error, sha in
                 db.execute("SELECT uri, status, error, sha256 FROM items")}
        rows = db.execute("SELECT i.uri, r.kind, r.modality, r.offset_seconds, r.text, v.vector FROM representations r "
                          "JOIN items i ON i.id = r.item_id JOIN vectors v ON v.representation_id = r.id "
                          "ORDER BY i.uri, r.kind, r.offset_seconds, r.text")
        for uri, kind, modality, offset, text, blob in rows:
            items[Path(uri).name][3].append((kind, modality, offset, text, np.frombuffer(blob, np.float32)))
    return items


def _dump_bulk(store: Path) -> dict[str, tuple]:
    """``_dump`` of a bulk store: each vector read from the Parquet file the catalog names for it."""
    from index import iter_shard

    with sqlite3.connect(store / "catalog.db") as db:
        items = {Path(uri).name: (status, error, sha, []) for uri, status, error, sha in
                 db.execute("SELECT uri, status, error, sha256 FROM items")}
        rows = db.execute("SELECT i.uri, r.kind, r.modality, r.offset_seconds, r.text, v.representation_id, v.file "
                          "FROM representations r JOIN items i ON i.id = r.item_id JOIN bulk_vectors v ON "
                          "v.representation_id = r.id ORDER BY i.uri, r.kind, r.offset_seconds, r.text").fetchall()
        assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 0
    stored = {int(i): v for f in {r[6] for r in rows} for ids, vs in iter_shard(f) for i, v in zip(ids, vs)}
    for uri, kind, modality, offset, text, rep, _ in rows:
        items[Path(uri).name][3].append((kind, modality, offset, text, stored[int(rep)]))
    return items


def _same_catalog(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    assert got.keys() == want.keys()
    for uri, (status, error, sha, reps) in want.items():
        g_status, g_error, g_sha, g_reps = got[uri]
        assert (g_status, g_error, g_sha) == (status, error, sha), uri
        assert [r[:4] for r in g_reps] == [r[:4] for r in reps], uri
        for a, b in zip(g_reps, reps):
            np.testing.assert_allclose(a[4], b[4], atol=1e-5, err_msg=uri)


@pytest.fixture(scope="module")
def local_catalog(media, tmp_path_factory) -> dict[str, tuple]:
    store = tmp_path_factory.mktemp("local") / "store"
    with Engine.open(store, "tiny-random") as engine:
        summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4), enrich=())
    assert (summary.added, summary.reused, summary.failed) == (GOOD, 1, 1)
    return _dump(store)


def _counts(store: Path) -> dict[str, int]:
    """Files, vectors and duplicates in a store (duplicate uris, duplicate vectors per representation, index ids)."""
    with sqlite3.connect(store / "catalog.db") as db:
        files = db.execute("SELECT count(*), count(DISTINCT uri) FROM items").fetchone()
        vectors = db.execute("SELECT count(*), count(DISTINCT representation_id) FROM vectors").fetchone()
    return {"files": files[0], "duplicate_files": files[0] - files[1], "vectors": vectors[0],
            "duplicate_vectors": vectors[0] - vectors[1]}


def _ray_processes(prefix: str) -> list[int]:
    """Ray worker processes of this test's cluster (descendants of this process) whose title starts with ``prefix``
    (Ray titles a worker "ray::<function>" or "ray::<Actor>.<method>" while it runs one)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(prefix) and _descends(int(entry), me):
            found.append(int(entry))
    return found


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
    return False


class _Killer(threading.Thread):
    """Kills, once each, the first decode worker seen decoding and the encoder actor seen encoding."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.killed) < 2:
            for what, prefix in (("decode worker", "ray::_decode"), ("encoder actor", "ray::EncoderActor.encode")):
                pids = [] if what in self.killed else _ray_processes(prefix)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    self.killed[what] = pids[0]
            time.sleep(0.01)


def test_ray_equals_local_with_a_decode_worker_and_the_encoder_actor_killed_mid_ingest(ray_cluster, media,
                                                                                      local_catalog, tmp_path):
    store = tmp_path / "store"
    killer = _Killer()
    with Engine.open(store, "tiny-random") as engine:
        killer.start()
        try:
            summary = engine.ingest([media], OPTIONS, enrich=())
        finally:
            killer.stop.set()
            killer.join()
    assert set(killer.killed) == {"decode worker", "encoder actor"}, killer.killed
    assert (summary.added, summary.reused, summary.failed) == (GOOD, 1, 1), summary.failures  # nothing lost
    assert summary.failures[0][1].startswith("corrupt or truncated image")
    counts = _counts(store)
    print("after the kills:", counts, "killed:", killer.killed)
    assert counts["duplicate_files"] == counts["duplicate_vectors"] == 0  # nothing doubled
    _same_catalog(_dump(store), local_catalog)  # the local runner's items, failures and vectors
    assert check_store(store).ok


def test_ray_bulk_equals_local(ray_cluster, media, local_catalog, tmp_path):
    """``--runner ray --bulk``: the same items and failures, every vector read back from Parquet."""
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        summary = engine.ingest([media], dataclasses.replace(OPTIONS, bulk=str(tmp_path / "pq")), enrich=())
    assert (summary.added, summary.reused, summary.failed) == (GOOD, 1, 1), summary.failures
    _same_catalog(_dump_bulk(tmp_path / "store"), local_catalog)


def _generation(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT generation FROM catalog_state").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_the_driver_killed_mid_ingest_then_resumed(ray_cluster, media, local_catalog, tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "engine", "ingest", str(media), "--store", str(store), "--preset", "tiny-random",
           "--runner", "ray", "--address", ray_cluster.address, "--batch-size", "4", "--workers", "1",
           "--no-progress", "--no-transcribe", "--no-ocr"]
    log = tmp_path / "driver.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=err, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while _generation(store / "catalog.db") < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, f"no commit: {log.read_text()[-2000:]}"
            time.sleep(0.02)
        assert proc.poll() is None, f"the ingest ended before it was killed: {log.read_text()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _counts(store)
    print("driver killed:", partial)
    assert 0 < partial["files"] < GOOD + 2
    deadline = time.monotonic() + 60  # the cluster ends a dead driver's job: its encoder actor goes
    while _ray_processes("ray::EncoderActor") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes("ray::EncoderActor")

    with Engine.open(store, "tiny-random") as engine:  # resumed by the local runner: the catalog says what is left
        summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4), enrich=())
    assert summary.unchanged > 0 and summary.added + summary.reused + summary.unchanged + summary.failed >= GOOD
    counts = _counts(store)
    print("resumed:", counts, "added", summary.added, "unchanged", summary.unchanged)
    assert counts["duplicate_files"] == counts["duplicate_vectors"] == 0
    _same_catalog(_dump(store), local_catalog)  # nothing lost, nothing doubled
    assert check_store(store).ok


def _hang_on_stuck(task, pre, settings):
    """A decoder that never returns on files named stuck*."""
    from ingest.work import process

    if Path(task.path).name.startswith("stuck"):
        time.sleep(3600)
    return process(task, pre, settings)


def test_a_hung_decode_fails_its_file_alone_within_the_time_limit(ray_cluster, tmp_path, tiny_encoder):
    from ingest.decode import DecodeSettings
    from ingest.runner import RunnerSpec, open_runner
    from ingest.sources import scan_sources

    for i in range(4):
        (tmp_path / f"img_{i}.jpg").write_bytes(jpeg_bytes(i, size=(64, 64)))
    (tmp_path / "stuck.jpg").write_bytes(jpeg_bytes(9, size=(64, 64)))
    tasks = scan_sources([tmp_path]).files
    spec = RunnerSpec(1, {"image": tiny_encoder.preprocessor("image")}, DecodeSettings(timeout_s=3), _hang_on_stuck)
    with open_runner("ray", spec) as runner:
        start = time.monotonic()
        got = {Path(d.task.path).name: d.error for d in runner.map(tasks, prefetch=4)}
        took = time.monotonic() - start
    assert got == {**{f"img_{i}.jpg": None for i in range(4)}, "stuck.jpg": "decode timed out (no progress for 3 s)"}
    assert took < 60, took
    deadline = time.monotonic() + 20  # the stuck worker was killed
    while _ray_processes("ray::_decode") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes("ray::_decode")
