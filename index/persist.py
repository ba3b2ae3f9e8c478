"""Index files of any backend: written to a temp name, fsynced and renamed; a JSON sidecar records what they
reflect and which backend wrote them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from index.backend import BACKENDS, DEFAULT_BACKEND, VectorBackend, backend_class
from index.config import SearchParams
from index.errors import IndexCorrupt, InvalidIndexConfig
from index.schema import now

FORMAT_VERSION = 2  # 2: ``lineage`` (the catalog's token of ``generation``); older sidecars are rebuilt
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class IndexMeta:
    """Sidecar of one index file: the catalog generation and model it reflects, and how it was built."""

    model: str
    modality: str
    dim: int
    catalog_id: str
    generation: int
    lineage: str  # the catalog's random token of ``generation``: which history of the catalog this is
    factory: str
    ntotal: int
    params: dict[str, int] = field(default_factory=dict)
    recall: float | None = None
    built_n: int = 0  # corpus size the index type was chosen for
    file_size: int = 0
    sha256: str = ""
    written_at: str = ""
    format_version: int = FORMAT_VERSION
    backend: str = DEFAULT_BACKEND  # the backend that wrote the index file (absent in sidecars before backends)
    weights: str = ""  # fingerprint of the weights its vectors were made by (the catalog's; "" unknown or older)


def index_paths(root: Path, model: str, modality: str, backend: str = DEFAULT_BACKEND) -> tuple[Path, Path]:
    """(index file, sidecar) of a vector set: ``indexes/<model>.<modality>.<backend>`` (``.faiss`` for FAISS) and
    ``.json``, with a safe model name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    if safe != model:
        safe += "-" + hashlib.sha1(model.encode()).hexdigest()[:8]
    base = Path(root) / "indexes" / f"{safe}.{modality}"
    return base.with_suffix(f"{base.suffix}.{backend}"), base.with_suffix(base.suffix + ".json")


def backend_of(meta: dict) -> str:
    """The backend a sidecar (as read by ``sidecars``) names, the default for old or unknown ones."""
    name = meta.get("backend")
    return name if isinstance(name, str) and name in BACKENDS else DEFAULT_BACKEND


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_index(index: VectorBackend, root: Path, model: str, modality: str, catalog_id: str, generation: int,
               built_n: int, *, lineage: str, weights: str = "") -> IndexMeta:
    """Write the index then its sidecar, each via temp file + fsync + rename; returns the sidecar written.

    An index file another backend wrote for this vector set is removed after the sidecar stops naming it."""
    data_path, meta_path = index_paths(root, model, modality, index.name)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(data_path)
    try:
        index.save(tmp)
        _fsync_file(tmp)
        meta = IndexMeta(model=model, modality=modality, dim=index.dim, catalog_id=catalog_id, generation=generation,
                         lineage=lineage, factory=index.factory,
                         ntotal=index.ntotal, params=index.params.to_dict(), recall=index.recall, built_n=built_n,
                         file_size=tmp.stat().st_size, sha256=_sha256(tmp), written_at=now(), backend=index.name,
                         weights=weights)
        os.replace(tmp, data_path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_bytes_atomic(meta_path, (json.dumps(asdict(meta), indent=2) + "\n").encode())
    _fsync_dir(data_path.parent)
    for other in BACKENDS:
        if other != index.name:
            index_paths(root, model, modality, other)[0].unlink(missing_ok=True)
    return meta


def read_meta(root: Path, model: str, modality: str) -> IndexMeta:
    """The sidecar of a vector set's index, or ``IndexCorrupt`` when missing or unreadable."""
    _, meta_path = index_paths(root, model, modality)
    try:
        raw = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"index sidecar {meta_path} is missing") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"index sidecar {meta_path} is unreadable: {exc}") from exc
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise IndexCorrupt(f"index sidecar {meta_path} has format {version}, expected {FORMAT_VERSION}")
    try:
        meta = IndexMeta(**raw)
    except TypeError as exc:
        raise IndexCorrupt(f"index sidecar {meta_path} is unreadable: {exc}") from exc
    if (meta.model, meta.modality) != (model, modality):
        raise IndexCorrupt(f"index sidecar {meta_path} is for {meta.model}/{meta.modality}, not {model}/{modality}")
    return meta


def load_index(root: Path, model: str, modality: str, device: str = "cpu") -> tuple[VectorBackend, IndexMeta]:
    """Read and verify an index file against its sidecar (backend, size, sha256, dim, count); ``IndexCorrupt``
    otherwise."""
    meta = read_meta(root, model, modality)
    try:
        cls = backend_class(meta.backend)
    except InvalidIndexConfig as exc:
        raise IndexCorrupt(f"index sidecar of {model}/{modality} names an unusable backend: {exc}") from exc
    data_path, _ = index_paths(root, model, modality, meta.backend)
    if not data_path.exists():
        raise IndexCorrupt(f"index file {data_path} is missing")
    size = data_path.stat().st_size
    if size != meta.file_size or _sha256(data_path) != meta.sha256:
        raise IndexCorrupt(f"index file {data_path} does not match its sidecar (truncated or overwritten)")
    index = cls.load(data_path, meta.factory, SearchParams.from_dict(meta.params), meta.recall, device=device)
    if index.dim != meta.dim or index.ntotal != meta.ntotal:
        raise IndexCorrupt(f"index file {data_path} holds {index.ntotal}x{index.dim}, sidecar says "
                           f"{meta.ntotal}x{meta.dim}")
    return index, meta


def sidecars(root: Path) -> list[dict]:
    """Every readable index sidecar under ``root/indexes`` as a dict (with ``path``); unreadable ones are skipped."""
    folder = Path(root) / "indexes"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict):
            out.append({**raw, "path": str(path)})
    return out


def leftover_temp_files(root: Path) -> list[Path]:
    """Temp files left by interrupted writes (never read; ``check --repair`` deletes old ones)."""
    folder = Path(root) / "indexes"
    return sorted(p for p in folder.glob(f".*{TMP_MARK}*") if p.is_file()) if folder.exists() else []
