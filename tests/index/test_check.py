"""``xmodal check [--repair] [--json]``: planted disagreements are found, reported and repaired."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from engine.cli import main
from index import check_store, open_store
from index.persist import save_index
from tests._index_data import fill_catalog, index_file


@pytest.fixture
def store_dir(tmp_path):
    with open_store(tmp_path) as store:
        fill_catalog(store.catalog, 120)
        store.sync()
    return tmp_path


def _check(store_dir, *extra: str) -> int:
    return main(["check", "--store", str(store_dir), *extra])


def test_clean_store_passes(store_dir, capsys) -> None:
    assert _check(store_dir) == 0
    out = capsys.readouterr().out
    assert "m/image: 120 vectors of dim 32" in out and out.strip().endswith(")") and "ok" in out


def test_repair_fixes_vector_deleted_behind_the_index(store_dir, capsys) -> None:
    conn = sqlite3.connect(store_dir / "catalog.db")  # planted: no tombstone, no generation bump
    conn.execute("DELETE FROM vectors WHERE representation_id = 7")
    conn.commit()
    conn.close()
    assert _check(store_dir) == 1
    out = capsys.readouterr().out
    assert "error: m/image: index-extra-ids: 1 id(s) in the index but not in the catalog: [7]" in out
    assert "problems remain" in out
    assert _check(store_dir, "--repair") == 0
    assert "[repaired]" in capsys.readouterr().out
    assert _check(store_dir) == 0
    with open_store(store_dir) as store:
        assert 7 not in store.index("m", "image").ids()


def test_repair_fixes_id_missing_from_index(store_dir, capsys) -> None:
    with open_store(store_dir) as store:  # planted: index lost an id but claims the current generation
        index = store.index("m", "image")
        index.remove(np.array([3, 4]))
        gen = store.catalog.generation
        save_index(index, store_dir, "m", "image", store.catalog.catalog_id, gen, 120, lineage=store.catalog.lineage(gen))
    report = check_store(store_dir)
    assert not report.ok and [p.kind for p in report.problems] == ["index-missing-ids"]
    assert _check(store_dir, "--repair", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["problems"][0]["repaired"]
    assert check_store(store_dir).problems == []


def test_corrupt_index_and_bad_catalog_vector(store_dir, capsys) -> None:
    path = index_file(store_dir)
    path.write_bytes(b"\0" * 100)
    conn = sqlite3.connect(store_dir / "catalog.db")
    conn.execute("UPDATE vectors SET vector = ? WHERE representation_id = 5", (np.full(32, np.nan, "<f4").tobytes(),))
    conn.commit()
    conn.close()
    assert _check(store_dir, "--json") == 1
    kinds = {p["kind"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert kinds == {"index-corrupt", "catalog-nonfinite"}
    assert _check(store_dir, "--repair") == 0
    capsys.readouterr()
    with open_store(store_dir) as store:
        item = store.catalog.item(5)
        assert item.status == "failed" and "re-ingest" in item.error
        assert sorted(store.index("m", "image").ids().tolist()) == [i for i in range(1, 121) if i != 5]
    assert _check(store_dir) == 0


def test_stale_index_and_temp_file_are_warnings(store_dir, capsys) -> None:
    with open_store(store_dir) as store:
        fill_catalog(store.catalog, 5, seed=3, start=500)
    path = index_file(store_dir)
    path.with_name(f".{path.name}.tmp-1-abcd").write_bytes(b"x")
    assert _check(store_dir) == 0
    out = capsys.readouterr().out
    assert "warning: m/image: index-stale" in out and "warning: temp-file" in out
    assert _check(store_dir, "--repair") == 0
    assert check_store(store_dir).problems[0].kind == "temp-file"  # too recent to delete


def test_missing_store_is_an_error(tmp_path, capsys) -> None:
    assert _check(tmp_path / "absent") == 2
    assert f"no store at {tmp_path / 'absent'}" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()  # checking creates nothing


def test_reranker_tokens_are_checked_and_bad_ones_removed(store_dir, capsys) -> None:
    with open_store(store_dir) as store:
        ids = store.catalog.vector_ids("m", "image")
        rng = np.random.default_rng(0)
        store.catalog.write_tokens("m", ids, [rng.standard_normal((4, 8)) for _ in ids])
    assert check_store(store_dir).problems == []
    conn = sqlite3.connect(store_dir / "catalog.db")  # planted: a cut blob, one row of another width, one missing
    conn.execute("UPDATE tokens SET data = substr(data, 1, 10) WHERE representation_id = ?", (int(ids[0]),))
    conn.execute("UPDATE tokens SET dim = 4, n = 8 WHERE representation_id = ?", (int(ids[1]),))
    conn.execute("DELETE FROM tokens WHERE representation_id = ?", (int(ids[2]),))
    conn.commit()
    conn.close()
    assert _check(store_dir, "--json") == 1
    found = {p["kind"]: p for p in json.loads(capsys.readouterr().out)["problems"]}
    assert set(found) == {"tokens-corrupt", "tokens-dimension", "tokens-partial"}
    assert found["tokens-partial"]["severity"] == "warning" and "1 of 120" in found["tokens-partial"]["detail"]
    assert _check(store_dir, "--repair") == 0
    capsys.readouterr()
    with open_store(store_dir) as store:
        kept = store.catalog.tokens_for("m", ids)
    assert len(kept) == 117 and not {int(i) for i in ids[:3]} & set(kept)
    (left,) = check_store(store_dir).problems
    assert left.kind == "tokens-partial" and "3 of 120" in left.detail
