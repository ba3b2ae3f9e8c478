"""``check`` of a bulk store's Parquet files (``index.bulk``) and of an unfinished re-embed (``staged_vectors``).

Every file ``bulk_files`` names must exist, read whole with the recorded row count and dimension, and hold every live
id ``bulk_vectors`` places in it; a file that does not, or a live id it lacks, is damage (the vectors are the store's
only copy). ``--repair`` removes the representations of the items that lost vectors (items stay, with none: the next
bulk ingest encodes them again), drops the rows of missing files and moves unreadable ones aside. A Parquet or temp file in a
bulk folder that no row names is an orphan (a write that never committed): a warning, removed by ``--repair`` once
older than a write in progress could be.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.bulk import MARKER, bulk_sets
from index.errors import IndexStoreError
from index.persist import TMP_MARK
from index.repair import move_aside
from index.validate import bad_rows

# problems that make the store damaged (exit 5): vectors that were the only copy are gone
DAMAGE_KINDS = frozenset({"bulk-file-missing", "bulk-file-corrupt", "bulk-ids-missing"})


@dataclass
class BulkFinding:
    """One problem (the fields of ``check.Problem``) and the representation ids whose vectors it loses."""

    model: str
    modality: str
    kind: str
    detail: str
    severity: str = "error"
    repaired: bool = False
    lost: list[int] = field(default_factory=list)


def bulk_counts(catalog) -> dict[tuple[str, str], int]:
    """(model, modality) -> live vectors held in Parquet files."""
    return {(m, d): n for m, d, n in bulk_sets(catalog)}


def _read_ids(path: Path, dim: int, rows: int) -> tuple[np.ndarray | None, str, np.ndarray]:
    """(ids, why unreadable or "", ids of invalid vectors) of one Parquet file."""
    from index.parquet import iter_shard

    got, bad = [], []
    try:
        for ids, vectors in iter_shard(path, dim):
            got.append(ids)
            nonfinite, offnorm = bad_rows(vectors)
            bad.append(ids[nonfinite | offnorm])
    except (IndexStoreError, OSError, ValueError) as exc:
        return None, str(exc), np.zeros(0, dtype=np.int64)
    except Exception as exc:  # pyarrow's own errors on a cut or garbled file
        return None, f"unreadable: {type(exc).__name__}: {exc}", np.zeros(0, dtype=np.int64)
    ids = np.concatenate(got) if got else np.zeros(0, dtype=np.int64)
    if len(ids) != rows:
        return None, f"holds {len(ids)} rows, the catalog recorded {rows}", np.zeros(0, dtype=np.int64)
    return ids, "", np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def _file_findings(catalog) -> tuple[list[BulkFinding], list[str], list[str]]:
    """Findings about the files ``bulk_files`` names; also the missing and the unreadable paths."""
    db = catalog.db
    live: dict[str, list[int]] = {}
    for rep, file in db.execute("SELECT representation_id, file FROM bulk_vectors"):
        live.setdefault(str(file), []).append(int(rep))
    out, missing, corrupt = [], [], []
    for path, model, modality, dim, rows in db.execute(
            "SELECT path, model, modality, dim, rows FROM bulk_files ORDER BY path").fetchall():
        named = live.get(str(path), [])
        if not Path(path).is_file():
            missing.append(str(path))
            out.append(BulkFinding(model, modality, "bulk-file-missing", f"{path} is gone with the only copy of "
                                   f"{len(named)} live vector(s); --repair removes them (their items stay, the next "
                                   "bulk ingest encodes them again)", lost=named))
            continue
        ids, why, invalid = _read_ids(Path(path), int(dim), int(rows))
        if ids is None:
            corrupt.append(str(path))
            out.append(BulkFinding(model, modality, "bulk-file-corrupt", f"{path}: {why}; {len(named)} live "
                                   "vector(s) lost; --repair moves it aside and removes them (the next bulk ingest "
                                   "encodes them again)", lost=named))
            continue
        absent = np.setdiff1d(np.array(named, dtype=np.int64), ids)
        if absent.size:
            out.append(BulkFinding(model, modality, "bulk-ids-missing", f"{path} lacks {absent.size} live id(s) the "
                                   f"catalog places in it: {absent[:5].tolist()}; --repair removes them (the next "
                                   "bulk ingest encodes them again)", lost=absent.tolist()))
        dead = np.intersect1d(invalid, np.array(named, dtype=np.int64))
        if dead.size:
            out.append(BulkFinding(model, modality, "bulk-vectors-invalid", f"{path}: {dead.size} live vector(s) "
                                   f"with NaN/inf or not unit norm: {dead[:5].tolist()}; --repair removes them",
                                   lost=dead.tolist()))
    return out, missing, corrupt


def _orphans(catalog) -> list[Path]:
    """Parquet and temp files in the bulk folders that no ``bulk_files`` row names."""
    named = {str(r[0]) for r in catalog.db.execute("SELECT path FROM bulk_files")}
    folders = {Path(p).parent.parent for p in named}
    found = []
    for folder in sorted(f for f in folders if (f / MARKER).is_file()):  # only folders a bulk ingest claimed
        for path in sorted(folder.glob("*/*")):
            if path.is_file() and (TMP_MARK in path.name or (path.suffix == ".parquet" and str(path) not in named)):
                found.append(path)
    return found


def _repair_files(catalog, findings: list[BulkFinding], missing: list[str], corrupt: list[str]) -> None:
    """Remove the representations of the items that lost vectors, then the rows of gone files (unreadable ones moved aside)."""
    lost = sorted({i for f in findings for i in f.lost})
    items: set[int] = set()
    for start in range(0, len(lost), 500):
        part = lost[start : start + 500]
        items |= {int(r[0]) for r in catalog.db.execute(
            f"SELECT DISTINCT item_id FROM representations WHERE id IN ({','.join('?' * len(part))})", part)}
    with catalog.atomic():
        for item in sorted(items):  # all its representations: an item with no vector is encoded again by the next ingest
            catalog.remove_representations(item)
        for path in [*missing, *corrupt]:
            catalog.db.execute("DELETE FROM bulk_vectors WHERE file = ?", (path,))
            catalog.db.execute("DELETE FROM bulk_files WHERE path = ?", (path,))
    for path in corrupt:
        move_aside(Path(path))


def bulk_findings(catalog, *, repair: bool = False, stale_seconds: float = 600) -> list[BulkFinding]:
    """Everything wrong with a bulk store's Parquet files (none for a store never written in bulk mode)."""
    findings, missing, corrupt = _file_findings(catalog)
    if repair and findings:
        _repair_files(catalog, findings, missing, corrupt)
        for f in findings:
            f.repaired = True
    for path in _orphans(catalog):
        old = time.time() - path.stat().st_mtime > stale_seconds
        if repair and old:
            path.unlink(missing_ok=True)
        findings.append(BulkFinding("", "", "bulk-orphan", f"{path}: no catalog row names it (a write that never "
                                    "committed; removed by --repair once older than a write in progress could be)",
                                    "warning", repaired=repair and old))
    return findings


def staged_findings(catalog, root: Path) -> list[BulkFinding]:
    """A re-embed that stopped before swapping its sets in: staged vectors wait; ``--reembed`` finishes it."""
    rows = catalog.db.execute("SELECT model, modality, COUNT(*) FROM staged_vectors GROUP BY model, modality "
                              "ORDER BY 1, 2").fetchall()
    return [BulkFinding(str(m), str(d), "reembed-unfinished", f"{n} re-embedded vector(s) staged and not swapped in "
                        f"(a re-embed was interrupted; search still uses the old ones): finish it with "
                        f"`xmodal ingest PATHS --reembed --store {root}`", "warning") for m, d, n in rows]
