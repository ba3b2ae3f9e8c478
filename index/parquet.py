"""Bulk vectors as Parquet shards (the layout LAION and ``embedding-reader`` use): one file per ``rows_per_file``
rows, columns ``id`` (int64), ``embedding`` (fixed-size list of float32) and optional string/number columns.

A writer rolls files at a row count and renames each one into place only when it is complete, so a crashed writer
leaves temp files (never read) and whole shards. pyarrow is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import DimensionMismatch, IndexCorrupt, WrongShape
from index.persist import TMP_MARK, _fsync_dir, _tmp_name
from index.validate import check_ids, check_vectors

ID = "id"
EMBEDDING = "embedding"
META_KEY = b"xmodal"  # Parquet key-value metadata: {"model", "modality", "dim"}
SUFFIX = ".parquet"


def _schema(dim: int, extra: Mapping[str, Sequence[Any]], meta: Mapping[str, Any]):  # -> pyarrow.Schema
    import pyarrow as pa

    fields = [pa.field(ID, pa.int64(), nullable=False), pa.field(EMBEDDING, pa.list_(pa.float32(), dim), nullable=False)]
    for name, values in extra.items():
        fields.append(pa.field(name, pa.array(values).type))
    return pa.schema(fields, metadata={META_KEY: json.dumps({**meta, "dim": dim}).encode()})


class ParquetShardWriter:
    """Appends (ids, vectors[, extra columns]) batches to ``folder/<prefix>-00000.parquet``, ... of at most
    ``rows_per_file`` rows each; ``close()`` finishes the last file and returns every file written."""

    def __init__(self, folder: str | Path, dim: int, *, prefix: str = "vectors", rows_per_file: int = 1_000_000,
                 meta: Mapping[str, Any] | None = None, row_group: int = 65536) -> None:
        if rows_per_file < 1:
            raise ValueError("rows_per_file must be at least 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim, self.prefix, self.rows_per_file = dim, prefix, rows_per_file
        self.meta, self.row_group = dict(meta or {}), row_group
        self.files: list[Path] = []
        self._writer: Any = None
        self._tmp: Path | None = None
        self._rows = 0
        self._next = len(list(self.folder.glob(f"{prefix}-*{SUFFIX}")))  # appends after shards already there

    def write(self, ids: np.ndarray, vectors: np.ndarray, extra: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Append one batch (vectors checked: float32, unit norm, the writer's dimension)."""
        vectors = check_vectors(vectors, self.dim)
        ids = check_ids(ids, len(vectors))
        extra = dict(extra or {})
        for name, values in extra.items():
            if len(values) != len(ids):
                raise WrongShape(f"column {name!r} has {len(values)} values for {len(ids)} rows")
        start = 0
        while start < len(ids):
            if self._writer is None:
                self._open(extra)
            take = min(len(ids) - start, self.rows_per_file - self._rows)
            part = slice(start, start + take)
            self._writer.write_table(self._table(ids[part], vectors[part], {k: list(v)[part] for k, v in extra.items()}),
                                     row_group_size=self.row_group)
            self._rows += take
            start += take
            if self._rows >= self.rows_per_file:
                self._finish()

    def _table(self, ids: np.ndarray, vectors: np.ndarray, extra: Mapping[str, Sequence[Any]]):
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=pa.float32())
        columns = [pa.array(ids, type=pa.int64()), pa.FixedSizeListArray.from_arrays(flat, self.dim)]
        columns += [pa.array(values, type=self._writer.schema.field(name).type) for name, values in extra.items()]
        return pa.Table.from_arrays(columns, schema=self._writer.schema)

    def _open(self, extra: Mapping[str, Sequence[Any]]) -> None:
        import pyarrow.parquet as pq

        final = self.folder / f"{self.prefix}-{self._next:05d}{SUFFIX}"
        self._tmp = _tmp_name(final)
        self._writer = pq.ParquetWriter(str(self._tmp), _schema(self.dim, extra, self.meta))
        self._rows = 0

    def _finish(self) -> None:
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = self.folder / f"{self.prefix}-{self._next:05d}{SUFFIX}"
        os.replace(self._tmp, final)
        _fsync_dir(self.folder)
        self.files.append(final)
        self._writer, self._tmp, self._next = None, None, self._next + 1

    def close(self) -> list[Path]:
        """Finish the open file (if any rows were written to it) and return all files written."""
        if self._writer is not None:
            self._finish()
        return list(self.files)

    def __enter__(self) -> ParquetShardWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        elif self._writer is not None:  # an error mid-file: drop the partial temp file, keep finished shards
            self._writer.close()
            assert self._tmp is not None
            self._tmp.unlink(missing_ok=True)
            self._writer = None


def parquet_files(folder: str | Path, prefix: str = "") -> list[Path]:
    """The finished Parquet shards in ``folder`` (temp files of unfinished writes left out), in name order."""
    folder = Path(folder)
    return sorted(p for p in folder.glob(f"{prefix}*{SUFFIX}") if TMP_MARK not in p.name and not p.name.startswith("."))


def _open(path: Path):  # -> pyarrow.parquet.ParquetFile
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise IndexCorrupt(f"Parquet shard {path} is unreadable: {exc}") from exc
    schema = file.schema_arrow
    if ID not in schema.names or EMBEDDING not in schema.names:
        raise IndexCorrupt(f"Parquet shard {path} lacks the {ID!r} and {EMBEDDING!r} columns")
    return file


def shard_info(path: str | Path) -> dict[str, Any]:
    """Rows, dimension and the xmodal metadata of one shard, from its footer only."""
    file = _open(Path(path))
    field = file.schema_arrow.field(EMBEDDING)
    dim = getattr(field.type, "list_size", -1)
    if dim is None or dim < 1:
        raise IndexCorrupt(f"Parquet shard {path}: {EMBEDDING!r} is not a fixed-size list of float32")
    raw = (file.schema_arrow.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    return {"path": str(path), "rows": int(file.metadata.num_rows), "dim": int(dim), "meta": meta}


def iter_shard(path: str | Path, dim: int | None = None, batch_rows: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (int64 ids, float32 vectors) batches of one shard; ``DimensionMismatch`` when not ``dim`` wide."""
    file = _open(Path(path))
    for batch in file.iter_batches(batch_size=batch_rows, columns=[ID, EMBEDDING]):
        emb = batch.column(1)
        width = emb.type.list_size
        if dim is not None and width != dim:
            raise DimensionMismatch(f"Parquet shard {path} holds {width}-d vectors, expected {dim}")
        ids = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        vectors = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(ids), width)
        yield ids, vectors


def read_rows(paths: Sequence[str | Path], rows: np.ndarray, dim: int,
              batch_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The rows at global positions ``rows`` (sorted, counted across ``paths`` in order): (ids, vectors), one pass."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    out_ids, out_vecs = [], []
    base = 0
    for path in paths:
        for ids, vectors in iter_shard(path, dim, batch_rows):
            lo, hi = np.searchsorted(rows, [base, base + len(ids)])
            if hi > lo:
                local = rows[lo:hi] - base
                out_ids.append(ids[local])
                out_vecs.append(vectors[local])
            base += len(ids)
    if not out_ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    return np.concatenate(out_ids), np.concatenate(out_vecs)
