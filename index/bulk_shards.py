"""Index shards of a bulk store, built from the Parquet files its ingest wrote (no export from the catalog).

The catalog names each file and the live vectors in it (``index.bulk``); a file whose every row is live is read in
place, a file with dead rows (representations removed or re-encoded since) is first copied without them into the
shard folder's ``parquet/``, and a file with none is left out. The manifest records the catalog state as for
catalog-built shards, and ``stale_reason`` tells when the bulk set moved since.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from index.bulk import bulk_files, bulk_state
from index.config import IndexConfig
from index.errors import IndexCorrupt
from index.parquet import ParquetShardWriter, iter_shard, parquet_files, shard_info
from index.shards import Mapper, ShardManifest, build_shards, shard_folder


def _compact(path: str, live: np.ndarray, folder: Path) -> list[str]:
    """Copy the live rows of one Parquet file into ``folder`` (named after it); returns the files written."""
    info = shard_info(path)
    with ParquetShardWriter(folder, info["dim"], prefix=Path(path).stem, meta=info["meta"]) as writer:
        for ids, vectors in iter_shard(path, info["dim"]):
            keep = np.isin(ids, live)
            if keep.any():
                writer.write(ids[keep], vectors[keep])
    return [str(p) for p in writer.files]


def _resplit(files: list[str], n_shards: int, scratch: Path) -> list[str]:
    """The rows of ``files`` rewritten into ``scratch`` as ``n_shards`` files of near-equal size (fewer when there
    are fewer rows), so that a small set can still fill every shard."""
    infos = [shard_info(f) for f in files]
    total = sum(i["rows"] for i in infos)
    staged = scratch / "split"
    staged.mkdir(parents=True, exist_ok=True)
    for old in parquet_files(staged):
        old.unlink()
    with ParquetShardWriter(staged, infos[0]["dim"], prefix="split", rows_per_file=max(1, -(-total // n_shards)),
                            meta=infos[0]["meta"]) as writer:
        for path in files:
            for ids, vectors in iter_shard(path, infos[0]["dim"]):
                writer.write(ids, vectors)
    for path in files:  # compacted copies were only a step on the way
        if Path(path).parent == scratch:
            Path(path).unlink()
    return [str(p) for p in writer.files]


def live_files(catalog: Any, model: str, modality: str, scratch: str | Path) -> list[str]:
    """The Parquet files holding exactly a bulk set's live vectors: originals where whole, compacted copies in
    ``scratch`` (emptied first) where some rows are dead."""
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    for old in parquet_files(scratch):
        old.unlink()
    out: list[str] = []
    for path, rows, live in bulk_files(catalog, model, modality):
        if not len(live):
            continue
        if not Path(path).is_file():
            raise IndexCorrupt(f"the Parquet file {path} that the catalog names for {model}/{modality} is gone")
        out += [path] if len(live) == rows else _compact(path, live, scratch)
    return out


def build_bulk_shards(catalog: Any, root: str | Path, model: str, modality: str, n_shards: int,
                      config: IndexConfig | None = None, *, mapper: Mapper | None = None) -> ShardManifest:
    """Build ``n_shards`` index shards of a bulk set in ``<root>/shards/<model>.<modality>`` from its Parquet files,
    recording the catalog state they reflect."""
    folder = shard_folder(root, model, modality)
    with catalog.snapshot():
        generation = catalog.generation
        source = {"catalog_id": catalog.catalog_id, "generation": generation,
                  "lineage": catalog.lineage(generation) or ""}
        files = live_files(catalog, model, modality, folder / "parquet")
        if not files:
            raise IndexCorrupt(f"the store holds no bulk {model}/{modality} vectors")
        if len(files) < n_shards:  # a small set in few files: cut into n_shards files (fewer with fewer rows)
            files = _resplit(files, n_shards, folder / "parquet")
    return build_shards(files, folder, min(n_shards, len(files)), config, mapper=mapper, model=model, modality=modality, source=source)


def stale_reason(manifest: ShardManifest, catalog: Any) -> str:
    """Why shards of a bulk set no longer reflect the catalog ('' when they do, or the set is not bulk)."""
    count, newest = bulk_state(catalog, manifest.model, manifest.modality)
    if not count:
        return ""
    if count != manifest.ntotal or newest > manifest.generation:
        return (f"shards hold {manifest.ntotal} vectors of generation <= {manifest.generation}; the bulk "
                f"{manifest.model}/{manifest.modality} set now holds {count} (newest generation {newest}): rebuild them")
    return ""
