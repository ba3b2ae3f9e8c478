"""Loaders for captioned media: COCO caption JSON, Flickr-style ``captions.txt`` and CSV/JSONL manifests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from engine.datasets.base import Dataset, Record
from engine.datasets.media import IMAGE_SUFFIXES, hash_split, modality_of
from ingest.errors import ManifestError
from ingest.manifests import ManifestColumns, is_uri, iter_manifest, parse_coco_captions, parse_flickr_captions, resolve_media


def load_coco(root: str | Path, name: str = "coco", include_unlisted: bool = True) -> Dataset:
    """COCO layout ``annotations/captions_{S}.json`` + ``{S}/*.jpg``; split names drop the year (``train``, ``val``).

    Images in a split folder that the JSON does not list are kept without captions (``include_unlisted``):
    real corpora hold media nobody described, and they are fair distractors for text->image retrieval.
    """
    root = Path(root)
    files = sorted((root / "annotations").glob("captions_*.json"))
    if not files:
        raise FileNotFoundError(f"no annotations/captions_*.json under {root}")
    records: list[Record] = []
    for file in files:
        folder = file.stem.removeprefix("captions_")
        split = re.sub(r"\d+$", "", folder)
        listed = parse_coco_captions(file)
        names = [entry.media for entry in listed]
        if include_unlisted and (root / folder).is_dir():
            known = set(names)
            names += sorted(p.name for p in (root / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in known)
        captions = {entry.media: entry.captions for entry in listed}
        for image_name in names:
            meta = {"file": f"{folder}/{image_name}", "described": image_name in captions}
            records.append(Record(f"{name}:{folder}/{Path(image_name).stem}", split, image=root / folder / image_name,
                                  texts=captions.get(image_name, ()), meta=meta))
    splits = {r.split for r in records}
    return Dataset(name, tuple(records), eval_split="test" if "test" in splits else "val")


def _split_lists(split_lists: Mapping[str, Path]) -> dict[str, str]:
    """Image name -> split from files listing one image name per line (Flickr8k's ``Flickr_8k.testImages.txt``)."""
    assignment: dict[str, str] = {}
    for split, file in split_lists.items():
        for line in Path(file).read_text().split():
            assignment[line.strip()] = split
    return assignment


def load_flickr(captions: str | Path, images: str | Path | None = None, name: str = "flickr",
                split_lists: Mapping[str, Path] | None = None, val_fraction: float = 0.05,
                test_fraction: float = 0.05) -> Dataset:
    """Flickr-style ``captions.txt``; images under ``images`` (default: the file's folder, or its ``Images/``).

    Splits come from ``split_lists`` when given, else from a stable hash of the image name.
    """
    captions = Path(captions)
    if images is None:
        images = captions.parent / "Images" if (captions.parent / "Images").is_dir() else captions.parent
    assigned = _split_lists(split_lists) if split_lists else {}
    records = []
    for entry in parse_flickr_captions(captions):
        split = assigned.get(entry.media) if split_lists else hash_split(entry.media, val_fraction, test_fraction)
        if split is not None:
            records.append(Record(f"{name}:{Path(entry.media).stem}", split, image=Path(images) / entry.media,
                                  texts=entry.captions))
    return Dataset(name, tuple(records))


def _merge_row(record: Record, modality: str | None, media: str | None, texts: tuple[str, ...], path: Path,
               line: int) -> Record:
    """``record`` with a later row of the same id: its texts appended, and its media filling an empty modality.

    A row that names other media for a modality the record already has is refused rather than dropped.
    """
    if media is None:
        return replace(record, texts=record.texts + texts)
    held = record.image if modality == "image" else record.audio
    if held is not None and held != Path(media):
        raise ManifestError(path, line, f"id {record.id!r} already has {modality} {str(held)!r} (line "
                            f"{record.meta.get('line')}); this row names {media!r}: give each file its own id")
    return replace(record, texts=record.texts + texts, **{modality: Path(media)})


def load_manifest(path: str | Path, name: str | None = None, base: str | Path | None = None,
                  columns: ManifestColumns = ManifestColumns(), val_fraction: float = 0.0,
                  test_fraction: float = 0.0) -> Dataset:
    """A CSV/TSV/JSONL manifest of (media, text) rows; rows with the same id (or media) merge into one record.

    Merged rows add texts, and may add the other modality (an id with an image row and an audio row); an id
    naming two different files of one modality is a ``ManifestError``.

    Relative paths resolve against ``base`` (default: the manifest's folder); remote URIs are refused, since
    datasets read local files only. Metadata ``split`` and ``label`` are honoured; otherwise the split is a
    stable hash of the record id.
    """
    path = Path(path)
    name = name or path.stem
    base = Path(base) if base is not None else path.parent
    merged: dict[str, Record] = {}
    for row in iter_manifest(path, columns):
        media = None
        if row.media is not None:
            media = resolve_media(row.media, base)
            if is_uri(media):
                raise ManifestError(path, row.line, f"remote media {row.media!r}: datasets read local files only")
        modality = modality_of(media) if media else None
        if media is not None and modality is None:
            modality = str(row.metadata.get("modality", "")) or None
            if modality not in ("image", "audio"):
                raise ManifestError(path, row.line, f"cannot tell whether {row.media!r} is an image or audio")
        record_id = f"{name}:{row.id or row.media or f'line{row.line}'}"
        previous = merged.get(record_id)
        if previous is not None:
            merged[record_id] = _merge_row(previous, modality, media, row.texts, path, row.line)
            continue
        split = str(row.metadata.get("split") or hash_split(record_id, val_fraction, test_fraction))
        label = row.metadata.get("label")
        merged[record_id] = Record(
            record_id, split, None if label in (None, "") else str(label),
            image=Path(media) if modality == "image" else None, audio=Path(media) if modality == "audio" else None,
            texts=row.texts, meta=dict(row.metadata, line=row.line),
        )
    return Dataset(name, tuple(merged.values()))
