"""Index shards built autofaiss-style from Parquet vector shards: choose the index type for the whole corpus, train it
once on a seeded sample, add groups of Parquet files to copies of the trained index in parallel (one index shard
each, sized for one server), tune the search knobs on the merged result, and record it all in ``manifest.json``.

Folder layout: ``<dir>/manifest.json``, ``<dir>/trained.<backend>`` (the trained empty index) and
``<dir>/shard-00000.<backend>``... The manifest records, per shard, the Parquet files it holds, its id range, size
and sha256, and (when built from a catalog) the catalog identity, generation and lineage it reflects, so a shard set
of another catalog state is refused like a stale index (decision 5). ``merge_topk`` merges per-shard candidates.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from index.backend import VectorBackend, backend_class
from index.config import IndexConfig, SearchParams
from index.errors import DimensionMismatch, IndexCorrupt, InvalidIndexConfig, StoreDamaged
from index.exact import TopK
from index.parquet import ParquetShardWriter, iter_shard, parquet_files, read_rows, shard_info
from index.persist import TMP_MARK, _fsync_dir, _sha256, _tmp_name, _write_bytes_atomic
from index.schema import now
from index.tuning import TuneResult, drop_self, tune

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    """One index shard: its number, file name, vector count, id range, the Parquet files it holds, size and sha256."""

    shard: int
    file: str
    ntotal: int
    id_min: int
    id_max: int
    sources: tuple[str, ...]
    file_size: int
    sha256: str
    add_seconds: float = 0.0


@dataclass(frozen=True)
class ShardManifest:
    """A shard set: vector set, index type shared by every shard, tuned knobs, reached recall, the shards, and the
    catalog state it reflects (empty ``catalog_id`` for shards built from Parquet alone)."""

    model: str
    modality: str
    dim: int
    backend: str
    factory: str
    ntotal: int
    trained_on: int
    shards: tuple[ShardEntry, ...]
    params: dict[str, int] = field(default_factory=dict)
    recall: float | None = None
    catalog_id: str = ""
    generation: int = 0
    lineage: str = ""
    built_at: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """JSON text of the manifest."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ShardManifest:
        """Inverse of ``to_json`` (after ``json.loads``); ``IndexCorrupt`` for anything else."""
        if not isinstance(raw, Mapping) or raw.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(f"shard manifest has format {raw.get('format_version') if isinstance(raw, Mapping) else None}, "
                               f"expected {FORMAT_VERSION}")
        try:
            shards = tuple(ShardEntry(**{**s, "sources": tuple(s["sources"])}) for s in raw["shards"])
            return cls(**{**raw, "shards": shards})
        except (TypeError, KeyError) as exc:
            raise IndexCorrupt(f"shard manifest is unreadable: {exc}") from exc


@dataclass(frozen=True)
class ShardTask:
    """What one parallel adder does: copy the trained index, add ``files``, write ``shard-NNNNN.<backend>``."""

    shard: int
    files: tuple[str, ...]
    template: str
    folder: str
    backend: str
    factory: str
    dim: int


Mapper = Callable[[Callable[[ShardTask], ShardEntry], Sequence[ShardTask]], list[ShardEntry]]


def thread_mapper(workers: int = 1) -> Mapper:
    """Run shard adders on ``workers`` threads of this process (FAISS and Parquet reads release the GIL)."""

    def run(fn: Callable[[ShardTask], ShardEntry], tasks: Sequence[ShardTask]) -> list[ShardEntry]:
        if workers <= 1:
            return [fn(t) for t in tasks]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, tasks))

    return run


def shard_folder(root: str | Path, model: str, modality: str) -> Path:
    """``<store>/shards/<model>.<modality>`` with a safe model name (as index files name it)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    return Path(root) / "shards" / f"{safe}.{modality}"


def assign_files(rows: Sequence[int], n_shards: int) -> list[list[int]]:
    """Parquet files (by row count) to ``n_shards`` groups, largest first onto the lightest group; files stay whole."""
    if n_shards < 1:
        raise InvalidIndexConfig("a shard set needs at least one shard")
    if len(rows) < n_shards:
        raise InvalidIndexConfig(f"{len(rows)} Parquet file(s) cannot fill {n_shards} shards: write smaller files")
    groups: list[list[int]] = [[] for _ in range(n_shards)]
    load = [0] * n_shards
    for i in sorted(range(len(rows)), key=lambda i: (-rows[i], i)):
        g = min(range(n_shards), key=lambda g: (load[g], g))
        groups[g].append(i)
        load[g] += rows[i]
    return [sorted(g) for g in groups]


def add_shard(task: ShardTask) -> ShardEntry:
    """One adder: load the trained empty index, stream its Parquet files in, save under a temp name and rename."""
    start = time.perf_counter()
    cls = backend_class(task.backend)
    index = cls.load(Path(task.template), task.factory, SearchParams(), None)
    lo, hi = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for path in task.files:
        for ids, vectors in iter_shard(path, task.dim):
            index.add(ids, vectors)
            if len(ids):
                lo, hi = min(lo, int(ids.min())), max(hi, int(ids.max()))
    name = f"shard-{task.shard:05d}.{task.backend}"
    final = Path(task.folder) / name
    tmp = _tmp_name(final)
    try:
        index.save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        size, digest = tmp.stat().st_size, _sha256(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return ShardEntry(task.shard, name, index.ntotal, lo if index.ntotal else -1, hi if index.ntotal else -1,
                      tuple(Path(p).name for p in task.files), size, digest, round(time.perf_counter() - start, 3))


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard (scores, ids) of the same queries into the top ``k`` (ties by smaller id; -1 padding last)."""
    if not parts:
        raise ValueError("nothing to merge")
    scores = np.concatenate([np.asarray(d, dtype=np.float32) for d, _ in parts], axis=1)
    ids = np.concatenate([np.asarray(i, dtype=np.int64) for _, i in parts], axis=1)
    scores = np.where(ids < 0, -np.inf, scores)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=1)[:, :k]
    top_d, top_i = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
    if top_d.shape[1] < k:  # fewer candidates than k in all shards together
        pad = k - top_d.shape[1]
        top_d = np.pad(top_d, ((0, 0), (0, pad)), constant_values=-np.inf)
        top_i = np.pad(top_i, ((0, 0), (0, pad)), constant_values=-1)
    return top_d.astype(np.float32), top_i


def read_manifest(folder: str | Path) -> ShardManifest:
    """The manifest of a shard set; ``IndexCorrupt`` when missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        return ShardManifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"no shard manifest at {path} (build the shards first)") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"shard manifest {path} is unreadable: {exc}") from exc


def load_shard(folder: str | Path, manifest: ShardManifest, shard: int, device: str = "cpu") -> VectorBackend:
    """One index shard, checked against the manifest (size, sha256, count, dimension), with the tuned knobs set."""
    entry = manifest.shards[shard]
    path = Path(folder) / entry.file
    if not path.is_file() or path.stat().st_size != entry.file_size or _sha256(path) != entry.sha256:
        raise IndexCorrupt(f"index shard {path} is missing or does not match the manifest")
    index = backend_class(manifest.backend).load(path, manifest.factory, SearchParams.from_dict(manifest.params),
                                                 manifest.recall, device=device)
    if index.ntotal != entry.ntotal or index.dim != manifest.dim:
        raise IndexCorrupt(f"index shard {path} holds {index.ntotal}x{index.dim}, manifest says {entry.ntotal}x{manifest.dim}")
    return index


class LocalShards:
    """Every shard of a set in this process, searched one after another and merged: the reference the distributed
    coordinator is checked against, and the tuner's view of the set (duck-types the parts of ``VectorBackend``
    that ``index.tuning.tune`` uses)."""

    def __init__(self, indexes: Sequence[VectorBackend], factory: str) -> None:
        self.indexes, self.factory = list(indexes), factory
        self.params, self.recall = indexes[0].params if indexes else SearchParams(), None

    @classmethod
    def open(cls, folder: str | Path, device: str = "cpu") -> LocalShards:
        """Load every shard of the set in ``folder``."""
        manifest = read_manifest(folder)
        shards = cls([load_shard(folder, manifest, s.shard, device) for s in manifest.shards], manifest.factory)
        shards.recall = manifest.recall
        return shards

    @property
    def ntotal(self) -> int:
        """Vectors in all shards."""
        return sum(i.ntotal for i in self.indexes)

    def tunable(self) -> dict[str, int]:
        """The knobs of the shared index type."""
        return self.indexes[0].tunable()

    def set_params(self, params: SearchParams) -> None:
        """Set the same knobs on every shard."""
        for index in self.indexes:
            index.set_params(params)
        self.params = params

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` over all shards."""
        return merge_topk([index.search(queries, k) for index in self.indexes], k)


def _sample_rows(total: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(total, size=min(size, total), replace=False)).astype(np.int64)


def _exact_truth(files: Sequence[str], dim: int, queries: np.ndarray, k: int) -> np.ndarray:
    top = TopK(len(queries), k)
    for path in files:
        for ids, vectors in iter_shard(path, dim):
            top.add_chunk(queries, vectors, ids)
    return top.I


def _tune_set(folder: Path, manifest: ShardManifest, files: Sequence[str], trained: np.ndarray,
              config: IndexConfig) -> TuneResult | None:
    """Tune the shared knobs on the merged search, held-out stored vectors as queries, exact truth (own id left out)."""
    shards = LocalShards.open(folder)
    if not shards.tunable():
        return None
    rng = np.random.default_rng(config.seed + 1)
    pool = np.setdiff1d(np.arange(manifest.ntotal), trained) if len(trained) < manifest.ntotal else np.arange(manifest.ntotal)
    own, queries = read_rows(files, _sample_rows(len(pool), config.tune_queries, rng) if len(pool) else pool, manifest.dim)
    truth = drop_self(_exact_truth(files, manifest.dim, queries, config.k + 1), own, config.k)
    return tune(shards, queries, truth, config.target_recall, config.k, self_ids=own)  # type: ignore[arg-type]


def build_shards(files: Sequence[str | Path], folder: str | Path, n_shards: int, config: IndexConfig | None = None, *,
                 mapper: Mapper | None = None, model: str = "", modality: str = "",
                 source: Mapping[str, Any] | None = None, tune_recall: bool = True) -> ShardManifest:
    """Build ``n_shards`` index shards in ``folder`` from Parquet ``files``: the index type chosen for the whole
    corpus (``config.factory`` when set), trained once, shards added by ``mapper`` (default: in this thread),
    knobs tuned to ``config.target_recall`` on the merged result. ``source``: catalog_id/generation/lineage."""
    config = config or IndexConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = [str(f) for f in files]
    infos = [shard_info(f) for f in files]
    dims = {i["dim"] for i in infos}
    if len(dims) != 1:
        raise DimensionMismatch(f"Parquet shards hold vectors of several dimensions: {sorted(dims)}")
    dim, total = dims.pop(), sum(i["rows"] for i in infos)
    groups = assign_files([i["rows"] for i in infos], n_shards)
    cls = backend_class(config.backend)
    factory = cls.choose_factory(total, dim, config)
    template = cls.create(dim, factory)
    trained = np.zeros(0, dtype=np.int64)
    if not template.is_trained:
        trained = _sample_rows(total, cls.train_size(total, factory, config), np.random.default_rng(config.seed))
        template.train(read_rows(files, trained, dim)[1])
    template_path = folder / f"trained.{config.backend}"
    tmp = _tmp_name(template_path)
    template.save(tmp)
    os.replace(tmp, template_path)
    tasks = [ShardTask(s, tuple(files[i] for i in g), str(template_path), str(folder), config.backend, factory, dim)
             for s, g in enumerate(groups)]
    entries = sorted((mapper or thread_mapper())(add_shard, tasks), key=lambda e: e.shard)
    added = sum(e.ntotal for e in entries)
    if added != total:
        raise StoreDamaged(f"shards hold {added} vectors, the Parquet files {total}: a Parquet file changed during the build")
    source = dict(source or {})
    manifest = ShardManifest(model=model, modality=modality, dim=dim, backend=config.backend, factory=factory,
                             ntotal=total, trained_on=len(trained), shards=tuple(entries),
                             catalog_id=str(source.get("catalog_id", "")), generation=int(source.get("generation", 0)),
                             lineage=str(source.get("lineage", "")), built_at=now())
    _write_bytes_atomic(folder / MANIFEST, manifest.to_json().encode())  # written untuned first: tuning reads it
    if tune_recall:
        result = _tune_set(folder, manifest, files, trained, config)
        if result is not None:
            manifest = ShardManifest(**{**asdict(manifest), "shards": manifest.shards,
                                        "params": result.params.to_dict(), "recall": round(result.recall, 4)})
        else:
            manifest = ShardManifest(**{**asdict(manifest), "shards": manifest.shards, "recall": 1.0})
        _write_bytes_atomic(folder / MANIFEST, manifest.to_json().encode())
    listed = {e.file for e in entries}
    for old in folder.glob("shard-*"):  # shards of an earlier build with more shards
        if old.name not in listed and TMP_MARK not in old.name:
            old.unlink()
    _fsync_dir(folder)
    log.info("built %d %s shards (%s) over %d vectors; params %s recall %s", n_shards, config.backend, factory, total,
             manifest.params, manifest.recall)
    return manifest


def export_vector_set(catalog: Any, model: str, modality: str, folder: str | Path, rows_per_file: int) -> dict[str, Any]:
    """Write one catalog vector set to Parquet shards in ``folder`` (replacing earlier ones) inside one snapshot;
    returns the catalog state written (catalog_id, generation, lineage) and the files."""
    folder = Path(folder)
    for old in parquet_files(folder):
        old.unlink()
    with catalog.snapshot():
        generation = catalog.generation
        state = {"catalog_id": catalog.catalog_id, "generation": generation, "lineage": catalog.lineage(generation) or ""}
        dim = catalog.vector_dim(model, modality)
        with ParquetShardWriter(folder, dim, rows_per_file=rows_per_file,
                                meta={"model": model, "modality": modality, **state}) as writer:
            for ids, vectors in catalog.iter_vectors(model, modality):
                writer.write(ids, vectors)
    return {**state, "files": [str(p) for p in writer.files]}


def build_catalog_shards(catalog: Any, root: str | Path, model: str, modality: str, n_shards: int,
                         config: IndexConfig | None = None, *, mapper: Mapper | None = None,
                         files_per_shard: int = 4) -> ShardManifest:
    """Export a catalog vector set to ``<root>/shards/<model>.<modality>/parquet`` and build ``n_shards`` from it."""
    folder = shard_folder(root, model, modality)
    n = catalog.count_vectors(model, modality)
    rows = max(1, -(-n // (n_shards * files_per_shard)))
    exported = export_vector_set(catalog, model, modality, folder / "parquet", rows)
    return build_shards(exported.pop("files"), folder, n_shards, config, mapper=mapper, model=model,
                        modality=modality, source=exported)


def check_current(manifest: ShardManifest, catalog: Any) -> str:
    """Why a catalog-built shard set no longer reflects ``catalog`` ('' when it does)."""
    if not manifest.catalog_id:
        return ""
    if manifest.catalog_id != catalog.catalog_id:
        return f"shards were built from another catalog ({manifest.catalog_id})"
    if catalog.lineage(manifest.generation) != manifest.lineage:
        return f"shards were built at generation {manifest.generation} of another history of this catalog"
    changes = catalog.changes_since(manifest.model, manifest.modality, manifest.generation)
    if len(changes.removed) or len(changes.upserted):
        return (f"shards reflect generation {manifest.generation}; {manifest.model}/{manifest.modality} changed since "
                f"(-{len(changes.removed)} +{len(changes.upserted)}): rebuild them")
    from index.bulk_shards import stale_reason  # a bulk set's vectors are in Parquet; it imports this module

    return stale_reason(manifest, catalog)
