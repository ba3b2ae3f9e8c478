"""``check --repair`` for a store that cannot even be opened: a damaged catalog, ``indexes`` not a folder, bad settings."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from index.connect import has_index_files
from index.settings import read_settings, settings_path
from index.errors import SettingsCorrupt

CATALOG_NAME = "catalog.db"


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.damaged-<time>`` beside it (kept for the user, never read again)."""
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while target.exists():
        target = target.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    os.replace(path, target)
    return target


def catalog_integrity(conn: sqlite3.Connection) -> str:
    """SQLite's ``quick_check`` verdict: "ok" or what is wrong."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    verdict = "; ".join(str(r[0]) for r in rows)
    return verdict or "no verdict"


def _salvage(path: Path) -> Path | None:
    """A copy of the catalog SQLite can fully read (``VACUUM INTO``), holding an xmodal schema, or None."""
    copy = path.with_name(f".{path.name}.salvage-{os.getpid()}")
    copy.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(str(path))
        try:
            src.execute("VACUUM INTO ?", (str(copy),))
        finally:
            src.close()
        dst = sqlite3.connect(str(copy))
        try:
            ok = catalog_integrity(dst) == "ok" and dst.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone() is not None
        finally:
            dst.close()
    except sqlite3.DatabaseError:
        ok = False
    if not ok:
        copy.unlink(missing_ok=True)
        return None
    return copy


def repair_catalog(root: Path) -> str:
    """Replace a damaged catalog by what SQLite can still read, else move it (and its indexes) aside; says what."""
    path = root / CATALOG_NAME
    extras = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    copy = _salvage(path) if path.stat().st_size else None
    aside = move_aside(path)
    for extra in extras:
        if extra.exists():
            move_aside(extra)
    if copy is not None:
        os.replace(copy, path)
        return f"rebuilt from what SQLite could read; the damaged file is kept as {aside.name}"
    said = f"nothing could be read back; moved aside to {aside.name}"
    if has_index_files(root):
        said += f", and its indexes to {move_aside(root / 'indexes').name}"
    return said + f"; the store is now empty: run `xmodal ingest FILES --store {root}` again"


def repair_indexes_folder(root: Path) -> str | None:
    """When ``indexes`` is not a folder, move it aside (indexes are rebuilt from the catalog); says what, or None."""
    folder = root / "indexes"
    if not folder.exists() or folder.is_dir():
        return None
    return f"{folder} was not a folder; moved aside to {move_aside(folder).name}, indexes are rebuilt from the catalog"


def repair_settings(root: Path) -> str | None:
    """Move an unreadable settings file aside; says what, or None when it is fine."""
    try:
        read_settings(root)
    except SettingsCorrupt:
        return f"unreadable {settings_path(root).name} moved aside to {move_aside(settings_path(root)).name}"
    return None
