"""Issue 18 item 8 and issue 14 item 9: read-only, damaged, missing and empty stores give the right answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from index import StoreReadOnly, check_store, open_store
from tests._index_data import fill_catalog, unit_vectors

REPO = Path(__file__).resolve().parents[2]


def _child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run python code in a child with a hard timeout and a 4 GiB address-space limit."""
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def store_dir(tmp_path) -> Path:
    root = tmp_path / "store"
    with open_store(root) as store:
        fill_catalog(store.catalog, 120)
        store.sync()
    return root


def _lose_wal(root: Path) -> None:
    """A store whose process was killed before any checkpoint, then lost catalog.db-wal."""
    done = _child(f"""
        import os
        from index import open_store
        from tests._index_data import fill_catalog
        store = open_store({str(root)!r})
        fill_catalog(store.catalog, 60)
        store.sync()
        os._exit(0)  # like kill -9: no close, no checkpoint
    """)
    assert done.returncode == 0, done.stderr
    assert (root / "catalog.db-wal").exists()
    (root / "catalog.db-wal").unlink()
    (root / "catalog.db-shm").unlink(missing_ok=True)


def _damage(root: Path, kind: str) -> None:
    catalog = root / "catalog.db"
    if kind == "garbage-pages":
        data = bytearray(catalog.read_bytes())
        data[4096:] = np.random.default_rng(0).integers(0, 256, len(data) - 4096, dtype=np.uint8).tobytes()
        catalog.write_bytes(bytes(data))
    elif kind == "garbage-header":
        data = bytearray(catalog.read_bytes())
        data[:100] = b"\xab" * 100
        catalog.write_bytes(bytes(data))
    elif kind == "zero-bytes":
        catalog.write_bytes(b"")
    elif kind == "indexes-file":
        shutil.rmtree(root / "indexes")
        (root / "indexes").write_text("not a folder")
    elif kind == "settings":
        (root / "xmodal.json").write_text("{not json")


DAMAGE = ["garbage-pages", "garbage-header", "zero-bytes", "indexes-file", "settings"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_store_is_exit_5_naming_the_repair_then_repaired(store_dir, capsys, kind: str) -> None:
    _damage(store_dir, kind)
    assert main(["check", "--store", str(store_dir)]) == 5
    err = capsys.readouterr().err
    assert err.startswith("xmodal: error: ") and "check --repair" in err and "Traceback" not in err
    assert main(["search", "a cat", "--store", str(store_dir)]) == 5  # the store fails before any model loads
    assert "check --repair" in capsys.readouterr().err
    assert main(["check", "--store", str(store_dir), "--repair"]) == 0
    out = capsys.readouterr().out
    assert "[repaired]" in out and list(store_dir.glob("*.damaged-*")), out
    if kind in ("indexes-file", "settings"):  # the catalog was fine: everything is back
        assert main(["check", "--store", str(store_dir)]) == 0
        with open_store(store_dir, create=False) as store:
            assert store.index("m", "image").ntotal == 120
    else:  # nothing readable was left: the store is gone, and says so
        assert main(["check", "--store", str(store_dir)]) == 2
        assert "no store at" in capsys.readouterr().err


def test_catalog_that_lost_its_wal_is_not_taken_for_an_empty_store(tmp_path, capsys) -> None:
    root = tmp_path / "store"
    _lose_wal(root)
    assert main(["check", "--store", str(root)]) == 5
    err = capsys.readouterr().err
    assert "lost its writes" in err and "check --repair" in err
    assert main(["check", "--store", str(root), "--repair"]) == 0
    assert "catalog-lost-writes" in capsys.readouterr().out
    assert not list((root / "indexes").glob("*.faiss"))
    with open_store(root, create=False) as store:  # now an honest empty store
        assert store.catalog.vector_sets() == []


def test_missing_store_is_an_error_and_creates_nothing(tmp_path, capsys) -> None:
    missing = tmp_path / "nowhere"
    for argv in (["search", "a cat"], ["check"], ["serve", "--port", "1"]):
        assert main([*argv, "--store", str(missing)]) == 2
        assert f"no store at {missing}" in capsys.readouterr().err and "xmodal ingest" in capsys.readouterr().err + \
            f"run `xmodal ingest FILES --store {missing}`"
    assert not missing.exists()


def test_empty_store_says_to_ingest(tmp_path, capsys) -> None:
    root = tmp_path / "store"
    open_store(root).close()
    assert main(["search", "a cat", "--store", str(root), "--preset", "tiny-random"]) == 2
    err = capsys.readouterr().err
    assert "holds nothing for preset tiny-random" in err and "xmodal ingest" in err


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_read_only_store_searches_and_checks_without_writing(store_dir) -> None:
    shutil.rmtree(store_dir / "indexes")  # the index must be built in memory, not saved
    before = _snapshot(store_dir)
    with open_store(store_dir, create=False, read_only=True) as store:
        assert store.read_only and not store.persist
        scores, ids = store.search("m", "image", unit_vectors(120)[7:8], 1)
        assert ids[0, 0] == 8 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(StoreReadOnly):
            fill_catalog(store.catalog, 1)
    after = _snapshot(store_dir)
    # in a writable folder SQLite may make its (empty) -wal and -shm to read a WAL database; nothing else changes
    assert after.pop("catalog.db-wal", (0, 0))[0] == 0
    after.pop("catalog.db-shm", None)
    assert after == before


def test_engine_on_read_only_store_writes_no_settings(store_dir) -> None:
    from engine.api.facade import Engine

    with Engine.open(store_dir, "tiny-random", read_only=True) as engine:
        assert engine.store.read_only
    assert not (store_dir / "xmodal.json").exists()


def test_unwritable_store_is_detected_and_served_read_only(store_dir) -> None:
    """As an unprivileged user (the test runs as root, which ignores permissions), on files it cannot write."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    base = Path(tempfile.mkdtemp(prefix="xmodal-ro-"))
    try:
        root = base / "store"
        shutil.copytree(store_dir, root)
        os.chmod(base, 0o755)
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        before = _snapshot(root)
        done = _child(f"""
            import json, os
            import importlib.metadata, index, index.check, index.verify, numpy as np, faiss
            from sqlite_utils.plugins import ensure_plugins_loaded
            from tests._index_data import unit_vectors
            ensure_plugins_loaded()  # everything imported before the user change: /root is not readable by others
            os.setgid(65534); os.setuid(65534)
            with index.open_store({str(root)!r}, create=False) as store:
                _, ids = store.search("m", "image", unit_vectors(120)[9:10], 1)
                read_only = store.read_only
            report = index.check_store({str(root)!r})
            print(json.dumps({{"id": int(ids[0, 0]), "ro": read_only, "ok": report.ok,
                              "compared": report.vector_sets[0]["compared"]}}))
        """)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"id": 10, "ro": True, "ok": True, "compared": 120}
        assert _snapshot(root) == before
    finally:
        for p in [base, *base.rglob("*")]:
            os.chmod(p, 0o755)
        shutil.rmtree(base)


def test_check_reports_store_integrity_figures(store_dir) -> None:
    report = check_store(store_dir)
    assert report.ok and report.vector_sets[0]["compared"] == 120
