"""A subprocess ingest killed with SIGKILL mid-run, then resumed, ends consistent: nothing lost, nothing doubled."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.api.facade import Engine
from index import check_store
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes, wav_bytes

REPO = Path(__file__).resolve().parents[2]


def _generation(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT generation FROM catalog_state").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # an ingest child killed, then resumed
@pytest.mark.parametrize("kill_after_generation", [2, 9])
def test_sigkill_then_resume_is_consistent(tmp_path, kill_after_generation):
    media = tmp_path / "media"
    media.mkdir()
    for i in range(160):
        (media / f"img_{i:03d}.jpg").write_bytes(jpeg_bytes(i, size=(48, 48)))
    for i in range(12):
        (media / f"snd_{i:02d}.wav").write_bytes(wav_bytes(i, seconds=0.5))
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "engine", "ingest", str(media), "--store", str(store), "--preset", "tiny-random",
           "--batch-size", "4", "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _generation(store / "catalog.db") < kill_after_generation and proc.poll() is None:
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.01)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_mid_run, "the ingest finished before it could be killed; make the corpus larger"
    partial = _generation(store / "catalog.db")
    assert partial >= kill_after_generation

    with Engine.open(store, "tiny-random") as engine:
        summary = engine.ingest([media], IngestOptions(workers=0))
        items = engine.store.catalog.items()
        assert summary.failed == 0
        assert summary.added + summary.unchanged == 172 and summary.unchanged > 0
        assert len(items) == 172 and {i.status for i in items} == {"ok"}
        assert len({i.uri for i in items}) == 172
        for modality, count in (("image", 160), ("audio", 12)):
            ids = engine.store.index(engine.model, modality).ids()
            assert len(ids) == len(set(ids.tolist())) == count
    assert check_store(store).ok


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_once_workers_run(proc: subprocess.Popen, log: Path, timeout: float = 120, n_workers: int = 2) -> list[int]:
    """SIGKILL ``proc`` once it has ``n_workers`` decode workers; the worker pids still alive 5 s later."""
    workers: list[int] = []
    try:
        deadline = time.monotonic() + timeout
        while len(workers) < n_workers:
            assert proc.poll() is None, f"ingest ended (exit {proc.returncode}) before it was killed: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no decode workers appeared: {log.read_text()[-2000:]}"
            workers = _children(proc.pid)
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [w for w in workers if _alive(w)]
    finally:
        for w in _children(proc.pid) + workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigkill_of_ingest_leaves_no_decode_worker(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    for i in range(400):
        (media / f"img_{i:03d}.jpg").write_bytes(jpeg_bytes(i, size=(64, 64)))
    cmd = [sys.executable, "-m", "engine", "ingest", str(media), "--store", str(tmp_path / "store"), "--preset",
           "tiny-random", "--batch-size", "4", "--workers", "2", "--no-progress"]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    survivors = kill_once_workers_run(proc, log)
    assert not survivors, f"decode workers {survivors} outlived their killed parent"
