"""Sources: directory trees, CSV/JSONL manifests, COCO caption JSON and text records, turned into ingest tasks."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ingest.decode import MEDIA_EXTENSIONS
from ingest.errors import IngestError, ManifestError
from ingest.files import file_kind, path_uri, shown
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


@dataclass(frozen=True)
class Listing:
    """What a manifest or caption file (``source``, its uri) says of one media file: its captions (all of them:
    captions this source gave before and no longer lists are removed) and metadata (merged onto the item's)."""

    uri: str
    source: str | None
    captions: tuple[str, ...] | None = None  # None: leave the item's captions alone
    metadata: Mapping[str, Any] | None = None


@dataclass
class Scan:
    """What a set of sources holds: file tasks (one per uri), text records, listings of captions and metadata, the
    roots they cover, entries already refused (uri, reason) and files passed over, counted by reason."""

    files: list[FileTask] = field(default_factory=list)
    records: list[TextRecord] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    @property
    def sources(self) -> list[str]:
        """The manifests and caption files scanned (whose listings are complete)."""
        return [path_uri(r) for r in self.roots if not os.path.isdir(r)]

    def add_listing(self, uri: str, source: str, captions: Iterable[str], metadata: Mapping[str, Any] | None) -> None:
        """Record a source's captions and metadata for ``uri``; a source naming a file twice gives the union."""
        texts = tuple(c.strip() for c in captions if c.strip())
        for i, old in enumerate(self.listings):
            if old.uri == uri and old.source == source:
                merged = tuple(dict.fromkeys((*(old.captions or ()), *texts)))
                self.listings[i] = Listing(uri, source, merged, {**(old.metadata or {}), **(metadata or {})} or None)
                return
        self.listings.append(Listing(uri, source, tuple(dict.fromkeys(texts)), metadata or None))

    def add_file(self, path: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Add a file task (stat'ed now), once per uri however many sources name it."""
        task = _file_task(path, metadata=metadata)
        if task.uri not in self._uris:
            self._uris.add(task.uri)
            self.files.append(task)

    def __post_init__(self) -> None:
        self._uris = {t.uri for t in self.files}


class NotRegularFile(OSError):
    """A path that is a FIFO, device, socket or directory: never opened."""


def _file_task(path: str, captions: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None) -> FileTask:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"not a regular file: {file_kind(st.st_mode)}")
    return FileTask(path=path, uri=path_uri(path), size=st.st_size, mtime=st.st_mtime, captions=captions,
                    metadata=metadata)


def _refusal(exc: OSError, what: str) -> str:
    return str(exc) if isinstance(exc, NotRegularFile) else f"{what}: {exc.strerror or exc}"


def _skip_reason(rel: str, options: ScanOptions) -> str | None:
    """Why a walked file is not taken (None: it is)."""
    if options.include:
        if not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(rel), g) for g in options.include):
            return "not matched by --include"
    else:
        ext = os.path.splitext(rel)[1].lower()
        if ext not in MEDIA_EXTENSIONS:
            return f"unsupported type ({shown(ext)})" if ext else "no file extension"
    if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(rel), g) for g in options.exclude):
        return "matched by --exclude"
    return None


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
            reason = _skip_reason(rel, options)
            if reason is None and os.path.islink(path) and not options.follow_symlinks \
                    and not _inside(os.path.realpath(path), real_root):
                reason = "symlink leading out of the folder (--follow-symlinks takes it)"
            if reason is not None:
                scan.skipped[reason] += 1
                continue
            try:
                scan.add_file(path)
            except OSError as exc:  # dangling symlink, permission denied, FIFO or device
                scan.errors.append((path_uri(path), _refusal(exc, "cannot stat file")))


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
    source = path_uri(str(path))
    for entry in items:
        media = os.path.abspath(resolve(entry.media))
        scan.add_listing(path_uri(media), source, entry.captions, None)
        try:
            scan.add_file(media)
        except OSError as exc:
            scan.errors.append((path_uri(media), f"listed in {shown(str(path))} but " + _refusal(exc, "cannot be read")))


def _add_manifest(scan: Scan, path: Path) -> None:
    source = path_uri(str(path))
    for row in iter_manifest(path):
        meta = dict(row.metadata) or None
        if row.media:
            if is_uri(row.media) and not row.media.startswith("file://"):
                scan.errors.append((row.media, f"{shown(str(path))}:{row.line}: remote URIs are not fetched; download them first"))
                continue
            media = os.path.abspath(resolve_media(row.media, path.parent))
            scan.add_listing(path_uri(media), source, row.texts, meta)
            try:
                scan.add_file(media, meta)
            except OSError as exc:
                scan.errors.append((path_uri(media), f"{shown(str(path))}:{row.line}: " + _refusal(exc, "cannot read file")))
        elif row.texts:
            key = row.id or f"L{row.line}"
            for i, text in enumerate(row.texts):
                uri = f"{path_uri(str(path))}#{key}" + (f".{i}" if len(row.texts) > 1 else "")
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
            raise IngestError(f"{shown(str(path))}: no such file or directory")
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
            try:
                scan.add_file(str(path))
            except NotRegularFile as exc:
                scan.errors.append((path_uri(str(path)), str(exc)))
    return scan


__all__ = ["Listing", "ManifestError", "Scan", "ScanOptions", "TextRecord", "scan_sources", "walk_directory"]
