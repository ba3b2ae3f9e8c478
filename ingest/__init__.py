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

# Loaded on first use (module ``__getattr__``): the pipeline imports numpy and the decoders.
from core.lazy import lazy_face  # noqa: E402

_LAZY = {"IngestOptions": "ingest.pipeline", "local_cluster": "ingest.ray_local", "local_ray": "ingest.ray_local"}
__all__ += sorted(_LAZY)
__getattr__, __dir__ = lazy_face(__name__, _LAZY)
