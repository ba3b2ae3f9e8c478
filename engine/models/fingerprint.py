"""What produced a modality's vectors: a fingerprint of its tower and head weights, read without loading them.

A store's catalog records each vector set's fingerprint beside its vectors (``vector_sets.weights``, mirrored in
``xmodal.json`` ``weights``) and index files carry it, so a retrained head or a re-pointed source is noticed before
new and old vectors meet in one index (``xmodal ingest --reembed`` re-embeds them in place). Sources that name files (local
folders, explicit checkpoints, head folders) are fingerprinted by content (large files by size and their first
and last MiB); hub and package sources by their name, revision and pinned sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.models.presets import Preset

_WHOLE = 64 << 20  # files up to this size are hashed whole
_EDGE = 1 << 20


def _file_id(path: Path, digest: "hashlib._Hash") -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as fh:
        if size <= _WHOLE:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        else:
            digest.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            digest.update(fh.read(_EDGE))


def path_fingerprint(path: Path, digest: "hashlib._Hash") -> None:
    """Feed a file's or a folder's contents (names and bytes, hidden files skipped) into ``digest``."""
    if path.is_file():
        _file_id(path, digest)
    elif path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(f for f in files if not f.startswith(".")):
                _file_id(Path(root) / name, digest)
    else:
        digest.update(b"absent")


def modality_fingerprint(preset: Preset, modality: str, random_weights: bool = False) -> str:
    """A short hex id of everything that decides this modality's vectors: tower and head, kinds, sources, weights."""
    tower, head = preset.towers[modality], preset.heads[modality]
    digest = hashlib.sha256(json.dumps([
        tower.kind, str(tower.source), dict(tower.config or {}), tower.sha256, head.kind, head.hidden_dim, preset.dim,
        bool(random_weights or preset.random_weights),
    ], sort_keys=True, default=str).encode())
    for path in (tower.source.explicit_path, head.path):
        if path is not None:
            path_fingerprint(path, digest)
    return digest.hexdigest()[:16]
