"""Pure parsers for caption files and manifests: COCO caption JSON, Flickr ``captions.txt``, CSV and JSONL rows.

No decoding and no I/O beyond reading the one text file; malformed input raises ``ManifestError`` with the
file and the 1-based line. Media paths are returned as written; ``resolve_media`` makes them absolute.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import ManifestError


@dataclass(frozen=True)
class CaptionedMedia:
    """One media file and every caption given for it (possibly none), in file order."""

    media: str
    captions: tuple[str, ...] = ()
    id: str | None = None


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row: a media path or URI and/or texts, an optional id and free metadata."""

    line: int
    media: str | None
    texts: tuple[str, ...] = ()
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ManifestColumns:
    """Which column (CSV header or JSON key) names mean media, text and id; the first present one wins for media/id."""

    media: tuple[str, ...] = ("media", "path", "uri", "url", "file", "filename", "file_name", "image", "audio")
    text: tuple[str, ...] = ("caption", "captions", "text", "texts")
    id: tuple[str, ...] = ("id",)


_NUMBERED_TEXT = re.compile(r"(caption|text)_?\d+")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(media: str) -> bool:
    """True for ``scheme://...`` strings (``file://``, ``s3://``, ``https://``), false for plain paths."""
    return bool(_URI.match(media))


def resolve_media(media: str, base: str | Path) -> str:
    """A URI unchanged (``file://`` becomes its path); a relative path joined to ``base``."""
    if media.startswith("file://"):
        return media[len("file://") :]
    if is_uri(media):
        return media
    path = Path(media).expanduser()
    return str(path if path.is_absolute() else Path(base) / path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_coco_captions(path: str | Path) -> list[CaptionedMedia]:
    """COCO caption JSON: one entry per ``images[]`` element, in file order, captions from ``annotations[]``."""
    path = Path(path)
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ManifestError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ManifestError(path, None, "not a COCO caption file: no 'images' list")
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise ManifestError(path, None, "'annotations' is not a list")
    order: dict[Any, str] = {}
    for i, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise ManifestError(path, None, f"images[{i}] lacks 'id' or 'file_name'")
        if image["id"] in order:
            raise ManifestError(path, None, f"images[{i}]: duplicate image id {image['id']!r}")
        order[image["id"]] = image["file_name"]
    captions: dict[Any, list[str]] = {image_id: [] for image_id in order}
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), str):
            raise ManifestError(path, None, f"annotations[{i}] lacks a 'caption' string")
        if ann.get("image_id") not in captions:
            raise ManifestError(path, None, f"annotations[{i}] refers to unknown image_id {ann.get('image_id')!r}")
        captions[ann["image_id"]].append(ann["caption"].strip())
    return [CaptionedMedia(name, tuple(captions[image_id]), str(image_id)) for image_id, name in order.items()]


def _flickr_line(path: Path, number: int, line: str, variant: str) -> tuple[str, str]:
    """Split one Flickr line into (image, caption) for its variant: ``token``, ``csv`` or ``pipe``."""
    if variant == "token":
        image, sep, caption = line.partition("\t")
        if not sep:
            raise ManifestError(path, number, "expected 'image.jpg#N<TAB>caption'")
        image = re.sub(r"#\d+$", "", image.strip())
    elif variant == "pipe":
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) != 3:
            raise ManifestError(path, number, "expected 'image| n| caption'")
        image, caption = parts[0], parts[2]
    else:
        fields = next(csv.reader([line]))
        if len(fields) < 2:
            raise ManifestError(path, number, "expected 'image,caption'")
        image, caption = fields[0], ",".join(fields[1:])
    if not image.strip() or not caption.strip():
        raise ManifestError(path, number, "empty image name or caption")
    return image.strip(), caption.strip()


def parse_flickr_captions(path: str | Path) -> list[CaptionedMedia]:
    """Flickr ``captions.txt``: ``image.jpg#0<TAB>caption`` lines, or CSV ``image,caption`` / ``image| n| caption`` with header."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return []
    header = lines[first].strip().lower().replace(" ", "")
    if "\t" in lines[first]:
        variant, start = "token", first
    elif header.startswith("image_name|"):
        variant, start = "pipe", first + 1
    elif header.startswith("image,caption"):
        variant, start = "csv", first + 1
    else:
        raise ManifestError(path, first + 1, "unknown captions format: expected TAB lines or an 'image,caption' header")
    grouped: dict[str, list[str]] = {}
    for number, line in enumerate(lines[start:], start=start + 1):
        if line.strip():
            image, caption = _flickr_line(path, number, line, variant)
            grouped.setdefault(image, []).append(caption)
    return [CaptionedMedia(image, tuple(captions)) for image, captions in grouped.items()]


def _texts(path: Path, number: int, key: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ManifestError(path, number, f"'{key}' must be a string or a list of strings")


def _row(path: Path, number: int, values: Mapping[str, Any], columns: ManifestColumns) -> ManifestRow:
    """Build one typed row from a key -> value mapping; keys other than media/text/id become metadata."""
    media_key = next((k for k in columns.media if values.get(k) not in (None, "")), None)
    id_key = next((k for k in columns.id if values.get(k) not in (None, "")), None)
    texts: list[str] = []
    metadata: dict[str, Any] = {}
    for key, value in values.items():
        if key in columns.text or _NUMBERED_TEXT.fullmatch(key):
            texts += _texts(path, number, key, value)
        elif key == "metadata" and isinstance(value, dict):
            metadata.update(value)
        elif key not in (media_key, id_key) and value not in (None, ""):
            metadata[key] = value
    media = values[media_key] if media_key else None
    if media is not None and not isinstance(media, str):
        raise ManifestError(path, number, f"'{media_key}' must be a string")
    if media is None and not texts:
        raise ManifestError(path, number, "row has neither a media path/URI nor a text")
    row_id = values[id_key] if id_key else None
    if row_id is not None and not isinstance(row_id, (str, int)):
        raise ManifestError(path, number, f"'{id_key}' must be a string or an integer")
    return ManifestRow(number, media, tuple(texts), None if row_id is None else str(row_id), metadata)


def _iter_csv(path: Path, columns: ManifestColumns, delimiter: str) -> Iterator[ManifestRow]:
    rows = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        return
    known = set(columns.media) | set(columns.text)
    if not any(h in known or _NUMBERED_TEXT.fullmatch(h) for h in header):
        raise ManifestError(path, 1, f"header names no media or text column: {header}")
    for cells in rows:
        number = rows.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ManifestError(path, number, f"{len(cells)} cells for {len(header)} columns")
        values: dict[str, Any] = {}
        for key, cell in zip(header, cells):
            cell = cell.strip()
            if key in values and (key in columns.text):  # repeated caption columns
                values[key] = [*_texts(path, number, key, values[key]), cell]
            else:
                values[key] = cell
        yield _row(path, number, values, columns)


def _iter_jsonl(path: Path, columns: ManifestColumns) -> Iterator[ManifestRow]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(path, number, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(values, dict):
            raise ManifestError(path, number, "each line must be a JSON object")
        yield _row(path, number, values, columns)


def iter_manifest(path: str | Path, columns: ManifestColumns = ManifestColumns()) -> Iterator[ManifestRow]:
    """Rows of a ``.csv``, ``.tsv`` or ``.jsonl``/``.ndjson`` manifest, lazily, in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _iter_jsonl(path, columns)
    if suffix in (".csv", ".tsv"):
        return _iter_csv(path, columns, "\t" if suffix == ".tsv" else ",")
    raise ManifestError(path, None, f"unknown manifest type {suffix!r}: use .csv, .tsv, .jsonl or .ndjson")


def read_manifest(path: str | Path, columns: ManifestColumns = ManifestColumns()) -> list[ManifestRow]:
    """All rows of a manifest (see ``iter_manifest``)."""
    return list(iter_manifest(path, columns))
