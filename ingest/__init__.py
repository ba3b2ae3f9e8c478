"""Ingest pipeline: sources, decoding, batched encoding into the catalog and indexes."""

from ingest.errors import DecodeError, IngestError, ManifestError
from ingest.manifests import (
    CaptionedMedia, ManifestColumns, ManifestRow, is_uri, iter_manifest, parse_coco_captions,
    parse_flickr_captions, read_manifest, resolve_media,
)

__all__ = [
    "CaptionedMedia", "DecodeError", "IngestError", "ManifestColumns", "ManifestError", "ManifestRow", "is_uri",
    "iter_manifest", "parse_coco_captions", "parse_flickr_captions", "read_manifest", "resolve_media",
]
