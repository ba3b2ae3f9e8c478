"""Opening ``catalog.db``: created only when asked, read-only without writing a byte, damaged states named."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from index.errors import CatalogCorrupt, CatalogNotFound, SchemaTooNew, StoreReadOnly
from index.schema import SCHEMA_VERSION, current_version, migrate

REPAIR_CATALOG = ("`xmodal check --repair` keeps what SQLite can still read (else moves the file aside to "
                  "catalog.db.damaged-*) and the indexes built from it; then `xmodal ingest` your folders again")


def store_of(path: Path) -> Path:
    """The store folder of a catalog path."""
    return path.parent


def has_index_files(root: Path) -> bool:
    """Whether ``root/indexes`` holds any index sidecar (a sign the store once held vectors)."""
    folder = root / "indexes"
    return folder.is_dir() and any(folder.glob("*.json"))


def writable(path: Path) -> bool:
    """Whether this process may write the catalog (and its -wal/-shm beside it)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # a store yet to be made: its nearest existing parent
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def _connect_ro(path: Path) -> sqlite3.Connection:
    """Read-only connection that never writes; falls back to ``immutable`` where SQLite cannot make its -shm file."""
    uri = "file:" + quote(str(path.resolve()))
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if Path(f"{path}-wal").exists():  # immutable would skip the writes still in the WAL
            raise StoreReadOnly(f"{path} has writes still in catalog.db-wal and the store is read-only, so SQLite "
                                f"cannot read them ({exc}); open it once with write access (e.g. `xmodal check`)") from exc
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=30.0)


def _tables(conn: sqlite3.Connection, path: Path) -> set[str]:
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError:  # locked, busy, I/O: not a verdict on the file's contents
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CatalogCorrupt(f"{path} is not a readable SQLite database ({exc}); {REPAIR_CATALOG}") from exc


def open_catalog(path: Path, *, create: bool, read_only: bool | None) -> tuple[sqlite3.Connection, bool, bool]:
    """Connect to the catalog, checking it is one: returns (connection, read_only, created now).

    Only ``create`` makes a new catalog, and only where none existed (a 0-byte or schema-less file beside index files
    is a catalog that lost its contents, not a new one). ``read_only`` None: read-only when the files are not writable.
    """
    root = store_of(path)
    if path.is_dir():
        raise CatalogCorrupt(f"{path} is a folder, not a catalog file; move it away, then `xmodal ingest` again")
    exists = path.exists()
    if not exists and not create:
        raise CatalogNotFound(f"no store at {root} (no catalog.db); run `xmodal ingest FILES --store {root}` to "
                              "create one")
    lost = exists and path.stat().st_size == 0
    if lost and (not create or has_index_files(root)):
        raise CatalogCorrupt(f"{path} is empty (0 bytes) but the store was used before: its catalog was lost; "
                             f"{REPAIR_CATALOG}")
    ro = (not writable(path)) if read_only is None else read_only
    if ro and (not exists or lost):
        raise StoreReadOnly(f"cannot create a catalog at {path}: the store is read-only")
    if ro:
        conn = _connect_ro(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30.0)
    tables = _tables(conn, path)
    if "schema_version" not in tables and exists and (tables or not create or has_index_files(root)):
        conn.close()
        raise CatalogCorrupt(f"{path} holds no xmodal catalog (tables {sorted(tables)[:5]}): not an xmodal store, or "
                             f"its writes were lost with catalog.db-wal after a crash; {REPAIR_CATALOG}")
    created = "schema_version" not in tables
    try:
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"catalog schema version {version} is newer than this xmodal supports ({SCHEMA_VERSION})")
        if ro:
            if version != SCHEMA_VERSION:
                raise StoreReadOnly(f"{path} has schema version {version}, this xmodal needs {SCHEMA_VERSION}; the "
                                    "store is read-only so it cannot be migrated: open it once with write access")
            return conn, True, False
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        if created:  # the schema and catalog id go into the main file now, not only into the WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CatalogCorrupt(f"{path} cannot be read ({exc}); {REPAIR_CATALOG}") from exc
    except BaseException:
        conn.close()
        raise
    return conn, False, created
