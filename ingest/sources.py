"""Sources: directory trees, CSV/JSONL manifests, COCO caption JSON and text records, turned into ingest tasks."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ingest.decode import MEDIA_EXTENSIONS
from ingest.errors import IngestError, ManifestError
from ingest.manifests import is_uri, iter_manifest, parse_coco_captions, parse_flickr_captions, resolve_media
from ingest.work import FileTask

MANIFEST_EXTENSIONS = frozenset({".csv", ".tsv", ".jsonl", ".ndjson"})


@dataclass(frozen=True)
class ScanOptions:
    """Which files a directory walk takes: include/exclude globs (relative paths) and symlink policy."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False


@dataclass(frozen=True)
class TextRecord:
    """A text item with no file of its own (a manifest row): uri ``manifest#id``, its text and metadata."""

    uri: str
    text: str
    metadata: Mapping[str, Any] | None = None

    @property
    def sha256(self) -> str:
        """Hash of the UTF-8 text, so unchanged records are skipped."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass
class Scan:
    """What a set of sources holds: file tasks, text records, the roots they cover and entries already refused."""

    files: list[FileTask] = field(default_factory=list)
    records: list[TextRecord] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _file_task(path: str, captions: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None) -> FileTask:
    st = os.stat(path)
    return FileTask(path=path, uri=path, size=st.st_size, mtime=st.st_mtime, captions=captions, metadata=metadata)


def _wanted(rel: str, options: ScanOptions) -> bool:
    if options.include:
        if not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(rel), g) for g in options.include):
            return False
    elif os.path.splitext(rel)[1].lower() not in MEDIA_EXTENSIONS:
        return False
    return not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(rel), g) for g in options.exclude)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk_directory(root: str, options: ScanOptions, scan: Scan) -> None:
    """Add every wanted file below ``root``; symlinks leading out of it are skipped unless allowed."""
    real_root = os.path.realpath(root)
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen_dirs or (not options.follow_symlinks and not _inside(real_dir, real_root)):
            dirnames[:] = []
            continue
        seen_dirs.add(real_dir)
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if not _wanted(rel, options):
                continue
            if os.path.islink(path) and not options.follow_symlinks and not _inside(os.path.realpath(path), real_root):
                continue
            try:
                scan.files.append(_file_task(path))
            except OSError as exc:  # dangling symlink, permission denied
                scan.errors.append((path, f"cannot stat file: {exc.strerror or exc}"))


def _coco_media(json_path: Path, media: str) -> str:
    """COCO file names are relative to an image folder: next to the JSON, or ``../<split>/`` for ``captions_<split>.json``."""
    direct = Path(resolve_media(media, json_path.parent))
    split = json_path.stem.split("_", 1)[-1]
    sibling = json_path.parent.parent / split / media
    return str(sibling if not direct.exists() and sibling.exists() else direct)


def _flickr_media(captions_file: Path, media: str) -> str:
    """Flickr8k/30k keep images in an ``Images/`` folder beside ``captions.txt``; otherwise next to it."""
    in_images = captions_file.parent / "Images" / media
    return str(in_images) if in_images.exists() else resolve_media(media, captions_file.parent)


def _add_captioned(scan: Scan, path: Path, items: Iterable[Any], resolve) -> None:
    for entry in items:
        media = resolve(entry.media)
        try:
            scan.files.append(_file_task(os.path.abspath(media), tuple(entry.captions)))
        except OSError as exc:
            scan.errors.append((media, f"listed in {path} but cannot be read: {exc.strerror or exc}"))


def _add_manifest(scan: Scan, path: Path) -> None:
    for row in iter_manifest(path):
        meta = dict(row.metadata) or None
        if row.media:
            if is_uri(row.media) and not row.media.startswith("file://"):
                scan.errors.append((row.media, f"{path}:{row.line}: remote URIs are not fetched; download them first"))
                continue
            media = os.path.abspath(resolve_media(row.media, path.parent))
            try:
                scan.files.append(_file_task(media, row.texts, meta))
            except OSError as exc:
                scan.errors.append((media, f"{path}:{row.line}: cannot read file: {exc.strerror or exc}"))
        elif row.texts:
            key = row.id or f"L{row.line}"
            for i, text in enumerate(row.texts):
                uri = f"{path}#{key}" + (f".{i}" if len(row.texts) > 1 else "")
                scan.records.append(TextRecord(uri, text, meta))


def scan_sources(paths: Iterable[str | Path], options: ScanOptions = ScanOptions()) -> Scan:
    """Expand paths (directories, media files, manifests, COCO JSON, Flickr captions.txt) into one ``Scan``."""
    scan = Scan()
    for raw in paths:
        path = Path(os.path.abspath(os.path.expanduser(str(raw))))
        if path.is_dir():
            scan.roots.append(str(path))
            walk_directory(str(path), options, scan)
        elif not path.exists():
            raise IngestError(f"{path}: no such file or directory")
        elif path.suffix.lower() == ".json":
            scan.roots.append(str(path))
            _add_captioned(scan, path, parse_coco_captions(path), lambda m, p=path: _coco_media(p, m))
        elif path.name.lower() in ("captions.txt", "results.csv", "captions.csv"):
            scan.roots.append(str(path))
            _add_captioned(scan, path, parse_flickr_captions(path), lambda m, p=path: _flickr_media(p, m))
        elif path.suffix.lower() in MANIFEST_EXTENSIONS:
            scan.roots.append(str(path))
            _add_manifest(scan, path)
        else:
            scan.files.append(_file_task(str(path)))
    return scan


__all__ = ["ManifestError", "Scan", "ScanOptions", "TextRecord", "scan_sources", "walk_directory"]
