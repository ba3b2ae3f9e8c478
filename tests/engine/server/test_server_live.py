"""A real uvicorn server searched in a loop while a separate ``python -m engine ingest`` adds, then deletes files."""

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.corpus import good_files, jpeg_bytes

ROOT = Path(__file__).resolve().parents[3]
FOUND_WITHIN_S = 5.0
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _xmodal(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "XMODAL_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _ingest(media: Path, store: Path) -> subprocess.Popen:
    return _xmodal("ingest", str(media), "--store", str(store), "--workers", "0", "--no-progress", "--batch-size", "2")


def _wait_healthy(base: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stdout.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


class Hammer:
    """Client threads that search in a loop and count every request that is not a 200."""

    def __init__(self, base: str, n_threads: int = 3) -> None:
        self.base, self.stop = base, threading.Event()
        self.ok, self.failures = 0, []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(n_threads)]

    def _loop(self, i: int) -> None:
        queries = ["a red square", "a blue circle", "a dog barking", f"note {i}"]
        with httpx.Client(base_url=self.base, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    response = client.post("/search", json={"text": queries[n % 4], "k": 5})
                    good = response.status_code == 200 and "results" in response.json()
                    reason = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    good, reason = False, repr(exc)
                with self._lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failures.append(reason)
                time.sleep(0.01)  # leave the (shared) CPU some room for the ingest process

    def __enter__(self) -> "Hammer":  # noqa: PYI034
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def _image_hits(base: str, image: bytes) -> list[dict]:
    response = httpx.post(f"{base}/search", files={"file": ("q.jpg", image, "image/jpeg")},
                          data={"targets": "image", "k": "3"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _status(store: Path, uri: str) -> str | None:
    """The item's status as committed in the catalog, read by an independent connection."""
    with sqlite3.connect(f"file:{store / 'catalog.db'}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute("SELECT status FROM items WHERE uri = ?", (uri,)).fetchone()
    return row[0] if row else None


def _lag(ingest: subprocess.Popen, committed, visible, limit: float) -> float:
    """Seconds from the commit (``committed()`` true) to the server showing it (``visible()`` true)."""
    committed_at = visible_at = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.monotonic()
        if committed_at is None and committed():
            committed_at = now
        if visible_at is None and visible():
            visible_at = time.monotonic()
        if committed_at is not None and visible_at is not None:
            assert ingest.wait(300) == 0, ingest.stdout.read()
            return visible_at - committed_at
        if committed_at is not None and now - committed_at > limit:
            raise AssertionError(f"not visible {limit} s after its commit")
        time.sleep(0.05)
    raise AssertionError("the ingest did not commit")


def test_search_during_ingest_add_and_delete(tmp_path):
    media, store = tmp_path / "media", tmp_path / "store"
    good_files(media, n_images=6, n_audio=2, n_texts=4)
    seed = _xmodal("ingest", str(media), "--store", str(store), "--preset", "tiny-random", "--workers", "0",
                   "--no-progress")
    assert seed.wait(300) == 0, seed.stdout.read()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _xmodal("serve", "--store", str(store), "--port", str(port))
    try:
        _wait_healthy(base, server)
        new = [media / "new" / f"fresh_{i}.jpg" for i in range(3)]
        with Hammer(base) as hammer:
            time.sleep(1.0)
            new[0].parent.mkdir()
            for i, path in enumerate(new):
                path.write_bytes(jpeg_bytes(900 + i, size=(120, 90)))
            probe = new[1].read_bytes()
            added_lag = _lag(_ingest(media, store), lambda: _status(store, str(new[1])) == "ok",
                             lambda: _image_hits(base, probe)[0]["uri"] == str(new[1]), FOUND_WITHIN_S)
            item_id = _image_hits(base, probe)[0]["item_id"]
            assert httpx.get(f"{base}/media/{item_id}").status_code == 200
            for path in new:
                path.unlink()
            deleted_lag = _lag(_ingest(media, store), lambda: _status(store, str(new[1])) == "deleted",
                               lambda: all(h["uri"] not in map(str, new) for h in _image_hits(base, probe)),
                               FOUND_WITHIN_S)
            assert httpx.get(f"{base}/media/{item_id}").status_code == 404
            time.sleep(1.0)
        print(f"\n{hammer.ok} searches ok, {len(hammer.failures)} failed; new file visible {added_lag:+.2f} s and "
              f"deletion {deleted_lag:+.2f} s after their commit")
        assert hammer.failures == []
        assert hammer.ok > 20
        assert added_lag <= FOUND_WITHIN_S and deleted_lag <= FOUND_WITHIN_S
    finally:
        server.terminate()
        server.wait(30)
